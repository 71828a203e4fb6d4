package kccontract

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

// The operator page, served from the API's origin, calls the token
// endpoint across origins: the preflight is answered, and the answer
// carries the page's origin only for a client whose webOrigins allow it.
func TestTokenEndpointCORS(t *testing.T) { forEachTarget(t, testTokenEndpointCORS) }

func testTokenEndpointCORS(t *testing.T, tg *target) {
	const origin = "http://127.0.0.1:8080"
	tokenURL := tg.URL + "/realms/" + tg.Realm + "/protocol/openid-connect/token"
	pre, err := http.NewRequestWithContext(ctx(t), http.MethodOptions, tokenURL, nil)
	mustDo(t, err)
	pre.Header.Set("Origin", origin)
	pre.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := http.DefaultClient.Do(pre)
	mustDo(t, err)
	resp.Body.Close()
	eq(t, "preflight status", resp.StatusCode, http.StatusOK)
	eq(t, "preflight allow-origin", resp.Header.Get("Access-Control-Allow-Origin"), origin)

	// workspace-ui allows every origin; the CLI's public client none.
	for client, want := range map[string]string{kcemu.DevUIClientID: origin, kcemu.DevPublicClientID: ""} {
		form := url.Values{"grant_type": {"authorization_code"}, "client_id": {client}, "code": {"not-a-code"}}
		req, err := http.NewRequestWithContext(ctx(t), http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
		mustDo(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", origin)
		resp, err := http.DefaultClient.Do(req)
		mustDo(t, err)
		resp.Body.Close()
		eq(t, client+": a wrong code", resp.StatusCode, http.StatusBadRequest)
		eq(t, client+": allow-origin", resp.Header.Get("Access-Control-Allow-Origin"), want)
	}
}

// The page's sign-out is the browser's RP-initiated logout (GET): without
// an ID token hint Keycloak asks first; a redirect the client does not
// allow is refused; with the hint the session ends, and its refresh token
// with it.
func TestBrowserLogout(t *testing.T) { forEachTarget(t, testBrowserLogout) }

func testBrowserLogout(t *testing.T, tg *target) {
	oidc := tg.URL + "/realms/" + tg.Realm + "/protocol/openid-connect"
	jwt, err := tg.GC.Login(ctx(t), kcemu.DevPublicClientID, "", tg.Realm, kcemu.DevUser1, kcemu.DevPassword)
	mustDo(t, err)
	if jwt.IDToken == "" {
		t.Fatal("the password grant gave no ID token")
	}
	b := newBrowser(t, tg)
	resp, page := b.get(oidc + "/logout?" + url.Values{"client_id": {kcemu.DevPublicClientID}}.Encode())
	eq(t, "logout without a hint", resp.StatusCode, http.StatusOK)
	if !strings.Contains(page, `id="kc-logout"`) {
		t.Errorf("logout without a hint shows no confirmation form (id kc-logout):\n%.1500s", page)
	}
	resp, _ = b.get(oidc + "/logout?" + url.Values{"id_token_hint": {jwt.IDToken},
		"post_logout_redirect_uri": {"https://evil.example/"}}.Encode())
	eq(t, "a redirect the client does not allow", resp.StatusCode, http.StatusBadRequest)

	resp, _ = b.get(oidc + "/logout?" + url.Values{"id_token_hint": {jwt.IDToken}}.Encode())
	eq(t, "logout with the hint", resp.StatusCode, http.StatusOK)
	form := url.Values{"grant_type": {"refresh_token"}, "client_id": {kcemu.DevPublicClientID}, "refresh_token": {jwt.RefreshToken}}
	resp, body := b.post(oidc+"/token", form)
	eq(t, "refresh after logout", resp.StatusCode, http.StatusBadRequest)
	var out map[string]any
	_ = json.Unmarshal([]byte(body), &out)
	eq(t, "refresh after logout error", out["error"], any("invalid_grant"))
}
