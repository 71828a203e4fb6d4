package sagas

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/events"
)

// Issuer makes the MinIO users of member pairs that a membership change
// stored as pending, and announces each with credentials.issued (reason
// joined) once MinIO knows it; until then the API shows the member no
// credentials (a pending pair is never shown). Adding a member thus needs
// Keycloak only: member.added is published once the role is held, and a
// MinIO outage delays the member's keys, not their membership.
//
// It works beside the sagas, outside the workspace's lease, so it never
// holds a command up. Every race with them ends safe because a pending
// pair has never been shown to anyone: the pair is re-read after its user
// is made and marked issued by compare-and-set only if it is still the
// same pending pair with the same policy; if a removal marked it, or it
// is gone or replaced, the user just made is deleted again. Every worker
// may run one: making a user twice is harmless, and the event's id is
// derived from the pair, so the stream keeps one.
type Issuer struct{ vaultSweeper }

// DefaultIssueInterval is how often the Issuer looks for pending pairs:
// how late a member's keys can follow MinIO's return.
const DefaultIssueInterval = time.Second

// NewIssuer returns an Issuer over the ports (interval 0: the default).
func NewIssuer(p Ports, interval time.Duration) (*Issuer, error) {
	s, err := newVaultSweeper("issuer", p, interval, DefaultIssueInterval)
	if err != nil {
		return nil, err
	}
	return &Issuer{s}, nil
}

// Run sweeps until ctx ends.
func (is *Issuer) Run(ctx context.Context) error {
	Every(ctx, is.interval, func(ctx context.Context, _ time.Time) error { return is.Sweep(ctx) }, func(err error) {
		is.log.Info("issuer: sweep incomplete; trying again", zap.Error(err))
	})
	return nil
}

// Sweep tries once to issue every pending pair.
func (is *Issuer) Sweep(ctx context.Context) error {
	pending, err := is.vault.PendingMembers(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range pending {
		if err := is.issue(ctx, m); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// issueTries bounds the compare-and-set loop of one pair in one sweep;
// the next sweep goes on.
const issueTries = 3

func (is *Issuer) issue(ctx context.Context, m MemberRef) error {
	for range issueTries {
		c, rev, ok, err := is.vault.GetMemberRev(ctx, m.Workspace, m.Username)
		if err != nil {
			return err
		}
		if !ok || c.Removing {
			return nil // gone (the vault drops its index entry) or left to its removal
		}
		if !c.Pending || !c.Deferred { // issued, or its saga's to make: rewrite it to drop its index entry
			if err := is.vault.UpdateMember(ctx, m.Workspace, m.Username, c, rev); !errors.Is(err, ErrCredentialChanged) {
				return err
			}
			continue
		}
		if err := is.store.EnsureUser(ctx, c.AccessKey, c.SecretKey, c.Policy); err != nil {
			return redact(err, c.SecretKey)
		}
		done, err := is.settle(ctx, m, c)
		if done || err != nil {
			return err
		}
	}
	return nil
}

// settle marks c issued if the stored pair is still c, pending with the
// same policy, and announces it; it undoes c's user if the pair was
// removed or replaced meanwhile. done false: read again and retry.
func (is *Issuer) settle(ctx context.Context, m MemberRef, c Credential) (done bool, err error) {
	now, rev, ok, err := is.vault.GetMemberRev(ctx, m.Workspace, m.Username)
	if err != nil {
		return false, err
	}
	if !ok || now.AccessKey != c.AccessKey || now.Removing {
		return true, redact(is.store.DeleteUser(ctx, c.AccessKey), c.SecretKey)
	}
	if !now.Pending || !now.Deferred {
		return true, nil
	}
	if now.Policy != c.Policy {
		return false, nil // a role change landed: apply the new policy
	}
	if err := is.announce(ctx, m, now); err != nil {
		return false, err
	}
	now.Pending, now.Deferred = false, false
	err = is.vault.UpdateMember(ctx, m.Workspace, m.Username, now, rev)
	if errors.Is(err, ErrCredentialChanged) {
		return false, nil
	}
	if err == nil {
		is.log.Info("issuer: member key pair issued", zap.String("workspace", m.Workspace), zap.String("username", m.Username))
	}
	return err == nil, err
}

// announce publishes credentials.issued before the pair is marked, so a
// crash in between repeats it with the same id, which the stream drops.
func (is *Issuer) announce(ctx context.Context, m MemberRef, c Credential) error {
	actor := c.Actor
	if actor == "" {
		actor = events.DefaultSource
	}
	id := uuid.NewSHA1(uuid.NameSpaceURL, []byte(events.DefaultSource+"/issue/"+m.Workspace+"/"+c.AccessKey)).String()
	env, err := events.New(m.Workspace, &events.CredentialsIssued{Username: m.Username, Reason: "joined"},
		events.Meta{ID: id, Actor: actor, CausationID: c.CommandID, CorrelationID: c.CorrelationID})
	if err != nil {
		return err
	}
	_, err = is.events.Publish(ctx, env)
	return err
}
