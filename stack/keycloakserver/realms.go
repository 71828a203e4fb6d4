package keycloakserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// AdminToken signs the master realm's admin in through admin-cli.
func (i *Instance) AdminToken(ctx context.Context) (string, error) {
	form := url.Values{"grant_type": {"password"}, "client_id": {"admin-cli"},
		"username": {i.AdminUser}, "password": {i.AdminPassword}}
	status, body, err := i.do(ctx, http.MethodPost, "/realms/master/protocol/openid-connect/token", "",
		"application/x-www-form-urlencoded", []byte(form.Encode()))
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		return "", fmt.Errorf("keycloak admin token: %d %s", status, body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil {
		return "", fmt.Errorf("keycloak admin token: %w", err)
	}
	return tok.AccessToken, nil
}

// CreateRealm imports a realm representation (a realm-export file's
// contents) through the Admin API, as POST /admin/realms does.
func (i *Instance) CreateRealm(ctx context.Context, rep []byte) error {
	tok, err := i.AdminToken(ctx)
	if err != nil {
		return err
	}
	status, body, err := i.do(ctx, http.MethodPost, "/admin/realms", tok, "application/json", rep)
	if err != nil {
		return err
	}
	if status != http.StatusCreated {
		return fmt.Errorf("create realm: %d %s", status, body)
	}
	return nil
}

// DeleteRealm removes a realm and everything in it.
func (i *Instance) DeleteRealm(ctx context.Context, name string) error {
	tok, err := i.AdminToken(ctx)
	if err != nil {
		return err
	}
	status, body, err := i.do(ctx, http.MethodDelete, "/admin/realms/"+url.PathEscape(name), tok, "", nil)
	if err != nil {
		return err
	}
	if status != http.StatusNoContent {
		return fmt.Errorf("delete realm %s: %d %s", name, status, body)
	}
	return nil
}

func (i *Instance) do(ctx context.Context, method, path, token, contentType string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(i.URL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}
