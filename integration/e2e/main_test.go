// Package e2e runs the EOEPCA notebook flow against the real system: the
// provisioner binary with its embedded JetStream, a real MinIO and the real
// Keycloak (the test run's shared one, in a realm of this package's own; the
// emulator with -short), driven over HTTP, S3 and NATS with real tokens.
package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eo-workspaces/provisioner/integration/stacktest"
	"github.com/eo-workspaces/provisioner/stack/kcemu"
	"github.com/eo-workspaces/provisioner/stack/keycloakserver"
	"github.com/eo-workspaces/provisioner/stack/minioserver"
)

// stack is one running system shared by the tests of this package.
type stack struct {
	api, nats string
	bin, data string // the provisioner's binary and data directory, for restarts
	kc        keycloak
	mio       *minioserver.Server
	cmd       *exec.Cmd
	logs      *stacktest.SyncBuffer // the child's output, which exec copies from another goroutine
}

var sys *stack

// secretKey encrypts the stored credentials of the e2e stack.
const secretKey = "e2e-secret-key-e2e-secret-key-e2e"

// keycloak is where the provisioner and the tests find Keycloak.
type keycloak struct{ url, adminUser, adminPassword, realm string }

func TestMain(m *testing.M) {
	flag.Parse() // for testing.Short
	code, err := runWithStack(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func runWithStack(m *testing.M) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "e2e")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "provisioner")
	if out, err := exec.CommandContext(ctx, "go", "build", "-race", "-o", bin, "github.com/eo-workspaces/provisioner/cmd/provisioner").CombinedOutput(); err != nil {
		return 0, fmt.Errorf("build provisioner: %v\n%s", err, out)
	}
	mio, err := minioserver.Start(ctx, minioserver.Options{DataDir: filepath.Join(dir, "minio")})
	if err != nil {
		return 0, err
	}
	defer func() { _ = mio.Stop() }()
	kc, closeKC, err := startKeycloak(ctx)
	if err != nil {
		return 0, err
	}
	defer closeKC()
	s, err := startProvisioner(ctx, bin, filepath.Join(dir, "data"), kc, mio)
	if err != nil {
		return 0, err
	}
	sys = s
	code := m.Run()
	if err := sys.stop(); err != nil { // sys: a test may have restarted it
		fmt.Fprintln(os.Stderr, "e2e: stop:", err)
		code = 1
	}
	return code, nil
}

// startKeycloak gives the package the dev realm: a copy of it under a name
// of its own on the real Keycloak, or the emulator's with -short.
func startKeycloak(ctx context.Context) (keycloak, func(), error) {
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
	realm := fmt.Sprintf("e2e-%d", time.Now().UnixNano())
	rep, err := kcemu.DevRealmAs(realm)
	if err == nil {
		err = inst.CreateRealm(ctx, rep)
	}
	if err != nil {
		_ = inst.Close()
		return keycloak{}, nil, err
	}
	closeKC := func() {
		if err := inst.DeleteRealm(context.Background(), realm); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
		}
		_ = inst.Close()
	}
	return keycloak{inst.URL, inst.AdminUser, inst.AdminPassword, realm}, closeKC, nil
}

func startProvisioner(ctx context.Context, bin, data string, kc keycloak, mio *minioserver.Server) (*stack, error) {
	httpAddr, err := minioserver.FreeAddr()
	if err != nil {
		return nil, err
	}
	natsAddr, err := minioserver.FreeAddr()
	if err != nil {
		return nil, err
	}
	s := &stack{api: "http://" + httpAddr, nats: "nats://" + natsAddr, bin: bin, data: data, kc: kc, mio: mio, logs: &stacktest.SyncBuffer{}}
	s.cmd = exec.Command(bin, "--http-addr", httpAddr, "--nats-listen", natsAddr, "--data-dir", data,
		"--keycloak-url", kc.url, "--keycloak-realm", kc.realm,
		"--keycloak-client-id", kcemu.DevWorkerClientID, "--keycloak-client-secret", kcemu.DevWorkerClientSecret,
		"--s3-endpoint", mio.URL(), "--s3-region", mio.Region(),
		"--minio-access-key", mio.RootUser(), "--minio-secret-key", mio.RootPassword(),
		"--secret-key", secretKey, "--concurrency", "4",
		// Reconciles are asked for by the tests that want them, never at a
		// ten-minute boundary in the middle of another test's audit trail.
		"--reconcile-interval", "0")
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(s.api + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = s.cmd.Process.Kill()
			return nil, fmt.Errorf("provisioner not ready:\n%s", s.logs)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
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

// token gets a password-grant access token from Keycloak through the
// public demo client, as a notebook user does.
func token(t *testing.T, user string) string {
	t.Helper()
	tok, err := stacktest.PasswordToken(t.Context(), sys.kc.url, sys.kc.realm, kcemu.DevPublicClientID, user, kcemu.DevPassword, "openid")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// claims decodes a token's payload; its signature is the API's business.
func claims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func call(t *testing.T, method, path, tok, body string) (int, map[string]any) {
	t.Helper()
	return stacktest.CallAPI(t, method, sys.api+path, tok, body)
}

// waitStatus polls GET until the workspace reaches want, recording every
// status seen on the way.
func waitStatus(t *testing.T, name, tok, want string) (map[string]any, []string) {
	t.Helper()
	var seen []string
	deadline := time.Now().Add(2 * time.Minute)
	for {
		code, ws := call(t, "GET", "/workspaces/"+name, tok, "")
		st, _ := ws["status"].(string)
		if code == http.StatusOK && (len(seen) == 0 || seen[len(seen)-1] != st) {
			seen = append(seen, st)
		}
		if st == want {
			return ws, seen
		}
		if st == "failed" && want == "ready" {
			t.Fatalf("%s failed: %v", name, ws)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not reach %s; statuses seen %v; last %d %v\nlogs:\n%s", name, want, seen, code, ws, tail(sys.logs.String()))
		}
		time.Sleep(100 * time.Millisecond) // polling interval, as a client polls
	}
}

func tail(s string) string {
	if len(s) > 4000 {
		return s[len(s)-4000:]
	}
	return s
}
