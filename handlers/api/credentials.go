package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/auth"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/readmodel"
)

// Bounds of temporary credentials: the object store's own (MinIO's
// AssumeRole takes 15 minutes to 365 days), and of a rotation's grace.
const (
	MinSessionSeconds     = 900
	MaxSessionSeconds     = 365 * 24 * 3600
	DefaultSessionSeconds = 3600
	MaxGraceSeconds       = 7 * 24 * 3600
	maxPrefixBytes        = 1024
)

// SessionRequest is what temporary credentials may do.
type SessionRequest struct {
	Prefix   string
	ReadOnly bool
	Duration time.Duration
}

// Session is a set of temporary credentials on a workspace's bucket.
type Session struct {
	AccessKey, SecretKey, SessionToken string
	Endpoint, Region                   string
	Expiration                         time.Time
}

// ErrNoKeys means the member holds no storage key pair to derive a
// session from (their membership is still being applied).
var ErrNoKeys = errors.New("member holds no storage keys")

// Sessions issues temporary credentials from a member's own key pair.
type Sessions interface {
	Issue(ctx context.Context, workspace, username string, req SessionRequest) (Session, error)
}

type stsRequest struct {
	DurationSeconds *int   `json:"duration_seconds"`
	Prefix          string `json:"prefix"`
	ReadOnly        bool   `json:"read_only"`
}

type stsBody struct {
	Credentials map[string]string `json:"credentials"`
}

// sts answers POST /workspaces/{name}/credentials/sts: temporary
// credentials limited to the bucket (and prefix), read-only when asked or
// when the caller is a viewer. Issued synchronously: nothing in the
// workspace changes, and the audit trail gets an event (no secret in it).
func (s *server) sts(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx, cancel := s.commandContext(r)
	defer cancel()
	ws, role, err := s.memberOfReady(ctx, p, r.PathValue("name"))
	if err != nil {
		return err
	}
	var req stsRequest
	if err := s.decodeBody(w, r, &req, true); err != nil {
		return err
	}
	sr, err := validSession(req, role)
	if err != nil {
		return err
	}
	if s.d.Sessions == nil {
		return unavailable("temporary credentials are not configured on this API", errors.New("no sessions"))
	}
	sess, err := s.d.Sessions.Issue(ctx, ws.Name, p.Username, sr)
	if errors.Is(err, ErrNoKeys) {
		return errorf(http.StatusConflict, "", fmt.Sprintf("your storage keys for %s are not ready yet; try again in a moment", ws.Name))
	}
	if err != nil {
		return unavailable("cannot issue temporary credentials now", err)
	}
	s.audit(ctx, ws.Name, p, &events.SessionIssued{Username: p.Username, Prefix: sr.Prefix, ReadOnly: sr.ReadOnly, Expiration: sess.Expiration.UTC()})
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, stsBody{Credentials: map[string]string{
		"AWS_ACCESS_KEY_ID": sess.AccessKey, "AWS_SECRET_ACCESS_KEY": sess.SecretKey, "AWS_SESSION_TOKEN": sess.SessionToken,
		"AWS_ENDPOINT_URL": sess.Endpoint, "AWS_REGION": sess.Region, "bucketname": ws.Name, "prefix": sr.Prefix,
		"expiration": sess.Expiration.UTC().Format(time.RFC3339),
	}})
	return nil
}

// memberOfReady returns a ready workspace and the caller's role in it;
// only members hold storage keys, so a platform admin who is not one is
// refused too.
func (s *server) memberOfReady(ctx context.Context, p auth.Principal, name string) (readmodel.Workspace, string, error) {
	ws, err := s.authorizeLive(ctx, p, name)
	if err != nil {
		return ws, "", err
	}
	role := ws.RoleOf(p.Username)
	if role == "" {
		return ws, "", errorf(http.StatusForbidden, "", fmt.Sprintf("only members of %s hold storage credentials there", ws.Name))
	}
	if ws.Status != events.StatusReady {
		return ws, "", errorf(http.StatusConflict, "", fmt.Sprintf("workspace %s is %s, not ready", ws.Name, ws.Status))
	}
	return ws, role, nil
}

