package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

// BenchmarkRequestByTokenShape is what a user's token costs each API
// request (sending it, parsing and verifying it) over HTTP, for a user in
// 1,000 and in 10,000 workspaces: EOEPCA's shape against the compact one,
// the baseline, in the same run.
//
//	go test -run '^$' -bench RequestByTokenShape -benchtime 50x ./auth
func BenchmarkRequestByTokenShape(b *testing.B) {
	ctx := context.Background()
	counts := []int{1_000, 10_000}
	file := filepath.Join(b.TempDir(), "realm.json")
	if err := os.WriteFile(file, shapesRealm(b, counts), 0o600); err != nil {
		b.Fatal(err)
	}
	kc, err := kcemu.Start(ctx, kcemu.Config{Realms: []string{file}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = kc.Close() })
	issuer := kc.URL() + "/realms/" + kcemu.DevRealmName
	v, err := NewJWT(ctx, JWTConfig{IssuerURL: issuer, Audience: kcemu.DevAPIClientID})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := v.Authenticate(r); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
		}
	}))
	b.Cleanup(srv.Close)
	for _, n := range counts {
		for _, shape := range []struct{ name, client string }{{"compact", kcemu.DevPublicClientID}, {"eoepca", benchEOEPCAClient}} {
			token := benchToken(b, issuer, shape.client, fmt.Sprintf("member-of-%05d", n))
			b.Run(fmt.Sprintf("%s/workspaces=%d", shape.name, n), func(b *testing.B) {
				rq, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
				rq.Header.Set("Authorization", "Bearer "+token)
				for b.Loop() {
					resp, err := http.DefaultClient.Do(rq)
					if err != nil || resp.StatusCode != http.StatusOK {
						b.Fatalf("request: %v %v", resp, err)
					}
					_ = resp.Body.Close()
				}
				b.ReportMetric(float64(len(token)), "token-bytes") // after the loop, which resets metrics
			})
		}
	}
}

const benchEOEPCAClient = "demo-eoepca"

// shapesRealm is the compact dev realm with an EOEPCA-shaped sign-in
// client, max(counts) workspace clients, and a user per count in that many.
func shapesRealm(b *testing.B, counts []int) []byte {
	raw, err := kcemu.DevRealmShaped(kcemu.DevRealmName, kcemu.TokenShapeCompact)
	if err != nil {
		b.Fatal(err)
	}
	var rep map[string]any
	if err := json.Unmarshal(raw, &rep); err != nil {
		b.Fatal(err)
	}
	clients := append(rep["clients"].([]any), map[string]any{"clientId": benchEOEPCAClient, "publicClient": true,
		"directAccessGrantsEnabled": true, "protocolMappers": []any{map[string]any{"name": "aud", "protocolMapper": "oidc-audience-mapper",
			"config": map[string]any{"included.client.audience": kcemu.DevAPIClientID}}}})
	users := rep["users"].([]any)
	for i := range counts[len(counts)-1] {
		clients = append(clients, map[string]any{"clientId": fmt.Sprintf("ws-bench-%05d", i), "bearerOnly": true})
	}
	for _, n := range counts {
		held := map[string]any{}
		for i := range n {
			held[fmt.Sprintf("ws-bench-%05d", i)] = []any{"ws_access"}
		}
		users = append(users, map[string]any{"username": fmt.Sprintf("member-of-%05d", n), "enabled": true, "clientRoles": held,
			"credentials": []any{map[string]any{"type": "password", "value": kcemu.DevPassword}}})
	}
	rep["clients"], rep["users"] = clients, users
	out, err := json.Marshal(rep)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

func benchToken(b *testing.B, issuer, client, user string) string {
	form := url.Values{"grant_type": {"password"}, "client_id": {client}, "username": {user}, "password": {kcemu.DevPassword}}
	resp, err := http.Post(issuer+"/protocol/openid-connect/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.AccessToken == "" {
		b.Fatalf("token of %s through %s: %d %v", user, client, resp.StatusCode, err)
	}
	return body.AccessToken
}
