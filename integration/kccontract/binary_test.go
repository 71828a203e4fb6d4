package kccontract

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"
)

// TestBinaryServesAnImportedRealmToGocloak runs cmd/keycloak-emulator the
// way an outside suite does: Keycloak's options, bootstrap admin from the
// environment, gocloak's own realm export.
func TestBinaryServesAnImportedRealmToGocloak(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "keycloak-emulator")
	build := exec.Command("go", "build", "-o", bin, "github.com/eo-workspaces/provisioner/cmd/keycloak-emulator")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	_, file, _, _ := runtime.Caller(0)
	export := filepath.Join(filepath.Dir(file), "..", "..", "stack", "kcemu", "testdata", "gocloak-realm.json")

	cmd := exec.Command(bin, "start-dev", "--http-host", "127.0.0.1", "--http-port=0", "--import-realm", export)
	cmd.Env = append(os.Environ(), "KC_BOOTSTRAP_ADMIN_USERNAME=boot", "KC_BOOTSTRAP_ADMIN_PASSWORD=boot-pw")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	mustDo(t, cmd.Start())
	exited := make(chan error, 1)
	gone := make(chan struct{}) // closed after Wait, whoever reads exited
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-gone
	})
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line struct{ Msg, URL string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "keycloak emulator ready" {
				urls <- line.URL
			}
		}
		exited <- cmd.Wait()
		close(gone)
	}()
	var base string
	select {
	case base = <-urls:
	case err := <-exited:
		t.Fatalf("emulator exited before ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("emulator not ready in 30s")
	}

	gc := gocloak.NewClient(base)
	jwt, err := gc.LoginAdmin(ctx(t), "boot", "boot-pw", "master")
	mustDo(t, err)
	clients := must(gc.GetClients(ctx(t), jwt.AccessToken, "gocloak", gocloak.GetClientsParams{ClientID: gocloak.StringP("gocloak")}))(t)
	if len(clients) != 1 || *clients[0].ID != "60be66a5-e007-464c-9b74-0e3c2e69e478" {
		t.Fatalf("imported client gocloak (keeping the export's id) not found: %d", len(clients))
	}
	eq(t, "imported secret", *clients[0].Secret, "gocloak-secret")
	roles := must(gc.GetRealmRoles(ctx(t), jwt.AccessToken, "gocloak", gocloak.GetRoleParams{}))(t)
	var names []string
	for _, r := range roles {
		names = append(names, *r.Name)
	}
	for _, want := range []string{"offline_access", "uma_authorization", "default-roles-gocloak"} {
		if !slices.Contains(names, want) {
			t.Errorf("realm roles %v lack %s", names, want)
		}
	}
	sa := must(gc.GetClientServiceAccount(ctx(t), jwt.AccessToken, "gocloak", *clients[0].ID))(t)
	eq(t, "service account keeps the export's id", *sa.ID, "6ead694f-bf59-495d-a475-a3b0b9be50ed")
	held := must(gc.GetRoleMappingByUserID(ctx(t), jwt.AccessToken, "gocloak", *sa.ID))(t)
	if rm := held.ClientMappings["realm-management"]; rm == nil || len(*rm.Mappings) != 4 {
		t.Errorf("service account's realm-management roles: %+v", held.ClientMappings)
	}
	// The imported client works as the export configured it.
	_, err = gc.LoginClient(ctx(t), "gocloak", "gocloak-secret", "gocloak")
	mustDo(t, err)

	mustDo(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit 10s after SIGTERM")
	}
}
