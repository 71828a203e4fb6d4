package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eo-workspaces/provisioner/auth"
	"github.com/eo-workspaces/provisioner/events"
)

// historyItem is one entry of a workspace's audit history: a command or
// an event exactly as stored, and where it is stored.
type historyItem struct {
	Kind     string          `json:"kind"` // "command" or "event"
	Stream   string          `json:"stream"`
	Sequence uint64          `json:"sequence"`
	Time     time.Time       `json:"time"` // when the stream stored it
	Event    json.RawMessage `json:"event"`
}

type historyBody struct {
	Items      []historyItem `json:"items"`
	NextCursor *string       `json:"next_cursor"`
}

// historyCursor is where the last page stopped in each stream.
type historyCursor struct{ commands, events uint64 }

// history merges the workspace's commands and events, oldest first by
// the time the streams stored them. Each page reads at most limit+1
// messages from each stream, through short-lived in-memory consumers.
func (s *server) history(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	ws, err := s.authorize(ctx, p, r.PathValue("name"), readAccess)
	if err != nil {
		return err
	}
	limit, err := s.parseLimit(r.URL.Query().Get("limit"))
	if err != nil {
		return err
	}
	cur, err := decodeHistoryCursor(r.URL.Query().Get("cursor"))
	if err != nil {
		return err
	}
	cmds, err := s.readStream(ctx, events.CommandsStream, events.CommandSubjectPrefix+ws.Name+".>", cur.commands, limit+1)
	if err != nil {
		return unavailable("cannot read the history now", err)
	}
	evts, err := s.readStream(ctx, events.EventsStream, events.EventSubjectPrefix+ws.Name+".>", cur.events, limit+1)
	if err != nil {
		return unavailable("cannot read the history now", err)
	}
	body := historyBody{Items: mergeHistory(cmds, evts, limit, &cur)}
	if len(cmds)+len(evts) > len(body.Items) {
		c := cur.encode()
		body.NextCursor = &c
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

// mergeHistory takes up to limit items from two time-ordered lists and
// moves the cursor past each one taken.
func mergeHistory(cmds, evts []historyItem, limit int, cur *historyCursor) []historyItem {
	out := make([]historyItem, 0, min(limit, len(cmds)+len(evts)))
	i, j := 0, 0
	for len(out) < limit && (i < len(cmds) || j < len(evts)) {
		if j >= len(evts) || (i < len(cmds) && !cmds[i].Time.After(evts[j].Time)) {
			out = append(out, cmds[i])
			cur.commands = cmds[i].Sequence
			i++
			continue
		}
		out = append(out, evts[j])
		cur.events = evts[j].Sequence
		j++
	}
	return out
}

// readStream returns up to n messages on subject stored after sequence
// after, each by a direct "next message for this subject" read from the
// stream. No consumer is made for a page: creating one and fetching from
// it at once answered "no responders" now and then on a cluster, where
// the new consumer's leader was not yet elected.
func (s *server) readStream(ctx context.Context, stream, subject string, after uint64, n int) ([]historyItem, error) {
	st, err := s.d.JS.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("history stream %s: %w", stream, err)
	}
	kind := "event"
	if stream == events.CommandsStream {
		kind = "command"
	}
	var out []historyItem
	for seq := after + 1; len(out) < n; {
		msg, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read history from %s: %w", stream, err)
		}
		out = append(out, historyItem{Kind: kind, Stream: stream, Sequence: msg.Sequence,
			Time: msg.Time.UTC(), Event: json.RawMessage(msg.Data)})
		seq = msg.Sequence + 1
	}
	return out, nil
}

func (c historyCursor) encode() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatUint(c.commands, 10) + "." + strconv.FormatUint(c.events, 10)))
}

func decodeHistoryCursor(v string) (historyCursor, error) {
	if v == "" {
		return historyCursor{}, nil
	}
	bad := errorf(http.StatusUnprocessableEntity, "cursor", "cursor is not one this API returned")
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return historyCursor{}, bad
	}
	a, b, ok := strings.Cut(string(raw), ".")
	if !ok {
		return historyCursor{}, bad
	}
	cmds, err1 := strconv.ParseUint(a, 10, 64)
	evts, err2 := strconv.ParseUint(b, 10, 64)
	if err1 != nil || err2 != nil {
		return historyCursor{}, bad
	}
	return historyCursor{commands: cmds, events: evts}, nil
}
