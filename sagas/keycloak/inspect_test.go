package keycloak_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/Nerzal/gocloak/v13"

	"github.com/eo-workspaces/provisioner/sagas"
)

func TestInspectorTellsOursNoneAndForeign(t *testing.T) {
	ctx, a, ad, cid := ctxFor(t), newAdapter(t, workerConfig()), asAdmin(t), name(t)
	if err := a.CheckClient(ctx, cid); !errors.Is(err, sagas.ErrNotFound) {
		t.Fatalf("no client: %v", err)
	}
	if _, err := a.ClientRoles(ctx, cid); !errors.Is(err, sagas.ErrNotFound) {
		t.Fatalf("roles of no client: %v", err)
	}
	id, err := a.EnsureClient(ctx, cid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.DeleteClient(ctxFor(t), cid) })
	if err := a.EnsureClientRoles(ctx, cid, roles...); err != nil {
		t.Fatal(err)
	}
	if err := a.CheckClient(ctx, cid); err != nil {
		t.Fatalf("our client: %v", err)
	}
	// a role deleted by hand is missing from the listing
	if err := ad.gc.DeleteClientRole(ctx, ad.token, ad.realm, id, "ws_admin"); err != nil {
		t.Fatal(err)
	}
	if got, err := a.ClientRoles(ctx, cid); err != nil || !slices.Equal(got, []string{"ws_access"}) {
		t.Fatalf("roles = %v, %v", got, err)
	}

	foreign := name(t)
	fid, err := ad.gc.CreateClient(ctx, ad.token, ad.realm, gocloak.Client{ClientID: &foreign})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ad.gc.DeleteClient(ctxFor(t), ad.token, ad.realm, fid) })
	if err := a.CheckClient(ctx, foreign); !errors.Is(err, sagas.ErrNotOurs) {
		t.Fatalf("a stranger's client: %v", err)
	}
}
