package names

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
)

// ErrTaken: the name is reserved by another command, or its reservation
// changed since it was read.
var ErrTaken = errors.New("name is reserved")

// Reservation is the value of a reserved name: which create command
// claimed it, for whom, and when.
type Reservation struct {
	CommandID          string    `json:"command_id"`
	Actor              string    `json:"actor"`
	Owner              string    `json:"owner,omitempty"`
	IdempotencyKeyHash string    `json:"idempotency_key_hash,omitempty"`
	CreatedAt          time.Time `json:"created_at"`
	// DeleteAcceptedAt is when the API accepted a delete of the workspace
	// (nil: none), so that reads show it deleting before the worker has
	// said anything.
	DeleteAcceptedAt *time.Time `json:"delete_accepted_at,omitempty"`
	// HeldUntil makes the reservation a tombstone: the workspace was
	// deleted at DeletedAt and its name is taken by no one before then,
	// so grants left elsewhere for it (a token audience, a policy) cannot
	// apply to a stranger's new workspace of that name.
	HeldUntil *time.Time `json:"held_until,omitempty"`
	DeletedAt *time.Time `json:"deleted_at,omitempty"`
}

// Held reports whether r is a tombstone still in force at now.
func (r Reservation) Held(now time.Time) bool {
	return r.HeldUntil != nil && now.Before(*r.HeldUntil)
}

// KV keeps the reservations, one key per name.
type KV struct{ kv jetstream.KeyValue }

// NewKV binds to the names bucket.
func NewKV(kv jetstream.KeyValue) *KV { return &KV{kv: kv} }

var _ sagas.Names = (*KV)(nil)

// Get returns the reservation of name and its revision; revision 0
// means the name is free.
func (n *KV) Get(ctx context.Context, name string) (Reservation, uint64, error) {
	e, err := n.kv.Get(ctx, name)
	if events.IsNotFound(err) {
		return Reservation{}, 0, nil
	}
	if err != nil {
		return Reservation{}, 0, fmt.Errorf("read reservation %s: %w", name, err)
	}
	var r Reservation
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return Reservation{}, 0, fmt.Errorf("decode reservation %s: %w", name, err)
	}
	return r, e.Revision(), nil
}

// Reserve claims a free name; ErrTaken if it is reserved.
func (n *KV) Reserve(ctx context.Context, name string, r Reservation) (uint64, error) {
	return n.write(ctx, name, r, 0)
}

// Claim replaces the reservation of name at revision rev with r (a name
// whose workspace was deleted, or the undo of such a claim); ErrTaken if
// the reservation changed since.
func (n *KV) Claim(ctx context.Context, name string, r Reservation, rev uint64) (uint64, error) {
	return n.write(ctx, name, r, rev)
}

// Unreserve gives a name back if its reservation is still at rev.
func (n *KV) Unreserve(ctx context.Context, name string, rev uint64) error {
	err := n.kv.Delete(ctx, name, jetstream.LastRevision(rev))
	if events.IsConflict(err) {
		return fmt.Errorf("unreserve name %s: %w", name, ErrTaken)
	}
	if err != nil {
		return fmt.Errorf("unreserve name %s: %w", name, err)
	}
	return nil
}

// Hold leaves a tombstone on the name of a workspace just deleted, in
// place of its reservation, until until; a zero until frees the name at
// once. Repeating it only moves until.
func (n *KV) Hold(ctx context.Context, name string, until time.Time) error {
	if until.IsZero() {
		return n.Release(ctx, name)
	}
	now := time.Now().UTC()
	until = until.UTC()
	raw, err := json.Marshal(Reservation{CreatedAt: now, DeletedAt: &now, HeldUntil: &until})
	if err != nil {
		return fmt.Errorf("encode tombstone %s: %w", name, err)
	}
	if _, err := n.kv.Put(ctx, name, raw); err != nil {
		return fmt.Errorf("hold name %s: %w", name, err)
	}
	return nil
}

// HeldUntil returns until when the name of a deleted workspace is held;
// zero when it is not (free, reserved, or its hold is over).
func (n *KV) HeldUntil(ctx context.Context, name string) (time.Time, error) {
	r, _, err := n.Get(ctx, name)
	if err != nil || !r.Held(time.Now()) {
		return time.Time{}, err
	}
	return *r.HeldUntil, nil
}

// Release frees the name of a deleted workspace; free already is success.
func (n *KV) Release(ctx context.Context, name string) error {
	if err := n.kv.Delete(ctx, name); err != nil && !events.IsNotFound(err) {
		return fmt.Errorf("release name %s: %w", name, err)
	}
	return nil
}

func (n *KV) write(ctx context.Context, name string, r Reservation, rev uint64) (uint64, error) {
	raw, err := json.Marshal(r)
	if err != nil {
		return 0, fmt.Errorf("encode reservation %s: %w", name, err)
	}
	var next uint64
	if rev == 0 {
		next, err = n.kv.Create(ctx, name, raw)
	} else {
		next, err = n.kv.Update(ctx, name, raw, rev)
	}
	if events.IsConflict(err) {
		return 0, fmt.Errorf("reserve name %s: %w", name, ErrTaken)
	}
	if err != nil {
		return 0, fmt.Errorf("reserve name %s: %w", name, err)
	}
	return next, nil
}
