package api

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/eo-workspaces/provisioner/auth"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/readmodel"
	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

// kcFixture is the API verifying real tokens of the Keycloak emulator's
// dev realm, plus a realm user who belongs to no workspace.
type kcFixture struct {
	s      *stack
	kc     *kcemu.Server
	issuer string
}

func newKCFixture(t *testing.T) *kcFixture {
	t.Helper()
	s := newStack(t)
	kc, err := kcemu.Start(s.ctx, kcemu.Config{DevRealm: true, AdminUser: "admin", AdminPassword: "admin"})
	if err != nil {
		t.Fatalf("start emulator: %v", err)
	}
	t.Cleanup(func() { _ = kc.Close() })
	f := &kcFixture{s: s, kc: kc, issuer: kc.URL() + "/realms/" + kcemu.DevRealmName}
	gc := gocloak.NewClient(kc.URL())
	adm, err := gc.LoginAdmin(s.ctx, "admin", "admin", "master")
	if err != nil {
		t.Fatal(err)
	}
	id, err := gc.CreateUser(s.ctx, adm.AccessToken, kcemu.DevRealmName, gocloak.User{
		Username: gocloak.StringP("stranger"), Enabled: gocloak.BoolP(true), Email: gocloak.StringP("stranger@example.org"),
		FirstName: gocloak.StringP("Some"), LastName: gocloak.StringP("Stranger")})
	if err != nil {
		t.Fatal(err)
	}
	if err := gc.SetPassword(s.ctx, adm.AccessToken, id, kcemu.DevRealmName, kcemu.DevPassword, false); err != nil {
		t.Fatal(err)
	}
	return f
}

