package kccontract

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

// browser is a user agent that keeps cookies and stops at redirects, as a
// test of the authorization-code flow needs.
type browser struct {
	t  *testing.T
	tg *target
	c  *http.Client
}

func newBrowser(t *testing.T, tg *target) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, tg: tg, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(req *http.Request) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.Do(req)
	mustDo(b.t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// pageCtx bounds a page load: Keycloak's first login page compiles its
// theme's templates, which took over 30 s on a busy two-core machine.
func (b *browser) pageCtx() context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	b.t.Cleanup(cancel)
	return c
}

func (b *browser) get(u string) (*http.Response, string) {
	req, err := http.NewRequestWithContext(b.pageCtx(), http.MethodGet, u, nil)
	mustDo(b.t, err)
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) (*http.Response, string) {
	req, err := http.NewRequestWithContext(b.pageCtx(), http.MethodPost, u, strings.NewReader(form.Encode()))
	mustDo(b.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var loginForm = regexp.MustCompile(`<form[^>]*id="kc-form-login"[^>]*action="([^"]+)"`)

// loginAction finds the login form's target in a page.
func (b *browser) loginAction(page string) string {
	b.t.Helper()
	m := loginForm.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("no login form (id kc-form-login) in the page:\n%.2000s", page)
	}
	return html.UnescapeString(m[1])
}

// authURL is where the operator page sends the browser.
func (tg *target) authURL(redirect, state, challenge string) string {
	q := url.Values{"client_id": {kcemu.DevUIClientID}, "redirect_uri": {redirect}, "response_type": {"code"},
		"scope": {"openid"}, "state": {state}}
	if challenge != "" {
		q.Set("code_challenge", challenge)
		q.Set("code_challenge_method", "S256")
	}
	return tg.URL + "/realms/" + tg.Realm + "/protocol/openid-connect/auth?" + q.Encode()
}

func pkcePair() (verifier, challenge string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	verifier = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// TestAuthorizationCodeWithPKCE signs a user in through the login form, as
// the operator page does, and checks what both servers refuse on the way.
func TestAuthorizationCodeWithPKCE(t *testing.T) { forEachTarget(t, testAuthorizationCodeWithPKCE) }

func testAuthorizationCodeWithPKCE(t *testing.T, tg *target) {
	const redirect = "http://127.0.0.1:8080/ui/callback"
	verifier, challenge := pkcePair()
	b := newBrowser(t, tg)

	// PKCE is required for this client: no challenge, no login.
	resp, _ := b.get(tg.authURL(redirect, "s0", ""))
	eq(t, "without a code challenge", resp.StatusCode, http.StatusFound)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	eq(t, "error", loc.Query().Get("error"), "invalid_request")
	eq(t, "error_description", loc.Query().Get("error_description"), "Missing parameter: code_challenge_method")

	resp, page := b.get(tg.authURL(redirect, "s1", challenge))
	eq(t, "login page", resp.StatusCode, http.StatusOK)
	resp, page = b.post(b.loginAction(page), url.Values{"username": {kcemu.DevUser1}, "password": {"wrong"}})
	eq(t, "wrong password shows the form again", resp.StatusCode, http.StatusOK)
	if !strings.Contains(page, "Invalid username or password.") {
		t.Errorf("no error message on the page after a wrong password")
	}
	resp, _ = b.post(b.loginAction(page), url.Values{"username": {kcemu.DevUser1}, "password": {kcemu.DevPassword}})
	eq(t, "signed in", resp.StatusCode, http.StatusFound)
	loc, _ = url.Parse(resp.Header.Get("Location"))
	eq(t, "back to the redirect URI", loc.Scheme+"://"+loc.Host+loc.Path, redirect)
	eq(t, "state", loc.Query().Get("state"), "s1")
	eq(t, "iss", loc.Query().Get("iss"), tg.URL+"/realms/"+tg.Realm)
	code := loc.Query().Get("code")
	if code == "" {
		t.Fatalf("no code in %s", loc)
	}

	exchange := func(code, verifier string) (int, map[string]any) {
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect},
			"client_id": {kcemu.DevUIClientID}}
		if verifier != "" {
			form.Set("code_verifier", verifier)
		}
		resp, body := b.post(tg.URL+"/realms/"+tg.Realm+"/protocol/openid-connect/token", form)
		var out map[string]any
		_ = json.Unmarshal([]byte(body), &out)
		return resp.StatusCode, out
	}
	status, out := exchange(code, "not-the-verifier-not-the-verifier-not-the-verifier")
	eq(t, "wrong verifier", status, http.StatusBadRequest)
	eq(t, "wrong verifier error", out["error"], any("invalid_grant"))
	status, out = exchange(code, verifier)
	eq(t, "code already tried", status, http.StatusBadRequest)
	eq(t, "code already tried error", out["error"], any("invalid_grant"))

	// A fresh login (the session cookie skips the form), exchanged right.
	resp, _ = b.get(tg.authURL(redirect, "s2", challenge))
	eq(t, "second login uses the session", resp.StatusCode, http.StatusFound)
	loc, _ = url.Parse(resp.Header.Get("Location"))
	status, out = exchange(loc.Query().Get("code"), verifier)
	eq(t, "exchange", status, http.StatusOK)
	access, _ := out["access_token"].(string)
	tok := tg.verify(t, access)
	eq(t, "azp", claim[string](t, tok, "azp"), kcemu.DevUIClientID)
	eq(t, "preferred_username", claim[string](t, tok, "preferred_username"), kcemu.DevUser1)
	aud, _ := tok.Audience()
	if !strings.Contains(strings.Join(aud, " "), kcemu.DevAPIClientID) {
		t.Errorf("aud %v lacks %s", aud, kcemu.DevAPIClientID)
	}
	if out["refresh_token"] == nil || out["id_token"] == nil {
		t.Errorf("token response lacks refresh_token or id_token: %v", out)
	}
	status, _ = exchange(loc.Query().Get("code"), verifier)
	eq(t, "a code is used once", status, http.StatusBadRequest)
}
