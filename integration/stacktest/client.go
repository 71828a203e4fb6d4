package stacktest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// PasswordToken gets an access token by the password grant from realm at
// keycloakURL through clientID, as a notebook user does. scope is sent
// when not empty ("openid" for a token the userinfo endpoint accepts).
func PasswordToken(ctx context.Context, keycloakURL, realm, clientID, user, password, scope string) (string, error) {
	form := url.Values{"grant_type": {"password"}, "client_id": {clientID}, "username": {user}, "password": {password}}
	if scope != "" {
		form.Set("scope", scope)
	}
	endpoint := keycloakURL + "/realms/" + realm + "/protocol/openid-connect/token"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("token for %s in %s: %w", user, realm, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("token for %s in %s: %w", user, realm, err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK || tok.AccessToken == "" {
		return "", fmt.Errorf("token for %s in %s via %s: status %d, decode err %v", user, realm, clientID, resp.StatusCode, err)
	}
	return tok.AccessToken, nil
}

// CallAPI sends a request with a bearer token (and body, as JSON, when
// not empty) and returns the status and the JSON object answered, nil
// when the answer is empty; an answer that is not JSON fails t.
func CallAPI(t *testing.T, method, url, token, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 && json.Unmarshal(raw, &out) != nil {
		t.Fatalf("%s %s: not JSON: %s", method, url, raw)
	}
	return resp.StatusCode, out
}
