package sagas

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"

	"github.com/eo-workspaces/provisioner/events"
)

// Storage access follows membership (README, "Storage access"): every
// member holds a MinIO user of their own, named by a random access key,
// bound to the workspace's read-write policy (ws_admin, ws_access) or its
// read-only one (ws_viewer). Removing a member deletes that user, and
// with it every session MinIO issued to it, so a removed member's kept
// keys stop working because their identity is gone, not because a policy
// changed. A user per member costs two IAM writes (AddUser, SetPolicy),
// about 15 ms; a service account with an inline policy, one write but
// about 160 ms (BenchmarkMemberKeys).

// ReadOnlyPolicy names the read-only policy of a workspace. The dot keeps
// it apart from every workspace name (slugs hold no dots), so it can
// never be another workspace's read-write policy.
func ReadOnlyPolicy(ws string) string { return ws + ".readonly" }

// policyFor is the policy a member's user holds for their role.
func policyFor(ws, role string) string {
	if role == events.RoleViewer {
		return ReadOnlyPolicy(ws)
	}
	return ws
}

// ensureMemberKeys gives username a key pair of their own bound to the
// role's policy: the secret is stored before the user exists, so a crash
// in between re-applies the same pair; a role change re-binds the same
// user to the other policy.
func (p *Provisioner) ensureMemberKeys(ctx context.Context, ws, username, role string) error {
	policy := policyFor(ws, role)
	cred, ok, err := p.d.Vault.GetMember(ctx, ws, username)
	if err != nil {
		return err
	}
	if !ok {
		fresh, err := newKeyPair()
		if err != nil {
			return err
		}
		fresh.Policy, fresh.Pending = policy, true
		if cred, err = p.d.Vault.PutMemberIfAbsent(ctx, ws, username, fresh); err != nil {
			return err
		}
	}
	if cred.Policy != policy { // a role change: recorded, then applied
		cred.Policy = policy
		if err := p.d.Vault.PutMember(ctx, ws, username, cred); err != nil {
			return err
		}
	}
	if err := p.d.Store.EnsureUser(ctx, cred.AccessKey, cred.SecretKey, policy); err != nil {
		return redact(err, cred.SecretKey)
	}
	if cred.Pending || cred.Stale { // shown to the member only now that MinIO knows it
		cred.Pending, cred.Stale, cred.Deferred = false, false, false
		return p.d.Vault.PutMember(ctx, ws, username, cred)
	}
	return nil
}

// stageMemberKeys gives the member of st a key pair bound to their
// role's policy without waiting for MinIO when it can (see MemberAdd): a
// new pair, or one never issued, is stored pending for the Issuer; an
// issued pair whose policy changes is re-bound here, and marked Stale
// until it is, so a repeat of the command after a failure applies it.
func (p *Provisioner) stageMemberKeys(ctx context.Context, st *State) error {
	ws, username, policy := st.Workspace, st.Params.Username, policyFor(st.Workspace, st.Params.Role)
	cred, ok, err := p.d.Vault.GetMember(ctx, ws, username)
	if err != nil {
		return err
	}
	if !ok {
		fresh, err := newKeyPair()
		if err != nil {
			return err
		}
		fresh.Policy, fresh.Pending, fresh.Deferred = policy, true, true
		fresh.CommandID, fresh.CorrelationID, fresh.Actor = st.CommandID, st.CorrelationID, st.Actor
		if cred, err = p.d.Vault.PutMemberIfAbsent(ctx, ws, username, fresh); err != nil {
			return err
		}
	}
	if cred.Removing { // a removal that failed half-way: the pair is issued again
		cred.Removing, cred.Pending, cred.Deferred = false, true, true
		cred.CommandID, cred.CorrelationID, cred.Actor = st.CommandID, st.CorrelationID, st.Actor
		cred.Policy = policy
		return p.d.Vault.PutMember(ctx, ws, username, cred)
	}
	if cred.Pending {
		if cred.Policy == policy && cred.Deferred {
			return nil
		}
		cred.Policy, cred.Deferred = policy, true // left to the Issuer
		return p.d.Vault.PutMember(ctx, ws, username, cred)
	}
	if cred.Policy == policy && !cred.Stale {
		return nil
	}
	if cred.Policy != policy || !cred.Stale {
		cred.Policy, cred.Stale = policy, true
		if err := p.d.Vault.PutMember(ctx, ws, username, cred); err != nil {
			return err
		}
	}
	if err := p.d.Store.EnsureUser(ctx, cred.AccessKey, cred.SecretKey, policy); err != nil {
		return redact(err, cred.SecretKey)
	}
	cred.Stale = false
	return p.d.Vault.PutMember(ctx, ws, username, cred)
}

