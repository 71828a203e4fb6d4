// Package shares keeps share links in a KV bucket (events.SharesBucket):
// one key per link, "<workspace>.<id>", holding the hash of its secret,
// never the secret.
package shares

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
)

// Why a share link stopped working; "" while it works.
const (
	EndRevoked = "revoked"
	EndExpired = "expired"
	EndUsedUp  = "used_up"
)

// Share is one share link's record.
type Share struct {
	ID        string    `json:"id"`
	Workspace string    `json:"workspace"`
	Path      string    `json:"path"`
	Hash      string    `json:"hash"` // hex SHA-256 of the secret
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	MaxUses   int       `json:"max_uses,omitempty"` // 0: unlimited
	Uses      int       `json:"uses"`
	// RevokedAt and RevokedBy say who revoked it, when.
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	RevokedBy string     `json:"revoked_by,omitempty"`
	// Reported is the end whose event was published (so it is once).
	Reported string `json:"reported,omitempty"`
}

// End says why the link no longer works at now, "" if it does.
func (s Share) End(now time.Time) string {
	switch {
	case s.RevokedAt != nil:
		return EndRevoked
	case s.MaxUses > 0 && s.Uses >= s.MaxUses:
		return EndUsedUp
	case !now.Before(s.ExpiresAt):
		return EndExpired
	}
	return ""
}

// Errors of the store.
var (
	ErrNotFound = errors.New("no such share link")
	// ErrEnded: the link stopped working before this use.
	ErrEnded = errors.New("share link no longer works")
)

// Token is a share link's public part: "<workspace>.<id>.<secret>", the
// workspace and id locating its record, the secret proving the holder
// got it from the link. Neither '.' nor anything else a workspace name,
// a hex id or base64url lacks can appear inside a part.
type Token struct{ Workspace, ID, Secret string }

func (t Token) String() string { return t.Workspace + "." + t.ID + "." + t.Secret }

// Sizes: the id is 64 random bits (it names the link in lists and
// events, no secret); the secret 256 bits.
const (
	idBytes     = 8
	secretBytes = 32
	secretChars = 43 // base64url of 32 bytes, unpadded
)

// NewToken returns a fresh link's token for a workspace.
func NewToken(workspace string) (Token, error) {
	id := make([]byte, idBytes)
	secret := make([]byte, secretBytes)
	if _, err := rand.Read(id); err != nil {
		return Token{}, fmt.Errorf("share id: %w", err)
	}
	if _, err := rand.Read(secret); err != nil {
		return Token{}, fmt.Errorf("share secret: %w", err)
	}
	return Token{Workspace: workspace, ID: hex.EncodeToString(id), Secret: base64.RawURLEncoding.EncodeToString(secret)}, nil
}

// ParseToken reads a token from a URL; false for anything malformed.
func ParseToken(s string) (Token, bool) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || !ValidID(parts[1]) || len(parts[2]) != secretChars || events.ValidateName(parts[0]) != nil {
		return Token{}, false
	}
	if _, err := base64.RawURLEncoding.DecodeString(parts[2]); err != nil {
		return Token{}, false
	}
	return Token{Workspace: parts[0], ID: parts[1], Secret: parts[2]}, true
}

// ValidID reports whether id has the shape of a share id.
func ValidID(id string) bool {
	if len(id) != 2*idBytes {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil && strings.ToLower(id) == id
}

// Hash is what a record keeps of a secret.
func Hash(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// Matches compares the secret's hash with the record's in constant time,
// so a wrong guess learns nothing from how long the answer took.
func (s Share) Matches(secret string) bool {
	return subtle.ConstantTimeCompare([]byte(Hash(secret)), []byte(s.Hash)) == 1
}

// KV keeps the share links.
type KV struct{ kv jetstream.KeyValue }

// NewKV binds to the shares bucket.
func NewKV(kv jetstream.KeyValue) *KV { return &KV{kv: kv} }

var _ sagas.Shares = (*KV)(nil)

func key(workspace, id string) string { return workspace + "." + id }

// Create stores a new link.
func (k *KV) Create(ctx context.Context, s Share) error {
	raw, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode share %s: %w", s.ID, err)
	}
	if _, err := k.kv.Create(ctx, key(s.Workspace, s.ID), raw); err != nil {
		return fmt.Errorf("store share %s of %s: %w", s.ID, s.Workspace, err)
	}
	return nil
}

// Get returns a link and its revision; ErrNotFound if there is none.
func (k *KV) Get(ctx context.Context, workspace, id string) (Share, uint64, error) {
	e, err := k.kv.Get(ctx, key(workspace, id))
	if events.IsNotFound(err) {
		return Share{}, 0, ErrNotFound
	}
	if err != nil {
		return Share{}, 0, fmt.Errorf("read share %s of %s: %w", id, workspace, err)
	}
	var s Share
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		return Share{}, 0, fmt.Errorf("decode share %s of %s: %w", id, workspace, err)
	}
	return s, e.Revision(), nil
}

