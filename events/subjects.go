package events

import (
	"fmt"
	"regexp"
	"strings"
)

// Subject prefixes of the two streams of the contract.
const (
	CommandSubjectPrefix = "workspace.cmd."
	EventSubjectPrefix   = "workspace.evt."
	// DeadLetterSubjectPrefix holds messages no handler could act on,
	// with the reason, for an operator to inspect and replay.
	DeadLetterSubjectPrefix = "workspace.dlq."
)

// Headers of a dead letter: the message is kept as it came, the reason
// and origin travel here.
const (
	HeaderDeadLetterReason           = "Dlq-Reason"
	HeaderDeadLetterOriginalSubject  = "Dlq-Original-Subject"
	HeaderDeadLetterOriginalSequence = "Dlq-Original-Sequence"
)

// NamePrefix starts every workspace name.
const NamePrefix = "ws-"

// maxNameLen keeps a name valid as an S3 bucket name (3 to 63 characters).
const maxNameLen = 63

var nameRE = regexp.MustCompile(`^ws-[a-z0-9]+(-[a-z0-9]+)*$`)

// NameError says why a workspace name or preferred name is not valid.
type NameError struct {
	Value  string
	Reason string
}

func (e *NameError) Error() string {
	return fmt.Sprintf("invalid workspace name %q: %s", e.Value, e.Reason)
}

// ValidateName checks a full workspace name (`ws-<slug>`): valid as an S3
// bucket name, a Keycloak clientId and a single NATS subject token.
func ValidateName(name string) error {
	switch {
	case len(name) > maxNameLen:
		return &NameError{Value: name, Reason: fmt.Sprintf("longer than %d characters", maxNameLen)}
	case !nameRE.MatchString(name):
		return &NameError{Value: name, Reason: "must be ws- followed by lowercase letters and digits, in groups joined by single hyphens"}
	case strings.HasSuffix(name, "-s3alias"), strings.HasSuffix(name, "--ol-s3"):
		return &NameError{Value: name, Reason: "ends with a suffix S3 reserves"}
	}
	return nil
}

// NameFor derives the workspace name from a preferred name: lowercase,
// every run of other characters folded into one hyphen, as the contract and
// the EOEPCA workspace API do (so "ws-x" becomes "ws-ws-x").
func NameFor(preferred string) (string, error) {
	var b strings.Builder
	pendingDash := false
	for _, r := range strings.ToLower(strings.TrimSpace(preferred)) {
		isAlnum := (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9')
		if !isAlnum {
			pendingDash = b.Len() > 0
			continue
		}
		if pendingDash {
			b.WriteByte('-')
			pendingDash = false
		}
		b.WriteRune(r)
	}
	slug := b.String()
	if slug == "" {
		return "", &NameError{Value: preferred, Reason: "has no letters or digits"}
	}
	name := NamePrefix + slug
	if err := ValidateName(name); err != nil {
		return "", &NameError{Value: preferred, Reason: err.(*NameError).Reason}
	}
	return name, nil
}

// WorkspaceFromSubject returns the workspace token of a command or event
// subject, or "" when the subject is not one of ours.
func WorkspaceFromSubject(subject string) string {
	for _, p := range []string{CommandSubjectPrefix, EventSubjectPrefix} {
		if rest, ok := strings.CutPrefix(subject, p); ok {
			ws, _, _ := strings.Cut(rest, ".")
			return ws
		}
	}
	return ""
}
