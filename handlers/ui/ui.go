package ui

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"time"

	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/auth"
	"github.com/eo-workspaces/provisioner/readmodel"
)

//go:embed assets
var assets embed.FS

// Config is what the page needs to sign in; zero values take defaults.
type Config struct {
	// KeycloakURL is Keycloak's base URL as browsers reach it (no /auth).
	KeycloakURL string
	Realm       string
	// ClientID is the public client of the authorization-code flow.
	ClientID string // default DefaultClientID
	// AdminRole is the realm role of platform admins, for the page to
	// offer their actions; the API decides anyway.
	AdminRole string // default auth.DefaultAdminRole
	// Heartbeat is how often an idle stream sends a comment, so proxies
	// keep it open and a dead client is noticed.
	Heartbeat time.Duration // default 15s
	// MaxStream ends a live stream after this long; the page reconnects
	// with its current token, so an expired or revoked one is noticed.
	MaxStream time.Duration // default 5m
}

// DefaultClientID is the dev realm's public client of the page.
const DefaultClientID = "workspace-ui"

// WithDefaults fills the zero fields.
func (c Config) WithDefaults() Config {
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	if c.AdminRole == "" {
		c.AdminRole = auth.DefaultAdminRole
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = 15 * time.Second
	}
	if c.MaxStream == 0 {
		c.MaxStream = 5 * time.Minute
	}
	return c
}

// Validate names the first field that cannot work.
func (c Config) Validate() error {
	switch {
	case c.KeycloakURL == "":
		return errors.New("ui keycloak url: required")
	case c.Realm == "":
		return errors.New("ui realm: required")
	case c.Heartbeat <= 0:
		return fmt.Errorf("ui heartbeat: %s must be positive", c.Heartbeat)
	case c.MaxStream <= 0:
		return fmt.Errorf("ui max stream: %s must be positive", c.MaxStream)
	}
	if _, err := url.Parse(c.KeycloakURL); err != nil {
		return fmt.Errorf("ui keycloak url: %w", err)
	}
	return nil
}

// Watcher hands out the read model's changes (*readmodel.Reader).
type Watcher interface {
	Subscribe(buffer int) (<-chan readmodel.Workspace, func())
}

// Deps are the page's collaborators.
type Deps struct {
	Auth       auth.Authenticator
	Workspaces Watcher
	// Done is closed when the server shuts down: it ends the live
	// streams, which would otherwise hold the shutdown up.
	Done <-chan struct{}
	Log  *zap.Logger // nil: no logs
}

type server struct {
	cfg Config
	d   Deps
}

// New returns the handler of everything under /ui/.
func New(cfg Config, d Deps) (http.Handler, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Auth == nil || d.Workspaces == nil || d.Done == nil {
		return nil, errors.New("ui deps: Auth, Workspaces and Done are required")
	}
	if d.Log == nil {
		d.Log = zap.NewNop()
	}
	s := &server{cfg: cfg, d: d}
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		return nil, fmt.Errorf("ui assets: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /ui/", http.StripPrefix("/ui/", http.FileServerFS(static)))
	mux.HandleFunc("GET /ui/config.json", s.config)
	mux.HandleFunc("GET /ui/stream", s.stream)
	return s.secure(mux), nil
}

// secure sets the headers that keep the page to its own scripts and out
// of frames; it talks to the API (same origin) and Keycloak only.
func (s *server) secure(next http.Handler) http.Handler {
	kc, _ := url.Parse(s.cfg.KeycloakURL)
	csp := "default-src 'self'; connect-src 'self' " + kc.Scheme + "://" + kc.Host +
		"; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self' " + kc.Scheme + "://" + kc.Host
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		next.ServeHTTP(w, r)
	})
}

// pageConfig is GET /ui/config.json.
type pageConfig struct {
	KeycloakURL string `json:"keycloak_url"`
	Realm       string `json:"realm"`
	ClientID    string `json:"client_id"`
	AdminRole   string `json:"admin_role"`
}

func (s *server) config(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(pageConfig{KeycloakURL: s.cfg.KeycloakURL, Realm: s.cfg.Realm,
		ClientID: s.cfg.ClientID, AdminRole: s.cfg.AdminRole})
}
