package api

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/eo-workspaces/provisioner/auth"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/readmodel"
)

// memberBody is one member in an answer.
type memberBody struct {
	Username string `json:"username"`
	Role     string `json:"role"`
	Kind     string `json:"kind"`
	ClientID string `json:"client_id,omitempty"`
}

// summaryBody is a workspace in a list: everything but secrets.
type summaryBody struct {
	Name       string       `json:"name"`
	Status     string       `json:"status"`
	Owner      string       `json:"owner"`
	Members    []memberBody `json:"members"`
	Step       string       `json:"step,omitempty"`
	LastError  string       `json:"last_error,omitempty"`
	FailedStep string       `json:"failed_step,omitempty"`
	// LastMemberError is why the latest membership change failed.
	LastMemberError string    `json:"last_member_error,omitempty"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
}

// workspaceBody is GET /workspaces/{name}: the EOEPCA fields (endpoints,
// storage, container_registry) and ours.
type workspaceBody struct {
	Name              string       `json:"name"`
	Status            string       `json:"status"`
	Owner             string       `json:"owner"`
	Members           []memberBody `json:"members"`
	Endpoints         []struct{}   `json:"endpoints"`
	Storage           *storageBody `json:"storage"`
	ContainerRegistry *struct{}    `json:"container_registry"`
	Step              string       `json:"step,omitempty"`
	LastError         string       `json:"last_error,omitempty"`
	FailedStep        string       `json:"failed_step,omitempty"`
	LastMemberError   string       `json:"last_member_error,omitempty"`
	QuotaMB           *int64       `json:"quota_mb"`
	Usage             *usageBody   `json:"usage"`
	CreatedAt         time.Time    `json:"created_at"`
	UpdatedAt         time.Time    `json:"updated_at"`
}

type storageBody struct {
	Credentials map[string]string `json:"credentials"`
}

func summaryOf(ws readmodel.Workspace) summaryBody {
	b := summaryBody{Name: ws.Name, Status: ws.Status, Owner: ws.Owner, Step: ws.Step,
		Members: make([]memberBody, len(ws.Members)), LastMemberError: ws.MemberError,
		CreatedAt: ws.CreatedAt, UpdatedAt: ws.UpdatedAt}
	for i, m := range ws.Members {
		b.Members[i] = memberBody(m)
		if m.Kind == "" { // projected before members had kinds
			b.Members[i].Kind = events.KindUser
		}
	}
	switch ws.Status {
	case events.StatusFailed:
		b.LastError, b.FailedStep = ws.LastError, ws.FailedStep
	case events.StatusDegraded: // why: what a reconcile would not repair
		b.LastError = ws.LastError
	}
	return b
}

func (s *server) get(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx := r.Context()
	ws, err := s.authorize(ctx, p, r.PathValue("name"), readAccess)
	if err != nil {
		return err
	}
	sum := summaryOf(ws)
	body := workspaceBody{Name: sum.Name, Status: sum.Status, Owner: sum.Owner, Members: sum.Members,
		Endpoints: []struct{}{}, Step: sum.Step, LastError: sum.LastError, FailedStep: sum.FailedStep,
		LastMemberError: sum.LastMemberError, QuotaMB: ws.QuotaMB, CreatedAt: sum.CreatedAt, UpdatedAt: sum.UpdatedAt}
	body.Usage = s.usageOf(ctx, ws, ws.Status == events.StatusReady)
	// Credentials exist only once the workspace is ready, and they are
	// the caller's own: every member sees their key pair, a platform
	// admin who is not a member none.
	if ws.Status == events.StatusReady && s.d.Credentials != nil && ws.RoleOf(p.Username) != "" {
		creds, err := s.d.Credentials.MemberCredentials(ctx, ws.Name, p.Username)
		if err != nil {
			return unavailable("cannot read the storage credentials now", err)
		}
		if creds != nil {
			body.Storage = &storageBody{Credentials: creds}
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, body)
	return nil
}

type listBody struct {
	Items      []summaryBody `json:"items"`
	NextCursor *string       `json:"next_cursor"`
}

func (s *server) list(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	q, err := s.parseList(r)
	if err != nil {
		return err
	}
	if !p.Admin {
		q.filter.Reader = p.Username
	}
	items, next := s.d.Workspaces.List(q.filter, q.after, q.limit)
	body := listBody{Items: make([]summaryBody, len(items))}
	for i, ws := range items {
		body.Items[i] = summaryOf(ws)
	}
	if next != "" {
		c := encodeCursor(next)
		body.NextCursor = &c
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

type listQuery struct {
	filter readmodel.Filter
	after  string
	limit  int
}

func (s *server) parseList(r *http.Request) (listQuery, error) {
	v := r.URL.Query()
	q := listQuery{filter: readmodel.Filter{Status: v.Get("status"), Owner: v.Get("owner")}}
	if st := q.filter.Status; st != "" && !validStatus(st) {
		return q, errorf(http.StatusUnprocessableEntity, "status", fmt.Sprintf("status %q is not one of provisioning, ready, failed, deleting, deleted", st))
	}
	if q.filter.Owner != "" {
		if err := validUsername("owner", q.filter.Owner); err != nil {
			return q, err
		}
	}
	limit, err := s.parseLimit(v.Get("limit"))
	if err != nil {
		return q, err
	}
	q.limit = limit
	q.after, err = decodeCursor(v.Get("cursor"))
	return q, err
}

func (s *server) parseLimit(v string) (int, error) {
	if v == "" {
		return s.cfg.DefaultPageSize, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > s.cfg.MaxPageSize {
		return 0, errorf(http.StatusUnprocessableEntity, "limit", fmt.Sprintf("limit must be a whole number from 1 to %d", s.cfg.MaxPageSize))
	}
	return n, nil
}

func validStatus(s string) bool {
	switch s {
	case events.StatusProvisioning, events.StatusReady, events.StatusFailed, events.StatusDeleting, events.StatusDeleted,
		events.StatusDegraded:
		return true
	}
	return false
}

// A list cursor is the last name of the page, base64url-encoded so that
// clients treat it as opaque.
func encodeCursor(name string) string { return base64.RawURLEncoding.EncodeToString([]byte(name)) }

func decodeCursor(c string) (string, error) {
	if c == "" {
		return "", nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || events.ValidateName(string(raw)) != nil {
		return "", errorf(http.StatusUnprocessableEntity, "cursor", "cursor is not one this API returned")
	}
	return string(raw), nil
}
