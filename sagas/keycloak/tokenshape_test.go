package keycloak_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/Nerzal/gocloak/v13"

	"github.com/eo-workspaces/provisioner/sagas"
	"github.com/eo-workspaces/provisioner/sagas/keycloak"
	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

// TestApplyTokenShape: the worker sets a sign-in client for each shape.
// Compact: a member's token through it names no workspace, an admin's
// still carries the admin realm role; EOEPCA: the workspace is back in
// aud and resource_access. Applying a shape twice changes nothing; an
// unknown client or shape is permanent.
func TestApplyTokenShape(t *testing.T) {
	ctx, a, ad := ctxFor(t), newAdapter(t, workerConfig()), asAdmin(t)
	signIn := name(t) // a sign-in client of this test's own, like the dev realm's demo
	id, err := ad.gc.CreateClient(ctx, ad.token, ad.realm, gocloak.Client{ClientID: &signIn, PublicClient: gocloak.BoolP(true),
		DirectAccessGrantsEnabled: gocloak.BoolP(true), StandardFlowEnabled: gocloak.BoolP(false)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ad.gc.DeleteClient(ctxFor(t), ad.token, ad.realm, id) })
	cid, _ := workspace(t, a)
	for _, u := range []string{kcemu.DevUser1, kcemu.DevAdminUser} {
		if err := a.GrantClientRole(ctx, cid, u, "ws_access"); err != nil {
			t.Fatal(err)
		}
	}
	shape := func(sh keycloak.TokenShape) {
		t.Helper()
		for range 2 {
			if err := a.ApplyTokenShape(ctx, sh, []string{signIn}, []string{kcemu.DevAdminRole}); err != nil {
				t.Fatalf("ApplyTokenShape(%q): %v", sh, err)
			}
		}
	}

	shape(keycloak.TokenShapeCompact)
	user, admin := claimsVia(t, signIn, kcemu.DevUser1), claimsVia(t, signIn, kcemu.DevAdminUser)
	if audience(user, cid) || user["resource_access"] != nil || user["realm_access"] != nil {
		t.Errorf("compact: the member's token carries %v, %v, %v", user["aud"], user["resource_access"], user["realm_access"])
	}
	if ra, _ := admin["realm_access"].(map[string]any); ra == nil || len(ra["roles"].([]any)) != 1 || ra["roles"].([]any)[0] != kcemu.DevAdminRole {
		t.Errorf("compact: the admin's realm_access = %v, want %s alone", admin["realm_access"], kcemu.DevAdminRole)
	}
	if audience(admin, cid) {
		t.Errorf("compact: the admin's token names %s", cid)
	}

	shape(keycloak.TokenShapeEOEPCA)
	user = claimsVia(t, signIn, kcemu.DevUser1)
	ra, _ := user["resource_access"].(map[string]any)
	if !audience(user, cid) || ra[cid] == nil {
		t.Errorf("EOEPCA: aud %v, resource_access %v; want %s in both", user["aud"], ra, cid)
	}

	err = a.ApplyTokenShape(ctx, keycloak.TokenShapeCompact, []string{"no-such-client"}, nil)
	if !errors.Is(err, sagas.ErrNotFound) || !sagas.IsPermanent(err) {
		t.Errorf("unknown sign-in client: %v, want a permanent not-found", err)
	}
	if err := a.ApplyTokenShape(ctx, "tiny", []string{signIn}, nil); !sagas.IsPermanent(err) {
		t.Errorf("unknown shape: %v, want permanent", err)
	}
	if err := a.ApplyTokenShape(ctx, keycloak.TokenShapeAsIs, []string{"no-such-client"}, nil); err != nil {
		t.Errorf("as-is touches nothing, got %v", err)
	}
}

// claimsVia logs username in through clientID and returns the access
// token's claims, unverified.
func claimsVia(tb testing.TB, clientID, username string) map[string]any {
	tb.Helper()
	jwt, err := gocloak.NewClient(kc.url).Login(ctxFor(tb), clientID, "", kc.realm, username, kcemu.DevPassword)
	if err != nil {
		tb.Fatalf("login %s through %s: %v", username, clientID, err)
	}
	parts := strings.Split(jwt.AccessToken, ".")
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

func TestParseTokenShape(t *testing.T) {
	for in, want := range map[string]keycloak.TokenShape{"": keycloak.TokenShapeAsIs,
		"eoepca": keycloak.TokenShapeEOEPCA, "compact": keycloak.TokenShapeCompact} {
		if got, err := keycloak.ParseTokenShape(in); err != nil || got != want {
			t.Errorf("ParseTokenShape(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := keycloak.ParseTokenShape("EOEPCA"); err == nil || !strings.Contains(err.Error(), `"compact"`) {
		t.Errorf("ParseTokenShape(EOEPCA) = %v, want an error naming the shapes", err)
	}
}
