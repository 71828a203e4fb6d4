package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/eo-workspaces/provisioner/events"
)

// decodeBody reads a JSON object body strictly into dst: the content type
// must be JSON, the size is bounded, and unknown fields are refused. With
// optional set, an empty body is accepted and leaves dst as it is.
func (s *server) decodeBody(w http.ResponseWriter, r *http.Request, dst any, optional bool) error {
	if optional && r.ContentLength == 0 && r.Header.Get("Content-Type") == "" {
		return nil
	}
	if err := checkContentType(r.Header.Get("Content-Type")); err != nil {
		return err
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return errorf(http.StatusRequestEntityTooLarge, "", fmt.Sprintf("request body is larger than %d bytes", tooBig.Limit))
		}
		return errorf(http.StatusBadRequest, "", "request body could not be read")
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		if optional {
			return nil
		}
		return errorf(http.StatusBadRequest, "", "request body is empty: a JSON object is required")
	}
	return decodeStrict(raw, dst)
}

func checkContentType(ct string) error {
	if ct == "" {
		return errorf(http.StatusUnsupportedMediaType, "Content-Type", "Content-Type must be application/json")
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return errorf(http.StatusUnsupportedMediaType, "Content-Type", fmt.Sprintf("Content-Type %q is not supported: use application/json", ct))
	}
	return nil
}

func decodeStrict(raw []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errorf(http.StatusBadRequest, "", "malformed JSON: unexpected data after the object")
	}
	return nil
}

// decodeError sorts a decoding failure into malformed JSON (400) and
// well-formed JSON that does not fit the request (422, naming the field).
func decodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		if typeErr.Field == "" {
			return errorf(http.StatusUnprocessableEntity, "", "request body must be a JSON object")
		}
		return errorf(http.StatusUnprocessableEntity, typeErr.Field, fmt.Sprintf("%s must be a %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String())))
	}
	// encoding/json reports unknown fields only in its message.
	if _, rest, ok := strings.Cut(err.Error(), `unknown field "`); ok {
		field, _, _ := strings.Cut(rest, `"`)
		return errorf(http.StatusUnprocessableEntity, field, fmt.Sprintf("unknown field %q", field))
	}
	return errorf(http.StatusBadRequest, "", "malformed JSON: "+err.Error())
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "struct", "map":
		return "object"
	case "slice", "array":
		return "array"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "whole number"
	default:
		return "number"
	}
}

// maxUsernameLen matches the schemas' username definition (and Keycloak's
// column size).
const maxUsernameLen = 255

// validUsername applies the schemas' username rule: 1 to 255 characters,
// no white space, no '/', so that it also works as a path segment.
func validUsername(field, u string) error {
	switch {
	case u == "":
		return errorf(http.StatusUnprocessableEntity, field, field+" is required")
	case len(u) > maxUsernameLen:
		return errorf(http.StatusUnprocessableEntity, field, fmt.Sprintf("%s is longer than %d characters", field, maxUsernameLen))
	case !utf8.ValidString(u) || strings.ContainsFunc(u, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '/' }):
		return errorf(http.StatusUnprocessableEntity, field, field+" must not contain white space, control characters or '/'")
	}
	return nil
}

func validRole(role string) error {
	if !slices.Contains(events.Roles, role) {
		return errorf(http.StatusUnprocessableEntity, "role", fmt.Sprintf("role must be one of %s", strings.Join(events.Roles, ", ")))
	}
	return nil
}

// validName checks a workspace name taken from the path.
func validName(name string) error {
	if err := events.ValidateName(name); err != nil {
		return errorf(http.StatusUnprocessableEntity, "name", err.Error())
	}
	return nil
}
