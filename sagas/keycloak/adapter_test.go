package keycloak_test

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"

	"github.com/eo-workspaces/provisioner/sagas"
	"github.com/eo-workspaces/provisioner/sagas/keycloak"
	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

var roles = []string{"ws_access", "ws_admin"}

func TestConfigValidate(t *testing.T) {
	ok := keycloak.Config{BaseURL: "http://127.0.0.1:8080", Realm: "r", ClientID: "c", ClientSecret: "s"}
	cases := []struct {
		name  string
		edit  func(*keycloak.Config)
		field string
	}{
		{"valid", func(*keycloak.Config) {}, ""},
		{"no base URL", func(c *keycloak.Config) { c.BaseURL = "" }, "BaseURL"},
		{"base URL without scheme", func(c *keycloak.Config) { c.BaseURL = "127.0.0.1:8080" }, "BaseURL"},
		{"no realm", func(c *keycloak.Config) { c.Realm = "" }, "Realm"},
		{"no client id", func(c *keycloak.Config) { c.ClientID = "" }, "ClientID"},
		{"no secret", func(c *keycloak.Config) { c.ClientSecret = "" }, "ClientSecret"},
		{"negative timeout", func(c *keycloak.Config) { c.Timeout = -time.Second }, "Timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := c.Validate()
			_, newErr := keycloak.New(c, nil)
			if tc.field == "" {
				if err != nil || newErr != nil {
					t.Fatalf("Validate = %v, New = %v", err, newErr)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.field) || newErr == nil {
				t.Fatalf("Validate = %v, New = %v; want errors naming %s", err, newErr, tc.field)
			}
		})
	}
}

func TestEnsureClientTwiceMakesOneMarkedClient(t *testing.T) {
	ctx, a, ad, cid := ctxFor(t), newAdapter(t, workerConfig()), asAdmin(t), name(t)
	id1, err := a.EnsureClient(ctx, cid)
	if err != nil {
		t.Fatal(err)
	}
	id2, err := a.EnsureClient(ctx, cid)
	if err != nil || id2 != id1 {
		t.Fatalf("second EnsureClient = %q, %v; want %q", id2, err, id1)
	}
	cs := ad.clients(t, cid)
	if len(cs) != 1 || *cs[0].ID != id1 {
		t.Fatalf("clients named %s: %d", cid, len(cs))
	}
	c := cs[0]
	if (*c.Attributes)[sagas.ManagedByKey] != sagas.ManagedByValue {
		t.Errorf("attributes = %v", *c.Attributes)
	}
	if !gocloak.PBool(c.BearerOnly) || gocloak.PBool(c.PublicClient) || gocloak.PBool(c.StandardFlowEnabled) ||
		gocloak.PBool(c.DirectAccessGrantsEnabled) || gocloak.PBool(c.ServiceAccountsEnabled) {
		t.Errorf("client is not a bearer-only, flowless confidential client: %+v", c)
	}
}

func TestEnsureClientRolesTwice(t *testing.T) {
	ctx, a, ad, cid := ctxFor(t), newAdapter(t, workerConfig()), asAdmin(t), name(t)
	id, err := a.EnsureClient(ctx, cid)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := a.EnsureClientRoles(ctx, cid, roles...); err != nil {
			t.Fatalf("EnsureClientRoles #%d: %v", i+1, err)
		}
	}
	// A role added later joins the existing ones.
	if err := a.EnsureClientRoles(ctx, cid, "ws_admin", "ws_extra"); err != nil {
		t.Fatal(err)
	}
	got, err := ad.gc.GetClientRoles(ctx, ad.token, ad.realm, id, gocloak.GetRoleParams{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range got {
		names = append(names, *r.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"ws_access", "ws_admin", "ws_extra"}) {
		t.Fatalf("roles = %v", names)
	}
}

func TestForeignClientIsNeverAdopted(t *testing.T) {
	ctx, a, ad, cid := ctxFor(t), newAdapter(t, workerConfig()), asAdmin(t), name(t)
	id, err := ad.gc.CreateClient(ctx, ad.token, ad.realm, gocloak.Client{ClientID: &cid})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ad.gc.DeleteClient(ctxFor(t), ad.token, ad.realm, id) })
	notOurs := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, sagas.ErrNotOurs) || !sagas.IsPermanent(err) {
			t.Errorf("%s = %v, want permanent ErrNotOurs", what, err)
		}
	}
	_, err = a.EnsureClient(ctx, cid)
	notOurs("EnsureClient", err)
	notOurs("EnsureClientRoles", a.EnsureClientRoles(ctx, cid, roles...))
	notOurs("GrantClientRole", a.GrantClientRole(ctx, cid, kcemu.DevUser1, "ws_access"))
	notOurs("RevokeClientRole", a.RevokeClientRole(ctx, cid, kcemu.DevUser1, "ws_access"))
	notOurs("DeleteClient", a.DeleteClient(ctx, cid))
	if cs := ad.clients(t, cid); len(cs) != 1 || cs[0].Attributes != nil && len(*cs[0].Attributes) > 0 &&
		(*cs[0].Attributes)[sagas.ManagedByKey] != "" {
		t.Fatalf("foreign client changed or gone: %+v", cs)
	}
	if rs, err := ad.gc.GetClientRoles(ctx, ad.token, ad.realm, id, gocloak.GetRoleParams{}); err != nil || len(rs) != 0 {
		t.Fatalf("foreign client's roles = %v, %v; want none added", rs, err)
	}
}

