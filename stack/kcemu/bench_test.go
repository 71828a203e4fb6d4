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
