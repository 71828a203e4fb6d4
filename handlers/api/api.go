package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/auth"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/readmodel"
	"github.com/eo-workspaces/provisioner/sagas/names"
	"github.com/eo-workspaces/provisioner/tracing"
)

// Config tunes the API; zero values take the defaults.
type Config struct {
	MaxBodyBytes    int64 // largest request body accepted; default 64 KiB
	DefaultPageSize int   // list page size without ?limit; default 50
	MaxPageSize     int   // largest ?limit; default 500
	// AdminRole is the realm role of platform admins, who may do anything.
	AdminRole string // default auth.DefaultAdminRole
	// Timeout bounds the NATS work of one request. Default 5s.
	Timeout time.Duration
	// PublicURL is the API's base URL as clients reach it, for share
	// links; empty: the request's own scheme and host.
	PublicURL string
	// ShareGuessesPerMinute is how many wrong share links one address may
	// try in a minute before it gets 429. Default 20.
	ShareGuessesPerMinute int
}

// Defaults of Config.
const (
	DefaultMaxBodyBytes = 64 << 10
	DefaultPageSize     = 50
	DefaultMaxPageSize  = 500
	DefaultTimeout      = 5 * time.Second
	DefaultShareGuesses = 20
)

// WithDefaults fills the zero fields.
func (c Config) WithDefaults() Config {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.DefaultPageSize == 0 {
		c.DefaultPageSize = DefaultPageSize
	}
	if c.MaxPageSize == 0 {
		c.MaxPageSize = DefaultMaxPageSize
	}
	if c.AdminRole == "" {
		c.AdminRole = auth.DefaultAdminRole
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.ShareGuessesPerMinute == 0 {
		c.ShareGuessesPerMinute = DefaultShareGuesses
	}
	return c
}

// Validate names the first field that cannot work.
func (c Config) Validate() error {
	switch {
	case c.MaxBodyBytes < 1:
		return fmt.Errorf("max body bytes: %d must be positive", c.MaxBodyBytes)
	case c.DefaultPageSize < 1:
		return fmt.Errorf("default page size: %d must be positive", c.DefaultPageSize)
	case c.AdminRole == "":
		return errors.New("admin role: required")
	case c.MaxPageSize < c.DefaultPageSize:
		return fmt.Errorf("max page size: %d is below the default page size %d", c.MaxPageSize, c.DefaultPageSize)
	case c.Timeout <= 0:
		return fmt.Errorf("timeout: %s must be positive", c.Timeout)
	case c.ShareGuessesPerMinute < 1:
		return fmt.Errorf("share guesses per minute: %d must be positive", c.ShareGuessesPerMinute)
	}
	return nil
}

// Publisher publishes a command envelope (*events.Publisher).
type Publisher interface {
	Publish(ctx context.Context, env events.Envelope) (events.Published, error)
}

// Workspaces is the read model (*readmodel.Reader).
type Workspaces interface {
	Get(name string) (readmodel.Workspace, bool)
	List(f readmodel.Filter, cursor string, limit int) ([]readmodel.Workspace, string)
}

// Credentials returns a member's storage credentials in a ready
// workspace, the keys openapi.yaml lists under storage.credentials;
// (nil, nil) when they hold none (yet).
type Credentials interface {
	MemberCredentials(ctx context.Context, workspace, username string) (map[string]string, error)
}

// Names reserves workspace names (*names.KV).
type Names interface {
	Get(ctx context.Context, name string) (names.Reservation, uint64, error)
	Reserve(ctx context.Context, name string, r names.Reservation) (uint64, error)
	Claim(ctx context.Context, name string, r names.Reservation, rev uint64) (uint64, error)
	Unreserve(ctx context.Context, name string, rev uint64) error
}

// Authenticator finds the caller of a request (auth.JWT, auth.Static).
type Authenticator interface {
	Authenticate(r *http.Request) (auth.Principal, error)
}

// Deps are the API's collaborators.
type Deps struct {
	Publisher   Publisher
	Workspaces  Workspaces
	Credentials Credentials // may be nil: storage is then always null
	Sessions    Sessions    // may be nil: no temporary credentials (503)
	Usage       Usage       // may be nil: usage is then always null
	Shares      ShareStore  // may be nil, or Objects: no share links (503)
	Objects     Objects
	Names       Names
	Idempotency jetstream.KeyValue // events.IdempotencyBucket
	JS          jetstream.JetStream
	Auth        Authenticator
	Ready       func(ctx context.Context) error // nil: always ready
	Log         *zap.Logger                     // nil: no logs
	Metrics     prometheus.Registerer           // nil: a private registry
}

func (d Deps) validate() error {
	var missing []string
	for name, ok := range map[string]bool{
		"Publisher": d.Publisher != nil, "Workspaces": d.Workspaces != nil, "Names": d.Names != nil,
		"Idempotency": d.Idempotency != nil, "JS": d.JS != nil, "Auth": d.Auth != nil,
	} {
		if !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("api deps: missing %v", missing)
	}
	return nil
}

// server holds what every handler needs; it is immutable after New.
type server struct {
	cfg     Config
	d       Deps
	log     *zap.Logger
	metrics *metrics
	// idNS is the UUID v5 namespace of envelope ids derived from an
	// Idempotency-Key.
	idNS    uuid.UUID
	guesses *guessLimiter
}

// Source is the CloudEvents source of every command the API publishes.
const Source = "urn:eo-workspaces:api"

// New returns the API's handler.
func New(cfg Config, deps Deps) (http.Handler, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("api config: %w", err)
	}
	if err := deps.validate(); err != nil {
		return nil, err
	}
	if deps.Log == nil {
		deps.Log = zap.NewNop()
	}
	m, gatherer, err := newMetrics(deps.Metrics)
	if err != nil {
		return nil, err
	}
	s := &server{cfg: cfg, d: deps, log: deps.Log, metrics: m,
		idNS: uuid.NewSHA1(uuid.NameSpaceURL, []byte(Source)), guesses: newGuessLimiter(cfg.ShareGuessesPerMinute)}
	mux := http.NewServeMux()
	for _, rt := range s.routes(gatherer) {
		mux.Handle(rt.pattern, tracing.Handler(rt.pattern, s.instrument(rt)))
	}
	return s.fallback(mux), nil
}

