package tasks

import (
	"context"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"

	"github.com/eo-workspaces/provisioner/integration/stacktest"
)

// The client and service-account user of gocloak's realm export
// (stack/kcemu/testdata/gocloak-realm.json), with the ids it gives.
const (
	gocloakClientUUID = "60be66a5-e007-464c-9b74-0e3c2e69e478"
	gocloakSAUserID   = "6ead694f-bf59-495d-a475-a3b0b9be50ed"
)

// TestTaskKeycloak and TestTaskKeycloakReal run the same checks: the
// emulator's task and the real server's take the same options and import
// gocloak's own realm export alike.
func TestTaskKeycloak(t *testing.T) { checkKeycloakTask(t, "keycloak", "keycloak-emulat") }

func TestTaskKeycloakReal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real Keycloak (a minute or more)")
	}
	checkKeycloakTask(t, "keycloak:real", "keycloak-real")
}

// checkKeycloakTask runs `go tool task <task>` with Keycloak's options and
// checks the server through gocloak; comm is the name of the process the
// task runs (as /proc shows it, at most 15 characters).
func checkKeycloakTask(t *testing.T, task, comm string) {
	root := checkoutRoot
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	port := stacktest.FreePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	export := filepath.Join(root, "stack", "kcemu", "testdata", "gocloak-realm.json")
	const user, password = "tasks-boot", "tasks-boot-pw"

	begin := time.Now()
	kc := stacktest.StartTask(t, root, []string{"KC_BOOTSTRAP_ADMIN_USERNAME=" + user, "KC_BOOTSTRAP_ADMIN_PASSWORD=" + password},
		task, "--", "--http-host", "127.0.0.1", "--http-port", strconv.Itoa(port), "--import-realm", export)
	kc.Poll(t, firstStart, "200 from the master realm's discovery document", func() bool {
		return stacktest.HTTPStatus(base+"/realms/master/.well-known/openid-configuration") == http.StatusOK
	})
	t.Logf("go tool task %s: ready after %s", task, time.Since(begin).Round(time.Millisecond))
	kc.Record()
	kc.Find(t, comm)

	gc := gocloak.NewClient(base)
	if _, err := gc.LoginAdmin(ctx, "admin", "admin", "master"); err == nil {
		t.Error("LoginAdmin as admin/admin worked: the bootstrap admin must come from KC_BOOTSTRAP_ADMIN_*")
	}
	jwt, err := gc.LoginAdmin(ctx, user, password, "master")
	if err != nil {
		t.Fatalf("LoginAdmin on master as the bootstrap admin: %v", err)
	}
	tok := jwt.AccessToken
	masterClients, err := gc.GetClients(ctx, tok, "master", gocloak.GetClientsParams{ClientID: gocloak.StringP("admin-cli")})
	if err != nil || len(masterClients) != 1 || !gocloak.PBool(masterClients[0].PublicClient) {
		t.Errorf("master's admin-cli: %v, err %v, want one public client", masterClients, err)
	}

	clients, err := gc.GetClients(ctx, tok, "gocloak", gocloak.GetClientsParams{})
	if err != nil {
		t.Fatalf("clients of the imported realm: %v", err)
	}
	byID := map[string]*gocloak.Client{}
	for _, c := range clients {
		byID[gocloak.PString(c.ClientID)] = c
	}
	for _, want := range []string{"admin-cli", "broker", "security-admin-console", "gocloak", "realm-management", "account"} {
		if byID[want] == nil {
			t.Errorf("imported realm lacks client %s", want)
		}
	}
	c := byID["gocloak"]
	if c == nil {
		t.Fatal("no client gocloak")
	}
	if gocloak.PString(c.ID) != gocloakClientUUID || gocloak.PString(c.Secret) != "gocloak-secret" ||
		!gocloak.PBool(c.ServiceAccountsEnabled) || gocloak.PBool(c.PublicClient) {
		t.Errorf("client gocloak: id %q secret %q service accounts %v public %v, want the export's",
			gocloak.PString(c.ID), gocloak.PString(c.Secret), gocloak.PBool(c.ServiceAccountsEnabled), gocloak.PBool(c.PublicClient))
	}

	realmRoles, err := gc.GetRealmRoles(ctx, tok, "gocloak", gocloak.GetRoleParams{})
	if err != nil {
		t.Fatalf("realm roles: %v", err)
	}
	var names []string
	for _, r := range realmRoles {
		names = append(names, gocloak.PString(r.Name))
	}
	for _, want := range []string{"offline_access", "uma_authorization", "default-roles-gocloak"} {
		if !slices.Contains(names, want) {
			t.Errorf("realm roles %v lack %s", names, want)
		}
	}
	clientRoles, err := gc.GetClientRoles(ctx, tok, "gocloak", gocloakClientUUID, gocloak.GetRoleParams{})
	if err != nil || !slices.ContainsFunc(clientRoles, func(r *gocloak.Role) bool { return gocloak.PString(r.Name) == "uma_protection" }) {
		t.Errorf("client gocloak's roles %v (err %v) lack uma_protection, which the export maps", clientRoles, err)
	}

	sa, err := gc.GetClientServiceAccount(ctx, tok, "gocloak", gocloakClientUUID)
	if err != nil {
		t.Fatalf("service-account user of gocloak: %v", err)
	}
	if gocloak.PString(sa.ID) != gocloakSAUserID || gocloak.PString(sa.Username) != "service-account-gocloak" {
		t.Errorf("service account: id %q username %q, want the export's", gocloak.PString(sa.ID), gocloak.PString(sa.Username))
	}
	held, err := gc.GetRoleMappingByUserID(ctx, tok, "gocloak", gocloakSAUserID)
	if err != nil {
		t.Fatalf("role mappings of the service account: %v", err)
	}
	var rm []string
	if m := held.ClientMappings["realm-management"]; m != nil && m.Mappings != nil {
		for _, r := range *m.Mappings {
			rm = append(rm, gocloak.PString(r.Name))
		}
	}
	slices.Sort(rm)
	if want := []string{"create-client", "manage-clients", "query-clients", "view-clients"}; !slices.Equal(rm, want) {
		t.Errorf("service account's realm-management roles %v, want %v", rm, want)
	}
	if _, err := gc.LoginClient(ctx, "gocloak", "gocloak-secret", "gocloak"); err != nil {
		t.Errorf("client_credentials as the imported client: %v", err)
	}

	// One SIGTERM to the go process alone, as a suite stops what it started.
	begin = time.Now()
	if err := syscall.Kill(kc.Pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := kc.ExitCode(t, 30*time.Second); code != 0 {
		t.Errorf("go tool task %s exited %d after SIGTERM, want 0", task, code)
	}
	kc.WaitGone(t, 10*time.Second)
	if stacktest.HTTPStatus(base+"/realms/master/.well-known/openid-configuration") != 0 {
		t.Errorf("%s still answers after the task exited", task)
	}
	t.Logf("SIGTERM: exit and every process gone in %s", time.Since(begin).Round(time.Millisecond))
}
