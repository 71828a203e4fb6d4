// Package kcemu is a Keycloak 26 emulator for tests and the local stack: the
// OIDC token endpoints and the part of the Admin REST API the provisioner
// uses, faithful enough that the gocloak client cannot tell it from Keycloak.
package kcemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Config configures an emulator. The zero value plus Validate's defaults is a
// blank in-memory server on a free loopback port.
type Config struct {
	Addr                     string   // listen address; default "127.0.0.1:0"
	AdminUser, AdminPassword string   // master realm admin; default "admin"/"admin"
	Realms                   []string // realm-export JSON files imported at start
	DevRealm                 bool     // also import the built-in dev realm
	DataDir                  string   // "" keeps state in memory only
	// Version is the Keycloak release to follow where 26.x releases
	// differ: before 26.6 a bad password answers 401, from 26.6 on 400
	// (keycloak/keycloak#46528). Default DefaultVersion.
	Version string
	Logger  *zap.Logger
}

// DefaultVersion is the Keycloak release the emulator follows by default.
const DefaultVersion = "26.5"

// Validate fills defaults and rejects unusable settings.
func (c *Config) Validate() error {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:0"
	}
	if c.Version == "" {
		c.Version = DefaultVersion
	}
	if _, err := InvalidGrantStatus(c.Version); err != nil {
		return err
	}
	if c.AdminUser == "" {
		c.AdminUser = "admin"
	}
	if c.AdminPassword == "" {
		c.AdminPassword = "admin"
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("kcemu config: Addr %q: %w", c.Addr, err)
	}
	if host == "" {
		return fmt.Errorf("kcemu config: Addr %q must name a host (use 127.0.0.1)", c.Addr)
	}
	for _, p := range c.Realms {
		if p == "" {
			return errors.New("kcemu config: Realms contains an empty path")
		}
	}
	return nil
}

// Server is a running emulator.
type Server struct {
	log      *zap.Logger
	url      string
	srv      *http.Server
	faults   *Faults
	verifier verifier
	// invalidGrant is the HTTP status of an invalid_grant answer.
	invalidGrant int
	version      string // Config.Version

	mu    sync.RWMutex
	st    *state
	store *stateLog // nil when in memory
	flows *flows    // logins and codes of the authorization-code flow

	closing   chan struct{}
	closeOnce sync.Once
	served    chan error
}

// Start loads state, imports realms and listens; it returns once the server
// accepts connections.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{log: cfg.Logger, faults: newFaults(), flows: newFlows(), closing: make(chan struct{}), served: make(chan error, 1)}
	s.invalidGrant, _ = InvalidGrantStatus(cfg.Version)
	s.version = cfg.Version
	if err := s.loadState(cfg); err != nil {
		return nil, err
	}
	if err := s.bootstrap(cfg); err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("kcemu listen on %s: %w", cfg.Addr, err)
	}
	s.url = "http://" + ln.Addr().String()
	s.srv = &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { s.served <- s.srv.Serve(ln) }()
	s.log.Info("keycloak emulator listening", zap.String("url", s.url))
	return s, nil
}

func (s *Server) loadState(cfg Config) error {
	if cfg.DataDir == "" {
		s.st = newState()
		return nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("kcemu data dir: %w", err)
	}
	st, err := loadState(cfg.DataDir)
	if err != nil {
		return err
	}
	l, err := openLog(cfg.DataDir, st)
	if err != nil {
		return err
	}
	s.st, s.store = st, l
	return nil
}

// bootstrap creates master and imports realms that do not exist yet, as
// Keycloak's --import-realm skips realms already present.
func (s *Server) bootstrap(cfg Config) error {
	exports, err := readExports(cfg)
	if err != nil {
		return err
	}
	return s.update(func(st *state) error {
		if err := ensureMaster(st, cfg.AdminUser, cfg.AdminPassword); err != nil {
			return err
		}
		for _, ex := range exports {
			if st.Realms[*ex.Realm] != nil {
				s.log.Info("realm already exists, import skipped", zap.String("realm", *ex.Realm))
				continue
			}
			r, err := buildRealm(ex)
			if err != nil {
				return err
			}
			st.Realms[r.Name] = r
			st.touchRealm(r.Name)
			s.log.Info("realm imported", zap.String("realm", r.Name))
		}
		return nil
	})
}

