package kccontract

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"

	"github.com/eo-workspaces/provisioner/stack/kcemu"
	"github.com/eo-workspaces/provisioner/stack/keycloakserver"
)

// target is the Keycloak under test: the emulator started in-process, or
// the real Keycloak. Each test gets its own realm, created from the dev
// realm export through the Admin API, so tests never share state and a real
// Keycloak is left as it was found.
type target struct {
	URL           string
	AdminUser     string
	AdminPassword string
	Realm         string        // this test's realm, a renamed copy of the dev realm
	Emu           *kcemu.Server // nil against a real Keycloak
	GC            *gocloak.GoCloak
	// InvalidGrant is the status of the password grant's invalid_grant
	// answer: 401 before Keycloak 26.6, 400 from then on (keycloak/keycloak#46528).
	InvalidGrant int
}

// realKeycloak is the real server every contract test also runs against:
// KEYCLOAK_URL's (any Keycloak 26, e.g. deploy/docker-compose.keycloak.yml),
// else the test run's shared one or one of this package's own
// (keycloakserver.FromEnv). Nil with -short, which skips those runs.
var realKeycloak *keycloakserver.Instance

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runWithRealKeycloak(m))
}

func runWithRealKeycloak(m *testing.M) int {
	if testing.Short() {
		return m.Run()
	}
	if u := os.Getenv("KEYCLOAK_URL"); u != "" {
		realKeycloak = &keycloakserver.Instance{URL: strings.TrimSuffix(u, "/"),
			AdminUser: os.Getenv("KEYCLOAK_ADMIN_USER"), AdminPassword: os.Getenv("KEYCLOAK_ADMIN_PASSWORD")}
		return m.Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), keycloakserver.DefaultStartTimeout)
	inst, err := keycloakserver.FromEnv(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kccontract: real Keycloak:", err)
		return 1
	}
	defer func() {
		if err := inst.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "kccontract: stop Keycloak:", err)
		}
	}()
	realKeycloak = inst
	return m.Run()
}

// forEachTarget runs one contract test against the emulator and against the
// real Keycloak, with the same assertions: a difference between the two is
// a failing test (watermill's one suite for every backend).
func forEachTarget(t *testing.T, test func(t *testing.T, tg *target)) {
	forEachTargetWith(t, kcemu.DevRealmAs, test)
}

// forEachTargetWith is forEachTarget with the realm export made by
// export(name) instead of the dev realm's.
func forEachTargetWith(t *testing.T, export func(name string) ([]byte, error), test func(t *testing.T, tg *target)) {
	t.Run("emulator", func(t *testing.T) { test(t, newTarget(t, nil, export)) })
	t.Run("keycloak", func(t *testing.T) {
		if realKeycloak == nil {
			t.Skip("-short: no real Keycloak")
		}
		test(t, newTarget(t, realKeycloak, export))
	})
}

// newTarget is a fresh realm on real, or on an emulator of its own when
// real is nil, imported from export(name).
func newTarget(t *testing.T, real *keycloakserver.Instance, export func(name string) ([]byte, error)) *target {
	t.Helper()
	tg := &target{}
	if real != nil {
		tg.URL, tg.AdminUser, tg.AdminPassword = real.URL, real.AdminUser, real.AdminPassword
	} else {
		srv, err := kcemu.Start(context.Background(), kcemu.Config{AdminUser: "admin", AdminPassword: "admin-pw"})
		if err != nil {
			t.Fatalf("start emulator: %v", err)
		}
		t.Cleanup(func() { _ = srv.Close() })
		tg.URL, tg.AdminUser, tg.AdminPassword, tg.Emu = srv.URL(), "admin", "admin-pw", srv
	}
	tg.GC = gocloak.NewClient(tg.URL)
	tg.InvalidGrant = tg.invalidGrantStatus(t)
	tg.Realm = "kcc-" + randomHex(4)
	tg.createRealm(t, export)
	return tg
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// createRealm imports export's realm under this test's name, as a suite
// written for a real Keycloak would.
func (tg *target) createRealm(t *testing.T, export func(name string) ([]byte, error)) {
	t.Helper()
	body, err := export(tg.Realm)
	if err != nil {
		t.Fatal(err)
	}
	status, resp := tg.raw(t, http.MethodPost, "/admin/realms", tg.adminToken(t), body)
	if status != http.StatusCreated {
		t.Fatalf("create realm %s: %d %s", tg.Realm, status, resp)
	}
	t.Cleanup(func() {
		// Deleting a realm is the real server's slowest call: over 10 s on
		// two busy cores.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := tg.GC.DeleteRealm(ctx, tg.adminToken(t), tg.Realm); err != nil {
			t.Errorf("delete realm %s: %v", tg.Realm, err)
		}
	})
}

func (tg *target) adminToken(t *testing.T) string {
	t.Helper()
	jwt, err := tg.GC.LoginAdmin(ctx(t), tg.AdminUser, tg.AdminPassword, "master")
	if err != nil {
		t.Fatalf("LoginAdmin: %v", err)
	}
	return jwt.AccessToken
}

// workerToken is the provisioning worker's own token: the calls the project
// makes are made with it, so its realm-management roles are what is tested.
func (tg *target) workerToken(t *testing.T) string {
	t.Helper()
	jwt, err := tg.GC.LoginClient(ctx(t), kcemu.DevWorkerClientID, kcemu.DevWorkerClientSecret, tg.Realm)
	if err != nil {
		t.Fatalf("LoginClient worker: %v", err)
	}
	return jwt.AccessToken
}

func (tg *target) userToken(t *testing.T, username string) *gocloak.JWT {
	t.Helper()
	jwt, err := tg.GC.Login(ctx(t), kcemu.DevPublicClientID, "", tg.Realm, username, kcemu.DevPassword)
	if err != nil {
		t.Fatalf("Login %s: %v", username, err)
	}
	return jwt
}

// raw sends a request gocloak cannot express (or whose raw body matters).
func (tg *target) raw(t *testing.T, method, path, token string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx(t), method, tg.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// apiErr asserts err is a gocloak APIError with the given code whose message
// contains want.
func apiErr(t *testing.T, err error, code int, want string) {
	t.Helper()
	var ae *gocloak.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want APIError %d %q, got %v", code, want, err)
	}
	if ae.Code != code || !strings.Contains(ae.Message, want) {
		t.Fatalf("want APIError %d containing %q, got %d %q", code, want, ae.Code, ae.Message)
	}
}

// must turns a (value, error) call into the value, failing t on error:
// must(call())(t).
func must[T any](v T, err error) func(t *testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

// invalidGrantStatus asks a real Keycloak its version; the emulator follows
// kcemu.DefaultVersion.
func (tg *target) invalidGrantStatus(t *testing.T) int {
	t.Helper()
	version := kcemu.DefaultVersion
	if tg.Emu == nil {
		info, err := tg.GC.GetServerInfo(ctx(t), tg.adminToken(t))
		if err != nil || info.SystemInfo == nil || info.SystemInfo.Version == nil {
			t.Fatalf("server info of %s: %v", tg.URL, err)
		}
		version = *info.SystemInfo.Version
	}
	status, err := kcemu.InvalidGrantStatus(version)
	if err != nil {
		t.Fatal(err)
	}
	return status
}
