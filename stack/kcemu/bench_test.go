package kcemu

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
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

// benchSizes are the realm sizes, in workspace clients, compared side by
// side: a write must cost the same in both.
var benchSizes = []int{10, 10_000}

// BenchmarkWriteAtSize prints, on one line, what one persisted Admin API
// write (creating a client) costs in a realm already holding 10 and
// 10,000 workspace clients with their roles.
func BenchmarkWriteAtSize(b *testing.B) {
	atSizes(b, func(b *testing.B, s *Server, tok string, i int) {
		status, _ := doJSON(b, http.MethodPost, s.URL()+"/admin/realms/eoepca/clients", tok,
			fmt.Sprintf(`{"clientId":"bench-%d"}`, i))
		if status != http.StatusCreated {
			b.Fatalf("create: %d", status)
		}
	})
}

// BenchmarkWorkspaceAtSize prints, on one line, the wall time and the CPU
// (this process: the emulator and its HTTP client) of the calls the
// provisioner makes for one new workspace, at both sizes.
func BenchmarkWorkspaceAtSize(b *testing.B) {
	atSizes(b, func(b *testing.B, s *Server, tok string, i int) { provisionWorkspace(b, s, tok, i) })
}

// BenchmarkDeleteAtSize prints, on one line, what provisioning a workspace
// and deleting its client (with its roles and their mappings) costs.
func BenchmarkDeleteAtSize(b *testing.B) {
	atSizes(b, func(b *testing.B, s *Server, tok string, i int) {
		c := provisionWorkspace(b, s, tok, i)
		if status, _ := doJSON(b, http.MethodDelete, c, tok, ""); status != http.StatusNoContent {
			b.Fatalf("delete: %d", status)
		}
	})
}

// provisionWorkspace makes the provisioner's calls for workspace i: look
// the client up, create it, list its roles, create three, find the owner,
// read their mappings and the role, grant it. It returns the client's URL.
func provisionWorkspace(b *testing.B, s *Server, tok string, i int) string {
	base := s.URL() + "/admin/realms/eoepca"
	name := fmt.Sprintf("bench-ws-%d", i)
	mustGet(b, base+"/clients?clientId="+name, tok)
	status, h := doJSON(b, http.MethodPost, base+"/clients", tok, `{"clientId":"`+name+`","bearerOnly":true}`)
	if status != http.StatusCreated {
		b.Fatalf("create client: %d", status)
	}
	c := base + "/clients/" + path.Base(h.Get("Location"))
	mustGet(b, c+"/roles", tok)
	for _, r := range []string{"ws_admin", "ws_access", "ws_viewer"} {
		if status, _ := doJSON(b, http.MethodPost, c+"/roles", tok, `{"name":"`+r+`"}`); status != http.StatusCreated {
			b.Fatalf("create role: %d", status)
		}
	}
	var users []struct{ ID string }
	must(b, json.Unmarshal([]byte(mustGet(b, base+"/users?username="+DevUser1+"&exact=true&briefRepresentation=true", tok)), &users))
	if len(users) != 1 {
		b.Fatalf("owner not found")
	}
	mapping := base + "/users/" + users[0].ID + "/role-mappings/clients/" + path.Base(c)
	mustGet(b, mapping, tok)
	role := mustGet(b, c+"/roles/ws_admin", tok)
	if status, _ := doJSON(b, http.MethodPost, mapping, tok, "["+role+"]"); status != http.StatusNoContent {
		b.Fatalf("grant: %d", status)
	}
	return c
}

// atSizes runs op b.N times against a realm of each size and reports the
// mean wall time and CPU time of one op per size as metrics of one line.
func atSizes(b *testing.B, op func(b *testing.B, s *Server, tok string, i int)) {
	servers, tokens := make([]*Server, len(benchSizes)), make([]string, len(benchSizes))
	for k, size := range benchSizes {
		servers[k] = start(b, Config{DevRealm: true, DataDir: b.TempDir()})
		fill(b, servers[k], size)
		tokens[k] = adminToken(b, servers[k])
	}
	b.ResetTimer()
	for k, size := range benchSizes {
		wall, cpu := time.Now(), cpuTime(b)
		for i := range b.N {
			op(b, servers[k], tokens[k], i)
		}
		perOp := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
		b.ReportMetric(perOp(time.Since(wall)), fmt.Sprintf("ms/op@%d", size))
		b.ReportMetric(perOp(cpuTime(b)-cpu), fmt.Sprintf("cpu-ms/op@%d", size))
	}
	b.ReportMetric(0, "ns/op") // the per-size metrics say it; the total mixes them
}

// cpuTime is the CPU this process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	must(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func mustGet(b *testing.B, u, tok string) string {
	status, body := get(b, u, tok)
	if status != http.StatusOK {
		b.Fatalf("GET %s: %d", u, status)
	}
	return body
}

func must(b *testing.B, err error) {
	if err != nil {
		b.Fatal(err)
	}
}

// fill adds n workspace clients, each with its three roles, in one write.
func fill(b *testing.B, s *Server, n int) {
	b.Helper()
	err := s.update(func(st *state) error {
		rl := st.Realms[DevRealmName]
		for i := range n {
			c := newClient("", fmt.Sprintf("ws-fill-%d", i))
			rl.putClient(c)
			for _, name := range []string{"ws_admin", "ws_access", "ws_viewer"} {
				rl.putRole(&role{ID: newID(), Name: name, ClientID: c.ID})
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}
