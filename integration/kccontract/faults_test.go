package kccontract

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"

	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

// Fault injection is the emulator's own feature; a real Keycloak has none.
func emulatorOnly(t *testing.T) *target {
	tg := newTarget(t, nil, kcemu.DevRealmAs)
	if tg.Emu == nil {
		t.Skip("fault injection exists only in the emulator")
	}
	return tg
}

func TestFaultsAreObservedByGocloak(t *testing.T) {
	tg := emulatorOnly(t)
	tok := tg.adminToken(t)
	list := func(c context.Context) error {
		_, err := tg.GC.GetClients(c, tok, tg.Realm, gocloak.GetClientsParams{})
		return err
	}
	for _, tc := range []struct {
		kind kcemu.FaultKind
		code int
	}{{kcemu.Status500, 500}, {kcemu.Status503, 503}} {
		tg.Emu.Faults().Add(kcemu.Fault{Method: "GET", Path: "/clients$", Kind: tc.kind, Times: 2})
		apiErr(t, list(ctx(t)), tc.code, "")
		apiErr(t, list(ctx(t)), tc.code, "")
		mustDo(t, list(ctx(t))) // Times ran out
	}

	remove := tg.Emu.Faults().Add(kcemu.Fault{Path: "/clients$", Kind: kcemu.Hang})
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := list(short); err == nil {
		t.Fatal("a hung request succeeded")
	}
	remove()
	mustDo(t, list(ctx(t)))

	// Not Times: 1, because net/http silently retries an idempotent request
	// once when a reused connection closes before answering.
	remove = tg.Emu.Faults().Add(kcemu.Fault{Path: "/clients$", Kind: kcemu.Drop})
	var ae *gocloak.APIError
	if err := list(ctx(t)); !errors.As(err, &ae) || ae.Code != 0 {
		t.Fatalf("a dropped connection should surface as a transport error, got %v", err)
	}
	remove()
	// The token endpoint is untouched by a fault on another path.
	tg.adminToken(t)
	tg.Emu.Faults().Clear()
	mustDo(t, list(ctx(t)))
}

func TestFaultsOverHTTP(t *testing.T) {
	tg := emulatorOnly(t)
	status, _ := tg.raw(t, http.MethodPost, "/_emulator/faults", "",
		[]byte(`{"method":"POST","path":"/protocol/openid-connect/token$","kind":"503","times":1}`))
	eq(t, "add fault", status, http.StatusCreated)
	_, err := tg.GC.LoginAdmin(ctx(t), tg.AdminUser, tg.AdminPassword, "master")
	apiErr(t, err, http.StatusServiceUnavailable, "")
	tg.adminToken(t)

	status, _ = tg.raw(t, http.MethodPost, "/_emulator/faults", "", []byte(`{"path":"x","kind":"explode"}`))
	eq(t, "unknown kind refused", status, http.StatusBadRequest)
	tg.raw(t, http.MethodPost, "/_emulator/faults", "", []byte(`{"path":".","kind":"500"}`))
	status, _ = tg.raw(t, http.MethodDelete, "/_emulator/faults", "", nil)
	eq(t, "clear", status, http.StatusNoContent)
	status, body := tg.raw(t, http.MethodGet, "/_emulator/faults", "", nil)
	eq(t, "list after clear", body, "[]")
	eq(t, "list status", status, http.StatusOK)
}
