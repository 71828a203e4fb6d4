package keycloakserver_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eo-workspaces/provisioner/stack/kcemu"
	"github.com/eo-workspaces/provisioner/stack/keycloakserver"
)

// TestStartImportRestartKeepsState starts a real Keycloak twice on one home:
// the imported realm, a realm created through the Admin API and the admin
// all survive the restart, and the import does not overwrite what exists.
func TestStartImportRestartKeepsState(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real Keycloak twice (minutes)")
	}
	home := t.TempDir()
	realmFile := filepath.Join(t.TempDir(), "dev.json")
	if err := os.WriteFile(realmFile, kcemu.DevRealmJSON(), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := keycloakserver.Options{DataDir: home, ImportRealms: []string{realmFile}, AdminPassword: "boot-pw"}

	s := start(t, opts, "first start")
	inst := &keycloakserver.Instance{URL: s.URL(), AdminUser: s.AdminUser(), AdminPassword: "boot-pw"}
	get(t, s.URL()+"/realms/"+kcemu.DevRealmName+"/.well-known/openid-configuration", http.StatusOK)
	get(t, s.ManagementURL()+"/health/ready", http.StatusOK)
	get(t, s.URL()+"/realms/no-such-realm/.well-known/openid-configuration", http.StatusNotFound)
	if err := inst.CreateRealm(ctx(t), []byte(`{"realm":"kept","enabled":true}`)); err != nil {
		t.Fatal(err)
	}
	if rss, err := s.RSS(); err != nil {
		t.Error(err)
	} else {
		t.Logf("keycloak RSS after start and two realms: %d MiB", rss>>20)
	}
	stop(t, s)

	s = start(t, opts, "restart")
	defer stop(t, s)
	inst.URL = s.URL()
	get(t, s.URL()+"/realms/kept/.well-known/openid-configuration", http.StatusOK)
	get(t, s.URL()+"/realms/"+kcemu.DevRealmName+"/.well-known/openid-configuration", http.StatusOK)
	if !strings.Contains(s.Logs(), "Realm '"+kcemu.DevRealmName+"' already exists. Import skipped") {
		t.Error("the restart should skip importing the realm it already has")
	}
	if err := inst.DeleteRealm(ctx(t), "kept"); err != nil {
		t.Fatal(err)
	}
}

func start(t *testing.T, opts keycloakserver.Options, what string) *keycloakserver.Server {
	t.Helper()
	begin := time.Now()
	s, err := keycloakserver.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("keycloak %s: ready in %s on %s", what, time.Since(begin).Round(time.Second), s.URL())
	return s
}

func stop(t *testing.T, s *keycloakserver.Server) {
	t.Helper()
	begin := time.Now()
	if err := s.Stop(); err != nil {
		t.Error(err)
	}
	t.Logf("keycloak stopped in %s", time.Since(begin).Round(time.Millisecond))
}

func get(t *testing.T, url string, want int) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %d, want %d", url, resp.StatusCode, want)
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestPinFollowsTheEmulatorsRelease(t *testing.T) {
	if !strings.HasPrefix(keycloakserver.DefaultVersion, kcemu.DefaultVersion+".") {
		t.Fatalf("keycloakserver pins %s, the emulator follows %s: keep them on one release", keycloakserver.DefaultVersion, kcemu.DefaultVersion)
	}
}

func TestMissingJavaIsNamed(t *testing.T) {
	t.Setenv("JAVA_HOME", t.TempDir())
	_, err := keycloakserver.Start(context.Background(), keycloakserver.Options{})
	if err == nil || !strings.Contains(err.Error(), "install a JDK 17 or later") {
		t.Fatalf("want an error naming the JDK to install, got %v", err)
	}
}

func TestMissingMavenIsNamed(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := keycloakserver.EnsureDistIn(context.Background(), t.TempDir(), keycloakserver.DefaultVersion)
	if err == nil || !strings.Contains(err.Error(), "install Maven") {
		t.Fatalf("want an error naming Maven, got %v", err)
	}
}
