package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

const audience = "workspace-api"

// idp serves OIDC discovery and a JWKS of the keys it is told to publish.
type idp struct {
	srv     *httptest.Server
	mu      sync.Mutex
	public  jwk.Set
	fetches atomic.Int64
	down    atomic.Bool
}

func newIDP(t *testing.T) *idp {
	t.Helper()
	p := &idp{public: jwk.NewSet()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /realms/test/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": p.issuer(), "jwks_uri": p.issuer() + "/protocol/openid-connect/certs"})
	})
	mux.HandleFunc("GET /realms/test/protocol/openid-connect/certs", func(w http.ResponseWriter, _ *http.Request) {
		p.fetches.Add(1)
		if p.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		_ = json.NewEncoder(w).Encode(p.public)
	})
	p.srv = httptest.NewServer(mux) // listens on 127.0.0.1
	t.Cleanup(p.srv.Close)
	return p
}

func (p *idp) issuer() string { return p.srv.URL + "/realms/test" }

// signer is one RSA key pair with its kid.
type signer struct {
	kid  string
	priv jwk.Key
	pub  jwk.Key
}

func newSigner(t *testing.T, kid, use string) signer {
	t.Helper()
	raw, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := jwk.Import(raw)
	if err != nil {
		t.Fatal(err)
	}
	_ = priv.Set(jwk.KeyIDKey, kid)
	pub, err := priv.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	_ = pub.Set(jwk.KeyUsageKey, use)
	if use == "sig" {
		_ = pub.Set(jwk.AlgorithmKey, jwa.RS256())
	}
	return signer{kid: kid, priv: priv, pub: pub}
}

func (p *idp) publish(s signer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.public.AddKey(s.pub)
}

// clock is a settable test clock.
type clock struct{ now atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Unix(0, c.now.Load()) }
func (c *clock) advance(d time.Duration) { c.now.Add(int64(d)) }

