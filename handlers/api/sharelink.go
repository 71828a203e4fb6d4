package api

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"path"
	"strconv"
	"time"

	"github.com/eo-workspaces/provisioner/auth"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas/shares"
)

// sharePathPrefix starts every share link's path; what follows is the
// token, secret included.
const sharePathPrefix = "/shares/"

// noSuchShare is the one answer to a link that is malformed, unknown or
// holds the wrong secret: the three cannot be told apart.
func noSuchShare() error { return errorf(http.StatusNotFound, "", "no such share link") }

func gone(why string) error {
	return errorf(http.StatusGone, "", "this share link no longer works: "+why)
}

// downloadShare answers GET /shares/{token}, with no sign-in: the
// object's bytes, streamed through the API (Range, ETag and conditional
// requests as http.ServeContent does them), while the link works. Each
// GET that gets bytes counts one use, counted before the bytes are sent
// with a compare-and-set, so of concurrent uses of a link only max_uses
// succeed. A HEAD checks the link without using it.
func (s *server) downloadShare(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	addr := clientAddr(r)
	if s.guesses.blocked(addr) {
		return &Error{Status: http.StatusTooManyRequests, Message: "too many wrong share links from this address; wait a minute", RetryAfter: 60}
	}
	if s.d.Shares == nil || s.d.Objects == nil {
		return noSuchShare()
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	sh, rev, ok, err := s.findShare(ctx, r.PathValue("token"))
	if err != nil {
		return unavailable("cannot read share links now", err)
	}
	if !ok {
		s.guesses.miss(addr)
		return noSuchShare()
	}
	if err := s.linkWorks(sh); err != nil {
		return err
	}
	body, info, err := s.openShared(ctx, r, sh)
	if err != nil {
		return err
	}
	defer body.Close()
	if r.Method == http.MethodGet {
		if _, err := s.d.Shares.Use(ctx, sh, rev, time.Now()); errors.Is(err, shares.ErrEnded) {
			return gone("it was used up, revoked or expired")
		} else if err != nil {
			return unavailable("cannot count the use of the share link now", err)
		}
	}
	serveObject(w, r, body, sh.Path, info)
	return nil
}

// openShared opens the link's object, under the request's own context
// (a large download may outlast the API's timeout). A plain GET, the
// common case, starts reading at once: one request to MinIO, and no use
// is counted for an object that is gone. A range request or a HEAD looks
// the object up first and reads only what ServeContent asks for.
func (s *server) openShared(ctx context.Context, r *http.Request, sh shares.Share) (io.ReadSeekCloser, ObjectInfo, error) {
	var body io.ReadSeekCloser
	var info ObjectInfo
	var err error
	if r.Method == http.MethodGet && r.Header.Get("Range") == "" {
		body, info, err = s.d.Objects.Get(r.Context(), sh.Workspace, sh.Path)
	} else if info, err = s.d.Objects.Stat(ctx, sh.Workspace, sh.Path); err == nil {
		body = s.d.Objects.Open(r.Context(), sh.Workspace, sh.Path, info)
	}
	switch {
	case errors.Is(err, ErrNoObject):
		return nil, info, gone("its object was deleted")
	case err != nil:
		return nil, info, unavailable("cannot read the object store now", err)
	}
	return body, info, nil
}

// findShare looks the token's link up and checks its secret. Every
// token, malformed ones too, costs one read and one hash comparison in
// constant time, so how long the 404 takes tells a guesser nothing.
func (s *server) findShare(ctx context.Context, raw string) (shares.Share, uint64, bool, error) {
	tok, wellFormed := shares.ParseToken(raw)
	if !wellFormed {
		tok = shares.Token{Workspace: "ws-none", ID: "0000000000000000", Secret: raw}
	}
	sh, rev, err := s.d.Shares.Get(ctx, tok.Workspace, tok.ID)
	switch {
	case errors.Is(err, shares.ErrNotFound):
		sh = shares.Share{Hash: shares.Hash("")}
	case err != nil:
		return sh, 0, false, err
	}
	match := sh.Matches(tok.Secret)
	return sh, rev, match && wellFormed && sh.ID != "", nil
}

// linkWorks checks what else a link needs besides its object: not
// ended, its workspace ready, its creator still allowed to read and write
// there (a removed member's links die with their access).
func (s *server) linkWorks(sh shares.Share) error {
	if end := sh.End(time.Now()); end != "" {
		return gone("it was " + map[string]string{shares.EndRevoked: "revoked", shares.EndExpired: "past its expiry",
			shares.EndUsedUp: "used as many times as it allows"}[end])
	}
	ws, ok := s.d.Workspaces.Get(sh.Workspace)
	if !ok || ws.Status != events.StatusReady {
		return gone("its workspace is gone")
	}
	if role := ws.RoleOf(sh.CreatedBy); role != events.RoleAdmin && role != events.RoleAccess {
		return gone("its creator no longer has access to the data")
	}
	return nil
}

// serveObject writes the object with its type, length and ETag, as a
// download named after the object. Users' files are served from the
// API's own origin, so a shared HTML page must never run there: it is an
// attachment, never sniffed, and sandboxed should a browser show it.
func serveObject(w http.ResponseWriter, r *http.Request, body io.ReadSeeker, key string, info ObjectInfo) {
	h := w.Header()
	if info.ContentType != "" {
		h.Set("Content-Type", info.ContentType)
	}
	if info.ETag != "" {
		h.Set("ETag", strconv.Quote(info.ETag))
	}
	h.Set("Cache-Control", "private, no-store")
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": path.Base(key)}))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	http.ServeContent(w, r, "", info.ModTime, body)
}
