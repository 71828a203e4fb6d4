package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/auth"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/readmodel"
	"github.com/eo-workspaces/provisioner/sagas/names"
	"github.com/eo-workspaces/provisioner/schemas"
)

// createRequest is the body of POST /workspaces: exactly the fields of
// the EOEPCA workspace API's WorkspaceCreate; anything else is refused.
type createRequest struct {
	PreferredName string `json:"preferred_name"`
	DefaultOwner  string `json:"default_owner"`
	QuotaMB       *int64 `json:"quota_mb"` // ours: the bucket's hard quota
}

// memberRequest names a user, or a client application by its clientId.
type memberRequest struct {
	Username string `json:"username,omitempty"`
	ClientID string `json:"client_id,omitempty"`
	Role     string `json:"role"`
}

type deleteRequest struct {
	Purge bool `json:"purge"`
	Force bool `json:"force"`
}

type retryRequest struct{}

// acceptedBody answers a command taken for processing.
type acceptedBody struct {
	Name      string `json:"name"`
	Status    string `json:"status,omitempty"`
	Username  string `json:"username,omitempty"`
	Role      string `json:"role,omitempty"`
	CommandID string `json:"command_id"`
}

// maxPreferredNameLen is the create schema's limit.
const maxPreferredNameLen = 60

func (s *server) create(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	if !p.Admin {
		return errorf(http.StatusForbidden, "", "only platform admins may create workspaces")
	}
	var req createRequest
	if err := s.decodeBody(w, r, &req, false); err != nil {
		return err
	}
	name, err := req.validate()
	if err != nil {
		return err
	}
	ctx, cancel := s.commandContext(r)
	defer cancel()
	idem, done, err := s.idempotent(ctx, w, r, p, req)
	if err != nil || done {
		return err
	}
	env, err := s.envelope(name, &events.Create{PreferredName: req.PreferredName, DefaultOwner: req.DefaultOwner, QuotaMB: req.QuotaMB}, idem, p)
	if err != nil {
		return err
	}
	res := names.Reservation{CommandID: env.ID, Actor: p.Username, Owner: req.DefaultOwner, CreatedAt: env.Time}
	if idem != nil {
		res.IdempotencyKeyHash = idem.key
	}
	release, err := s.reserve(ctx, name, res)
	if err != nil {
		return err
	}
	if err := s.publish(ctx, env); err != nil {
		release()
		return err
	}
	s.answer(ctx, w, idem, acceptedBody{Name: name, Status: events.StatusProvisioning, CommandID: env.ID}, "/workspaces/"+name)
	return nil
}

func (req *createRequest) validate() (string, error) {
	switch {
	case req.PreferredName == "":
		return "", errorf(http.StatusUnprocessableEntity, "preferred_name", "preferred_name is required")
	case len(req.PreferredName) > maxPreferredNameLen:
		return "", errorf(http.StatusUnprocessableEntity, "preferred_name", fmt.Sprintf("preferred_name is longer than %d characters", maxPreferredNameLen))
	}
	name, err := events.NameFor(req.PreferredName)
	if err != nil {
		return "", errorf(http.StatusUnprocessableEntity, "preferred_name", err.Error())
	}
	if err := validQuota(req.QuotaMB); err != nil {
		return "", err
	}
	return name, validUsername("default_owner", req.DefaultOwner)
}

func (s *server) delete(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	req, err := parseDelete(r)
	if err != nil {
		return err
	}
	ctx, cancel := s.commandContext(r)
	defer cancel()
	ws, err := s.authorize(ctx, p, r.PathValue("name"), adminOnly)
	if err != nil {
		return err
	}
	if ws.Status == events.StatusDeleted {
		return errorf(http.StatusConflict, "name", fmt.Sprintf("workspace %s is already deleted", ws.Name))
	}
	// The mark lets the next read show deleting (read your own writes).
	mark := func(ctx context.Context, env events.Envelope) error { return s.markDeleting(ctx, ws, env.Time) }
	return s.command(ctx, w, r, p, ws.Name, req, &events.Delete{Purge: req.Purge || req.Force, Force: req.Force},
		acceptedBody{Name: ws.Name, Status: events.StatusDeleting}, mark)
}

