package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"

	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

// registerApp registers a confidential client with a service account and
// an audience mapper for the API, as a platform registers a notebook
// application, and returns its client-credentials token.
func registerApp(t *testing.T, clientID string) string {
	t.Helper()
	ctx := context.Background()
	gc := gocloak.NewClient(sys.kc.url)
	adm, err := gc.LoginAdmin(ctx, sys.kc.adminUser, sys.kc.adminPassword, "master")
	if err != nil {
		t.Fatal(err)
	}
	id, err := gc.CreateClient(ctx, adm.AccessToken, sys.kc.realm, gocloak.Client{
		ClientID: gocloak.StringP(clientID), PublicClient: gocloak.BoolP(false), ServiceAccountsEnabled: gocloak.BoolP(true),
		StandardFlowEnabled: gocloak.BoolP(false), Protocol: gocloak.StringP("openid-connect"),
		ProtocolMappers: &[]gocloak.ProtocolMapperRepresentation{{
			Name: gocloak.StringP("workspace-api audience"), Protocol: gocloak.StringP("openid-connect"),
			ProtocolMapper: gocloak.StringP("oidc-audience-mapper"),
			Config:         &map[string]string{"included.client.audience": kcemu.DevAPIClientID, "access.token.claim": "true"},
		}},
	})
	if err != nil {
		t.Fatalf("register %s: %v", clientID, err)
	}
	secret, err := gc.GetClientSecret(ctx, adm.AccessToken, sys.kc.realm, id)
	if err != nil || secret.Value == nil {
		t.Fatalf("secret of %s: %v", clientID, err)
	}
	tok, err := gc.LoginClient(ctx, clientID, *secret.Value, sys.kc.realm)
	if err != nil {
		t.Fatalf("client credentials of %s: %v", clientID, err)
	}
	return tok.AccessToken
}

// TestAClientApplicationAsAMember is Terradue's notebook application:
// registered, added by client_id, it lists and reads its workspace and
// gets STS credentials like any member of its role, until it is removed.
func TestAClientApplicationAsAMember(t *testing.T) {
	admin := token(t, kcemu.DevAdminUser)
	ws := create(t, admin, unique("app"), kcemu.DevUser1)
	waitStatus(t, ws, admin, "ready")
	clientID := unique("notebook-app")
	app := registerApp(t, clientID)
	saUser := "service-account-" + clientID

	code, body := call(t, "POST", "/workspaces/"+ws+"/members", token(t, kcemu.DevUser1), fmt.Sprintf(`{"client_id":%q}`, clientID))
	if code != http.StatusAccepted || body["username"] != saUser {
		t.Fatalf("add the application = %d %v", code, body)
	}
	view := waitMember(t, ws, admin, saUser, "ws_access")
	if m := memberOf(view, saUser); m["kind"] != "client" || m["client_id"] != clientID {
		t.Fatalf("the application as a member: %v", m)
	}

	// With its client-credentials token: list, read, STS with a prefix, upload.
	code, list := call(t, "GET", "/workspaces", app, "")
	if code != http.StatusOK || !slices.Contains(names(list), ws) {
		t.Fatalf("the application's list = %d %v", code, list)
	}
	keysOf(t, ws, app) // its own key pair, shown once MinIO holds it
	code, body = call(t, "POST", "/workspaces/"+ws+"/credentials/sts", app, `{"prefix":"results/"}`)
	creds, _ := body["credentials"].(map[string]any)
	if code != http.StatusCreated {
		t.Fatalf("the application's STS = %d %v", code, body)
	}
	session := sessionS3(t, creds)
	if err := putErr(session, ws, "results/out.csv"); err != nil {
		t.Fatalf("upload with the session: %v", err)
	}
	if err := putErr(session, ws, "elsewhere.csv"); !denied(err) {
		t.Fatalf("upload outside the prefix = %v, want AccessDenied", err)
	}

	// Removed: STS is refused, and the session it held stops working.
	if code, body := call(t, "DELETE", "/workspaces/"+ws+"/members/"+saUser, token(t, kcemu.DevUser1), ""); code != http.StatusAccepted {
		t.Fatalf("remove the application = %d %v", code, body)
	}
	waitMember(t, ws, admin, saUser, "")
	if code, body := call(t, "POST", "/workspaces/"+ws+"/credentials/sts", app, `{}`); code != http.StatusForbidden {
		t.Fatalf("STS after removal = %d %v, want 403", code, body)
	}
	refusedWithin(t, "the removed application's session", time.Second, func() error { return putErr(session, ws, "results/late.csv") })
}

func memberOf(view map[string]any, user string) map[string]any {
	list, _ := view["members"].([]any)
	for _, m := range list {
		if mm, _ := m.(map[string]any); mm["username"] == user {
			return mm
		}
	}
	return nil
}

func names(list map[string]any) []string {
	items, _ := list["items"].([]any)
	var out []string
	for _, it := range items {
		if m, _ := it.(map[string]any); m != nil {
			out = append(out, strings.TrimSpace(fmt.Sprint(m["name"])))
		}
	}
	return out
}
