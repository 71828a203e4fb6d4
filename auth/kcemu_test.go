package auth

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

// TestTokensFromTheKeycloakEmulator verifies tokens as the emulator of
// Keycloak issues them for the dev realm.
func TestTokensFromTheKeycloakEmulator(t *testing.T) {
	ctx := context.Background()
	kc, err := kcemu.Start(ctx, kcemu.Config{DevRealm: true})
	if err != nil {
		t.Fatalf("start emulator: %v", err)
	}
	t.Cleanup(func() { _ = kc.Close() })
	issuer := kc.URL() + "/realms/eoepca"
	v, err := NewJWT(ctx, JWTConfig{IssuerURL: issuer, Audience: "workspace-api"})
	if err != nil {
		t.Fatalf("NewJWT: %v", err)
	}
	token := func(form url.Values) string {
		t.Helper()
		resp, err := http.Post(issuer+"/protocol/openid-connect/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		var body struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("token: %d %v", resp.StatusCode, err)
		}
		return body.AccessToken
	}
	password := func(user string) string {
		return token(url.Values{"grant_type": {"password"}, "client_id": {"demo"}, "username": {user}, "password": {"changeme"}})
	}
	p, err := v.Verify(ctx, password("example-admin"))
	if err != nil || p.Username != "example-admin" || !p.Admin || p.Subject == "" {
		t.Fatalf("admin: %+v %v", p, err)
	}
	p, err = v.Verify(ctx, password("example-user-1"))
	if err != nil || p.Username != "example-user-1" || p.Admin {
		t.Fatalf("user: %+v %v", p, err)
	}
	worker := token(url.Values{"grant_type": {"client_credentials"}, "client_id": {"workspace-worker"}, "client_secret": {"workspace-worker-secret"}})
	_, err = v.Verify(ctx, worker)
	wantInvalid(t, err, "wrong audience")
}