func readExports(cfg Config) ([]*realmExport, error) {
	var out []*realmExport
	if cfg.DevRealm {
		ex, err := parseRealmExport(DevRealmJSON(), "built-in dev realm")
		if err != nil {
			return nil, err
		}
		out = append(out, ex)
	}
	for _, p := range cfg.Realms {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read realm export: %w", err)
		}
		ex, err := parseRealmExport(data, p)
		if err != nil {
			return nil, err
		}
		out = append(out, ex)
	}
	return out, nil
}

// ensureMaster creates the master realm with admin-cli and the bootstrap
// admin, unless it exists.
func ensureMaster(st *state, adminUser, adminPassword string) error {
	if st.Realms[masterRealm] != nil {
		return nil
	}
	m, err := newRealm(masterRealm)
	if err != nil {
		return err
	}
	m.DisplayName = "Keycloak"
	m.AccessTokenLifespan = 60
	cli := newClient("", adminCLI)
	cli.Name = "${client_admin-cli}"
	cli.PublicClient, cli.DirectAccessGrantsEnabled, cli.StandardFlowEnabled = true, true, false
	cli.Attributes[lightweightAttr] = "true"
	m.putClient(cli)
	m.ensureDefaults()
	admin := m.ensureRole("", "admin")
	admin.Description = "${role_admin}"
	m.ensureRole("", "create-realm")
	h, err := hashPassword(adminPassword)
	if err != nil {
		return err
	}
	u := &user{ID: newID(), Username: adminUser, Enabled: true, CreatedTimestamp: nowMillis(),
		Password: h, RoleIDs: map[string]bool{admin.ID: true, m.DefaultRoleID: true}}
	m.putUser(u)
	st.Realms[masterRealm] = m
	st.touchRealm(masterRealm)
	return nil
}

// URL is the base URL, without Keycloak's legacy /auth prefix.
func (s *Server) URL() string { return s.url }

// Faults is the fault-injection control.
func (s *Server) Faults() *Faults { return s.faults }

// Close stops the server, releasing requests held by Hang faults.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closing)
		err = s.srv.Close()
		if serr := <-s.served; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
		if s.store != nil {
			s.mu.Lock()
			if lerr := s.store.close(); lerr != nil && err == nil {
				err = fmt.Errorf("close emulator log: %w", lerr)
			}
			s.mu.Unlock()
		}
	})
	return err
}

// update runs fn under the write lock and logs what it changed, returning
// once that is on disk. fn must leave the state untouched when it returns
// an error; what it noted as changed anyway goes out with the next commit.
func (s *Server) update(fn func(st *state) error) error {
	s.mu.Lock()
	if err := fn(s.st); err != nil {
		if s.store == nil {
			s.st.forgetChanges()
		}
		s.mu.Unlock()
		return err
	}
	seq, err := s.commit()
	s.mu.Unlock()
	if err != nil || seq == 0 {
		return err
	}
	return s.store.sync(seq)
}

// commit appends the changes to the log, under the write lock; 0 when
// nothing is to be written.
func (s *Server) commit() (uint64, error) {
	if s.store == nil {
		s.st.forgetChanges()
		return 0, nil
	}
	cs, err := s.st.drain()
	if err != nil || len(cs) == 0 {
		return 0, err
	}
	seq, err := s.store.append(s.st, cs)
	if err != nil {
		return 0, err
	}
	if s.store.full() {
		// The record is written: a failed compaction leaves a longer log,
		// not a lost write, and is tried again at the next commit.
		if err := s.store.compact(s.st); err != nil {
			s.log.Warn("keycloak emulator: compacting the state log failed", zap.Error(err))
		}
	}
	return seq, nil
}

// handler is the whole HTTP surface: faults first, then Keycloak's routes.
func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	s.routeOIDC(mux)
	s.routeAdmin(mux)
	s.routeFaultsAPI(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeOAuthError(w, http.StatusNotFound, "Unable to find matching target resource method",
			"For more on this error consult the server log.")
	})
	return s.faults.middleware(s.closing, s.logRequests(mux))
}

func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		next.ServeHTTP(rec, r)
		s.log.Debug("request", zap.String("method", r.Method), zap.String("path", r.URL.Path),
			zap.Int("status", rec.status), zap.Duration("took", time.Since(start)))
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// Response writers for Keycloak's error shapes.

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError is {"error": msg}, Keycloak's shape for 401, 403 and 404.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// writeErrorMessage is {"errorMessage": msg}, used for conflicts and validation.
func writeErrorMessage(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"errorMessage": msg})
}

func writeOAuthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}
