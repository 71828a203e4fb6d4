package keycloak_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"

	"github.com/eo-workspaces/provisioner/sagas/keycloak"
	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

// target is the Keycloak the suite runs against: the emulator with its dev
// realm, or a real Keycloak when KEYCLOAK_URL is set (with the dev realm,
// stack/kcemu/devrealm.json, imported into it).
type target struct {
	url, realm               string
	workerID, workerSecret   string
	adminUser, adminPassword string        // the master realm's admin
	emu                      *kcemu.Server // nil for a real Keycloak
}

var kc target

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if u := os.Getenv("KEYCLOAK_URL"); u != "" {
		kc = target{
			url:           strings.TrimRight(u, "/"),
			realm:         env("KEYCLOAK_REALM", kcemu.DevRealmName),
			workerID:      env("KEYCLOAK_WORKER_CLIENT_ID", kcemu.DevWorkerClientID),
			workerSecret:  env("KEYCLOAK_WORKER_CLIENT_SECRET", kcemu.DevWorkerClientSecret),
			adminUser:     env("KEYCLOAK_ADMIN_USER", "admin"),
			adminPassword: env("KEYCLOAK_ADMIN_PASSWORD", "admin"),
		}
		return m.Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	emu, err := kcemu.Start(ctx, kcemu.Config{DevRealm: true, AdminUser: "admin", AdminPassword: "admin"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer emu.Close()
	kc = target{
		url: emu.URL(), realm: kcemu.DevRealmName,
		workerID: kcemu.DevWorkerClientID, workerSecret: kcemu.DevWorkerClientSecret,
		adminUser: "admin", adminPassword: "admin", emu: emu,
	}
	return m.Run()
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func workerConfig() keycloak.Config {
	return keycloak.Config{BaseURL: kc.url, Realm: kc.realm, ClientID: kc.workerID, ClientSecret: kc.workerSecret}
}

func newAdapter(tb testing.TB, cfg keycloak.Config) *keycloak.Adapter {
	tb.Helper()
	a, err := keycloak.New(cfg, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

func ctxFor(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	tb.Cleanup(cancel)
	return ctx
}

// admin is a gocloak client logged in as the master realm's admin, for
// arranging and inspecting what the adapter should (not) have done.
type admin struct {
	gc    *gocloak.GoCloak
	token string
	realm string
}

func asAdmin(tb testing.TB) *admin {
	tb.Helper()
	gc := gocloak.NewClient(kc.url)
	jwt, err := gc.LoginAdmin(ctxFor(tb), kc.adminUser, kc.adminPassword, "master")
	if err != nil {
		tb.Fatalf("admin login: %v", err)
	}
	return &admin{gc: gc, token: jwt.AccessToken, realm: kc.realm}
}

// clients returns every client with exactly that clientId.
func (ad *admin) clients(tb testing.TB, clientID string) []*gocloak.Client {
	tb.Helper()
	cs, err := ad.gc.GetClients(ctxFor(tb), ad.token, ad.realm, gocloak.GetClientsParams{})
	if err != nil {
		tb.Fatal(err)
	}
	var out []*gocloak.Client
	for _, c := range cs {
		if gocloak.PString(c.ClientID) == clientID {
			out = append(out, c)
		}
	}
	return out
}

func (ad *admin) userID(tb testing.TB, username string) string {
	tb.Helper()
	us, err := ad.gc.GetUsers(ctxFor(tb), ad.token, ad.realm, gocloak.GetUsersParams{Username: &username, Exact: gocloak.BoolP(true)})
	if err != nil || len(us) != 1 {
		tb.Fatalf("user %q: %v %v", username, us, err)
	}
	return *us[0].ID
}

// mappedRoles lists the user's direct roles of the client.
func (ad *admin) mappedRoles(tb testing.TB, clientUUID, username string) []string {
	tb.Helper()
	rs, err := ad.gc.GetClientRolesByUserID(ctxFor(tb), ad.token, ad.realm, clientUUID, ad.userID(tb, username))
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, r := range rs {
		names = append(names, *r.Name)
	}
	return names
}

var seq atomic.Int64

var notName = regexp.MustCompile(`[^a-z0-9]+`)

// name gives a clientId unique to this run, in the contract's ws-<slug> form.
func name(tb testing.TB) string {
	base := strings.Trim(notName.ReplaceAllString(strings.ToLower(tb.Name()), "-"), "-")
	if len(base) > 40 {
		base = strings.Trim(base[len(base)-40:], "-")
	}
	return fmt.Sprintf("ws-%s-%d-%d", base, time.Now().Unix()%100000, seq.Add(1))
}

// userToken logs a dev user in through the public demo client, as a
// notebook would, and returns the access token's claims (unverified: the
// test reads what Keycloak put in, it does not authenticate anyone).
func userToken(tb testing.TB, username string) map[string]any {
	tb.Helper()
	jwt, err := gocloak.NewClient(kc.url).Login(ctxFor(tb), kcemu.DevPublicClientID, "", kc.realm, username, kcemu.DevPassword)
	if err != nil {
		tb.Fatalf("login %s: %v", username, err)
	}
	parts := strings.Split(jwt.AccessToken, ".")
	if len(parts) != 3 {
		tb.Fatalf("access token is not a JWS")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		tb.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		tb.Fatal(err)
	}
	return claims
}

// proxy sits between the adapter and Keycloak, counting token requests
// and, when armed, answering the next admin request with 401 as Keycloak
// does for a token it no longer accepts. It works the same in front of
// the emulator and a real Keycloak.
type proxy struct {
	url       string
	logins    atomic.Int64
	reject401 atomic.Int64 // admin requests still to refuse
	mu        sync.Mutex
	tokens    []string     // bearer tokens seen on admin requests
	requests  atomic.Int64 // every request passed on or answered
}

func startProxy(tb testing.TB) *proxy {
	tb.Helper()
	up, err := url.Parse(kc.url)
	if err != nil {
		tb.Fatal(err)
	}
	p := &proxy{}
	rp := httputil.NewSingleHostReverseProxy(up)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.requests.Add(1)
		if strings.HasSuffix(r.URL.Path, "/protocol/openid-connect/token") {
			p.logins.Add(1)
		}
		if strings.HasPrefix(r.URL.Path, "/admin/") {
			p.mu.Lock()
			p.tokens = append(p.tokens, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
			p.mu.Unlock()
			if p.reject401.Add(-1) >= 0 {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(`{"error":"HTTP 401 Unauthorized"}`))
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	tb.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

func (p *proxy) distinctTokens() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := map[string]bool{}
	for _, t := range p.tokens {
		seen[t] = true
	}
	return len(seen)
}
