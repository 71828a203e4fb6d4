package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/eo-workspaces/provisioner/auth"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/readmodel"
	"github.com/eo-workspaces/provisioner/sagas/shares"
)

// Bounds of share links.
const (
	DefaultShareSeconds = 24 * 3600
	MaxShareSeconds     = 7 * 24 * 3600
	maxSharePathBytes   = 1024
	maxShareUses        = 1 << 30
)

// ShareStore keeps share links (*shares.KV).
type ShareStore interface {
	Create(ctx context.Context, s shares.Share) error
	Get(ctx context.Context, workspace, id string) (shares.Share, uint64, error)
	Change(ctx context.Context, workspace, id string, edit func(*shares.Share) error) (shares.Share, error)
	Use(ctx context.Context, s shares.Share, rev uint64, now time.Time) (shares.Share, error)
	List(ctx context.Context, workspace string) ([]shares.Share, error)
}

// ObjectInfo is what a download needs to know of an object.
type ObjectInfo struct {
	Size        int64
	ETag        string
	ContentType string
	ModTime     time.Time
}

// ErrNoObject means the object (or its bucket) does not exist.
var ErrNoObject = errors.New("no such object")

// Objects reads the objects of workspaces' buckets for share links.
// Each may return ErrNoObject.
type Objects interface {
	Stat(ctx context.Context, bucket, key string) (ObjectInfo, error)
	// Open reads the object Stat described, under ctx.
	Open(ctx context.Context, bucket, key string, info ObjectInfo) io.ReadSeekCloser
	// Get starts reading the whole object under ctx: Stat and Open in one
	// request.
	Get(ctx context.Context, bucket, key string) (io.ReadSeekCloser, ObjectInfo, error)
}

type shareRequest struct {
	Path      string `json:"path"`
	ExpiresIn *int   `json:"expires_in"`
	MaxUses   *int   `json:"max_uses"`
}