func parseDelete(r *http.Request) (deleteRequest, error) {
	var req deleteRequest
	for _, f := range []struct {
		name string
		to   *bool
	}{{"purge", &req.Purge}, {"force", &req.Force}} {
		v := r.URL.Query().Get(f.name)
		if v == "" {
			continue
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return deleteRequest{}, errorf(http.StatusUnprocessableEntity, f.name, f.name+" must be true or false")
		}
		*f.to = b
	}
	return req, nil
}

func (s *server) addMember(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx, cancel := s.commandContext(r)
	defer cancel()
	ws, err := s.authorize(ctx, p, r.PathValue("name"), manageMembers)
	if err != nil {
		return err
	}
	var req memberRequest
	if err := s.decodeBody(w, r, &req, false); err != nil {
		return err
	}
	if req.Role == "" {
		req.Role = events.RoleAccess
	}
	member, err := validMember(req)
	if err != nil {
		return err
	}
	if err := validRole(req.Role); err != nil {
		return err
	}
	if err := notGone(ws.Name, ws.Status); err != nil {
		return err
	}
	if req.Role != events.RoleAdmin {
		if err := keepAnAdmin(ws, member, "give another role to"); err != nil {
			return err
		}
	}
	return s.command(ctx, w, r, p, ws.Name, req, &events.MemberAdd{Username: req.Username, ClientID: req.ClientID, Role: req.Role},
		acceptedBody{Name: ws.Name, Username: member, Role: req.Role}, nil)
}

// validMember checks that exactly one of username and client_id is given
// and returns the username the member will have: a client application's
// is its service-account user's, as Keycloak names it.
func validMember(req memberRequest) (string, error) {
	switch {
	case req.Username != "" && req.ClientID != "":
		return "", errorf(http.StatusUnprocessableEntity, "client_id", "give either username or client_id, not both")
	case req.ClientID != "":
		if err := validUsername("client_id", req.ClientID); err != nil {
			return "", err
		}
		return serviceAccountPrefix + strings.ToLower(req.ClientID), nil
	}
	return req.Username, validUsername("username", req.Username)
}

// serviceAccountPrefix starts the username Keycloak gives a client's
// service-account user.
const serviceAccountPrefix = "service-account-"

// keepAnAdmin refuses, as the worker would, a change that leaves the
// workspace without a ws_admin, so the caller learns it at once (409).
func keepAnAdmin(ws readmodel.Workspace, username, doing string) error {
	if ws.RoleOf(username) != events.RoleAdmin {
		return nil
	}
	for _, m := range ws.Members {
		if m.Role == events.RoleAdmin && m.Username != username {
			return nil
		}
	}
	return errorf(http.StatusConflict, "username", fmt.Sprintf("%s is the last %s of %s: make another member %s before you %s them",
		username, events.RoleAdmin, ws.Name, events.RoleAdmin, doing))
}

func (s *server) removeMember(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	username := r.PathValue("username")
	if err := validUsername("username", username); err != nil {
		return err
	}
	ctx, cancel := s.commandContext(r)
	defer cancel()
	ws, err := s.authorize(ctx, p, r.PathValue("name"), manageMembers)
	if err != nil {
		return err
	}
	if err := notGone(ws.Name, ws.Status); err != nil {
		return err
	}
	if err := keepAnAdmin(ws, username, "remove"); err != nil {
		return err
	}
	return s.command(ctx, w, r, p, ws.Name, memberRequest{Username: username}, &events.MemberRemove{Username: username},
		acceptedBody{Name: ws.Name, Username: username}, nil)
}