// authorizeLive is authorize for read access, with a deleted workspace
// answered as one that does not exist (its members are gone with it).
func (s *server) authorizeLive(ctx context.Context, p auth.Principal, name string) (readmodel.Workspace, error) {
	ws, err := s.authorize(ctx, p, name, readAccess)
	if ws.Status == events.StatusDeleted {
		return ws, errorf(http.StatusNotFound, "name", fmt.Sprintf("workspace %s was deleted", name))
	}
	return ws, err
}

func validSession(req stsRequest, role string) (SessionRequest, error) {
	secs := DefaultSessionSeconds
	if req.DurationSeconds != nil {
		secs = *req.DurationSeconds
	}
	if secs < MinSessionSeconds || secs > MaxSessionSeconds {
		return SessionRequest{}, errorf(http.StatusUnprocessableEntity, "duration_seconds",
			fmt.Sprintf("duration_seconds must be from %d to %d", MinSessionSeconds, MaxSessionSeconds))
	}
	if err := validPrefix(req.Prefix); err != nil {
		return SessionRequest{}, err
	}
	return SessionRequest{Prefix: req.Prefix, ReadOnly: req.ReadOnly || role == events.RoleViewer,
		Duration: time.Duration(secs) * time.Second}, nil
}

// validPrefix accepts an object key prefix that cannot climb out of
// itself or widen a policy: no "..", no leading '/', no policy wildcards
// or variables, no control characters.
func validPrefix(prefix string) error {
	bad := func(why string) error {
		return errorf(http.StatusUnprocessableEntity, "prefix", "prefix "+why)
	}
	switch {
	case len(prefix) > maxPrefixBytes:
		return bad(fmt.Sprintf("is longer than %d bytes", maxPrefixBytes))
	case !utf8.ValidString(prefix):
		return bad("is not valid UTF-8")
	case strings.HasPrefix(prefix, "/"):
		return bad("must not start with '/'")
	case strings.Contains(prefix, ".."):
		return bad("must not contain '..'")
	case strings.ContainsAny(prefix, "*?$"):
		return bad("must not contain '*', '?' or '$'")
	case strings.ContainsFunc(prefix, unicode.IsControl):
		return bad("must not contain control characters")
	}
	return nil
}

type rotateRequest struct {
	GraceSeconds int  `json:"grace_seconds"`
	All          bool `json:"all"`
}

// rotate answers POST /workspaces/{name}/credentials/rotate: the caller's
// key pair, or every member's with all (ws_admin or platform admin), is
// replaced by the rotation saga.
func (s *server) rotate(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx, cancel := s.commandContext(r)
	defer cancel()
	ws, err := s.authorizeLive(ctx, p, r.PathValue("name"))
	if err != nil {
		return err
	}
	var req rotateRequest
	if err := s.decodeBody(w, r, &req, true); err != nil {
		return err
	}
	if req.GraceSeconds < 0 || req.GraceSeconds > MaxGraceSeconds {
		return errorf(http.StatusUnprocessableEntity, "grace_seconds", fmt.Sprintf("grace_seconds must be from 0 to %d", MaxGraceSeconds))
	}
	role := ws.RoleOf(p.Username)
	switch {
	case req.All && role != events.RoleAdmin && !p.Admin:
		return errorf(http.StatusForbidden, "all", fmt.Sprintf("only %s members and platform admins rotate every member's keys", events.RoleAdmin))
	case !req.All && role == "":
		return errorf(http.StatusForbidden, "", fmt.Sprintf("only members of %s hold storage credentials there", ws.Name))
	case ws.Status != events.StatusReady:
		return errorf(http.StatusConflict, "", fmt.Sprintf("workspace %s is %s, not ready", ws.Name, ws.Status))
	}
	cmd := &events.CredentialsRotate{All: req.All, GraceSeconds: req.GraceSeconds}
	if !req.All {
		cmd.Username = p.Username
	}
	return s.command(ctx, w, r, p, ws.Name, req, cmd, acceptedBody{Name: ws.Name, Username: cmd.Username}, nil)
}

// audit publishes an event of something the API did itself; it is best
// effort, logged if it fails, since what it records has happened already.
func (s *server) audit(ctx context.Context, ws string, p auth.Principal, data events.Payload) {
	env, err := events.New(ws, data, events.Meta{Source: Source, Actor: p.Username, Time: time.Now()})
	if err == nil {
		_, err = s.d.Publisher.Publish(ctx, env)
	}
	if err != nil {
		s.log.Warn("audit event not published", zap.String("type", data.EventType()), zap.String("workspace", ws), zap.Error(err))
	}
}