// shareBody is a link in answers; URL only in the answer to its creation,
// the one time the secret is shown.
type shareBody struct {
	ID        string    `json:"id"`
	URL       string    `json:"url,omitempty"`
	Path      string    `json:"path"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	MaxUses   *int      `json:"max_uses"`
	Uses      int       `json:"uses"`
	State     string    `json:"state"` // active, revoked, expired, used_up
}

type sharesBody struct {
	Items []shareBody `json:"items"`
}

func bodyOf(sh shares.Share, now time.Time) shareBody {
	b := shareBody{ID: sh.ID, Path: sh.Path, CreatedBy: sh.CreatedBy, CreatedAt: sh.CreatedAt.UTC(),
		ExpiresAt: sh.ExpiresAt.UTC(), Uses: sh.Uses, State: sh.End(now)}
	if sh.MaxUses > 0 {
		b.MaxUses = &sh.MaxUses
	}
	if b.State == "" {
		b.State = "active"
	}
	return b
}

// createShare answers POST /workspaces/{name}/shares: a public link to
// one object, for ws_admin and ws_access members (the ones who may read
// and write the data; a viewer may not hand it out).
func (s *server) createShare(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx, cancel := s.commandContext(r)
	defer cancel()
	ws, err := s.sharer(ctx, p, r.PathValue("name"))
	if err != nil {
		return err
	}
	var req shareRequest
	if err := s.decodeBody(w, r, &req, false); err != nil {
		return err
	}
	life, err := req.validate()
	if err != nil {
		return err
	}
	if _, err := s.d.Objects.Stat(ctx, ws.Name, req.Path); errors.Is(err, ErrNoObject) {
		return errorf(http.StatusNotFound, "path", fmt.Sprintf("no object %q in %s", req.Path, ws.Name))
	} else if err != nil {
		return unavailable("cannot read the object store now", err)
	}
	tok, err := shares.NewToken(ws.Name)
	if err != nil {
		return unavailable("cannot make a share link now", err)
	}
	now := time.Now().UTC()
	sh := shares.Share{ID: tok.ID, Workspace: ws.Name, Path: req.Path, Hash: shares.Hash(tok.Secret), CreatedBy: p.Username,
		CreatedAt: now, ExpiresAt: now.Add(life).Truncate(time.Second)}
	if req.MaxUses != nil {
		sh.MaxUses = *req.MaxUses
	}
	if err := s.d.Shares.Create(ctx, sh); err != nil {
		return unavailable("cannot store the share link now", err)
	}
	s.audit(ctx, ws.Name, p, &events.ShareCreated{ID: sh.ID, Path: sh.Path, ExpiresAt: sh.ExpiresAt, MaxUses: sh.MaxUses})
	body := bodyOf(sh, now)
	body.URL = s.publicURL(r) + "/shares/" + tok.String()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", "/workspaces/"+ws.Name+"/shares/"+sh.ID)
	writeJSON(w, http.StatusCreated, body)
	return nil
}

// sharer checks that the caller may make links in a ready workspace.
func (s *server) sharer(ctx context.Context, p auth.Principal, name string) (readmodel.Workspace, error) {
	ws, err := s.authorizeLive(ctx, p, name)
	if err != nil {
		return ws, err
	}
	if role := ws.RoleOf(p.Username); role != events.RoleAdmin && role != events.RoleAccess {
		return ws, errorf(http.StatusForbidden, "", fmt.Sprintf("only %s and %s members of %s make share links", events.RoleAdmin, events.RoleAccess, ws.Name))
	}
	if ws.Status != events.StatusReady {
		return ws, errorf(http.StatusConflict, "", fmt.Sprintf("workspace %s is %s, not ready", ws.Name, ws.Status))
	}
	if s.d.Shares == nil || s.d.Objects == nil {
		return ws, unavailable("share links are not configured on this API", errors.New("no share store or object store"))
	}
	return ws, nil
}

func (req shareRequest) validate() (time.Duration, error) {
	if err := validSharePath(req.Path); err != nil {
		return 0, err
	}
	secs := DefaultShareSeconds
	if req.ExpiresIn != nil {
		secs = *req.ExpiresIn
	}
	if secs < 1 || secs > MaxShareSeconds {
		return 0, errorf(http.StatusUnprocessableEntity, "expires_in", fmt.Sprintf("expires_in must be from 1 to %d seconds", MaxShareSeconds))
	}
	if req.MaxUses != nil && (*req.MaxUses < 1 || *req.MaxUses > maxShareUses) {
		return 0, errorf(http.StatusUnprocessableEntity, "max_uses", fmt.Sprintf("max_uses must be from 1 to %d", maxShareUses))
	}
	return time.Duration(secs) * time.Second, nil
}

// validSharePath accepts an object key that names one object plainly:
// not empty, at most 1024 bytes (S3's limit), no "..", no leading '/',
// no control characters.
func validSharePath(path string) error {
	bad := func(why string) error { return errorf(http.StatusUnprocessableEntity, "path", "path "+why) }
	switch {
	case path == "":
		return bad("is required")
	case len(path) > maxSharePathBytes:
		return bad(fmt.Sprintf("is longer than %d bytes", maxSharePathBytes))
	case !utf8.ValidString(path):
		return bad("is not valid UTF-8")
	case strings.HasPrefix(path, "/"):
		return bad("must not start with '/'")
	case strings.Contains(path, ".."):
		return bad("must not contain '..'")
	case strings.ContainsFunc(path, unicode.IsControl):
		return bad("must not contain control characters")
	}
	return nil
}

// listShares answers GET /workspaces/{name}/shares (members, admins):
// every link with its uses and state, never its secret or URL.
func (s *server) listShares(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx := r.Context()
	ws, err := s.authorizeLive(ctx, p, r.PathValue("name"))
	if err != nil {
		return err
	}
	if s.d.Shares == nil {
		return unavailable("share links are not configured on this API", errors.New("no share store"))
	}
	all, err := s.d.Shares.List(ctx, ws.Name)
	if err != nil {
		return unavailable("cannot read the share links now", err)
	}
	slices.SortFunc(all, func(a, b shares.Share) int { return a.CreatedAt.Compare(b.CreatedAt) })
	now := time.Now()
	body := sharesBody{Items: make([]shareBody, len(all))}
	for i, sh := range all {
		body.Items[i] = bodyOf(sh, now)
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

// revokeShare answers DELETE /workspaces/{name}/shares/{id}: its creator,
// a ws_admin or a platform admin ends it; the next download is refused.
// Revoking a revoked link again is a success that changes nothing.
func (s *server) revokeShare(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx, cancel := s.commandContext(r)
	defer cancel()
	ws, err := s.authorizeLive(ctx, p, r.PathValue("name"))
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if !shares.ValidID(id) || s.d.Shares == nil {
		return errorf(http.StatusNotFound, "id", fmt.Sprintf("no share link %q in %s", id, ws.Name))
	}
	revoked := false
	sh, err := s.d.Shares.Change(ctx, ws.Name, id, func(sh *shares.Share) error {
		if sh.CreatedBy != p.Username && ws.RoleOf(p.Username) != events.RoleAdmin && !p.Admin {
			return errorf(http.StatusForbidden, "", fmt.Sprintf("only its creator and %s members revoke a share link", events.RoleAdmin))
		}
		if sh.RevokedAt != nil {
			return errAlreadyRevoked
		}
		now := time.Now().UTC()
		sh.RevokedAt, sh.RevokedBy, sh.Reported, revoked = &now, p.Username, shares.EndRevoked, true
		return nil
	})
	switch {
	case errors.Is(err, shares.ErrNotFound):
		return errorf(http.StatusNotFound, "id", fmt.Sprintf("no share link %q in %s", id, ws.Name))
	case err != nil && !errors.Is(err, errAlreadyRevoked):
		return asAPIError(err, "cannot revoke the share link now")
	}
	if revoked {
		s.audit(ctx, ws.Name, p, &events.ShareRevoked{ID: sh.ID, Path: sh.Path, Uses: sh.Uses})
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

var errAlreadyRevoked = errors.New("already revoked")

// asAPIError passes an *Error through and makes anything else a 503.
func asAPIError(err error, msg string) error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return unavailable(msg, err)
}

// publicURL is the API's base URL as clients reach it: Config.PublicURL,
// else the request's own host.
func (s *server) publicURL(r *http.Request) string {
	if s.cfg.PublicURL != "" {
		return strings.TrimSuffix(s.cfg.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
