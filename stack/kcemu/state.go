package kcemu

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// stateFormatVersion is bumped whenever the on-disk layout changes in a way an
// older emulator cannot read; a mismatch fails at start rather than resetting.
// Version 2 added the change log next to the snapshot: an emulator reading
// only version 1's snapshot would lose what the log holds.
const stateFormatVersion = 2

// readableFormats are the snapshot versions this emulator loads; version 1
// is a snapshot without a log.
var readableFormats = map[int]bool{1: true, 2: true}

// stateFileName is the snapshot the emulator keeps in Config.DataDir.
const stateFileName = "kcemu-state.json"

// state is everything the emulator knows. A snapshot serialises it whole,
// so every persisted field must be exported and JSON-friendly.
type state struct {
	FormatVersion int               `json:"formatVersion"`
	Seq           uint64            `json:"seq"`    // last change record the snapshot includes
	Realms        map[string]*realm `json:"realms"` // by realm name

	dirty map[string]struct{} // realms created or deleted since the last commit
}

type realm struct {
	ID                    string                  `json:"id"`
	Name                  string                  `json:"name"`
	DisplayName           string                  `json:"displayName,omitempty"`
	Enabled               bool                    `json:"enabled"`
	AccessTokenLifespan   int                     `json:"accessTokenLifespan"`   // seconds
	SSOSessionIdleTimeout int                     `json:"ssoSessionIdleTimeout"` // seconds; refresh token lifespan
	SSOSessionMaxLifespan int                     `json:"ssoSessionMaxLifespan"` // seconds
	DefaultRoleID         string                  `json:"defaultRoleId"`
	SigningKeyPEM         string                  `json:"signingKeyPem"` // PKCS#8 RSA private key
	HMACKey               []byte                  `json:"hmacKey"`       // signs refresh tokens (HS512)
	HMACKeyID             string                  `json:"hmacKeyId"`
	Clients               map[string]*client      `json:"clients"`                // by internal id
	Users                 map[string]*user        `json:"users"`                  // by id
	Roles                 map[string]*role        `json:"roles"`                  // by id, realm and client roles
	RevokedSessions       map[string]int64        `json:"revokedSessions"`        // sid -> unix expiry of the revocation
	ClientScopes          map[string]*clientScope `json:"clientScopes,omitempty"` // by id; the realm's own, not the built-in ones

	// Derived at load; never serialised.
	key   *rsa.PrivateKey
	keyID string
	idx   index
	dirty map[dirtyKey]struct{} // changed since the last commit
}

type client struct {
	ID                        string            `json:"id"`
	ClientID                  string            `json:"clientId"`
	Name                      string            `json:"name,omitempty"`
	Description               string            `json:"description,omitempty"`
	RootURL                   string            `json:"rootUrl,omitempty"`
	BaseURL                   string            `json:"baseUrl,omitempty"`
	Enabled                   bool              `json:"enabled"`
	Secret                    string            `json:"secret,omitempty"`
	PublicClient              bool              `json:"publicClient"`
	BearerOnly                bool              `json:"bearerOnly"`
	ServiceAccountsEnabled    bool              `json:"serviceAccountsEnabled"`
	DirectAccessGrantsEnabled bool              `json:"directAccessGrantsEnabled"`
	StandardFlowEnabled       bool              `json:"standardFlowEnabled"`
	ImplicitFlowEnabled       bool              `json:"implicitFlowEnabled"`
	ConsentRequired           bool              `json:"consentRequired"`
	FullScopeAllowed          bool              `json:"fullScopeAllowed"`
	Protocol                  string            `json:"protocol,omitempty"`
	RedirectURIs              []string          `json:"redirectUris"`
	WebOrigins                []string          `json:"webOrigins"`
	Attributes                map[string]string `json:"attributes"`
	ProtocolMappers           []protocolMapper  `json:"protocolMappers,omitempty"`
	// ScopeRoleIDs is the client's role scope mapping: with FullScopeAllowed
	// off, its tokens carry only these roles (and the client's own).
	ScopeRoleIDs []string `json:"scopeRoleIds,omitempty"`
}

type protocolMapper struct {
	ID              string            `json:"id,omitempty"`
	Name            string            `json:"name"`
	Protocol        string            `json:"protocol,omitempty"`
	ProtocolMapper  string            `json:"protocolMapper"`
	ConsentRequired bool              `json:"consentRequired"`
	Config          map[string]string `json:"config,omitempty"`
}

type user struct {
	ID               string          `json:"id"`
	Username         string          `json:"username"`
	Email            string          `json:"email,omitempty"`
	FirstName        string          `json:"firstName,omitempty"`
	LastName         string          `json:"lastName,omitempty"`
	EmailVerified    bool            `json:"emailVerified"`
	Enabled          bool            `json:"enabled"`
	CreatedTimestamp int64           `json:"createdTimestamp"`
	ServiceAccountOf string          `json:"serviceAccountOf,omitempty"` // internal client id
	Password         *passwordHash   `json:"password,omitempty"`
	RoleIDs          map[string]bool `json:"roleIds"` // direct mappings, realm and client roles
}

type role struct {
	ID          string              `json:"id"`
	Name        string              `json:"name"`
	Description string              `json:"description,omitempty"`
	ClientID    string              `json:"clientId,omitempty"`   // internal client id; "" = realm role
	Composites  []string            `json:"composites,omitempty"` // role ids
	Attributes  map[string][]string `json:"attributes,omitempty"`
}

