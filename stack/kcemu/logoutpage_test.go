package kcemu

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// The browser's logout (GET, RP-initiated) ends the session its ID token
// names: the session's refresh token stops working. Without a hint the
// page asks first, as Keycloak's does; a redirect the client does not
// allow is refused.
func TestBrowserLogoutEndsTheSession(t *testing.T) {
	s, err := Start(context.Background(), Config{DevRealm: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	oidc := s.URL() + "/realms/" + DevRealmName + "/protocol/openid-connect"
	status, tok := postForm(t, oidc+"/token", url.Values{"grant_type": {"password"}, "client_id": {DevPublicClientID},
		"username": {DevUser1}, "password": {DevPassword}, "scope": {"openid"}})
	if status != http.StatusOK {
		t.Fatalf("sign in: %d %v", status, tok)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	page := func(q url.Values) (int, string) {
		resp, err := noRedirect.Get(oidc + "/logout?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := page(url.Values{"client_id": {DevPublicClientID}}); code != http.StatusOK || !strings.Contains(body, `id="kc-logout"`) {
		t.Fatalf("logout without a hint = %d, want the confirmation page: %s", code, body)
	}
	hint := url.Values{"id_token_hint": {tok["id_token"].(string)}}
	bad := url.Values{"id_token_hint": hint["id_token_hint"], "post_logout_redirect_uri": {"https://evil.example/"}}
	if code, _ := page(bad); code != http.StatusBadRequest {
		t.Fatalf("a redirect the client does not allow = %d, want 400", code)
	}
	if code, body := page(hint); code != http.StatusOK || !strings.Contains(body, "logged out") {
		t.Fatalf("logout = %d %s", code, body)
	}
	if status, body := postForm(t, oidc+"/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {DevPublicClientID},
		"refresh_token": {tok["refresh_token"].(string)}}); status != http.StatusBadRequest {
		t.Fatalf("refresh after logout = %d %v, want 400", status, body)
	}
}
