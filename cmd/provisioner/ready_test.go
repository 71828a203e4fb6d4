package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/eo-workspaces/provisioner/bus/bustest"
)

// A worker whose providers do not answer is not ready, and says which
// and why; once they answer, it is.
func TestReadyzNamesEveryProviderThatDoesNotAnswer(t *testing.T) {
	healthy := false
	kc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy || r.URL.Path != "/realms/eoepca/.well-known/openid-configuration" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer kc.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	s := &system{cfg: config{KeycloakURL: kc.URL, KeycloakRealm: "eoepca", S3Endpoint: closed}, bus: bustest.Start(t)}
	s.ready = newReadiness(s)

	status, body := probe(t, s)
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "keycloak: answers 503") ||
		!strings.Contains(body, "minio: unreachable") {
		t.Fatalf("readyz with both providers down = %d %s", status, body)
	}
	mio := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/minio/health/live" {
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer mio.Close()
	healthy, s.cfg.S3Endpoint = true, mio.URL
	s.ready = newReadiness(s) // a fresh one: answers are kept for a moment
	if status, body := probe(t, s); status != http.StatusOK {
		t.Fatalf("readyz with both providers up = %d %s", status, body)
	}
}

func probe(t *testing.T, s *system) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	s.opsHandler().ServeHTTP(rec, httptest.NewRequestWithContext(context.Background(), "GET", "/readyz", nil))
	var body map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("readyz body %q: %v", rec.Body, err)
	}
	return rec.Code, fmt.Sprint(body)
}