// workspace sets up a client with both roles, as the create saga does.
func workspace(t *testing.T, a *keycloak.Adapter) (clientID, id string) {
	t.Helper()
	ctx, cid := ctxFor(t), name(t)
	id, err := a.EnsureClient(ctx, cid)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.EnsureClientRoles(ctx, cid, roles...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.DeleteClient(ctxFor(t), cid) })
	return cid, id
}

func TestGrantAndRevokeAreIdempotent(t *testing.T) {
	ctx, a, ad := ctxFor(t), newAdapter(t, workerConfig()), asAdmin(t)
	cid, id := workspace(t, a)
	for i := range 2 {
		if err := a.GrantClientRole(ctx, cid, kcemu.DevUser1, "ws_admin"); err != nil {
			t.Fatalf("GrantClientRole #%d: %v", i+1, err)
		}
	}
	if got := ad.mappedRoles(t, id, kcemu.DevUser1); !slices.Equal(got, []string{"ws_admin"}) {
		t.Fatalf("mapped roles = %v", got)
	}
	// What the contract promises a member: the workspace in aud and
	// resource_access of a fresh token, through a client of its own.
	claims := userToken(t, kcemu.DevUser1)
	if !audience(claims, cid) {
		t.Errorf("aud = %v, want it to include %s", claims["aud"], cid)
	}
	ra, _ := claims["resource_access"].(map[string]any)
	ws, _ := ra[cid].(map[string]any)
	if rs, _ := ws["roles"].([]any); len(rs) != 1 || rs[0] != "ws_admin" {
		t.Errorf("resource_access[%s] = %v", cid, ra[cid])
	}
	if audience(userToken(t, kcemu.DevUser2), cid) {
		t.Errorf("a non-member's token names %s", cid)
	}

	for i := range 2 {
		if err := a.RevokeClientRole(ctx, cid, kcemu.DevUser1, "ws_admin"); err != nil {
			t.Fatalf("RevokeClientRole #%d: %v", i+1, err)
		}
	}
	if got := ad.mappedRoles(t, id, kcemu.DevUser1); len(got) != 0 {
		t.Fatalf("mapped roles after revoke = %v", got)
	}
	for what, err := range map[string]error{
		"revoke from an unknown user":      a.RevokeClientRole(ctx, cid, "no-such-user", "ws_admin"),
		"revoke an unknown role":           a.RevokeClientRole(ctx, cid, kcemu.DevUser1, "no_such_role"),
		"revoke on a client that is gone":  a.RevokeClientRole(ctx, name(t), kcemu.DevUser1, "ws_admin"),
		"revoke a role that was never had": a.RevokeClientRole(ctx, cid, kcemu.DevUser2, "ws_access"),
	} {
		if err != nil {
			t.Errorf("%s = %v, want nil", what, err)
		}
	}
}

func audience(claims map[string]any, clientID string) bool {
	switch aud := claims["aud"].(type) {
	case string:
		return aud == clientID
	case []any:
		return slices.Contains(aud, any(clientID))
	}
	return false
}

