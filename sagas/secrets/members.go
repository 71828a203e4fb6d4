package secrets

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/eo-workspaces/provisioner/sagas"
)

// A member's key pair lives under <workspace>.member.<hash of username>:
// usernames may hold characters KV keys may not (e.g. '@'), and the
// workspace prefix lets the delete saga list every member's keys.
func memberKey(ws, username string) string {
	h := sha256.Sum256([]byte(username))
	return ws + ".member." + hex.EncodeToString(h[:20])
}

// PutMemberIfAbsent stores c as username's key pair in ws unless one is
// stored already, and returns the stored one either way (see PutIfAbsent).
func (s *Store) PutMemberIfAbsent(ctx context.Context, ws, username string, c sagas.Credential) (sagas.Credential, error) {
	c.Username = username
	if listed(c) {
		if err := s.index(ctx, ws, username, c); err != nil {
			return sagas.Credential{}, err
		}
	}
	return s.putIfAbsent(ctx, memberKey(ws, username), c)
}

// PutMember stores c as username's key pair in ws, replacing what was
// there (a rotation).
func (s *Store) PutMember(ctx context.Context, ws, username string, c sagas.Credential) error {
	c.Username = username
	if listed(c) {
		if err := s.index(ctx, ws, username, c); err != nil {
			return err
		}
	}
	if err := s.Put(ctx, memberKey(ws, username), c); err != nil {
		return err
	}
	if !listed(c) {
		return s.index(ctx, ws, username, c)
	}
	return nil
}

// GetMember returns username's key pair in ws; ok is false when none is stored.
func (s *Store) GetMember(ctx context.Context, ws, username string) (sagas.Credential, bool, error) {
	return s.Get(ctx, memberKey(ws, username))
}

// DeleteMember removes username's key pair in ws; absent is success.
func (s *Store) DeleteMember(ctx context.Context, ws, username string) error {
	if err := s.Delete(ctx, memberKey(ws, username)); err != nil {
		return err
	}
	return s.index(ctx, ws, username, sagas.Credential{})
}

// Members returns every member key pair stored for ws.
func (s *Store) Members(ctx context.Context, ws string) ([]sagas.Credential, error) {
	keys, err := s.keys(ctx, ws+".member.*")
	if err != nil {
		return nil, fmt.Errorf("list member credentials of %s: %w", ws, err)
	}
	var out []sagas.Credential
	for _, key := range keys {
		c, ok, err := s.Get(ctx, key)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, c)
		}
	}
	return out, nil
}

// MemberCredentials returns the storage credentials block of the
// contract for username in ws, or (nil, nil) when they hold none.
func (s *Store) MemberCredentials(ctx context.Context, ws, username string) (map[string]string, error) {
	c, ok, err := s.GetMember(ctx, ws, username)
	if err != nil || !ok || c.Pending || c.Removing {
		return nil, err
	}
	return s.block(ws, c), nil
}

// keys lists the bucket's keys that match filter, read whole: the lister
// stops its watch once every key is drained.
func (s *Store) keys(ctx context.Context, filter string) ([]string, error) {
	lister, err := s.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, err
	}
	var out []string
	for k := range lister.Keys() {
		out = append(out, k)
	}
	return out, nil
}