// claims are the defaults of a Keycloak access token, then the overrides.
func (p *idp) claims(now time.Time, over map[string]any) map[string]any {
	c := map[string]any{
		"iss": p.issuer(), "sub": "user-id-1", "aud": []string{audience, "account"}, "azp": "demo", "typ": "Bearer",
		"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "preferred_username": "alice",
		"realm_access": map[string]any{"roles": []string{"default-roles-eoepca"}},
	}
	for k, v := range over {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

func sign(t *testing.T, s signer, claims map[string]any) string {
	t.Helper()
	tok := jwt.New()
	for k, v := range claims {
		if err := tok.Set(k, v); err != nil {
			t.Fatalf("claim %s: %v", k, err)
		}
	}
	raw, err := jwt.Sign(tok, jwt.WithKey(jwa.RS256(), s.priv))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// rawToken builds a token by hand, for algorithms jwx will not sign with.
func rawToken(t *testing.T, header, claims map[string]any, sig []byte) string {
	t.Helper()
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding.EncodeToString
	return enc(h) + "." + enc(c) + "." + enc(sig)
}

type fixture struct {
	idp   *idp
	clk   *clock
	k1    signer
	jwt   *JWT
	other signer // a key with k1's kid that the realm never published
	enc   signer // published for encryption only
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{idp: newIDP(t), clk: &clock{}, k1: newSigner(t, "k1", "sig"), other: newSigner(t, "k1", "sig")}
	f.clk.now.Store(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	f.idp.publish(f.k1)
	f.enc = newSigner(t, "kenc", "enc")
	f.idp.publish(f.enc) // Keycloak's RSA-OAEP key: never a signing key
	var err error
	f.jwt, err = NewJWT(context.Background(), JWTConfig{IssuerURL: f.idp.issuer(), Audience: audience, Now: f.clk.Now})
	if err != nil {
		t.Fatalf("NewJWT: %v", err)
	}
	return f
}

func (f *fixture) verify(tok string) (Principal, error) {
	return f.jwt.Verify(context.Background(), tok)
}

func wantInvalid(t *testing.T, err error, desc string) {
	t.Helper()
	var ae *Error
	if !errors.As(err, &ae) {
		t.Fatalf("error %v, want an *Error", err)
	}
	if ae.Code != "invalid_token" || !strings.Contains(ae.Description, desc) {
		t.Fatalf("error %q / %q, want invalid_token with %q", ae.Code, ae.Description, desc)
	}
	if ch := ae.Challenge(); !strings.HasPrefix(ch, `Bearer realm="workspaces", error="invalid_token", error_description="`) {
		t.Fatalf("challenge %s", ch)
	}
}

func TestVerifyAcceptsAValidToken(t *testing.T) {
	f := newFixture(t)
	now := f.clk.Now()
	p, err := f.verify(sign(t, f.k1, f.idp.claims(now, map[string]any{
		"realm_access": map[string]any{"roles": []string{"default-roles-eoepca", DefaultAdminRole}}})))
	if err != nil {
		t.Fatal(err)
	}
	if p.Username != "alice" || p.Subject != "user-id-1" || !p.Admin || !p.HasRealmRole("default-roles-eoepca") {
		t.Fatalf("principal %+v", p)
	}
	p, err = f.verify(sign(t, f.k1, f.idp.claims(now, nil)))
	if err != nil || p.Admin {
		t.Fatalf("non-admin: %+v %v", p, err)
	}
	// A token the API's own client asked for: no aud for it, azp is it.
	if _, err := f.verify(sign(t, f.k1, f.idp.claims(now, map[string]any{"aud": nil, "azp": audience}))); err != nil {
		t.Fatalf("azp token: %v", err)
	}
	// Expired a little, within the tolerated skew.
	if _, err := f.verify(sign(t, f.k1, f.idp.claims(now, map[string]any{"exp": now.Add(-10 * time.Second).Unix()}))); err != nil {
		t.Fatalf("within skew: %v", err)
	}
}

func TestVerifyRejects(t *testing.T) {
	f := newFixture(t)
	now := f.clk.Now()
	good := sign(t, f.k1, f.idp.claims(now, nil))
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(mustJSON(f.idp.claims(now, map[string]any{"preferred_username": "mallory"}))) + "." + parts[2]
	tests := []struct {
		name, token, desc string
	}{
		{"expired", sign(t, f.k1, f.idp.claims(now, map[string]any{"exp": now.Add(-time.Hour).Unix()})), "token expired"},
		{"not yet valid", sign(t, f.k1, f.idp.claims(now, map[string]any{"nbf": now.Add(time.Hour).Unix()})), "not yet valid"},
		{"no exp", sign(t, f.k1, f.idp.claims(now, map[string]any{"exp": nil})), "required claim"},
		{"wrong issuer", sign(t, f.k1, f.idp.claims(now, map[string]any{"iss": "http://127.0.0.1:1/realms/evil"})), "wrong issuer"},
		{"wrong audience", sign(t, f.k1, f.idp.claims(now, map[string]any{"aud": []string{"account"}, "azp": "demo"})), "wrong audience"},
		{"no audience", sign(t, f.k1, f.idp.claims(now, map[string]any{"aud": nil})), "wrong audience"},
		{"bad signature", sign(t, f.other, f.idp.claims(now, nil)), "bad signature"},
		{"tampered payload", tampered, "bad signature"},
		{"unknown kid", sign(t, newSigner(t, "k9", "sig"), f.idp.claims(now, nil)), "unknown signing key k9"},
		{"encryption key", sign(t, f.enc, f.idp.claims(now, nil)), "unknown signing key kenc"},
		{"alg none", rawToken(t, map[string]any{"alg": "none", "kid": "k1"}, f.idp.claims(now, nil), nil), "RS256 only"},
		{"alg HS256", hs256(t, f.idp.claims(now, nil)), "RS256 only"},
		{"id token", sign(t, f.k1, f.idp.claims(now, map[string]any{"typ": "ID"})), "not an access token"},
		{"no username", sign(t, f.k1, f.idp.claims(now, map[string]any{"preferred_username": nil})), "preferred_username"},
		{"garbage", "not.a.token", "malformed"},
		{"two parts", "abc.def", "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.verify(tc.token)
			wantInvalid(t, err, tc.desc)
		})
	}
}

func mustJSON(v any) []byte {
	raw, _ := json.Marshal(v)
	return raw
}

// hs256 signs with HMAC under the RSA key's kid: the classic confusion
// attack, where a verifier would use the public key as the HMAC secret.
func hs256(t *testing.T, claims map[string]any) string {
	t.Helper()
	tok := jwt.New()
	for k, v := range claims {
		_ = tok.Set(k, v)
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, "k1")
	raw, err := jwt.Sign(tok, jwt.WithKey(jwa.HS256(), []byte("public-key-bytes"), jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func TestKeyRotationIsPickedUpAndRateLimited(t *testing.T) {
	f := newFixture(t)
	k2 := newSigner(t, "k2", "sig")
	f.clk.advance(DefaultMinRefresh) // past the start-up fetch
	tok := sign(t, k2, f.idp.claims(f.clk.Now(), map[string]any{"exp": f.clk.Now().Add(time.Hour).Unix()}))
	base := f.idp.fetches.Load()
	_, err := f.verify(tok)
	wantInvalid(t, err, "unknown signing key")
	if got := f.idp.fetches.Load() - base; got != 1 {
		t.Fatalf("%d fetches for an unknown kid, want 1", got)
	}
	// A flood of unknown kids costs no more fetches within MinRefresh.
	f.idp.publish(k2)
	for range 20 {
		_, err = f.verify(tok)
	}
	wantInvalid(t, err, "unknown signing key")
	if got := f.idp.fetches.Load() - base; got != 1 {
		t.Fatalf("%d fetches within MinRefresh, want 1", got)
	}
	f.clk.advance(DefaultMinRefresh)
	p, err := f.verify(tok)
	if err != nil || p.Username != "alice" {
		t.Fatalf("after rotation: %+v %v", p, err)
	}
	if got := f.idp.fetches.Load() - base; got != 2 {
		t.Fatalf("%d fetches, want 2", got)
	}
	// The old key keeps working without any fetch.
	if _, err := f.verify(sign(t, f.k1, f.idp.claims(f.clk.Now(), nil))); err != nil {
		t.Fatalf("old key: %v", err)
	}
	if got := f.idp.fetches.Load() - base; got != 2 {
		t.Fatalf("%d fetches, want 2", got)
	}
}

func TestKeysAreRefetchedWhenOld(t *testing.T) {
	f := newFixture(t)
	base := f.idp.fetches.Load()
	f.clk.advance(DefaultMaxKeyAge + time.Second)
	if _, err := f.verify(sign(t, f.k1, f.idp.claims(f.clk.Now(), nil))); err != nil {
		t.Fatal(err)
	}
	if got := f.idp.fetches.Load() - base; got != 1 {
		t.Fatalf("%d fetches after MaxKeyAge, want 1", got)
	}
	// An outage keeps the old keys in use.
	f.idp.down.Store(true)
	f.clk.advance(DefaultMaxKeyAge + time.Second)
	if _, err := f.verify(sign(t, f.k1, f.idp.claims(f.clk.Now(), nil))); err != nil {
		t.Fatalf("stale keys during an outage: %v", err)
	}
}

func TestUnknownKidDuringOutageIsUnavailable(t *testing.T) {
	f := newFixture(t)
	f.idp.down.Store(true)
	f.clk.advance(DefaultMinRefresh)
	_, err := f.verify(sign(t, newSigner(t, "k7", "sig"), f.idp.claims(f.clk.Now(), nil)))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("error %v, want ErrUnavailable", err)
	}
}

func TestAuthenticateNeedsABearerToken(t *testing.T) {
	f := newFixture(t)
	r := httptest.NewRequest("GET", "/workspaces", nil)
	_, err := f.jwt.Authenticate(r)
	var ae *Error
	if !errors.As(err, &ae) || ae.Challenge() != `Bearer realm="workspaces"` {
		t.Fatalf("no token: %v", err)
	}
	r.Header.Set("Authorization", "Basic YTpi")
	_, err = f.jwt.Authenticate(r)
	if !errors.As(err, &ae) || ae.Code != "invalid_request" {
		t.Fatalf("basic auth: %v", err)
	}
	r.Header.Set("Authorization", "Bearer "+sign(t, f.k1, f.idp.claims(f.clk.Now(), nil)))
	if p, err := f.jwt.Authenticate(r); err != nil || p.Username != "alice" {
		t.Fatalf("bearer: %+v %v", p, err)
	}
}

func TestNewJWTChecksTheIssuer(t *testing.T) {
	p := newIDP(t)
	_, err := NewJWT(context.Background(), JWTConfig{IssuerURL: p.srv.URL + "/realms/other", Audience: audience})
	if err == nil {
		t.Fatal("discovery of a realm that does not exist succeeded")
	}
	for _, c := range []JWTConfig{{Audience: audience}, {IssuerURL: "ftp://x", Audience: audience}, {IssuerURL: p.issuer()}} {
		if err := c.WithDefaults().Validate(); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
}

func TestChallengeQuotesSafely(t *testing.T) {
	e := &Error{Code: "invalid_token", Description: "bad \"kid\"\n"}
	if got := e.Challenge(); got != `Bearer realm="workspaces", error="invalid_token", error_description="bad  kid  "` {
		t.Fatalf("challenge %s", got)
	}
}