func (s *server) retry(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx, cancel := s.commandContext(r)
	defer cancel()
	ws, err := s.authorize(ctx, p, r.PathValue("name"), adminOnly)
	if err != nil {
		return err
	}
	var req retryRequest
	if err := s.decodeBody(w, r, &req, true); err != nil {
		return err
	}
	if ws.Status != events.StatusFailed {
		return errorf(http.StatusConflict, "", fmt.Sprintf("workspace %s has not failed (status %s): nothing to retry", ws.Name, ws.Status))
	}
	return s.command(ctx, w, r, p, ws.Name, req, &events.Retry{}, acceptedBody{Name: ws.Name}, nil)
}

// notGone refuses membership changes on a workspace being removed, or
// degraded.
func notGone(name, status string) error {
	switch status {
	case events.StatusDeleting, events.StatusDeleted:
		return errorf(http.StatusConflict, "name", fmt.Sprintf("workspace %s is %s", name, status))
	case events.StatusDegraded: // the worker would refuse it: say so now
		return errorf(http.StatusConflict, "name", fmt.Sprintf("workspace %s is degraded (see last_error): membership changes wait until a reconcile finds it whole", name))
	}
	return nil
}

// command publishes one command for an existing workspace and answers
// 202; then, if set, records what the next read must reflect before the
// answer goes out (a failure there is logged: the command is queued).
func (s *server) command(ctx context.Context, w http.ResponseWriter, r *http.Request, p auth.Principal,
	name string, req any, data events.Payload, body acceptedBody, then func(context.Context, events.Envelope) error) error {
	idem, done, err := s.idempotent(ctx, w, r, p, req)
	if err != nil || done {
		return err
	}
	env, err := s.envelope(name, data, idem, p)
	if err != nil {
		return err
	}
	if err := s.publish(ctx, env); err != nil {
		return err
	}
	if then != nil {
		if err := then(ctx, env); err != nil {
			s.log.Warn("after accepting a command", zap.String("workspace", name), zap.String("type", env.Type), zap.Error(err))
		}
	}
	body.CommandID = env.ID
	s.answer(ctx, w, idem, body, "")
	return nil
}

// commandContext bounds a command's NATS work and keeps it going if the
// client goes away, so a reservation is never left half made.
func (s *server) commandContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(r.Context()), s.cfg.Timeout)
}

func (s *server) envelope(name string, data events.Payload, idem *idempotency, p auth.Principal) (events.Envelope, error) {
	meta := events.Meta{Source: Source, Actor: p.Username, Time: time.Now()}
	if idem != nil {
		meta.ID = idem.commandID
	}
	env, err := events.New(name, data, meta)
	if err != nil {
		return env, fmt.Errorf("build %s command: %w", data.EventType(), err)
	}
	return env, nil
}

func (s *server) publish(ctx context.Context, env events.Envelope) error {
	if _, err := s.d.Publisher.Publish(ctx, env); err != nil {
		// We validated already; a schema refusal left is still the
		// client's input, so name the field it points at.
		var se *schemas.Error
		if errors.As(err, &se) {
			return errorf(http.StatusUnprocessableEntity, strings.TrimPrefix(se.Field, "data."), se.Reason)
		}
		return unavailable("cannot queue the command now; retry", err)
	}
	s.metrics.published.WithLabelValues(env.Type).Inc()
	s.log.Debug("command accepted", zap.String("type", env.Type), zap.String("workspace", env.Subject),
		zap.String("id", env.ID), zap.String("actor", env.Actor))
	return nil
}

// answer writes 202 with body, encoded once, and keeps it for repeats of
// an idempotent request.
func (s *server) answer(ctx context.Context, w http.ResponseWriter, idem *idempotency, body acceptedBody, location string) {
	raw, _ := json.Marshal(body) // a struct of strings: encoding cannot fail
	if idem != nil {
		s.remember(ctx, idem, http.StatusAccepted, raw, location)
	}
	if location != "" {
		w.Header().Set("Location", location)
	}
	writeRaw(w, http.StatusAccepted, raw)
}
