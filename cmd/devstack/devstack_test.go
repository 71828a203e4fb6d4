package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseConfigFlagsWinOverEnvAndDefaultsApply(t *testing.T) {
	root := t.TempDir()
	cfg, err := parseConfig([]string{"--api-port", "18080", "--fresh"}, env(map[string]string{
		"DEV_API_PORT": "9999", "DEV_NATS_PORT": "14222", "KC_BOOTSTRAP_ADMIN_USERNAME": "boss",
	}), root, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Ports{API: 18080, NATS: 14222}
	if cfg.Ports != want {
		t.Errorf("ports %+v, want %+v", cfg.Ports, want)
	}
	if !cfg.Fresh || cfg.BinDir != filepath.Join(root, ".bin") {
		t.Errorf("fresh %v bin-dir %q", cfg.Fresh, cfg.BinDir)
	}
	if cfg.Keycloak != keycloakReal {
		t.Errorf("keycloak %q, want the real one by default", cfg.Keycloak)
	}
	if cfg.KCAdminUser != "boss" || cfg.KCAdminPass != "admin" || cfg.MinIOUser != "minioadmin" {
		t.Errorf("credentials %q/%q minio %q", cfg.KCAdminUser, cfg.KCAdminPass, cfg.MinIOUser)
	}
}

func TestParseConfigRejectsBadInput(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"env port not a number": {env: map[string]string{"DEV_MINIO_PORT": "x"}, want: "DEV_MINIO_PORT"},
		"port out of range":     {args: []string{"--keycloak-port", "70000"}, want: "--keycloak-port"},
		"stray argument":        {args: []string{"up"}, want: "unexpected arguments"},
		"quote in a password":   {env: map[string]string{"MINIO_ROOT_PASSWORD": "it's-secret"}, want: "MINIO_ROOT_PASSWORD"},
		"short minio password":  {env: map[string]string{"MINIO_ROOT_PASSWORD": "short"}, want: "at least 8"},
		"unknown keycloak":      {args: []string{"--keycloak", "docker"}, want: "--keycloak \"docker\""},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseConfig(tc.args, env(tc.env), t.TempDir(), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestResolvePortsRemembersAndReusesFreePorts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "ports.json")
	first, err := resolvePorts(Ports{}, path, 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, f := range first.fields() {
		if *f.v <= 0 || seen[*f.v] {
			t.Fatalf("ports %+v: want five distinct free ports", first)
		}
		seen[*f.v] = true
	}
	second, err := resolvePorts(Ports{}, path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if second != first {
		t.Errorf("second run ports %+v, want the remembered %+v", second, first)
	}

	// A remembered port someone else took is replaced; an asked-for one is kept.
	busy, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(first.Keycloak))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	third, err := resolvePorts(Ports{API: first.API}, path, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if third.Keycloak == first.Keycloak || third.API != first.API || third.MinIO != first.MinIO {
		t.Errorf("third run ports %+v from %+v: want keycloak moved, the rest kept", third, first)
	}
}

func TestResolvePortsRefusesABusyAskedPort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := busy.Addr().(*net.TCPAddr).Port
	_, err = resolvePorts(Ports{NATS: port}, filepath.Join(t.TempDir(), "ports.json"), 0)
	if err == nil || !strings.Contains(err.Error(), "--nats-port "+strconv.Itoa(port)) {
		t.Fatalf("err = %v, want the busy --nats-port named", err)
	}
}

func TestStackEnvHasExactlyTheContractKeys(t *testing.T) {
	cfg := Config{KCAdminUser: "admin", KCAdminPass: "a b$c", MinIOUser: "minioadmin", MinIOPass: "minioadmin"}
	p := Ports{API: 1, NATS: 2, Keycloak: 3, MinIO: 4, MinIOConsole: 5}
	path := filepath.Join(t.TempDir(), ".dev", "stack.env")
	if err := writeFileAtomic(path, formatEnv(stackEnv(cfg, p))); err != nil {
		t.Fatal(err)
	}
	got := readEnv(t, path)
	want := []string{
		"WORKSPACE_API=http://127.0.0.1:1/workspaces",
		"KEYCLOAK_URL=http://127.0.0.1:3",
		"KEYCLOAK_REALM=eoepca",
		"KEYCLOAK_ADMIN_USER=admin",
		"KEYCLOAK_ADMIN_PASSWORD='a b$c'",
		"NATS_URL=nats://127.0.0.1:2",
		"S3_ENDPOINT=http://127.0.0.1:4",
		"S3_REGION=us-east-1",
		"MINIO_ROOT_USER=minioadmin",
		"MINIO_ROOT_PASSWORD=minioadmin",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("stack.env:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d files, want only stack.env (no temp file left)", len(entries))
	}
}

func readEnv(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return lines
}

func TestLockRefusesASecondHolderAndNamesThePid(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".dev", "dev.lock")
	first, err := acquireLock(path)
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to the open file, so a second open in this process conflicts too.
	_, err = acquireLock(path)
	if !errors.Is(err, errLocked) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("second lock: err = %v, want errLocked naming pid %d", err, os.Getpid())
	}
	first.release()
	again, err := acquireLock(path)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	again.release()
}

func TestPrefixWriterWritesWholePrefixedLines(t *testing.T) {
	var mu sync.Mutex
	var out bytes.Buffer
	w := newPrefixWriter(&mu, &out, "minio")
	for _, chunk := range []string{"one\ntw", "o\n", "thr", "ee"} {
		if _, err := io.WriteString(w, chunk); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	want := "minio       | one\nminio       | two\nminio       | three\n"
	if out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
}

func TestNoJavaNamesTheEmulator(t *testing.T) {
	t.Setenv("JAVA_HOME", t.TempDir()) // a JDK without bin/java
	err := checkJava(Config{Keycloak: keycloakReal})
	if err == nil || !strings.Contains(err.Error(), "install a JDK 17") || !strings.Contains(err.Error(), "-- --keycloak emulator") {
		t.Fatalf("err = %v, want the JDK to install and the emulator named", err)
	}
	if err := checkJava(Config{Keycloak: keycloakEmulator}); err != nil {
		t.Fatalf("the emulator needs no Java: %v", err)
	}
}

func TestCheckBinariesNamesWhatIsMissing(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "minio"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	err := checkBinaries(dir, "keycloak-emulator")
	if err == nil || !strings.Contains(err.Error(), "keycloak-emulator, provisioner") || strings.Contains(err.Error(), "minio,") {
		t.Fatalf("err = %v, want keycloak-emulator and provisioner named, minio not", err)
	}
}