// Change applies edit to the link's current record and writes it back
// with compare-and-set, reading again when another writer was first, so
// concurrent changes (uses above all) are never lost. edit returns an
// error to leave the record as it is.
func (k *KV) Change(ctx context.Context, workspace, id string, edit func(*Share) error) (Share, error) {
	return k.changeFrom(ctx, workspace, id, Share{}, 0, edit)
}

// changeFrom is Change starting from a record already read at rev (0:
// none read), saving a read when nobody wrote since.
func (k *KV) changeFrom(ctx context.Context, workspace, id string, s Share, rev uint64, edit func(*Share) error) (Share, error) {
	for {
		if rev == 0 {
			var err error
			if s, rev, err = k.Get(ctx, workspace, id); err != nil {
				return s, err
			}
		}
		if err := edit(&s); err != nil {
			return s, err
		}
		raw, err := json.Marshal(s)
		if err != nil {
			return s, fmt.Errorf("encode share %s: %w", id, err)
		}
		_, err = k.kv.Update(ctx, key(workspace, id), raw, rev)
		if err == nil {
			return s, nil
		}
		if !events.IsConflict(err) {
			return s, fmt.Errorf("update share %s of %s: %w", id, workspace, err)
		}
		if ctx.Err() != nil {
			return s, ctx.Err()
		}
		rev = 0 // someone else was first: read again
	}
}

// Use counts one use of a working link, read at rev: exactly max_uses
// uses succeed, however many run at once. ErrEnded if it no longer works.
func (k *KV) Use(ctx context.Context, s Share, rev uint64, now time.Time) (Share, error) {
	return k.changeFrom(ctx, s.Workspace, s.ID, s, rev, func(s *Share) error {
		if s.End(now) != "" {
			return ErrEnded
		}
		s.Uses++
		return nil
	})
}

// List returns a workspace's links (every workspace's with ""), ended
// ones included. It reads them all in one watch of the bucket's latest
// values rather than a read per key.
func (k *KV) List(ctx context.Context, workspace string) ([]Share, error) {
	w, err := k.kv.Watch(ctx, filter(workspace), jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("list shares of %q: %w", workspace, err)
	}
	defer func() { _ = w.Stop() }()
	var out []Share
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("list shares of %q: %w", workspace, ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("list shares of %q: watch closed", workspace)
			}
			if e == nil { // the latest values are all in
				return out, nil
			}
			var s Share
			if err := json.Unmarshal(e.Value(), &s); err != nil {
				return nil, fmt.Errorf("decode share %s: %w", e.Key(), err)
			}
			out = append(out, s)
		}
	}
}

// filter is the key filter of a workspace's links, or of all with "".
func filter(workspace string) string {
	if workspace == "" {
		return ">"
	}
	return workspace + ".*"
}

func (k *KV) keys(ctx context.Context, filter string) ([]string, error) {
	l, err := k.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("list shares %s: %w", filter, err)
	}
	var out []string
	for kk := range l.Keys() {
		out = append(out, kk)
	}
	return out, nil
}

// DropWorkspace forgets every link of a deleted workspace, so none
// comes back with a workspace made later under the same name.
func (k *KV) DropWorkspace(ctx context.Context, workspace string) error {
	if workspace == "" {
		return errors.New("drop shares: no workspace named")
	}
	keys, err := k.keys(ctx, filter(workspace))
	if err != nil {
		return err
	}
	for _, kk := range keys {
		if err := k.kv.Purge(ctx, kk); err != nil && !events.IsNotFound(err) {
			return fmt.Errorf("drop share %s: %w", kk, err)
		}
	}
	return nil
}
