package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/minio/highwayhash"

	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

// dataLayout names the layout of .dev/data this devstack reads and writes
// (which part keeps what where, and in which format). Raise it when that
// changes, so an older data directory is refused rather than misread.
const dataLayout = "eo-workspaces-devstack-data 1"

// freshHint is the way out every refusal of the data directory names.
const freshHint = "`go tool task dev -- --fresh` starts from nothing (it deletes .dev/data)"

// layoutPath is the file that says which layout .dev/data has.
func (c Config) layoutPath() string { return filepath.Join(c.dataDir(), "LAYOUT") }

// checkData refuses a data directory this devstack cannot use as it is:
// from an older layout, or with a part's state damaged. It never repairs
// or resets anything: that is --fresh, asked for. A new (absent or empty)
// directory gets the LAYOUT file.
func checkData(cfg Config) error {
	entries, err := os.ReadDir(cfg.dataDir())
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(entries) == 0) {
		if err := writeFileAtomic(cfg.layoutPath(), []byte(dataLayout+"\n")); err != nil {
			return err
		}
		return writeFileAtomic(cfg.keycloakKindPath(), []byte(cfg.Keycloak+"\n"))
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", cfg.dataDir(), err)
	}
	b, err := os.ReadFile(cfg.layoutPath())
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s is missing: %s was written by an older devstack (or is not a dev stack's data); %s",
			cfg.layoutPath(), cfg.dataDir(), freshHint)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", cfg.layoutPath(), err)
	}
	if got := strings.TrimSpace(string(b)); got != dataLayout {
		return fmt.Errorf("%s says %q, this devstack reads %q; %s", cfg.layoutPath(), got, dataLayout, freshHint)
	}
	if err := checkKeycloakKind(cfg); err != nil {
		return err
	}
	if cfg.Keycloak == keycloakEmulator {
		if err := kcemu.CheckState(cfg.keycloakDataDir()); err != nil {
			return fmt.Errorf("%w\n(for the dev stack: %s)", err, freshHint)
		}
	}
	return checkNATSStore(filepath.Join(cfg.dataDir(), "provisioner", "nats"))
}

// keycloakKindPath is the file that says which Keycloak holds the realms
// the rest of .dev/data refers to.
func (c Config) keycloakKindPath() string { return filepath.Join(c.dataDir(), "KEYCLOAK") }

// checkKeycloakKind refuses to pair the kept workspaces with the other
// Keycloak, which has none of their clients, roles or members. Data kept
// before the real server could be chosen has no such file: the emulator's.
func checkKeycloakKind(cfg Config) error {
	kind := keycloakEmulator
	b, err := os.ReadFile(cfg.keycloakKindPath())
	switch {
	case err == nil:
		kind = strings.TrimSpace(string(b))
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("read %s: %w", cfg.keycloakKindPath(), err)
	}
	if kind != cfg.Keycloak {
		return fmt.Errorf("%s was made with the %s Keycloak, whose realms its workspaces live in: run `go tool task dev -- --keycloak %s` to keep it, or %s",
			cfg.dataDir(), kind, kind, freshHint)
	}
	if errors.Is(err, os.ErrNotExist) {
		return writeFileAtomic(cfg.keycloakKindPath(), []byte(kind+"\n"))
	}
	return nil
}

// checkNATSStore checks what the NATS server checks of each stream before
// it restores it, and which it answers by skipping the stream with only a
// warning (server/jetstream.go, enableJetStream's stream recovery): a
// stream's meta.inf must be there, readable JSON, and match meta.sum (a
// HighwayHash-64 keyed with the SHA-256 of the stream's directory name);
// each consumer's meta.inf must be readable JSON. A skipped stream would
// be created again empty by the provisioner: a silent reset of the
// workspaces, their history or the read model. Message blocks are not
// checked: the server recovers those itself, up to the last whole record.
func checkNATSStore(storeDir string) error {
	streams, err := filepath.Glob(filepath.Join(storeDir, "jetstream", "*", "streams", "*"))
	if err != nil {
		return err
	}
	for _, dir := range streams {
		if strings.HasPrefix(filepath.Base(dir), ".") { // being deleted: the server removes it
			continue
		}
		if err := checkStreamMeta(dir); err != nil {
			return fmt.Errorf("NATS store: %w; the NATS server would drop this stream and the stack would start without it; %s", err, freshHint)
		}
	}
	return nil
}

func checkStreamMeta(dir string) error {
	meta := filepath.Join(dir, "meta.inf")
	buf, err := os.ReadFile(meta)
	if err != nil {
		return fmt.Errorf("%s: %w", meta, err)
	}
	sumPath := filepath.Join(dir, "meta.sum")
	sum, err := os.ReadFile(sumPath)
	if err != nil {
		return fmt.Errorf("%s: %w", sumPath, err)
	}
	key := sha256.Sum256([]byte(filepath.Base(dir)))
	hh, err := highwayhash.New64(key[:])
	if err != nil {
		return err
	}
	hh.Write(buf)
	if got := hex.EncodeToString(hh.Sum(nil)); got != string(sum) {
		return fmt.Errorf("%s does not match its checksum in %s (damaged)", meta, sumPath)
	}
	if !json.Valid(buf) {
		return fmt.Errorf("%s is not JSON (damaged)", meta)
	}
	consumers, _ := filepath.Glob(filepath.Join(dir, "obs", "*", "meta.inf"))
	for _, c := range consumers {
		b, err := os.ReadFile(c)
		if err != nil {
			return fmt.Errorf("%s: %w", c, err)
		}
		if !json.Valid(b) {
			return fmt.Errorf("%s is not JSON (damaged)", c)
		}
	}
	return nil
}
