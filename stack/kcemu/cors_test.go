package kcemu

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// A page on another origin exchanges its code with the token endpoint:
// the preflight is answered and the answer carries the page's origin for a
// client whose webOrigins allow it, as Keycloak does.
func TestTokenEndpointAnswersPagesOfItsClientsWebOrigins(t *testing.T) {
	s, err := Start(context.Background(), Config{DevRealm: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tokenURL := s.URL() + "/realms/" + DevRealmName + "/protocol/openid-connect/token"
	pre, _ := http.NewRequest(http.MethodOptions, tokenURL, nil)
	pre.Header.Set("Origin", "http://127.0.0.1:8080")
	pre.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := http.DefaultClient.Do(pre)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "http://127.0.0.1:8080" {
		t.Fatalf("preflight = %d, allow-origin %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	for client, want := range map[string]string{"workspace-ui": "http://127.0.0.1:8080", DevPublicClientID: ""} {
		form := url.Values{"grant_type": {"authorization_code"}, "client_id": {client}, "code": {"not-a-code"}}
		req, _ := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "http://127.0.0.1:8080")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != want {
			t.Errorf("%s: allow-origin %q, want %q", client, got, want)
		}
	}
}