// handler serves the API with a verifier of the dev realm; now shifts
// the verifier's clock, for expiry.
func (f *kcFixture) handler(t *testing.T, now func() time.Time) http.Handler {
	t.Helper()
	v, err := auth.NewJWT(f.s.ctx, auth.JWTConfig{IssuerURL: f.issuer, Audience: kcemu.DevAPIClientID,
		AdminRole: kcemu.DevAdminRole, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	d := f.s.deps
	d.Auth = v
	return f.s.handler(Config{AdminRole: kcemu.DevAdminRole}, d)
}

// emulatorToken posts form to the token endpoint of realm at the
// emulator kcURL and fails t unless it answers with an access token.
func emulatorToken(t *testing.T, kcURL, realm string, form url.Values) string {
	t.Helper()
	resp, err := http.PostForm(kcURL+"/realms/"+realm+"/protocol/openid-connect/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.AccessToken == "" {
		t.Fatalf("token from %s: %d %v", realm, resp.StatusCode, err)
	}
	return body.AccessToken
}

func (f *kcFixture) user(t *testing.T, name string) string {
	return emulatorToken(t, f.kc.URL(), kcemu.DevRealmName, url.Values{"grant_type": {"password"}, "client_id": {kcemu.DevPublicClientID},
		"username": {name}, "password": {kcemu.DevPassword}})
}

// TestEveryRoleAgainstEveryRouteWithEmulatorTokens is #5's table: real
// tokens of each kind of caller, against each route.
func TestEveryRoleAgainstEveryRouteWithEmulatorTokens(t *testing.T) {
	f := newKCFixture(t)
	h := f.handler(t, nil)
	f.s.put(readmodel.Workspace{Name: "ws-a", Status: events.StatusFailed, Owner: kcemu.DevUser1,
		Members: []readmodel.Member{member(kcemu.DevUser1, events.RoleAdmin), member(kcemu.DevUser2, events.RoleAccess)}})
	f.s.put(readmodel.Workspace{Name: "ws-b", Status: events.StatusReady, Owner: "other",
		Members: []readmodel.Member{member("other", events.RoleAdmin)}})
	f.s.waitFor("ws-b", func(_ readmodel.Workspace, ok bool) bool { return ok })
	callers := []string{kcemu.DevAdminUser, kcemu.DevUser1, kcemu.DevUser2, "stranger"}
	tokens := map[string]string{}
	for _, u := range callers {
		tokens[u] = f.user(t, u)
	}
	routes := []struct {
		rq   req
		want [4]int // platform admin, ws_admin member, ws_access member, stranger
	}{
		{req{method: "GET", path: "/workspaces/ws-a"}, [4]int{200, 200, 200, 403}},
		{req{method: "GET", path: "/workspaces/ws-b"}, [4]int{200, 403, 403, 403}},
		{req{method: "GET", path: "/workspaces/ws-missing"}, [4]int{404, 404, 404, 404}},
		{req{method: "GET", path: "/workspaces/ws-a/events"}, [4]int{200, 200, 200, 403}},
		{req{method: "GET", path: "/workspaces"}, [4]int{200, 200, 200, 200}},
		{req{method: "POST", path: "/workspaces", body: `{"preferred_name":"new","default_owner":"u"}`}, [4]int{202, 403, 403, 403}},
		{req{method: "POST", path: "/workspaces/ws-a/members", body: `{"username":"x","role":"ws_access"}`}, [4]int{202, 202, 403, 403}},
		{req{method: "DELETE", path: "/workspaces/ws-a/members/x"}, [4]int{202, 202, 403, 403}},
		{req{method: "POST", path: "/workspaces/ws-a/retry"}, [4]int{202, 403, 403, 403}},
		{req{method: "DELETE", path: "/workspaces/ws-a"}, [4]int{202, 403, 403, 403}},
	}
	for _, rt := range routes {
		for i, u := range callers {
			rq := rt.rq
			rq.header = map[string]string{"Authorization": "Bearer " + tokens[u]}
			rq.body = strings.Replace(rq.body, `"new"`, `"new-`+u+`"`, 1)
			t.Run(fmt.Sprintf("%s %s as %s", rq.method, rq.path, u), func(t *testing.T) {
				r := f.s.do(h, rq)
				if r.status != rt.want[i] {
					t.Fatalf("status %d, want %d: %s", r.status, rt.want[i], r.body)
				}
			})
		}
	}
	var list struct {
		Items []struct{ Name string } `json:"items"`
	}
	r := f.s.do(h, req{method: "GET", path: "/workspaces", header: map[string]string{"Authorization": "Bearer " + tokens["stranger"]}})
	r.json(t, &list)
	if len(list.Items) != 0 {
		t.Fatalf("a stranger's list shows %v", list.Items)
	}
}

// TestBadTokensFromTheEmulator: each way a token can be wrong gets 401
// with a Bearer challenge, on a route that exists and one that does not.
func TestBadTokensFromTheEmulator(t *testing.T) {
	f := newKCFixture(t)
	h := f.handler(t, nil)
	good := f.user(t, kcemu.DevAdminUser)
	header, payload, sig := split(t, good)
	kid := headerField(t, header, "kid")
	cases := map[string]struct {
		token string
		h     http.Handler
	}{
		"missing":                {"", h},
		"expired":                {good, f.handler(t, func() time.Time { return time.Now().Add(2 * time.Hour) })},
		"wrong issuer":           {emulatorToken(t, f.kc.URL(), "master", url.Values{"grant_type": {"password"}, "client_id": {"admin-cli"}, "username": {"admin"}, "password": {"admin"}}), h},
		"wrong audience":         {emulatorToken(t, f.kc.URL(), kcemu.DevRealmName, url.Values{"grant_type": {"client_credentials"}, "client_id": {kcemu.DevWorkerClientID}, "client_secret": {kcemu.DevWorkerClientSecret}}), h},
		"bad signature":          {header + "." + payload + "." + flip(sig), h},
		"unknown kid":            {resign(t, payload, "not-a-key-of-the-realm"), h},
		"foreign key, known kid": {resign(t, payload, kid), h},
		"alg none":               {b64(fmt.Sprintf(`{"alg":"none","typ":"JWT","kid":%q}`, kid)) + "." + payload + ".", h},
		"not a jwt":              {"garbage", h},
	}
	for name, c := range cases {
		for _, path := range []string{"/workspaces", "/workspaces/ws-a"} {
			t.Run(name+" "+path, func(t *testing.T) {
				rq := req{method: "GET", path: path}
				if c.token != "" {
					rq.header = map[string]string{"Authorization": "Bearer " + c.token}
				}
				r := f.s.do(c.h, rq)
				ch := r.header.Get("WWW-Authenticate")
				if r.status != http.StatusUnauthorized || !strings.HasPrefix(ch, `Bearer realm="workspaces"`) {
					t.Fatalf("status %d challenge %q: %s", r.status, ch, r.body)
				}
				if (c.token == "") == strings.Contains(ch, "invalid_token") {
					t.Fatalf("challenge %q for token %q", ch, name)
				}
				r.errBody(t)
			})
		}
	}
	if r := f.s.do(h, req{method: "GET", path: "/workspaces", header: map[string]string{"Authorization": "Bearer " + good}}); r.status != http.StatusOK {
		t.Fatalf("the untouched token was refused: %d %s", r.status, r.body)
	}
}

func split(t *testing.T, tok string) (string, string, string) {
	t.Helper()
	p := strings.Split(tok, ".")
	if len(p) != 3 {
		t.Fatalf("not a compact JWS: %q", tok)
	}
	return p[0], p[1], p[2]
}

func headerField(t *testing.T, header, field string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(header)
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	s, _ := h[field].(string)
	return s
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// flip changes one character of the signature, keeping it valid base64url.
func flip(sig string) string {
	c := byte('A')
	if sig[5] == 'A' {
		c = 'B'
	}
	return sig[:5] + string(c) + sig[6:]
}

// resign signs the emulator's claims with a key the realm never had.
func resign(t *testing.T, payload, kid string) string {
	t.Helper()
	claims, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	key, err := jwk.Import(raw)
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, kid)
	_ = hdr.Set(jws.TypeKey, "JWT")
	out, err := jws.Sign(claims, jws.WithKey(jwa.RS256(), key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
