package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/eo-workspaces/provisioner/auth"
	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

// TestBearerTokensFromTheKeycloakEmulator runs the API with the JWT
// verifier against the Keycloak emulator's dev realm.
func TestBearerTokensFromTheKeycloakEmulator(t *testing.T) {
	s := newStack(t)
	kc, err := kcemu.Start(s.ctx, kcemu.Config{DevRealm: true})
	if err != nil {
		t.Fatalf("start emulator: %v", err)
	}
	t.Cleanup(func() { _ = kc.Close() })
	issuer := kc.URL() + "/realms/eoepca"
	verifier, err := auth.NewJWT(s.ctx, auth.JWTConfig{IssuerURL: issuer, Audience: "workspace-api"})
	if err != nil {
		t.Fatal(err)
	}
	d := s.deps
	d.Auth = verifier
	h := s.handler(Config{}, d)
	token := func(form url.Values) string { t.Helper(); return emulatorToken(t, kc.URL(), "eoepca", form) }
	password := func(user string) string {
		return token(url.Values{"grant_type": {"password"}, "client_id": {"demo"}, "username": {user}, "password": {"changeme"}})
	}
	call := func(tok string, rq req) resp {
		rq.header = map[string]string{"Authorization": "Bearer " + tok}
		return s.do(h, rq)
	}
	create := req{method: "POST", path: "/workspaces", body: `{"preferred_name":"kc","default_owner":"example-user-1"}`}
	if r := call(password("example-admin"), create); r.status != http.StatusAccepted {
		t.Fatalf("admin create: %d %s", r.status, r.body)
	}
	if env := s.lastCommand("workspace.cmd.ws-kc.create"); env.Actor != "example-admin" {
		t.Fatalf("actor %q", env.Actor)
	}
	if r := call(password("example-user-2"), req{method: "GET", path: "/workspaces/ws-kc"}); r.status != http.StatusForbidden {
		t.Fatalf("another user: %d %s", r.status, r.body)
	}
	worker := token(url.Values{"grant_type": {"client_credentials"}, "client_id": {"workspace-worker"}, "client_secret": {"workspace-worker-secret"}})
	r := call(worker, req{method: "GET", path: "/workspaces"})
	if r.status != http.StatusUnauthorized {
		t.Fatalf("token for another audience: %d", r.status)
	}
	if got := r.header.Get("WWW-Authenticate"); got != `Bearer realm="workspaces", error="invalid_token", error_description="wrong audience"` {
		t.Fatalf("challenge %s", got)
	}
	r.errBody(t)
}

func TestAuthenticationOutageIs503(t *testing.T) {
	s := newStack(t)
	d := s.deps
	d.Auth = auth.Func(func(*http.Request) (auth.Principal, error) {
		return auth.Principal{}, fmt.Errorf("%w: jwks: connection refused", auth.ErrUnavailable)
	})
	r := s.do(s.handler(Config{}, d), req{method: "GET", path: "/workspaces", user: "x"})
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || strings.Contains(string(r.body), "refused") {
		t.Fatalf("outage: %d %v %s", r.status, r.header, r.body)
	}
}
