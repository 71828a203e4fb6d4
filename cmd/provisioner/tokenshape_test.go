package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/sagas/keycloak"
	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

// TestTokenShapeFlags: a shape needs the clients it applies to; an
// unknown one is refused at start with the flag's name.
func TestTokenShapeFlags(t *testing.T) {
	for _, c := range []struct {
		shape    string
		signIn   []string
		wsScopes bool
		wantErr  string
	}{
		{"", nil, false, ""},
		{"compact", []string{"demo"}, true, ""},
		{"eoepca", []string{"demo", "workspace-ui"}, false, ""},
		{"compact", nil, false, "--keycloak-sign-in-clients: required"},
		{"", nil, true, "--keycloak-sign-in-clients: required by --keycloak-workspace-scopes"},
		{"tiny", []string{"demo"}, false, "--keycloak-token-shape"},
	} {
		cfg := config{KeycloakTokenShape: c.shape, KeycloakSignIn: c.signIn, KeycloakWSScopes: c.wsScopes}
		err := cfg.validateTokenShape()
		if (err == nil) != (c.wantErr == "") || (err != nil && !strings.Contains(err.Error(), c.wantErr)) {
			t.Errorf("shape %q, clients %v: %v, want %q", c.shape, c.signIn, err, c.wantErr)
		}
	}
}

// TestWorkerAppliesTheTokenShape: at start the worker sets the sign-in
// clients for the shape, riding out Keycloak answering 503 at first; an
// unknown client ends the attempt with the flag's name instead of
// retrying for ever.
func TestWorkerAppliesTheTokenShape(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kc, err := kcemu.Start(ctx, kcemu.Config{DevRealm: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kc.Close() })
	kc.Faults().Add(kcemu.Fault{Path: "^/admin/", Kind: kcemu.Status503, Times: 2})
	s := &system{log: zap.NewNop(), cfg: config{KeycloakTokenShape: "compact", AdminRole: kcemu.DevAdminRole,
		KeycloakSignIn: []string{kcemu.DevPublicClientID, kcemu.DevUIClientID}}}
	identity, err := keycloak.New(keycloak.Config{BaseURL: kc.URL(), Realm: kcemu.DevRealmName,
		ClientID: kcemu.DevWorkerClientID, ClientSecret: kcemu.DevWorkerClientSecret}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.applyTokenShape(ctx, identity, keycloak.TokenShapeCompact); err != nil {
		t.Fatalf("applyTokenShape: %v", err)
	}
	gc := gocloak.NewClient(kc.URL())
	adm, err := gc.LoginAdmin(ctx, "admin", "admin", "master")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range s.cfg.KeycloakSignIn {
		cs, err := gc.GetClients(ctx, adm.AccessToken, kcemu.DevRealmName, gocloak.GetClientsParams{ClientID: &id})
		if err != nil || len(cs) != 1 || *cs[0].FullScopeAllowed {
			t.Fatalf("sign-in client %s after the compact shape: %v %v", id, cs, err)
		}
	}

	s.cfg.KeycloakSignIn = []string{"no-such-client"}
	err = s.applyTokenShape(ctx, identity, keycloak.TokenShapeCompact)
	if err == nil || !strings.Contains(err.Error(), "--keycloak-token-shape") || !strings.Contains(err.Error(), "no-such-client") {
		t.Fatalf("unknown sign-in client: %v", err)
	}
}
