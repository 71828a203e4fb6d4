package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/auth"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/schemas"
)

// deadLetterBody is one dead letter as an operator sees it. Command is
// the kept message when it is JSON, Body when it is not (show only).
type deadLetterBody struct {
	Seq              uint64          `json:"seq"`
	Kind             string          `json:"kind"` // rejected, max_deliveries
	Reason           string          `json:"reason"`
	OriginalSubject  string          `json:"original_subject"`
	OriginalSequence uint64          `json:"original_sequence,omitempty"`
	Time             time.Time       `json:"time"`
	Type             string          `json:"type,omitempty"`
	Workspace        string          `json:"workspace,omitempty"`
	ID               string          `json:"id,omitempty"`
	Command          json.RawMessage `json:"command,omitempty"`
	Body             string          `json:"body,omitempty"`
}

type deadLetterList struct {
	Items      []deadLetterBody `json:"items"`
	NextCursor *string          `json:"next_cursor"`
}

// replayRequest optionally carries the fixed command to publish instead
// of the one kept.
type replayRequest struct {
	Command json.RawMessage `json:"command,omitempty"`
}

type replayedBody struct {
	Seq       uint64 `json:"seq"`
	Subject   string `json:"subject"`
	CommandID string `json:"command_id"`
}

func (s *server) listDeadLetters(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	if err := platformAdmin(p); err != nil {
		return err
	}
	limit, err := s.parseLimit(r.URL.Query().Get("limit"))
	if err != nil {
		return err
	}
	from, err := parseSeq("cursor", r.URL.Query().Get("cursor"), 1)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	stream, err := s.deadLetters(ctx)
	if err != nil {
		return err
	}
	body := deadLetterList{Items: []deadLetterBody{}}
	for seq := from; ; seq++ {
		m, err := stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(events.DeadLetterSubjectPrefix+">"))
		if events.IsNotFound(err) {
			break
		}
		if err != nil {
			return unavailable("cannot read the dead letters now", err)
		}
		if len(body.Items) == limit {
			c := strconv.FormatUint(m.Sequence, 10)
			body.NextCursor = &c
			break
		}
		body.Items = append(body.Items, summarizeDeadLetter(m))
		seq = m.Sequence
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

func (s *server) showDeadLetter(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	m, _, err := s.deadLetter(ctx, r, p)
	if err != nil {
		return err
	}
	body := summarizeDeadLetter(m)
	if json.Valid(m.Data) {
		body.Command = m.Data
	} else {
		body.Body = string(m.Data)
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

// replayDeadLetter publishes the kept command again, or the fixed one the
// request carries, on the subject its envelope names, schema-checked
// first; then the dead letter is removed. The command keeps its id (the
// contract's Nats-Msg-Id), so within the duplicate window JetStream would
// drop it as a repeat: that is refused with 409, the way out said.
func (s *server) replayDeadLetter(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx, cancel := s.commandContext(r)
	defer cancel()
	m, stream, err := s.deadLetter(ctx, r, p)
	if err != nil {
		return err
	}
	var req replayRequest
	if err := s.decodeBody(w, r, &req, true); err != nil {
		return err
	}
	raw := m.Data
	if len(req.Command) > 0 {
		raw = req.Command
	}
	env, err := replayable(raw)
	if err != nil {
		return err
	}
	pub, err := s.d.Publisher.Publish(ctx, env)
	if err != nil {
		return publishError(err)
	}
	if pub.Duplicate {
		return errorf(http.StatusConflict, "command.id", fmt.Sprintf(
			"command %s was stored a short while ago and JetStream drops it as a repeat; replay later, or send the fixed command with a new id", env.ID))
	}
	if err := stream.DeleteMsg(ctx, m.Sequence); err != nil && !events.IsNotFound(err) {
		s.log.Warn("replayed dead letter not removed", zap.Uint64("seq", m.Sequence), zap.Error(err))
	}
	s.log.Info("dead letter replayed", zap.Uint64("seq", m.Sequence), zap.String("command_id", env.ID),
		zap.String("type", env.Type), zap.String("workspace", env.Subject), zap.String("actor", p.Username))
	subject, _ := env.NATSSubject() // Publish checked it
	writeJSON(w, http.StatusAccepted, replayedBody{Seq: m.Sequence, Subject: subject, CommandID: env.ID})
	return nil
}

func (s *server) discardDeadLetter(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx, cancel := s.commandContext(r)
	defer cancel()
	m, stream, err := s.deadLetter(ctx, r, p)
	if err != nil {
		return err
	}
	if err := stream.DeleteMsg(ctx, m.Sequence); err != nil && !events.IsNotFound(err) {
		return unavailable("cannot discard the dead letter now", err)
	}
	s.log.Info("dead letter discarded", zap.Uint64("seq", m.Sequence), zap.String("actor", p.Username),
		zap.String("reason", m.Header.Get(events.HeaderDeadLetterReason)))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// replayable decodes a command to replay: a CloudEvent of a command type.
// The schema is checked when it is published.
func replayable(raw []byte) (events.Envelope, error) {
	var env events.Envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return env, errorf(http.StatusUnprocessableEntity, "command",
			"the command is not a CloudEvent in JSON; send a fixed one as {\"command\": {...}}")
	}
	if spec, ok := events.Lookup(env.Type); !ok || spec.Kind != events.KindCommand {
		return env, errorf(http.StatusUnprocessableEntity, "command.type", fmt.Sprintf("%q is not a command type", env.Type))
	}
	return env, nil
}

// publishError answers a refused publish: the schema's refusal names the
// command's field, anything else is the bus.
func publishError(err error) error {
	var se *schemas.Error
	if errors.As(err, &se) {
		field := "command"
		if se.Field != "" {
			field += "." + se.Field
		}
		return errorf(http.StatusUnprocessableEntity, field, se.Reason)
	}
	return unavailable("cannot publish the command now; retry", err)
}

func (s *server) deadLetters(ctx context.Context) (jetstream.Stream, error) {
	stream, err := s.d.JS.Stream(ctx, events.DeadLettersStream)
	if err != nil {
		return nil, unavailable("cannot read the dead letters now", err)
	}
	return stream, nil
}

// deadLetter finds the dead letter the path names, for a platform admin.
func (s *server) deadLetter(ctx context.Context, r *http.Request, p auth.Principal) (*jetstream.RawStreamMsg, jetstream.Stream, error) {
	if err := platformAdmin(p); err != nil {
		return nil, nil, err
	}
	seq, err := parseSeq("seq", r.PathValue("seq"), 0)
	if err != nil {
		return nil, nil, err
	}
	stream, err := s.deadLetters(ctx)
	if err != nil {
		return nil, nil, err
	}
	m, err := stream.GetMsg(ctx, seq)
	if events.IsNotFound(err) {
		return nil, nil, errorf(http.StatusNotFound, "seq", fmt.Sprintf("no dead letter %d", seq))
	}
	if err != nil {
		return nil, nil, unavailable("cannot read the dead letters now", err)
	}
	return m, stream, nil
}

func summarizeDeadLetter(m *jetstream.RawStreamMsg) deadLetterBody {
	origSeq, _ := strconv.ParseUint(m.Header.Get(events.HeaderDeadLetterOriginalSequence), 10, 64)
	b := deadLetterBody{Seq: m.Sequence, Kind: m.Subject[len(events.DeadLetterSubjectPrefix):], Time: m.Time,
		Reason: m.Header.Get(events.HeaderDeadLetterReason), OriginalSubject: m.Header.Get(events.HeaderDeadLetterOriginalSubject),
		OriginalSequence: origSeq}
	var env events.Envelope
	if json.Unmarshal(m.Data, &env) == nil {
		b.Type, b.Workspace, b.ID = env.Type, env.Subject, env.ID
	}
	return b
}

// parseSeq reads a stream sequence; empty is def (0: required).
func parseSeq(field, v string, def uint64) (uint64, error) {
	if v == "" && def > 0 {
		return def, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 {
		return 0, errorf(http.StatusUnprocessableEntity, field, field+" must be a positive whole number")
	}
	return n, nil
}

func platformAdmin(p auth.Principal) error {
	if !p.Admin {
		return errorf(http.StatusForbidden, "", "only platform admins may handle dead letters")
	}
	return nil
}
