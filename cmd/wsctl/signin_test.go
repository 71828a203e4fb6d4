package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
)

// tokenEndpoint answers grants with tokens that last one second, so every
// Token call has to renew, and records the grant types it saw.
type tokenEndpoint struct {
	mu            sync.Mutex
	grants        []string
	refuseRefresh bool
}

func (e *tokenEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	e.mu.Lock()
	defer e.mu.Unlock()
	g := r.PostForm.Get("grant_type")
	e.grants = append(e.grants, g)
	if g == "refresh_token" && e.refuseRefresh {
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant", "error_description": "Session not active"})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": g + "-token", "expires_in": 1,
		"refresh_token": "r", "refresh_expires_in": 1800})
}

func TestGrantSourceRenewsByRefreshThenByGrant(t *testing.T) {
	ep := &tokenEndpoint{}
	srv := httptest.NewServer(ep)
	defer srv.Close()
	g := &grantSource{endpoint: srv.URL, http: srv.Client(),
		form: url.Values{"grant_type": {"password"}, "client_id": {"demo"}, "username": {"u"}, "password": {"p"}}}
	for _, want := range []string{"password-token", "refresh_token-token"} {
		if tok, err := g.Token(t.Context()); err != nil || tok != want {
			t.Fatalf("Token = %q, %v; want %q", tok, err, want)
		}
	}
	ep.refuseRefresh = true // the session ended: sign in again
	if tok, err := g.Token(t.Context()); err != nil || tok != "password-token" {
		t.Fatalf("after a refused refresh: %q, %v", tok, err)
	}
	want := []string{"password", "refresh_token", "refresh_token", "password"}
	if len(ep.grants) != len(want) {
		t.Fatalf("grants %v, want %v", ep.grants, want)
	}
	for i := range want {
		if ep.grants[i] != want[i] {
			t.Fatalf("grants %v, want %v", ep.grants, want)
		}
	}
}

func TestParseDotenv(t *testing.T) {
	env, err := parseDotenv([]byte("# dev\nWORKSPACE_API='http://127.0.0.1:1/workspaces'\n\nexport NATS_URL=\"nats://x:4222\"\nS3_REGION=us-east-1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if env["WORKSPACE_API"] != "http://127.0.0.1:1/workspaces" || env["NATS_URL"] != "nats://x:4222" || env["S3_REGION"] != "us-east-1" {
		t.Fatalf("parsed %v", env)
	}
	if _, err := parseDotenv([]byte("NOEQUALS\n")); err == nil {
		t.Fatal("a line without = was accepted")
	}
}
