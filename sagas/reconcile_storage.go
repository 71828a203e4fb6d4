package sagas

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/eo-workspaces/provisioner/events"
)

// What a reconcile checks and repairs in the object store.

// reconcileStorage checks the bucket first: without our own bucket the
// policies and keys would grant access to whatever holds the name.
func (p *Provisioner) reconcileStorage(ctx context.Context, st *State) error {
	d, ws := drift(st), st.Workspace
	err := p.d.Store.CheckBucket(ctx, ws)
	if errors.Is(err, ErrNotFound) {
		// EnsureBucket makes it tagged as ours, or refuses one someone
		// else made meanwhile.
		if err = p.d.Store.EnsureBucket(ctx, ws); err == nil {
			d.repaired(events.DriftBucket, ws)
		}
	}
	switch {
	case errors.Is(err, ErrNotOurs):
		d.degrade(events.DriftBucket, fmt.Sprintf("the bucket %s was re-created by someone else (it lacks this system's mark) "+
			"and is not adopted; the members' storage keys are disabled until it is removed and the workspace reconciled", ws))
		return p.disableKeys(ctx, st)
	case err != nil:
		return err
	}
	if err := p.reconcilePolicies(ctx, st); err != nil {
		return err
	}
	if err := p.reconcileKeys(ctx, st); err != nil {
		return err
	}
	return p.reconcileQuota(ctx, st)
}

// reconcilePolicies restores both policies. A changed document is
// written over, unlike in the create's steps, which refuse it: there the
// policy might be someone else's, here the workspace is ready, so its
// create proved the policy of that name its own, and only the document
// that allows exactly the workspace's bucket gives its members what their
// role says and nothing more.
func (p *Provisioner) reconcilePolicies(ctx context.Context, st *State) error {
	ws := st.Workspace
	for _, pol := range []struct {
		name     string
		readOnly bool
		ensure   func(ctx context.Context, policy, bucket string) error
	}{{ws, false, p.d.Store.EnsureBucketPolicy}, {ReadOnlyPolicy(ws), true, p.d.Store.EnsureReadOnlyPolicy}} {
		err := p.d.Store.CheckPolicy(ctx, pol.name, ws, pol.readOnly)
		switch {
		case err == nil:
			continue
		case errors.Is(err, ErrNotFound):
			err = pol.ensure(ctx, pol.name, ws)
		case errors.Is(err, ErrNotOurs):
			err = p.d.Store.ResetPolicy(ctx, pol.name, ws, pol.readOnly)
		}
		if err != nil {
			return err
		}
		drift(st).repaired(events.DriftPolicy, pol.name)
	}
	return nil
}

// reconcileKeys makes each member's MinIO user exist again with the key
// pair in the vault, enabled, bound to their role's policy alone.
func (p *Provisioner) reconcileKeys(ctx context.Context, st *State) error {
	members, err := p.members(ctx, st)
	if err != nil {
		return err
	}
	for _, m := range members {
		u, err := p.d.Store.User(ctx, m.cred.AccessKey)
		if err != nil {
			return redact(err, m.cred.SecretKey)
		}
		if u.Exists && u.Enabled && slices.Equal(u.Policies, []string{m.cred.Policy}) {
			continue
		}
		if err := p.d.Store.EnsureUser(ctx, m.cred.AccessKey, m.cred.SecretKey, m.cred.Policy); err != nil {
			return redact(err, m.cred.SecretKey)
		}
		drift(st).repaired(events.DriftMemberKey, m.cred.Username)
	}
	return nil
}

// reconcileQuota restores the quota the record knows of.
func (p *Provisioner) reconcileQuota(ctx context.Context, st *State) error {
	q := drift(st).Quota
	if q == nil {
		return nil
	}
	var want uint64
	if q.MB != nil {
		want = uint64(*q.MB) * bytesPerMB
	}
	have, err := p.d.Store.BucketQuota(ctx, st.Workspace)
	if err != nil || have == want {
		return err
	}
	if err := p.d.Store.SetBucketQuota(ctx, st.Workspace, want); err != nil {
		return err
	}
	drift(st).repaired(events.DriftQuota, st.Workspace)
	return nil
}

// disableKeys keeps the members' keys from following the name into a
// bucket that is not ours. Disabling the users, rather than changing the
// policies, leaves every policy with the document that marks it ours (a
// delete still recognises and removes it) and keeps each member's key
// pair: the repair that follows the stranger bucket's removal enables the
// same keys again (EnsureUser), so no member has to fetch new ones.
func (p *Provisioner) disableKeys(ctx context.Context, st *State) error {
	creds, err := p.d.Vault.Members(ctx, st.Workspace)
	if err != nil {
		return err
	}
	for _, c := range creds {
		for _, k := range []*Credential{&c, c.Next} {
			if k == nil {
				continue
			}
			if err := p.d.Store.DisableUser(ctx, k.AccessKey); err != nil {
				return redact(err, k.SecretKey)
			}
		}
	}
	// Old pairs still in a rotation's grace are bound to the same policy;
	// they stay disabled until the Retirer deletes them.
	old, err := p.d.Vault.Retirements(ctx)
	if err != nil {
		return err
	}
	for _, r := range old {
		if r.Workspace != st.Workspace {
			continue
		}
		if err := p.d.Store.DisableUser(ctx, r.AccessKey); err != nil {
			return err
		}
	}
	return nil
}
