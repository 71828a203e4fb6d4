package sagas

import (
	"context"
	"fmt"
	"time"

	"github.com/eo-workspaces/provisioner/events"
)

// Rotation (workspace.credentials.rotate) replaces a member's key pair,
// or every member's, as a side saga of a ready workspace. The old pair
// keeps working for the grace the command gives: it is recorded as a
// retirement before the new pair replaces it, and the Retirer deletes it
// once the grace is over (at once with no grace).

// Rotate is the rotation saga.
func (p *Provisioner) Rotate() Saga {
	return Saga{Name: SagaRotate, Side: true, Steps: []Step{
		{Name: "rotate_keys", Do: p.rotateKeys, Events: keysRotated},
		{Name: "retire_keys", Do: p.retireNow, Events: keysRetired},
	}}
}

func (p *Provisioner) rotateKeys(ctx context.Context, st *State) error {
	targets := []string{st.Params.Username}
	if st.Params.All {
		members, err := p.d.Vault.Members(ctx, st.Workspace)
		if err != nil {
			return err
		}
		targets = targets[:0]
		for _, m := range members {
			targets = append(targets, m.Username)
		}
	}
	if st.Params.RotatedAt.IsZero() {
		st.Params.RotatedAt = time.Now().UTC().Truncate(time.Second)
	}
	var rotated []string
	for _, u := range targets {
		ok, err := p.rotateMember(ctx, st, u)
		if err != nil {
			return fmt.Errorf("keys of %s: %w", u, err)
		}
		if ok {
			rotated = append(rotated, u)
		}
	}
	st.Params.Rotated = rotated
	return nil
}

// rotateMember replaces username's pair, reporting false for a user who
// holds none. Each write comes before what depends on it, so a repeat
// after a crash picks up where the last attempt stopped: the new pair is
// stored (as Next) before its user exists, the old pair's retirement is
// recorded before the new pair replaces it, and a pair this command
// issued already (RotatedBy) is not replaced again.
func (p *Provisioner) rotateMember(ctx context.Context, st *State, username string) (bool, error) {
	cur, ok, err := p.d.Vault.GetMember(ctx, st.Workspace, username)
	if err != nil || !ok {
		return false, err
	}
	if cur.RotatedBy == st.CommandID {
		return true, nil
	}
	if cur.Policy == "" {
		cur.Policy = st.Workspace
	}
	if cur.Next == nil || cur.Next.RotatedBy != st.CommandID {
		fresh, err := newKeyPair()
		if err != nil {
			return false, err
		}
		fresh.Username, fresh.Policy, fresh.RotatedBy = username, cur.Policy, st.CommandID
		cur.Next = &fresh
		if err := p.d.Vault.PutMember(ctx, st.Workspace, username, cur); err != nil {
			return false, err
		}
	}
	next := *cur.Next
	if err := p.d.Store.EnsureUser(ctx, next.AccessKey, next.SecretKey, next.Policy); err != nil {
		return false, redact(err, next.SecretKey)
	}
	err = p.d.Vault.Retire(ctx, Retirement{Workspace: st.Workspace, Username: username, AccessKey: cur.AccessKey,
		Until: st.Params.RotatedAt.Add(st.Params.Grace), Actor: st.Actor, CommandID: st.CommandID})
	if err != nil {
		return false, err
	}
	return true, p.d.Vault.PutMember(ctx, st.Workspace, username, next)
}

// retireNow deletes the old pairs at once when the rotation gave no
// grace; with grace the Retirer does it when the time comes.
func (p *Provisioner) retireNow(ctx context.Context, st *State) error {
	if st.Params.Grace > 0 {
		return nil
	}
	due, err := p.d.Vault.Retirements(ctx)
	if err != nil {
		return err
	}
	for _, r := range due {
		if r.Workspace == st.Workspace && r.CommandID == st.CommandID {
			if err := retire(ctx, p.d.Store, p.d.Vault, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// retire deletes the old pair's user, then forgets the retirement.
func retire(ctx context.Context, store ObjectStore, vault Vault, r Retirement) error {
	if err := store.DeleteUser(ctx, r.AccessKey); err != nil {
		return err
	}
	return vault.Retired(ctx, r)
}

func keysRotated(st *State) []events.Payload {
	out := make([]events.Payload, 0, len(st.Params.Rotated))
	for _, u := range st.Params.Rotated {
		ev := &events.CredentialsIssued{Username: u, Reason: "rotated"}
		if st.Params.Grace > 0 {
			until := st.Params.RotatedAt.Add(st.Params.Grace)
			ev.PreviousValidUntil = &until
		}
		out = append(out, ev)
	}
	return out
}

func keysRetired(st *State) []events.Payload {
	if st.Params.Grace > 0 {
		return nil // the Retirer reports them when it deletes them
	}
	out := make([]events.Payload, 0, len(st.Params.Rotated))
	for _, u := range st.Params.Rotated {
		out = append(out, &events.CredentialsRevoked{Username: u, Reason: "rotated"})
	}
	return out
}
