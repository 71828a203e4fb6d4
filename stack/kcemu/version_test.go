package kcemu

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/Nerzal/gocloak/v13"
)

// TestInvalidGrantStatusFollowsTheRelease: a bad password answers 401 up
// to Keycloak 26.5 and 400 from 26.6 on, with the same body.
func TestInvalidGrantStatusFollowsTheRelease(t *testing.T) {
	for version, want := range map[string]int{"": http.StatusUnauthorized, "26.5": http.StatusUnauthorized, "26.6": http.StatusBadRequest, "27.0": http.StatusBadRequest} {
		s, err := Start(context.Background(), Config{DevRealm: true, Version: version})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.PostForm(s.URL()+"/realms/"+DevRealmName+"/protocol/openid-connect/token", url.Values{
			"grant_type": {"password"}, "client_id": {DevPublicClientID}, "username": {DevUser1}, "password": {"wrong"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		_ = s.Close()
		if resp.StatusCode != want {
			t.Errorf("version %q: bad password answered %d, want %d", version, resp.StatusCode, want)
		}
	}
	if _, err := Start(context.Background(), Config{Version: "25.0"}); err == nil {
		t.Error("a Keycloak release before 26 was accepted")
	}
}

// TestServerInfoNamesTheRelease: what gocloak's GetServerInfo reads.
func TestServerInfoNamesTheRelease(t *testing.T) {
	s, err := Start(context.Background(), Config{Version: "26.6"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	gc := gocloak.NewClient(s.URL())
	tok, err := gc.LoginAdmin(context.Background(), "admin", "admin", "master")
	if err != nil {
		t.Fatal(err)
	}
	info, err := gc.GetServerInfo(context.Background(), tok.AccessToken)
	if err != nil || info.SystemInfo == nil || info.SystemInfo.Version == nil || *info.SystemInfo.Version != "26.6.0" {
		t.Fatalf("server info %+v, %v", info, err)
	}
	if _, err := gc.GetServerInfo(context.Background(), "not-a-token"); err == nil {
		t.Fatal("server info without a valid token")
	}
}