func TestGrantFailures(t *testing.T) {
	ctx, a := ctxFor(t), newAdapter(t, workerConfig())
	cid, _ := workspace(t, a)
	err := a.GrantClientRole(ctx, cid, "no-such-user", "ws_access")
	if !errors.Is(err, sagas.ErrUnknownUser) || !sagas.IsPermanent(err) {
		t.Errorf("grant to an unknown user = %v, want permanent ErrUnknownUser", err)
	}
	err = a.GrantClientRole(ctx, cid, kcemu.DevUser1, "no_such_role")
	if !errors.Is(err, sagas.ErrNotFound) || !sagas.IsPermanent(err) {
		t.Errorf("grant of an unknown role = %v, want permanent ErrNotFound", err)
	}
	err = a.GrantClientRole(ctx, name(t), kcemu.DevUser1, "ws_access")
	if !errors.Is(err, sagas.ErrNotFound) || !sagas.IsPermanent(err) {
		t.Errorf("grant on a missing client = %v, want permanent ErrNotFound", err)
	}
	err = a.EnsureClientRoles(ctx, name(t), roles...)
	if !errors.Is(err, sagas.ErrNotFound) || !sagas.IsPermanent(err) {
		t.Errorf("roles on a missing client = %v, want permanent ErrNotFound", err)
	}
}

func TestDeleteClientTwiceLeavesNothing(t *testing.T) {
	ctx, a, ad := ctxFor(t), newAdapter(t, workerConfig()), asAdmin(t)
	cid, id := workspace(t, a)
	if err := a.GrantClientRole(ctx, cid, kcemu.DevUser1, "ws_access"); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := a.DeleteClient(ctx, cid); err != nil {
			t.Fatalf("DeleteClient #%d: %v", i+1, err)
		}
	}
	if cs := ad.clients(t, cid); len(cs) != 0 {
		t.Fatalf("client still there")
	}
	if _, err := ad.gc.GetClientRoles(ctx, ad.token, ad.realm, id, gocloak.GetRoleParams{}); err == nil {
		t.Fatalf("roles of the deleted client still answer")
	}
	if audience(userToken(t, kcemu.DevUser1), cid) {
		t.Fatalf("a member's token still names the deleted client")
	}
}