// removeMemberKeys deletes username's MinIO user, then our copy of its
// secret; absent is success.
// Pairs a rotation left in their grace, or half made, go with it.
func (p *Provisioner) removeMemberKeys(ctx context.Context, ws, username string) error {
	if err := p.retireEarly(ctx, ws, username); err != nil {
		return err
	}
	cred, ok, err := p.d.Vault.GetMember(ctx, ws, username)
	if err != nil || !ok {
		return err
	}
	if !cred.Removing { // the Issuer must not finish a pair being removed
		cred.Removing = true
		if err := p.d.Vault.PutMember(ctx, ws, username, cred); err != nil {
			return err
		}
	}
	for _, c := range []*Credential{cred.Next, &cred} {
		if c == nil {
			continue
		}
		if err := p.d.Store.DeleteUser(ctx, c.AccessKey); err != nil {
			return redact(err, c.SecretKey)
		}
	}
	return p.d.Vault.DeleteMember(ctx, ws, username)
}

// retireEarly deletes now the old pairs of username (every member's for
// "") that are still in a rotation's grace.
func (p *Provisioner) retireEarly(ctx context.Context, ws, username string) error {
	all, err := p.d.Vault.Retirements(ctx)
	if err != nil {
		return err
	}
	for _, r := range all {
		if r.Workspace == ws && (username == "" || r.Username == username) {
			if err := retire(ctx, p.d.Store, p.d.Vault, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// removeAllKeys deletes every member's key pair of the workspace, and the
// workspace-wide pair of versions before per-member keys if it is there.
func (p *Provisioner) removeAllKeys(ctx context.Context, ws string) error {
	if err := p.retireEarly(ctx, ws, ""); err != nil {
		return err
	}
	members, err := p.d.Vault.Members(ctx, ws)
	if err != nil {
		return err
	}
	for _, m := range members {
		if err := p.removeMemberKeys(ctx, ws, m.Username); err != nil {
			return fmt.Errorf("keys of %s: %w", m.Username, err)
		}
	}
	return p.removeSharedKeys(ctx, ws)
}

// removeSharedKeys deletes the workspace-wide key pair that versions
// before per-member keys gave every member. Without a stored secret the
// user of that name, if any, is not ours and is left alone.
func (p *Provisioner) removeSharedKeys(ctx context.Context, ws string) error {
	cred, ok, err := p.d.Vault.Get(ctx, ws)
	if err != nil || !ok {
		return err
	}
	if err := p.d.Store.DeleteUser(ctx, cred.AccessKey); err != nil {
		return redact(err, cred.SecretKey)
	}
	return p.d.Vault.Delete(ctx, ws)
}

// accessKeyAlphabet spells access keys as AWS does: upper-case letters
// and digits.
var accessKeyAlphabet = base32.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567").WithPadding(base32.NoPadding)

// newKeyPair returns a random access key of 20 characters (MinIO's
// longest; 100 random bits, so a member who leaves and comes back gets
// a key nobody held before) and a 40-character secret.
func newKeyPair() (Credential, error) {
	b := make([]byte, 13)
	if _, err := rand.Read(b); err != nil {
		return Credential{}, fmt.Errorf("generate access key: %w", err)
	}
	secret, err := newSecret()
	if err != nil {
		return Credential{}, err
	}
	return Credential{AccessKey: accessKeyAlphabet.EncodeToString(b)[:20], SecretKey: secret}, nil
}

// memberName is the username a membership change is about: the one the
// command named, or the service-account user of the client application
// it named, looked up once and kept in the run's parameters.
func (p *Provisioner) memberName(ctx context.Context, st *State) (string, error) {
	if st.Params.Username != "" {
		return st.Params.Username, nil
	}
	name, err := p.d.Identity.ServiceAccountUser(ctx, st.Params.ClientID)
	if errors.Is(err, ErrUnknownUser) {
		return "", Permanentf("client %q does not exist in the realm or has no service account: %w", st.Params.ClientID, err)
	}
	if err != nil {
		return "", err
	}
	st.Params.Username = name
	return name, nil
}
