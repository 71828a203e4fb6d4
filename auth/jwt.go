package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// JWTConfig says whose tokens to accept; zero values take the defaults.
type JWTConfig struct {
	// IssuerURL is the realm's issuer, e.g. http://127.0.0.1:8180/realms/eo;
	// its keys are found through {IssuerURL}/.well-known/openid-configuration.
	IssuerURL string
	// Audience must be in the token's aud, or be its azp (a token the API's
	// own client asked for carries no aud for it in Keycloak).
	Audience string
	// AdminRole is the realm role of platform admins; default
	// DefaultAdminRole.
	AdminRole  string
	HTTPClient *http.Client // default: a client with a 10s timeout
	// Skew is the clock difference tolerated on exp, nbf and iat; default 30s.
	Skew time.Duration
	// MinRefresh bounds how often an unknown kid may trigger a JWKS fetch,
	// so forged kids cannot flood the identity provider; default 10s.
	MinRefresh time.Duration
	// MaxKeyAge is how long fetched keys are used before they are fetched
	// again, so a key the realm dropped stops being accepted; default 10m.
	MaxKeyAge time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Defaults of JWTConfig.
const (
	DefaultAdminRole  = "workspace-api:admin"
	DefaultSkew       = 30 * time.Second
	DefaultMinRefresh = 10 * time.Second
	DefaultMaxKeyAge  = 10 * time.Minute
)

// WithDefaults fills the zero fields.
func (c JWTConfig) WithDefaults() JWTConfig {
	if c.AdminRole == "" {
		c.AdminRole = DefaultAdminRole
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if c.Skew == 0 {
		c.Skew = DefaultSkew
	}
	if c.MinRefresh == 0 {
		c.MinRefresh = DefaultMinRefresh
	}
	if c.MaxKeyAge == 0 {
		c.MaxKeyAge = DefaultMaxKeyAge
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate names the first field that cannot work.
func (c JWTConfig) Validate() error {
	u, err := url.Parse(c.IssuerURL)
	switch {
	case c.IssuerURL == "":
		return errors.New("issuer url: required")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("issuer url %q: not an http(s) URL", c.IssuerURL)
	case c.Audience == "":
		return errors.New("audience: required")
	case c.AdminRole == "" || c.HTTPClient == nil || c.Now == nil:
		return errors.New("admin role, http client and clock: required (WithDefaults fills them)")
	case c.Skew < 0 || c.MinRefresh < 0 || c.MaxKeyAge < 0:
		return errors.New("skew, min refresh and max key age must not be negative")
	}
	return nil
}

// JWT verifies Keycloak access tokens against the realm's published keys.
type JWT struct {
	cfg     JWTConfig
	jwksURI string
	keys    atomic.Pointer[keySet]
	// refreshMu serialises JWKS fetches; lastFetch is guarded by it.
	refreshMu sync.Mutex
	lastFetch time.Time
}

type keySet struct {
	set     jwk.Set
	fetched time.Time
}

// NewJWT discovers the realm's JWKS and fetches its keys once, so a
// misconfigured issuer fails at start-up.
func NewJWT(ctx context.Context, cfg JWTConfig) (*JWT, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("jwt config: %w", err)
	}
	j := &JWT{cfg: cfg}
	uri, err := j.discover(ctx)
	if err != nil {
		return nil, err
	}
	j.jwksURI = uri
	if err := j.refresh(ctx, true); err != nil {
		return nil, err
	}
	return j, nil
}

type discovery struct {
	Issuer  string `json:"issuer"`
	JWKSURI string `json:"jwks_uri"`
}

func (j *JWT) discover(ctx context.Context) (string, error) {
	u := strings.TrimSuffix(j.cfg.IssuerURL, "/") + "/.well-known/openid-configuration"
	raw, err := j.get(ctx, u)
	if err != nil {
		return "", fmt.Errorf("oidc discovery: %w", err)
	}
	var d discovery
	if err := json.Unmarshal(raw, &d); err != nil {
		return "", fmt.Errorf("oidc discovery %s: %w", u, err)
	}
	if d.Issuer != j.cfg.IssuerURL {
		return "", fmt.Errorf("oidc discovery %s: issuer %q, configured %q", u, d.Issuer, j.cfg.IssuerURL)
	}
	if d.JWKSURI == "" {
		return "", fmt.Errorf("oidc discovery %s: no jwks_uri", u)
	}
	return d.JWKSURI, nil
}

func (j *JWT) get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := j.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return raw, nil
}

// refresh fetches the JWKS unless one was fetched less than MinRefresh
// ago (then the keys at hand are as fresh as we allow). force skips that
// limit, for start-up.
func (j *JWT) refresh(ctx context.Context, force bool) error {
	j.refreshMu.Lock()
	defer j.refreshMu.Unlock()
	now := j.cfg.Now()
	if !force && now.Sub(j.lastFetch) < j.cfg.MinRefresh {
		return nil
	}
	j.lastFetch = now
	raw, err := j.get(ctx, j.jwksURI)
	if err != nil {
		return fmt.Errorf("%w: fetch jwks: %w", ErrUnavailable, err)
	}
	all, err := jwk.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: parse jwks %s: %w", ErrUnavailable, j.jwksURI, err)
	}
	j.keys.Store(&keySet{set: signingKeys(all), fetched: now})
	return nil
}

// signingKeys keeps the RSA signature keys: Keycloak also publishes an
// encryption key (use "enc"), which must never verify a token.
func signingKeys(all jwk.Set) jwk.Set {
	out := jwk.NewSet()
	for i := range all.Len() {
		k, _ := all.Key(i)
		if use, ok := k.KeyUsage(); ok && use != "sig" {
			continue
		}
		if alg, ok := k.Algorithm(); ok && alg.String() != jwa.RS256().String() {
			continue
		}
		if k.KeyType().String() != "RSA" {
			continue
		}
		_ = out.AddKey(k)
	}
	return out
}

// Authenticate implements Authenticator for "Authorization: Bearer" requests.
func (j *JWT) Authenticate(r *http.Request) (Principal, error) {
	tok, err := BearerToken(r)
	if err != nil {
		return Principal{}, err
	}
	return j.Verify(r.Context(), tok)
}

// Verify checks a token and returns who it names. Failures are *Error
// (401) or wrap ErrUnavailable (the keys could not be fetched).
func (j *JWT) Verify(ctx context.Context, token string) (Principal, error) {
	key, err := j.keyFor(ctx, token)
	if err != nil {
		return Principal{}, err
	}
	tok, err := jwt.ParseString(token,
		jwt.WithKey(jwa.RS256(), key),
		jwt.WithIssuer(j.cfg.IssuerURL),
		jwt.WithAcceptableSkew(j.cfg.Skew),
		jwt.WithClock(jwt.ClockFunc(j.cfg.Now)),
		jwt.WithRequiredClaim("exp"),
		jwt.WithValidator(jwt.ValidatorFunc(j.audience)),
	)
	if err != nil {
		return Principal{}, invalid(describe(err))
	}
	return j.principal(tok)
}

// keyFor picks the published key named by the token's kid, fetching the
// JWKS again when the kid is unknown (the realm rotated its keys).
func (j *JWT) keyFor(ctx context.Context, token string) (jwk.Key, error) {
	msg, err := jws.ParseString(token)
	if err != nil || len(msg.Signatures()) != 1 {
		return nil, invalid("malformed token")
	}
	h := msg.Signatures()[0].ProtectedHeaders()
	if alg, _ := h.Algorithm(); alg.String() != jwa.RS256().String() {
		return nil, invalid(fmt.Sprintf("signature algorithm %q is not accepted (RS256 only)", alg.String()))
	}
	kid, ok := h.KeyID()
	if !ok || kid == "" {
		return nil, invalid("token names no signing key (kid)")
	}
	if ks := j.keys.Load(); j.cfg.Now().Sub(ks.fetched) > j.cfg.MaxKeyAge {
		_ = j.refresh(ctx, false) // stale but usable: a failed fetch keeps the old keys
	}
	if k, ok := j.keys.Load().set.LookupKeyID(kid); ok {
		return k, nil
	}
	if err := j.refresh(ctx, false); err != nil {
		return nil, err
	}
	if k, ok := j.keys.Load().set.LookupKeyID(kid); ok {
		return k, nil
	}
	return nil, invalid("unknown signing key " + kid)
}

// errAudience: the token was issued for another client.
var errAudience = errors.New("token is not meant for this API (aud, azp)")

func (j *JWT) audience(_ context.Context, tok jwt.Token) error {
	if aud, _ := tok.Audience(); slices.Contains(aud, j.cfg.Audience) {
		return nil
	}
	var azp string
	if err := tok.Get("azp", &azp); err == nil && azp == j.cfg.Audience {
		return nil
	}
	return errAudience
}

func (j *JWT) principal(tok jwt.Token) (Principal, error) {
	var typ string
	if err := tok.Get("typ", &typ); err == nil && typ != "Bearer" {
		return Principal{}, invalid(fmt.Sprintf("a %q token is not an access token", typ))
	}
	var p Principal
	p.Subject, _ = tok.Subject()
	if err := tok.Get("preferred_username", &p.Username); err != nil || p.Username == "" {
		return Principal{}, invalid("token names no user (preferred_username)")
	}
	var realmAccess map[string]any
	if err := tok.Get("realm_access", &realmAccess); err == nil {
		roles, _ := realmAccess["roles"].([]any)
		for _, r := range roles {
			if s, ok := r.(string); ok {
				p.RealmRoles = append(p.RealmRoles, s)
			}
		}
	}
	p.Admin = p.HasRealmRole(j.cfg.AdminRole)
	return p, nil
}

func invalid(desc string) *Error { return &Error{Code: "invalid_token", Description: desc} }

// describe names the check a token failed, for error_description.
func describe(err error) string {
	switch {
	case errors.Is(err, errAudience):
		return "wrong audience"
	case errors.Is(err, jwt.TokenExpiredError()):
		return "token expired"
	case errors.Is(err, jwt.TokenNotYetValidError()):
		return "token not yet valid"
	case errors.Is(err, jwt.InvalidIssuedAtError()):
		return "token issued in the future"
	case errors.Is(err, jwt.InvalidIssuerError()):
		return "wrong issuer"
	case errors.Is(err, jwt.MissingRequiredClaimError()):
		return "token lacks a required claim (exp)"
	case errors.Is(err, jws.VerifyError()), errors.Is(err, jws.VerificationError()):
		return "bad signature"
	case errors.Is(err, jwt.ValidateError()):
		return "token rejected: " + err.Error()
	default:
		return "malformed token"
	}
}