func newState() *state {
	return &state{FormatVersion: stateFormatVersion, Realms: map[string]*realm{}}
}

// loaded derives what a read realm does not store: keys, empty maps and
// the lookups.
func (r *realm) loaded(name string) error {
	if r.Name != name {
		return fmt.Errorf("realm %q is stored as %q", r.Name, name)
	}
	if err := r.loadKeys(); err != nil {
		return err
	}
	r.ensureMaps()
	r.reindex()
	return nil
}

// newRealmKeys gives a realm fresh signing material.
func (r *realm) newKeys() error {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("generate RSA key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return fmt.Errorf("marshal RSA key: %w", err)
	}
	r.SigningKeyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	r.HMACKey = make([]byte, 64)
	if _, err := rand.Read(r.HMACKey); err != nil {
		return fmt.Errorf("generate HMAC key: %w", err)
	}
	r.HMACKeyID = newID()
	return r.loadKeys()
}

// loadKeys parses the persisted PEM into the derived fields.
func (r *realm) loadKeys() error {
	block, _ := pem.Decode([]byte(r.SigningKeyPEM))
	if block == nil {
		return fmt.Errorf("realm %q: signing key is not PEM", r.Name)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return fmt.Errorf("realm %q: parse signing key: %w", r.Name, err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return fmt.Errorf("realm %q: signing key is not RSA", r.Name)
	}
	r.key = rk
	r.keyID = keyThumbprint(&rk.PublicKey)
	return nil
}

// keyThumbprint is the RFC 7638 thumbprint, a stable kid for the key.
func keyThumbprint(pub *rsa.PublicKey) string {
	j := fmt.Sprintf(`{"e":%q,"kty":"RSA","n":%q}`, b64(bigEndian(pub.E)), b64(pub.N.Bytes()))
	sum := sha256.Sum256([]byte(j))
	return b64(sum[:])
}

func bigEndian(e int) []byte {
	var out []byte
	for ; e > 0; e >>= 8 {
		out = append([]byte{byte(e)}, out...)
	}
	return out
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// writeFileAtomic replaces path with data so that a crash at any instant
// leaves either the old or the new file, never a torn one.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temp state file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("fsync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename state file: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open data dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync data dir: %w", err)
	}
	return nil
}

// errFresh is the hint every unreadable state file carries.
const errFresh = "start with --fresh (or delete " + stateFileName + " and " + logFileName + ") to begin from an empty emulator"

// loadSnapshot reads the snapshot; a missing file is an empty state.
func loadSnapshot(path string) (*state, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return newState(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read emulator state %s: %w", path, err)
	}
	var probe struct {
		FormatVersion *int `json:"formatVersion"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("emulator state %s is corrupt (%v); %s", path, err, errFresh)
	}
	if probe.FormatVersion == nil || !readableFormats[*probe.FormatVersion] {
		got := "none"
		if probe.FormatVersion != nil {
			got = fmt.Sprint(*probe.FormatVersion)
		}
		return nil, fmt.Errorf("emulator state %s has format version %s, this emulator reads %d; %s",
			path, got, stateFormatVersion, errFresh)
	}
	st := newState()
	if err := json.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("emulator state %s is corrupt (%v); %s", path, err, errFresh)
	}
	st.FormatVersion = stateFormatVersion
	for name, r := range st.Realms {
		if r == nil {
			return nil, fmt.Errorf("emulator state %s is corrupt (realm %q); %s", path, name, errFresh)
		}
		if err := r.loaded(name); err != nil {
			return nil, fmt.Errorf("emulator state %s is corrupt (%v); %s", path, err, errFresh)
		}
	}
	return st, nil
}

func (r *realm) ensureMaps() {
	if r.Clients == nil {
		r.Clients = map[string]*client{}
	}
	if r.Users == nil {
		r.Users = map[string]*user{}
	}
	if r.Roles == nil {
		r.Roles = map[string]*role{}
	}
	if r.RevokedSessions == nil {
		r.RevokedSessions = map[string]int64{}
	}
	if r.ClientScopes == nil {
		r.ClientScopes = map[string]*clientScope{}
	}
	for _, u := range r.Users {
		u.ensureMaps()
	}
	for _, c := range r.Clients {
		c.ensureMaps()
	}
}

func (u *user) ensureMaps() {
	if u.RoleIDs == nil {
		u.RoleIDs = map[string]bool{}
	}
}

func (c *client) ensureMaps() {
	if c.Attributes == nil {
		c.Attributes = map[string]string{}
	}
}

// StateFile is the snapshot the emulator keeps its state in under dataDir;
// LogFile holds the changes since. Removing both (RemoveState) starts the
// emulator from nothing.
func StateFile(dataDir string) string { return filepath.Join(dataDir, stateFileName) }

// CheckState reads the state kept in dataDir without serving it, so a
// supervisor can refuse a corrupt or older state before it starts
// anything; the error names the file. No file is a blank state: nil.
func CheckState(dataDir string) error {
	_, err := loadState(dataDir)
	return err
}

// RemoveState deletes the state kept in dataDir, leaving the directory's
// other files alone.
func RemoveState(dataDir string) error {
	for _, p := range []string{StateFile(dataDir), LogFile(dataDir)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove emulator state: %w", err)
		}
	}
	return nil
}
