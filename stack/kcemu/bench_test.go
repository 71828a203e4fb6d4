package kcemu

import (
	"fmt"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
)

// BenchmarkPasswordGrant measures token issuance (RS256 signing, cached
// password check) over real HTTP.
func BenchmarkPasswordGrant(b *testing.B) {
	s := start(b, Config{DevRealm: true})
	u := s.URL() + "/realms/eoepca/protocol/openid-connect/token"
	form := url.Values{"grant_type": {"password"}, "client_id": {DevPublicClientID}, "username": {DevUser1}, "password": {DevPassword}}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := http.PostForm(u, form)
			if err != nil || resp.StatusCode != http.StatusOK {
				b.Fatalf("token: %v", err)
			}
			resp.Body.Close()
		}
	})
}

// BenchmarkCreateClientPersisted measures a persisted Admin API write.
func BenchmarkCreateClientPersisted(b *testing.B) {
	s := start(b, Config{DevRealm: true, DataDir: b.TempDir()})
	tok := adminToken(b, s)
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			status, _ := doJSON(b, http.MethodPost, s.URL()+"/admin/realms/eoepca/clients", tok,
				fmt.Sprintf(`{"clientId":"bench-%d"}`, n.Add(1)))
			if status != http.StatusCreated {
				b.Fatalf("create: %d", status)
			}
		}
	})
}

// BenchmarkWriteAtSize prints what one persisted Admin API write (creating
// a client) costs in a realm already holding 10 or 10,000 workspace clients
// with their roles: today every write marshals and rewrites the whole state,
// and lookups scan every client and role, so the cost grows with the realm.
func BenchmarkWriteAtSize(b *testing.B) {
	for _, size := range []int{10, 10_000} {
		b.Run(fmt.Sprintf("clients=%d", size), func(b *testing.B) {
			s := start(b, Config{DevRealm: true, DataDir: b.TempDir()})
			fill(b, s, size)
			tok := adminToken(b, s)
			b.ResetTimer()
			for i := range b.N {
				status, _ := doJSON(b, http.MethodPost, s.URL()+"/admin/realms/eoepca/clients", tok,
					fmt.Sprintf(`{"clientId":"bench-%d"}`, i))
				if status != http.StatusCreated {
					b.Fatalf("create: %d", status)
				}
			}
		})
	}
}

// fill adds n workspace clients, each with its three roles, in one write.
func fill(b *testing.B, s *Server, n int) {
	b.Helper()
	err := s.update(func(st *state) error {
		rl := st.Realms[DevRealmName]
		for i := range n {
			c := newClient("", fmt.Sprintf("ws-fill-%d", i))
			rl.Clients[c.ID] = c
			for _, name := range []string{"ws_admin", "ws_access", "ws_viewer"} {
				ro := &role{ID: newID(), Name: name, ClientID: c.ID}
				rl.Roles[ro.ID] = ro
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}
