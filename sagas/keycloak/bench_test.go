package keycloak_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

// BenchmarkProvisionKeycloak times the create saga's Keycloak side per
// workspace (client, its roles, the owner's mapping) through the adapter,
// and counts the HTTP requests it takes; then the same with a workspace
// client scope optional on the dev realm's two sign-in clients.
func BenchmarkProvisionKeycloak(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchProvision(b, nil) })
	b.Run("workspace-scopes", func(b *testing.B) { benchProvision(b, kcemu.DevSignInClients) })
}

func benchProvision(b *testing.B, scopeClients []string) {
	p := startProxy(b)
	cfg := workerConfig()
	cfg.BaseURL = p.url
	cfg.WorkspaceScopeClients = scopeClients
	a := newAdapter(b, cfg)
	ctx := context.Background()
	var names []string
	b.Cleanup(func() {
		for _, n := range names {
			_ = a.DeleteClient(ctx, n)
		}
	})
	var tClient, tRoles, tGrant time.Duration
	timed := func(d *time.Duration, f func() error) {
		start := time.Now()
		if err := f(); err != nil {
			b.Fatal(err)
		}
		*d += time.Since(start)
	}
	before := p.requests.Load()
	for b.Loop() {
		cid := fmt.Sprintf("ws-bench-%d-%d", time.Now().UnixNano()%1e9, len(names))
		names = append(names, cid)
		timed(&tClient, func() error { _, err := a.EnsureClient(ctx, cid); return err })
		timed(&tRoles, func() error { return a.EnsureClientRoles(ctx, cid, roles...) })
		timed(&tGrant, func() error { return a.GrantClientRole(ctx, cid, kcemu.DevUser1, "ws_admin") })
	}
	n := float64(len(names))
	b.ReportMetric(float64(tClient.Microseconds())/n/1e3, "client-ms/op")
	b.ReportMetric(float64(tRoles.Microseconds())/n/1e3, "roles-ms/op")
	b.ReportMetric(float64(tGrant.Microseconds())/n/1e3, "grant-ms/op")
	b.ReportMetric(float64(p.requests.Load()-before)/n, "requests/op")
}
