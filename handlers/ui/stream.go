package ui

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/auth"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/readmodel"
)

// streamBuffer is how many changes a stream may fall behind before it is
// reset (the page then lists again).
const streamBuffer = 1024

// summary is a workspace in the feed: the API's list item, no secrets.
type summary struct {
	Name       string             `json:"name"`
	Status     string             `json:"status"`
	Owner      string             `json:"owner"`
	Members    []readmodel.Member `json:"members"`
	Step       string             `json:"step,omitempty"`
	LastError  string             `json:"last_error,omitempty"`
	FailedStep string             `json:"failed_step,omitempty"`
	CreatedAt  time.Time          `json:"created_at"`
	UpdatedAt  time.Time          `json:"updated_at"`
}

// stream is GET /ui/stream, server-sent events: "ready" once subscribed
// (the page lists then, so nothing falls between its list and the feed),
// then "workspace" for each change the caller may see, "removed" for a
// workspace gone from the read model, and "reset" when the caller fell
// too far behind. The page reads it with fetch, which can send the token.
func (s *server) stream(w http.ResponseWriter, r *http.Request) {
	p, err := s.d.Auth.Authenticate(r)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="workspaces"`)
		http.Error(w, `{"error":"sign in first"}`, http.StatusUnauthorized)
		return
	}
	admin := p.Admin || p.HasRealmRole(s.cfg.AdminRole)
	changes, stop := s.d.Workspaces.Subscribe(streamBuffer)
	defer stop()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not hold events back
	send := func(event string, v any) bool {
		raw, _ := json.Marshal(v)
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, raw); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send("ready", struct{}{}) {
		return
	}
	s.pump(r, p, admin, changes, send)
}

// pump forwards changes until the client leaves, the server stops, or the
// subscription is dropped.
func (s *server) pump(r *http.Request, p auth.Principal, admin bool, changes <-chan readmodel.Workspace, send func(string, any) bool) {
	beat := time.NewTicker(s.cfg.Heartbeat)
	defer beat.Stop()
	end := time.NewTimer(s.cfg.MaxStream)
	defer end.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-end.C:
			return // the page reconnects, showing its token again
		case <-s.d.Done:
			return
		case <-beat.C:
			if !send("heartbeat", struct{}{}) {
				return
			}
		case ws, ok := <-changes:
			if !ok {
				s.d.Log.Info("ui stream fell behind; reset", zap.String("user", p.Username))
				send("reset", struct{}{})
				return
			}
			if !s.forward(ws, p, admin, send) {
				return
			}
		}
	}
}

func (s *server) forward(ws readmodel.Workspace, p auth.Principal, admin bool, send func(string, any) bool) bool {
	switch {
	case ws.Status == "":
		return send("removed", map[string]string{"name": ws.Name})
	case !admin && !ws.CanRead(p.Username):
		return true
	}
	sum := summary{Name: ws.Name, Status: ws.Status, Owner: ws.Owner, Members: ws.Members, Step: ws.Step,
		CreatedAt: ws.CreatedAt, UpdatedAt: ws.UpdatedAt}
	if sum.Members == nil {
		sum.Members = []readmodel.Member{}
	}
	if ws.Status == events.StatusFailed {
		sum.LastError, sum.FailedStep = ws.LastError, ws.FailedStep
	}
	return send("workspace", sum)
}
