package schemas

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// printer renders the library's error kinds; it is read-only after start.
var printer = message.NewPrinter(language.English)

//go:embed *.json
var files embed.FS

const baseURL = "https://schemas.eo-workspaces.dev/"

// EnvelopeFile is the schema every type's schema builds on.
const EnvelopeFile = "envelope.json"

// Error says which field of an event broke its schema and why.
type Error struct {
	Type   string // event type, "" if the envelope itself is broken
	Field  string // dotted path, e.g. "data.preferred_name"
	Reason string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s: %s", e.typeOrEnvelope(), e.Reason)
	}
	return fmt.Sprintf("%s: %s: %s", e.typeOrEnvelope(), e.Field, e.Reason)
}

func (e *Error) typeOrEnvelope() string {
	if e.Type == "" {
		return "cloudevent"
	}
	return e.Type
}

// ErrNoSchema is returned for a type that has no schema.
var ErrNoSchema = errors.New("no schema for event type")

// Validator checks envelopes; it is safe for concurrent use.
type Validator struct {
	byType   map[string]*jsonschema.Schema
	envelope *jsonschema.Schema
}

// New compiles every embedded schema.
func New() (*Validator, error) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	names, err := fs.Glob(files, "*.json")
	if err != nil {
		return nil, fmt.Errorf("list schemas: %w", err)
	}
	for _, n := range names {
		raw, _ := files.ReadFile(n)
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("parse schema %s: %w", n, err)
		}
		if err := c.AddResource(baseURL+n, doc); err != nil {
			return nil, fmt.Errorf("add schema %s: %w", n, err)
		}
	}
	v := &Validator{byType: map[string]*jsonschema.Schema{}}
	for _, n := range names {
		sch, err := c.Compile(baseURL + n)
		if err != nil {
			return nil, fmt.Errorf("compile schema %s: %w", n, err)
		}
		if n == EnvelopeFile {
			v.envelope = sch
			continue
		}
		v.byType[strings.TrimSuffix(n, ".json")] = sch
	}
	return v, nil
}

// Types lists the event types that have a schema.
func (v *Validator) Types() []string {
	out := make([]string, 0, len(v.byType))
	for t := range v.byType {
		out = append(out, t)
	}
	return out
}

// Validate checks a whole CloudEvent in structured JSON mode: the
// envelope, then the schema of its type.
func (v *Validator) Validate(raw []byte) error {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return &Error{Reason: "not valid JSON: " + err.Error()}
	}
	if err := v.envelope.Validate(doc); err != nil {
		return toError("", err)
	}
	typ, _ := doc.(map[string]any)["type"].(string)
	sch, ok := v.byType[typ]
	if !ok {
		return &Error{Field: "type", Reason: fmt.Sprintf("%v %q", ErrNoSchema, typ)}
	}
	if err := sch.Validate(doc); err != nil {
		return toError(typ, err)
	}
	return nil
}

// toError reduces the library's tree of causes to its first leaf, which
// names the field a person has to fix.
func toError(typ string, err error) error {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return &Error{Type: typ, Reason: err.Error()}
	}
	leaf := ve
	for len(leaf.Causes) > 0 {
		leaf = leaf.Causes[0]
	}
	reason := leaf.ErrorKind.LocalizedString(printer)
	return &Error{Type: typ, Field: strings.Join(leaf.InstanceLocation, "."), Reason: reason}
}
