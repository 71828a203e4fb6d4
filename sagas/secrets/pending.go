package secrets

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
)

// A pending member pair left to the Issuer (Pending and Deferred: stored,
// its MinIO user not known to exist) is also listed under pending.<workspace>.<hash of username>, as plain JSON
// naming whose pair it is and nothing secret, so the Issuer finds the few
// pending pairs without decrypting every member's. The index is written
// before a pending pair and dropped after the pair stops being pending;
// an entry left behind by a crash is dropped by the Issuer when it finds
// the pair issued, and here when the pair has been gone for a while (not
// at once: a pending pair is written just after its index entry).
const pendingPrefix = "pending."

func pendingKey(ws, username string) string {
	return pendingPrefix + memberKey(ws, username)
}

type pendingRef struct {
	Workspace string `json:"workspace"`
	Username  string `json:"username"`
}

// listed tells whether c belongs in the pending index.
func listed(c sagas.Credential) bool { return c.Pending && c.Deferred }

// index records or drops username's entry in the pending index, as c
// says.
func (s *Store) index(ctx context.Context, ws, username string, c sagas.Credential) error {
	key := pendingKey(ws, username)
	if !listed(c) {
		if err := s.kv.Purge(ctx, key); err != nil && !events.IsNotFound(err) {
			return fmt.Errorf("unlist pending pair of %s: %w", ws, err)
		}
		return nil
	}
	raw, err := json.Marshal(pendingRef{Workspace: ws, Username: username})
	if err != nil {
		return fmt.Errorf("encode pending pair of %s: %w", ws, err)
	}
	if _, err := s.kv.Put(ctx, key, raw); err != nil {
		return fmt.Errorf("list pending pair of %s: %w", ws, err)
	}
	return nil
}

// PendingMembers lists the member pairs stored as pending, in every
// workspace (an entry may be stale: read the pair before acting).
func (s *Store) PendingMembers(ctx context.Context) ([]sagas.MemberRef, error) {
	keys, err := s.keys(ctx, pendingPrefix+">")
	if err != nil {
		return nil, fmt.Errorf("list pending pairs: %w", err)
	}
	out := make([]sagas.MemberRef, 0, len(keys))
	for _, k := range keys {
		e, err := s.kv.Get(ctx, k)
		if events.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read pending pair %s: %w", k, err)
		}
		var r pendingRef
		if err := json.Unmarshal(e.Value(), &r); err != nil {
			return nil, fmt.Errorf("decode pending pair %s: %w", k, err)
		}
		if gone, err := s.orphan(ctx, k, e); err != nil || gone {
			if err != nil {
				return nil, err
			}
			continue
		}
		out = append(out, sagas.MemberRef(r))
	}
	return out, nil
}

// orphanAge is how long an index entry may name an absent pair: far
// longer than between writing the entry and the pair.
const orphanAge = time.Minute

// orphan drops the index entry e (at key k) if its pair has been gone
// for orphanAge, and says so.
func (s *Store) orphan(ctx context.Context, k string, e jetstream.KeyValueEntry) (bool, error) {
	if time.Since(e.Created()) < orphanAge {
		return false, nil
	}
	_, err := s.kv.Get(ctx, strings.TrimPrefix(k, pendingPrefix))
	if !events.IsNotFound(err) {
		return false, err
	}
	err = s.kv.Delete(ctx, k, jetstream.LastRevision(e.Revision()))
	if err != nil && !events.IsConflict(err) && !events.IsNotFound(err) {
		return false, fmt.Errorf("drop orphan pending entry: %w", err)
	}
	return true, nil
}

// GetMemberRev is GetMember with the entry's revision, for UpdateMember.
func (s *Store) GetMemberRev(ctx context.Context, ws, username string) (sagas.Credential, uint64, bool, error) {
	e, err := s.kv.Get(ctx, memberKey(ws, username))
	if events.IsNotFound(err) {
		return sagas.Credential{}, 0, false, nil
	}
	if err != nil {
		return sagas.Credential{}, 0, false, fmt.Errorf("read member credential of %s: %w", ws, err)
	}
	c, err := s.open(memberKey(ws, username), e.Value())
	if err != nil {
		return sagas.Credential{}, 0, false, err
	}
	return c, e.Revision(), true, nil
}

// UpdateMember replaces username's pair if its entry is still at rev;
// sagas.ErrCredentialChanged if another writer was first.
func (s *Store) UpdateMember(ctx context.Context, ws, username string, c sagas.Credential, rev uint64) error {
	c.Username = username
	if listed(c) {
		if err := s.index(ctx, ws, username, c); err != nil {
			return err
		}
	}
	sealed, err := s.seal(memberKey(ws, username), c)
	if err != nil {
		return err
	}
	if _, err := s.kv.Update(ctx, memberKey(ws, username), sealed, rev); err != nil {
		if events.IsConflict(err) || events.IsNotFound(err) {
			return fmt.Errorf("member credential of %s: %w", ws, sagas.ErrCredentialChanged)
		}
		return fmt.Errorf("update member credential of %s: %w", ws, err)
	}
	if !listed(c) {
		return s.index(ctx, ws, username, c)
	}
	return nil
}