// Many callers at once share one token: one login, not one per call.
func TestConcurrentCallsShareOneToken(t *testing.T) {
	p := startProxy(t)
	cfg := workerConfig()
	cfg.BaseURL = p.url
	a := newAdapter(t, cfg)
	ctx := ctxFor(t)
	names := make([]string, 16)
	for i := range names {
		names[i] = name(t)
	}
	t.Cleanup(func() {
		for _, n := range names {
			_ = a.DeleteClient(ctxFor(t), n)
		}
	})
	var wg sync.WaitGroup
	errs := make(chan error, len(names))
	for _, n := range names {
		wg.Go(func() {
			if _, err := a.EnsureClient(ctx, n); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := p.logins.Load(); n != 1 {
		t.Fatalf("%d logins for %d concurrent calls, want 1", n, len(names))
	}
}

func TestTokenRenewedBeforeExpiryAndAfter401(t *testing.T) {
	p := startProxy(t)
	cfg := workerConfig()
	cfg.BaseURL = p.url
	a := newAdapter(t, cfg)
	ctx, cid := ctxFor(t), name(t)
	var mu sync.Mutex
	now := time.Now()
	a.SetNow(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	if _, err := a.EnsureClient(ctx, cid); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.DeleteClient(ctxFor(t), cid) })
	if _, err := a.EnsureClient(ctx, cid); err != nil || p.logins.Load() != 1 {
		t.Fatalf("a second call logged in again (%d logins), %v", p.logins.Load(), err)
	}

	// The dev realm's tokens live 300s; the adapter renews with a fifth
	// of the lifetime (at most 30s) to spare: not yet at 200s, surely
	// after an hour.
	advance := func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(d)
	}
	advance(200 * time.Second)
	if _, err := a.EnsureClient(ctx, cid); err != nil || p.logins.Load() != 1 {
		t.Fatalf("logged in again with time to spare (%d logins), %v", p.logins.Load(), err)
	}
	advance(time.Hour)
	if _, err := a.EnsureClient(ctx, cid); err != nil {
		t.Fatal(err)
	}
	if n := p.logins.Load(); n != 2 {
		t.Fatalf("%d logins after the token neared expiry, want 2", n)
	}

	// Keycloak refusing a token it issued (key rotation, restart of a
	// dev server): one fresh login and the call goes through.
	p.reject401.Store(1)
	if _, err := a.EnsureClient(ctx, cid); err != nil {
		t.Fatalf("EnsureClient after a 401 = %v, want success with a new token", err)
	}
	if n := p.logins.Load(); n != 3 {
		t.Fatalf("%d logins after a 401, want 3", n)
	}
	if n := p.distinctTokens(); n != 3 {
		t.Fatalf("%d distinct tokens used, want 3", n)
	}

	// A 401 that a fresh token does not cure is not retried forever.
	p.reject401.Store(2)
	_, err := a.EnsureClient(ctx, cid)
	if err == nil || !sagas.IsPermanent(err) {
		t.Fatalf("EnsureClient with 401 twice = %v, want a permanent error", err)
	}
}

func TestWrongSecretIsPermanent(t *testing.T) {
	cfg := workerConfig()
	cfg.ClientSecret = "wrong"
	_, err := newAdapter(t, cfg).EnsureClient(ctxFor(t), name(t))
	if err == nil || !sagas.IsPermanent(err) {
		t.Fatalf("EnsureClient = %v, want permanent", err)
	}
}

// A worker client without realm-management roles gets 403s: permanent.
func TestForbiddenIsPermanent(t *testing.T) {
	ctx, ad := ctxFor(t), asAdmin(t)
	cid, secret := name(t), "weak-worker-secret"
	id, err := ad.gc.CreateClient(ctx, ad.token, ad.realm, gocloak.Client{
		ClientID: &cid, Secret: &secret, PublicClient: gocloak.BoolP(false),
		ServiceAccountsEnabled: gocloak.BoolP(true), StandardFlowEnabled: gocloak.BoolP(false),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ad.gc.DeleteClient(ctxFor(t), ad.token, ad.realm, id) })
	cfg := workerConfig()
	cfg.ClientID, cfg.ClientSecret = cid, secret
	_, err = newAdapter(t, cfg).EnsureClient(ctx, name(t))
	if err == nil || !sagas.IsPermanent(err) || !strings.Contains(err.Error(), "403") {
		t.Fatalf("EnsureClient = %v, want a permanent 403", err)
	}
}

// Outages are transient, and the call after one succeeds.
func TestFaultsAreTransient(t *testing.T) {
	if kc.emu == nil {
		t.Skip("fault injection needs the emulator; KEYCLOAK_URL points at a real Keycloak")
	}
	a := newAdapter(t, workerConfig())
	ctx := ctxFor(t)
	cid, _ := workspace(t, a)
	clients := "^/admin/realms/" + kc.realm + "/clients$"
	for _, f := range []kcemu.Fault{
		{Method: "GET", Path: clients, Kind: kcemu.Status503, Times: 1},
		{Method: "GET", Path: clients, Kind: kcemu.Status500, Times: 1},
		// A GET whose connection drops is retried by net/http itself on a
		// fresh connection, so the drop is aimed at a POST.
		{Method: "POST", Path: "/role-mappings/clients/", Kind: kcemu.Drop, Times: 1},
		{Path: "/protocol/openid-connect/token$", Kind: kcemu.Status503, Times: 1},
		{Method: "POST", Path: "/role-mappings/clients/", Kind: kcemu.Status503, Times: 1},
	} {
		t.Run(string(f.Kind)+" "+f.Path, func(t *testing.T) {
			a := a
			if strings.Contains(f.Path, "token") {
				a = newAdapter(t, workerConfig()) // no cached token yet
			}
			kc.emu.Faults().Add(f)
			t.Cleanup(kc.emu.Faults().Clear)
			err := a.GrantClientRole(ctx, cid, kcemu.DevUser2, "ws_access")
			if err == nil || sagas.IsPermanent(err) {
				t.Fatalf("GrantClientRole during %s = %v, want a transient error", f.Kind, err)
			}
			if err := a.GrantClientRole(ctx, cid, kcemu.DevUser2, "ws_access"); err != nil {
				t.Fatalf("GrantClientRole after the fault = %v", err)
			}
			if err := a.RevokeClientRole(ctx, cid, kcemu.DevUser2, "ws_access"); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("hang", func(t *testing.T) {
		cfg := workerConfig()
		cfg.Timeout = 300 * time.Millisecond
		a := newAdapter(t, cfg)
		if _, err := a.EnsureClient(ctx, cid); err != nil { // log in before the fault
			t.Fatal(err)
		}
		kc.emu.Faults().Add(kcemu.Fault{Method: "GET", Path: clients, Kind: kcemu.Hang, Times: 1})
		t.Cleanup(kc.emu.Faults().Clear)
		start := time.Now()
		_, err := a.EnsureClient(ctx, cid)
		if err == nil || sagas.IsPermanent(err) {
			t.Fatalf("EnsureClient during a hang = %v, want a transient error", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("a hang took %v, want about the 300ms timeout", d)
		}
	})
}