// route is one entry of the API: its ServeMux pattern, whether it needs a
// signed-in caller, and its handler.
type route struct {
	pattern string
	public  bool
	handle  endpoint
	raw     http.Handler // for public routes served by a library handler
}

// endpoint handles a request for an authenticated caller; an error it
// returns is written as the contract's error body.
type endpoint func(w http.ResponseWriter, r *http.Request, p auth.Principal) error

func (s *server) routes(g prometheus.Gatherer) []route {
	return []route{
		{pattern: "POST /workspaces", handle: s.create},
		{pattern: "GET /workspaces", handle: s.list},
		{pattern: "GET /workspaces/{name}", handle: s.get},
		{pattern: "DELETE /workspaces/{name}", handle: s.delete},
		{pattern: "PATCH /workspaces/{name}", handle: s.patch},
		{pattern: "POST /workspaces/{name}/members", handle: s.addMember},
		{pattern: "DELETE /workspaces/{name}/members/{username}", handle: s.removeMember},
		{pattern: "POST /workspaces/{name}/retry", handle: s.retry},
		{pattern: "POST /workspaces/{name}/reconcile", handle: s.reconcile},
		{pattern: "POST /workspaces/{name}/credentials/sts", handle: s.sts},
		{pattern: "POST /workspaces/{name}/credentials/rotate", handle: s.rotate},
		{pattern: "GET /workspaces/{name}/events", handle: s.history},
		{pattern: "DELETE /names/{name}", handle: s.releaseName},
		{pattern: "GET /deadletters", handle: s.listDeadLetters},
		{pattern: "GET /deadletters/{seq}", handle: s.showDeadLetter},
		{pattern: "POST /deadletters/{seq}/replay", handle: s.replayDeadLetter},
		{pattern: "DELETE /deadletters/{seq}", handle: s.discardDeadLetter},
		{pattern: "POST /workspaces/{name}/shares", handle: s.createShare},
		{pattern: "GET /workspaces/{name}/shares", handle: s.listShares},
		{pattern: "DELETE /workspaces/{name}/shares/{id}", handle: s.revokeShare},
		{pattern: "GET " + sharePathPrefix + "{token}", public: true, handle: s.downloadShare},
		{pattern: "GET /healthz", public: true, handle: s.healthz},
		{pattern: "GET /readyz", public: true, handle: s.readyz},
		{pattern: "GET /metrics", public: true, raw: metricsHandler(g)},
		{pattern: "GET /openapi.yaml", public: true, raw: http.HandlerFunc(serveOpenAPI)},
	}
}

