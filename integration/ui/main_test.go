// Package ui drives the operator page in a headless Chromium against the
// real system: the provisioner binary, a real MinIO and a real Keycloak
// (the test run's shared one, in a realm of this package's own, with the
// page's public client workspace-ui; the emulator with -short), signing in
// through the login form.
package ui

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/eo-workspaces/provisioner/integration/stacktest"
	"github.com/eo-workspaces/provisioner/stack/kcemu"
	"github.com/eo-workspaces/provisioner/stack/keycloakserver"
	"github.com/eo-workspaces/provisioner/stack/minioserver"
)

// stack is the running system the tests share.
type stack struct {
	api   string // http://host:port, the page at api + "/ui/"
	nats  string // the embedded NATS server, for tests that fill the read model
	kc    keycloak
	mio   *minioserver.Server
	cmd   *exec.Cmd
	logs  *stacktest.SyncBuffer
	shots string // where screenshots are kept
}

type keycloak struct{ url, adminUser, adminPassword, realm string }

var sys *stack

func TestMain(m *testing.M) {
	flag.Parse() // for testing.Short
	code, err := runWithStack(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ui:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func runWithStack(m *testing.M) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "ui")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "provisioner")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/eo-workspaces/provisioner/cmd/provisioner").CombinedOutput(); err != nil {
		return 0, fmt.Errorf("build provisioner: %v\n%s", err, out)
	}
	mio, err := minioserver.Start(ctx, minioserver.Options{DataDir: filepath.Join(dir, "minio")})
	if err != nil {
		return 0, err
	}
	defer func() { _ = mio.Stop() }()
	addr, err := minioserver.FreeAddr()
	if err != nil {
		return 0, err
	}
	kc, closeKC, err := startKeycloak(ctx, "http://"+addr)
	if err != nil {
		return 0, err
	}
	defer closeKC()
	shots, err := screenshotDir()
	if err != nil {
		return 0, err
	}
	natsAddr, err := minioserver.FreeAddr()
	if err != nil {
		return 0, err
	}
	s := &stack{api: "http://" + addr, nats: "nats://" + natsAddr, kc: kc, mio: mio, logs: &stacktest.SyncBuffer{}, shots: shots}
	if err := s.start(ctx, bin, addr, natsAddr, filepath.Join(dir, "data")); err != nil {
		return 0, err
	}
	sys = s
	code := m.Run()
	if err := s.stop(); err != nil {
		fmt.Fprintln(os.Stderr, "ui: stop:", err)
		code = 1
	}
	return code, nil
}

// screenshotDir is where the tests keep their screenshots: $UI_ARTEFACTS,
// or .artefacts/ui at the repository's root.
func screenshotDir() (string, error) {
	dir := os.Getenv("UI_ARTEFACTS")
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return "", err
		}
		root, err := minioserver.RepoRoot(wd)
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, ".artefacts", "ui")
	}
	return dir, os.MkdirAll(dir, 0o755)
}

// startKeycloak imports the dev realm under a name of its own into the
// run's shared Keycloak, with the page's client allowed to come back to
// the API at origin; with -short, the emulator's dev realm, whose
// workspace-ui client takes any redirect.
func startKeycloak(ctx context.Context, origin string) (keycloak, func(), error) {
	if testing.Short() {
		emu, err := kcemu.Start(ctx, kcemu.Config{DevRealm: true, AdminUser: "admin", AdminPassword: "admin"})
		if err != nil {
			return keycloak{}, nil, err
		}
		return keycloak{emu.URL(), "admin", "admin", kcemu.DevRealmName}, func() { _ = emu.Close() }, nil
	}
	inst, err := keycloakserver.FromEnv(ctx)
	if err != nil {
		return keycloak{}, nil, err
	}
	realm := fmt.Sprintf("ui-%d", time.Now().UnixNano())
	rep, err := realmWithUIClient(realm, origin)
	if err == nil {
		err = inst.CreateRealm(ctx, rep)
	}
	if err != nil {
		_ = inst.Close()
		return keycloak{}, nil, err
	}
	closeKC := func() {
		if err := inst.DeleteRealm(context.Background(), realm); err != nil {
			fmt.Fprintln(os.Stderr, "ui:", err)
		}
		_ = inst.Close()
	}
	return keycloak{inst.URL, inst.AdminUser, inst.AdminPassword, realm}, closeKC, nil
}

// realmWithUIClient is the dev realm renamed, its users' default roles
// renamed with it, and the public client workspace-ui (authorization code
// with PKCE S256, audience workspace-api) redirecting to origin's /ui/.
func realmWithUIClient(name, origin string) ([]byte, error) {
	var rep map[string]any
	if err := json.Unmarshal(kcemu.DevRealmJSON(), &rep); err != nil {
		return nil, fmt.Errorf("dev realm: %w", err)
	}
	rep["realm"] = name
	for _, u := range rep["users"].([]any) {
		roles, _ := u.(map[string]any)["realmRoles"].([]any)
		for i, r := range roles {
			if r == "default-roles-"+kcemu.DevRealmName {
				roles[i] = "default-roles-" + name
			}
		}
	}
	var clients []any
	for _, c := range rep["clients"].([]any) {
		if c.(map[string]any)["clientId"] != "workspace-ui" {
			clients = append(clients, c)
		}
	}
	rep["clients"] = append(clients, map[string]any{
		"clientId": "workspace-ui", "enabled": true, "publicClient": true, "protocol": "openid-connect",
		"standardFlowEnabled": true, "directAccessGrantsEnabled": false,
		"redirectUris": []string{origin + "/ui/*"}, "webOrigins": []string{origin},
		"attributes": map[string]string{"pkce.code.challenge.method": "S256", "post.logout.redirect.uris": origin + "/ui/*"},
		"protocolMappers": []map[string]any{{"name": "workspace-api-audience", "protocol": "openid-connect",
			"protocolMapper": "oidc-audience-mapper", "config": map[string]string{"included.client.audience": "workspace-api",
				"id.token.claim": "false", "access.token.claim": "true"}}},
	})
	return json.Marshal(rep)
}

func (s *stack) start(ctx context.Context, bin, addr, natsAddr, data string) error {
	s.cmd = exec.Command(bin, "--http-addr", addr, "--nats-listen", natsAddr, "--data-dir", data,
		"--keycloak-url", s.kc.url, "--keycloak-realm", s.kc.realm,
		"--keycloak-client-id", kcemu.DevWorkerClientID, "--keycloak-client-secret", kcemu.DevWorkerClientSecret,
		"--s3-endpoint", s.mio.URL(), "--s3-region", s.mio.Region(),
		"--minio-access-key", s.mio.RootUser(), "--minio-secret-key", s.mio.RootPassword(),
		"--secret-key", "ui-secret-key-ui-secret-key-ui-secret", "--log-json=false", "--reconcile-interval", "0")
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for stacktest.HTTPStatus(s.api+"/readyz") != http.StatusOK {
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = s.cmd.Process.Kill()
			return fmt.Errorf("provisioner not ready:\n%s", s.logs)
		}
		time.Sleep(50 * time.Millisecond) // polling interval; the deadline bounds the wait
	}
	return nil
}

func (s *stack) stop() error {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("provisioner exit after SIGTERM: %v\n%s", err, s.logs)
		}
		return nil
	case <-time.After(45 * time.Second):
		_ = s.cmd.Process.Kill()
		return fmt.Errorf("provisioner ignored SIGTERM")
	}
}
