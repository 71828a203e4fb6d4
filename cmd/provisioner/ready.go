package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// readiness tells whether this process can do its work: NATS connected,
// and each provider it was configured with answering. Provider answers
// are kept for a moment, so probes every second do not load them.
type readiness struct {
	s      *system
	client *http.Client
	mu     sync.Mutex
	at     time.Time
	last   error
}

// providerCheckTTL is how long a provider's answer stands for.
const providerCheckTTL = 2 * time.Second

func newReadiness(s *system) *readiness {
	return &readiness{s: s, client: &http.Client{Timeout: 2 * time.Second}}
}

// check returns nil when ready, or every reason it is not.
func (r *readiness) check(ctx context.Context) error {
	if !r.s.bus.Healthy() {
		return errors.New("nats: not connected")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.at) < providerCheckTTL {
		return r.last
	}
	var errs []error
	for name, url := range r.providers() {
		if err := r.probe(ctx, url); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	r.at, r.last = time.Now(), errors.Join(errs...)
	return r.last
}

// providers are the health URLs of the providers this process was
// configured with: Keycloak's realm discovery, MinIO's liveness.
func (r *readiness) providers() map[string]string {
	out := map[string]string{}
	cfg := r.s.cfg
	if cfg.KeycloakURL != "" {
		out["keycloak"] = strings.TrimSuffix(cfg.KeycloakURL, "/") + "/realms/" + cfg.KeycloakRealm + "/.well-known/openid-configuration"
	}
	if cfg.S3Endpoint != "" {
		out["minio"] = strings.TrimSuffix(cfg.S3Endpoint, "/") + "/minio/health/live"
	}
	return out
}

func (r *readiness) probe(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return fmt.Errorf("unreachable (%w)", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("answers %d", resp.StatusCode)
	}
	return nil
}

// reason renders err for a probe's body: one line, every reason.
func reason(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }
