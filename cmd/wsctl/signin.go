package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// Dev stack defaults: the dev realm's public client and platform admin
// (README, "Quick start"). Used only when the connection comes from
// .dev/stack.env, never against another Keycloak.
const (
	devRealm    = "eoepca"
	devClientID = "demo"
	devAdmin    = "example-admin"
	devPassword = "changeme"
)

// tokenSource hands out a valid access token, renewing it as needed.
type tokenSource interface {
	Token(ctx context.Context) (string, error)
	// Invalidate forgets the current token after the API refused it.
	Invalidate()
}

// staticToken is a token given on the command line: it cannot be renewed.
type staticToken string

func (t staticToken) Token(context.Context) (string, error) { return string(t), nil }
func (staticToken) Invalidate()                             {}

// signIn picks the token source from the flags, the environment and,
// with nothing given, the dev stack.
func (o *options) signIn() (tokenSource, error) {
	if o.token != "" {
		return staticToken(o.token), nil
	}
	if o.keycloakURL != "" {
		return o.grant(o.keycloakURL, or(o.realm, devRealm), or(o.clientID, devClientID), "")
	}
	env, path, err := findStackEnv()
	if err != nil {
		return nil, usagef("not signed in: give --token (or WSCTL_TOKEN), or --keycloak-url with --user or --client-secret, or start the dev stack (go tool task dev) so .dev/stack.env exists")
	}
	if env["KEYCLOAK_URL"] == "" {
		return nil, fmt.Errorf("%s has no KEYCLOAK_URL", path)
	}
	devPass := ""
	if o.user == "" && o.clientSecret == "" {
		devPass = devPassword // the dev realm's admin, whose password everyone knows
		o.user = devAdmin
	}
	return o.grant(env["KEYCLOAK_URL"], or(o.realm, or(env["KEYCLOAK_REALM"], devRealm)), or(o.clientID, devClientID), devPass)
}

// grant builds a password grant (with --user) or a client-credentials
// grant (with --client-secret).
func (o *options) grant(base, realm, clientID, password string) (tokenSource, error) {
	g := &grantSource{endpoint: strings.TrimSuffix(base, "/") + "/realms/" + url.PathEscape(realm) + "/protocol/openid-connect/token",
		form: url.Values{"client_id": {clientID}}, http: http.DefaultClient}
	if o.clientSecret != "" {
		g.form.Set("client_secret", o.clientSecret)
	}
	switch {
	case o.user != "":
		if password == "" {
			var err error
			if password, err = o.password(); err != nil {
				return nil, err
			}
		}
		g.form.Set("grant_type", "password")
		g.form.Set("username", o.user)
		g.form.Set("password", password)
	case o.clientSecret != "":
		g.form.Set("grant_type", "client_credentials")
	default:
		return nil, usagef("--keycloak-url needs --user (password grant) or --client-secret (client-credentials grant)")
	}
	return g, nil
}

// password comes from WSCTL_PASSWORD, else is read without echo from a
// terminal; with neither, it is an error rather than a hang.
func (o *options) password() (string, error) {
	if p := os.Getenv("WSCTL_PASSWORD"); p != "" {
		return p, nil
	}
	f, ok := o.io.in.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", usagef("no password for %s: set WSCTL_PASSWORD, or run wsctl on a terminal to be asked", o.user)
	}
	fmt.Fprintf(o.io.err, "Password for %s: ", o.user)
	raw, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(o.io.err)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	return string(raw), nil
}

func or(v, def string) string {
	if v != "" {
		return v
	}
	return def
}

// grantSource gets tokens from Keycloak's token endpoint and renews them
// before they expire: by the refresh token while it lasts, else by the
// grant again, so a long --wait or audit tail never sends a dead token.
type grantSource struct {
	endpoint string
	form     url.Values // the grant itself
	http     *http.Client

	mu            sync.Mutex
	access        string
	refresh       string
	expires       time.Time
	refreshExpiry time.Time
}

// renewMargin renews a token this long before it expires, so it does
// not expire on its way to the API.
const renewMargin = 10 * time.Second

func (g *grantSource) Token(ctx context.Context) (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	if g.access != "" && now.Add(renewMargin).Before(g.expires) {
		return g.access, nil
	}
	if g.refresh != "" && now.Add(renewMargin).Before(g.refreshExpiry) {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {g.refresh}, "client_id": {g.form.Get("client_id")}}
		if s := g.form.Get("client_secret"); s != "" {
			form.Set("client_secret", s)
		}
		if err := g.fetch(ctx, form); err == nil {
			return g.access, nil
		} // a refused refresh (session ended) falls back to the grant
	}
	if err := g.fetch(ctx, g.form); err != nil {
		return "", err
	}
	return g.access, nil
}

func (g *grantSource) Invalidate() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.access = ""
}

type tokenAnswer struct {
	AccessToken      string `json:"access_token"`
	ExpiresIn        int    `json:"expires_in"`
	RefreshToken     string `json:"refresh_token"`
	RefreshExpiresIn int    `json:"refresh_expires_in"`
	Error            string `json:"error"`
	Description      string `json:"error_description"`
}

func (g *grantSource) fetch(ctx context.Context, form url.Values) error {
	what := form.Get("grant_type") + " grant at " + g.endpoint
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	start := time.Now()
	resp, err := g.http.Do(req)
	if err != nil {
		return fmt.Errorf("sign in: cannot reach Keycloak (%s): %w", what, err)
	}
	defer resp.Body.Close()
	var t tokenAnswer
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err := json.Unmarshal(raw, &t); err != nil || resp.StatusCode != http.StatusOK || t.AccessToken == "" {
		return signInError(what, resp.StatusCode, t)
	}
	g.access = t.AccessToken
	g.expires = start.Add(time.Duration(t.ExpiresIn) * time.Second)
	if t.RefreshToken != "" {
		g.refresh = t.RefreshToken
		g.refreshExpiry = start.Add(time.Duration(t.RefreshExpiresIn) * time.Second)
	}
	return nil
}

func signInError(what string, status int, t tokenAnswer) error {
	reason := strings.TrimSpace(t.Error + ": " + t.Description)
	if t.Error == "" {
		reason = http.StatusText(status)
	}
	if t.Error == "invalid_grant" || t.Error == "unauthorized_client" || t.Error == "invalid_client" {
		return fmt.Errorf("sign in refused (%s, %s): check --user, the password, --client-id and --client-secret", what, reason)
	}
	return errors.New("sign in failed (" + what + "): " + reason)
}
