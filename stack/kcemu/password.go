package kcemu

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"strconv"
	"sync"

	"golang.org/x/crypto/argon2"
)

// passwordHash is a stored password in Keycloak's own credential terms, so
// hashed credentials from realm exports can be verified as they are.
type passwordHash struct {
	Algorithm  string            `json:"algorithm"`
	Iterations int               `json:"iterations"`
	Salt       []byte            `json:"salt"`
	Value      []byte            `json:"value"`
	Params     map[string]string `json:"params,omitempty"` // argon2's additionalParameters
}

// hashIterations is Keycloak's historical pbkdf2-sha256 default; the
// emulator favours throughput over Keycloak 26's costlier argon2 default.
const hashIterations = 27500

func hashPassword(pw string) (*passwordHash, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("salt: %w", err)
	}
	v, err := pbkdf2.Key(sha256.New, pw, salt, hashIterations, 32)
	if err != nil {
		return nil, fmt.Errorf("pbkdf2: %w", err)
	}
	return &passwordHash{Algorithm: "pbkdf2-sha256", Iterations: hashIterations, Salt: salt, Value: v}, nil
}

// verifier checks passwords, remembering successes so repeated logins (load
// tests) do not pay the hash each time. It never remembers a failure.
type verifier struct {
	ok sync.Map // string(stored value)+sha256(pw) -> struct{}
}

func (v *verifier) verify(h *passwordHash, pw string) bool {
	if h == nil {
		return false
	}
	sum := sha256.Sum256([]byte(pw))
	key := string(h.Value) + string(sum[:])
	if _, hit := v.ok.Load(key); hit {
		return true
	}
	got, err := h.derive(pw)
	if err != nil || subtle.ConstantTimeCompare(got, h.Value) != 1 {
		return false
	}
	v.ok.Store(key, struct{}{})
	return true
}

func (h *passwordHash) derive(pw string) ([]byte, error) {
	var fn func() hash.Hash
	switch h.Algorithm {
	case "pbkdf2":
		fn = sha1.New
	case "pbkdf2-sha256":
		fn = sha256.New
	case "pbkdf2-sha512":
		fn = sha512.New
	case "argon2":
		return h.argon2(pw)
	default:
		return nil, fmt.Errorf("unsupported password hash algorithm %q", h.Algorithm)
	}
	return pbkdf2.Key(fn, pw, h.Salt, h.Iterations, len(h.Value))
}

func (h *passwordHash) argon2(pw string) ([]byte, error) {
	num := func(k string, def int) int {
		if n, err := strconv.Atoi(h.Params[k]); err == nil {
			return n
		}
		return def
	}
	if v := h.Params["version"]; v != "" && v != "1.3" {
		return nil, fmt.Errorf("unsupported argon2 version %q", v)
	}
	mem, par, n := uint32(num("memory", 7168)), uint8(num("parallelism", 1)), uint32(len(h.Value))
	switch h.Params["type"] {
	case "", "id":
		return argon2.IDKey([]byte(pw), h.Salt, uint32(h.Iterations), mem, par, n), nil
	case "i":
		return argon2.Key([]byte(pw), h.Salt, uint32(h.Iterations), mem, par, n), nil
	default:
		return nil, fmt.Errorf("unsupported argon2 type %q", h.Params["type"])
	}
}

// parseExportedHash reads a hashed credential from a realm export
// (secretData and credentialData are JSON strings).
func parseExportedHash(secretData, credentialData string) (*passwordHash, error) {
	var sd struct {
		Value string `json:"value"`
		Salt  string `json:"salt"`
	}
	var cd struct {
		HashIterations       int                 `json:"hashIterations"`
		Algorithm            string              `json:"algorithm"`
		AdditionalParameters map[string][]string `json:"additionalParameters"`
	}
	if err := json.Unmarshal([]byte(secretData), &sd); err != nil {
		return nil, fmt.Errorf("secretData: %w", err)
	}
	if err := json.Unmarshal([]byte(credentialData), &cd); err != nil {
		return nil, fmt.Errorf("credentialData: %w", err)
	}
	value, err := base64.StdEncoding.DecodeString(sd.Value)
	if err != nil {
		return nil, fmt.Errorf("hash value: %w", err)
	}
	salt, err := base64.StdEncoding.DecodeString(sd.Salt)
	if err != nil {
		return nil, fmt.Errorf("salt: %w", err)
	}
	h := &passwordHash{Algorithm: cd.Algorithm, Iterations: cd.HashIterations, Salt: salt, Value: value}
	if len(cd.AdditionalParameters) > 0 {
		h.Params = map[string]string{}
		for k, v := range cd.AdditionalParameters {
			if len(v) > 0 {
				h.Params[k] = v[0]
			}
		}
	}
	return h, nil
}
