package secrets

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
)

// KeySize is the length of the encryption key: AES-256.
const KeySize = 32

// formatV1 starts every stored value, so the format can change later
// without guessing what old values are.
const formatV1 byte = 1

// KeyFromPassphrase derives the 32-byte key from a configured passphrase
// with HKDF-SHA256. HKDF does not slow down guessing, so the passphrase
// must itself be a long random value (e.g. `openssl rand -base64 32`).
func KeyFromPassphrase(passphrase string) []byte {
	key, err := hkdf.Key(sha256.New, []byte(passphrase), []byte("eo-workspaces/provisioner"), "workspace-secrets-v1", KeySize)
	if err != nil { // only for lengths HKDF-SHA256 cannot produce; 32 is fine
		panic(fmt.Sprintf("hkdf: %v", err))
	}
	return key
}

// Config is the store's key and what it reports beside a key pair.
type Config struct {
	Key []byte // KeySize bytes, e.g. KeyFromPassphrase
	// Endpoint and Region are the S3 endpoint and region a credentials
	// block reports next to the key pair ("" leaves them empty).
	Endpoint, Region string
}

// Validate names the first field that cannot work.
func (c Config) Validate() error {
	if len(c.Key) != KeySize {
		return fmt.Errorf("key: must be %d bytes, got %d", KeySize, len(c.Key))
	}
	return nil
}

// Store reads and writes encrypted credentials, one KV key per workspace.
type Store struct {
	kv       jetstream.KeyValue
	aead     cipher.AEAD
	endpoint string
	region   string
}

// New returns a store over kv (events.SecretsBucket).
func New(kv jetstream.KeyValue, cfg Config) (*Store, error) {
	if kv == nil {
		return nil, errors.New("secrets: kv bucket is required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	block, err := aes.NewCipher(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	return &Store{kv: kv, aead: aead, endpoint: cfg.Endpoint, region: cfg.Region}, nil
}

// Put stores c for workspace ws, replacing what was there.
func (s *Store) Put(ctx context.Context, ws string, c sagas.Credential) error {
	sealed, err := s.seal(ws, c)
	if err != nil {
		return err
	}
	if _, err := s.kv.Put(ctx, ws, sealed); err != nil {
		return fmt.Errorf("store credential of %s: %w", ws, err)
	}
	return nil
}

// PutIfAbsent stores c unless a credential for ws is stored already, and
// returns the one stored either way: a step that crashed after storing
// gets back the secret it generated the first time.
func (s *Store) PutIfAbsent(ctx context.Context, ws string, c sagas.Credential) (sagas.Credential, error) {
	return s.putIfAbsent(ctx, ws, c)
}

func (s *Store) putIfAbsent(ctx context.Context, ws string, c sagas.Credential) (sagas.Credential, error) {
	sealed, err := s.seal(ws, c)
	if err != nil {
		return sagas.Credential{}, err
	}
	_, err = s.kv.Create(ctx, ws, sealed)
	if err == nil {
		return c, nil
	}
	if !events.IsConflict(err) {
		return sagas.Credential{}, fmt.Errorf("store credential of %s: %w", ws, err)
	}
	stored, ok, err := s.Get(ctx, ws)
	if err != nil {
		return sagas.Credential{}, err
	}
	if !ok { // deleted between our Create and Get: try once more
		return s.putIfAbsent(ctx, ws, c)
	}
	return stored, nil
}

// Get returns the credential of ws; ok is false when none is stored.
func (s *Store) Get(ctx context.Context, ws string) (c sagas.Credential, ok bool, err error) {
	e, err := s.kv.Get(ctx, ws)
	if events.IsNotFound(err) {
		return sagas.Credential{}, false, nil
	}
	if err != nil {
		return sagas.Credential{}, false, fmt.Errorf("read credential of %s: %w", ws, err)
	}
	c, err = s.open(ws, e.Value())
	if err != nil {
		return sagas.Credential{}, false, err
	}
	return c, true, nil
}

// Delete removes the credential of ws; absent is success.
func (s *Store) Delete(ctx context.Context, ws string) error {
	if err := s.kv.Purge(ctx, ws); err != nil && !events.IsNotFound(err) {
		return fmt.Errorf("delete credential of %s: %w", ws, err)
	}
	return nil
}

// Credentials returns the storage credentials block of the contract for
// ws, or (nil, nil) when none is stored.
func (s *Store) Credentials(ctx context.Context, ws string) (map[string]string, error) {
	c, ok, err := s.Get(ctx, ws)
	if err != nil || !ok {
		return nil, err
	}
	return s.block(ws, c), nil
}

// block is the contract's storage credentials block for key pair c on
// the bucket of ws.
func (s *Store) block(ws string, c sagas.Credential) map[string]string {
	return map[string]string{
		"AWS_ACCESS_KEY_ID":     c.AccessKey,
		"AWS_SECRET_ACCESS_KEY": c.SecretKey,
		"AWS_ENDPOINT_URL":      s.endpoint,
		"AWS_REGION":            s.region,
		"bucketname":            ws,
		"access":                c.AccessKey,
		"secret":                c.SecretKey,
		"endpoint":              s.endpoint,
		"region":                s.region,
	}
}

// seal encrypts c with a random nonce; the workspace name is the
// associated data, so a value copied to another key does not decrypt.
func (s *Store) seal(ws string, c sagas.Credential) ([]byte, error) {
	plain, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode credential of %s: %w", ws, err)
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	out := append([]byte{formatV1}, nonce...)
	return s.aead.Seal(out, nonce, plain, []byte(ws)), nil
}

func (s *Store) open(ws string, sealed []byte) (sagas.Credential, error) {
	n := s.aead.NonceSize()
	if len(sealed) < 1+n || sealed[0] != formatV1 {
		return sagas.Credential{}, fmt.Errorf("credential of %s: unknown format", ws)
	}
	plain, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], []byte(ws))
	if err != nil {
		return sagas.Credential{}, fmt.Errorf("credential of %s: cannot decrypt (wrong key?)", ws)
	}
	var c sagas.Credential
	if err := json.Unmarshal(plain, &c); err != nil {
		return sagas.Credential{}, fmt.Errorf("credential of %s: decode failed", ws)
	}
	return c, nil
}
