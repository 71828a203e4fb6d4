package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func dataConfig(t *testing.T) Config { return Config{Root: t.TempDir(), Keycloak: keycloakEmulator} }

// mustRefuse checks that err names the file and the way out.
func mustRefuse(t *testing.T, err error, file string) {
	t.Helper()
	if err == nil {
		t.Fatalf("checkData accepted the data directory; want a refusal naming %s", file)
	}
	for _, want := range []string{file, "go tool task dev -- --fresh"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not name %q", err, want)
		}
	}
}

func TestCheckDataMarksANewDirectoryAndAcceptsItAgain(t *testing.T) {
	cfg := dataConfig(t)
	for range 2 {
		if err := checkData(cfg); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := os.ReadFile(cfg.layoutPath()); err != nil || strings.TrimSpace(string(b)) != dataLayout {
		t.Fatalf("LAYOUT = %q, %v", b, err)
	}
}

func TestCheckDataRefusesTheOtherKeycloak(t *testing.T) {
	cfg := dataConfig(t)
	if err := checkData(cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Keycloak = keycloakReal
	err := checkData(cfg)
	mustRefuse(t, err, cfg.dataDir())
	if !strings.Contains(err.Error(), "go tool task dev -- --keycloak emulator") {
		t.Errorf("refusal %q does not say how to keep the data", err)
	}
	// Kept before the choice existed: no KEYCLOAK file, the emulator's data.
	if err := os.Remove(cfg.keycloakKindPath()); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, checkData(cfg), cfg.dataDir())
	cfg.Keycloak = keycloakEmulator
	if err := checkData(cfg); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(cfg.keycloakKindPath()); strings.TrimSpace(string(b)) != keycloakEmulator {
		t.Errorf("KEYCLOAK = %q after accepting the emulator's data, want it recorded", b)
	}
}

func TestCheckDataRefusesAnOlderLayout(t *testing.T) {
	cfg := dataConfig(t)
	// What devstack kept before LAYOUT existed: state, no version.
	if err := os.MkdirAll(filepath.Join(cfg.dataDir(), "keycloak"), 0o755); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, checkData(cfg), cfg.layoutPath())
	if _, err := os.Stat(filepath.Join(cfg.dataDir(), "keycloak")); err != nil {
		t.Fatalf("the refused directory was changed: %v", err)
	}
	if err := os.WriteFile(cfg.layoutPath(), []byte("eo-workspaces-devstack-data 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, checkData(cfg), cfg.layoutPath())
}

func TestCheckDataRefusesADamagedEmulatorState(t *testing.T) {
	cfg := dataConfig(t)
	if err := checkData(cfg); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(cfg.dataDir(), "keycloak", "kcemu-state.json")
	if err := os.MkdirAll(filepath.Dir(state), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(state, []byte(`{"formatVersion": 1, "realms": {"eoe`), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, checkData(cfg), state)
}

// The NATS server itself only warns about a stream whose metadata fails
// its checksum and starts without it; devstack refuses to start instead.
func TestCheckDataRefusesADamagedNATSStore(t *testing.T) {
	cfg := dataConfig(t)
	if err := checkData(cfg); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(cfg.dataDir(), "provisioner", "nats")
	withStream(t, store, func(ctx context.Context, js jetstream.JetStream) {
		s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "WORKSPACE_EVENTS", Subjects: []string{"workspace.evt.>"}, Storage: jetstream.FileStorage})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, "workspace.evt.ws-a.x", []byte("kept")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "projection"}); err != nil {
			t.Fatal(err)
		}
	})
	if err := checkData(cfg); err != nil {
		t.Fatalf("a whole store refused: %v", err)
	}

	meta := filepath.Join(store, "jetstream", "$G", "streams", "WORKSPACE_EVENTS", "meta.inf")
	good, err := os.ReadFile(meta)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(meta, append(slices.Clone(good[:len(good)-1]), ' '), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, checkData(cfg), meta)
	// The premise: left to itself, the server comes up without the stream.
	withStream(t, store, func(ctx context.Context, js jetstream.JetStream) {
		if _, err := js.Stream(ctx, "WORKSPACE_EVENTS"); err == nil {
			t.Error("the NATS server restored a stream whose metadata fails its checksum; the check is stricter than it needs to be")
		}
	})

	if err := os.WriteFile(meta, good, 0o644); err != nil {
		t.Fatal(err)
	}
	consumer := filepath.Join(filepath.Dir(meta), "obs", "projection", "meta.inf")
	if err := os.WriteFile(consumer, []byte("{torn"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, checkData(cfg), consumer)
}

// withStream runs fn against an embedded JetStream server on store, then
// shuts the server down cleanly.
func withStream(t *testing.T, store string, fn func(context.Context, jetstream.JetStream)) {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: store, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fn(ctx, js)
}