// instrument wraps a route with authentication, error writing and metrics.
func (s *server) instrument(rt route) http.Handler {
	obs := s.metrics.forRoute(rt.pattern)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		s.serve(sw, r, rt)
		obs(sw.status, time.Since(start))
	})
}

func (s *server) serve(w http.ResponseWriter, r *http.Request, rt route) {
	if rt.raw != nil {
		rt.raw.ServeHTTP(w, r)
		return
	}
	var p auth.Principal
	if !rt.public {
		var err error
		if p, err = s.authenticate(r); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	if err := rt.handle(w, r, p); err != nil {
		s.writeError(w, r, err)
	}
}

func (s *server) authenticate(r *http.Request) (auth.Principal, error) {
	p, err := s.d.Auth.Authenticate(r)
	var ae *auth.Error
	switch {
	case err == nil:
		if p.Username == "" {
			return p, errorf(http.StatusUnauthorized, "", "the token names no user (preferred_username)")
		}
		p.Admin = p.Admin || p.HasRealmRole(s.cfg.AdminRole)
		return p, nil
	case errors.As(err, &ae):
		return p, &Error{Status: http.StatusUnauthorized, Message: ae.Error(), Challenge: ae.Challenge()}
	case errors.Is(err, auth.ErrUnavailable):
		return p, unavailable("cannot verify the token now", err)
	default:
		return p, &Error{Status: http.StatusUnauthorized, Message: "invalid token",
			Challenge: (&auth.Error{Code: "invalid_token", Description: "invalid token"}).Challenge()}
	}
}

// fallback answers the requests no route matches with the contract's JSON
// error body instead of ServeMux's plain text, keeping its Allow header.
func (s *server) fallback(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		probe := &headerProbe{header: http.Header{}}
		mux.ServeHTTP(probe, r)
		if probe.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", probe.header.Get("Allow"))
			s.writeError(w, r, errorf(http.StatusMethodNotAllowed, "", fmt.Sprintf("method %s is not allowed here", r.Method)))
			s.metrics.unmatched(http.StatusMethodNotAllowed)
			return
		}
		s.writeError(w, r, errorf(http.StatusNotFound, "", "no such route: "+r.URL.Path))
		s.metrics.unmatched(http.StatusNotFound)
	})
}

// headerProbe records what ServeMux would answer, writing nothing.
type headerProbe struct {
	header http.Header
	status int
}

func (h *headerProbe) Header() http.Header         { return h.header }
func (h *headerProbe) Write(b []byte) (int, error) { return len(b), nil }
func (h *headerProbe) WriteHeader(status int)      { h.status = status }

// statusWriter remembers the status for the metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *server) healthz(w http.ResponseWriter, _ *http.Request, _ auth.Principal) error {
	writeRaw(w, http.StatusOK, []byte(`{"status":"ok"}`))
	return nil
}

func (s *server) readyz(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	if s.d.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
		defer cancel()
		if err := s.d.Ready(ctx); err != nil {
			e := unavailable("not ready: "+err.Error(), nil)
			e.Expected = true // a start-up answers this until the read model is loaded
			return e
		}
	}
	writeRaw(w, http.StatusOK, []byte(`{"status":"ready"}`))
	return nil
}
