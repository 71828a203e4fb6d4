package sagatest

import (
	"context"
	"fmt"
	"slices"

	"github.com/eo-workspaces/provisioner/sagas"
)

// The inspectors a reconcile reads through, and the hand-made drift tests
// inflict: removals and changes made behind the system's back.

// CheckClient implements sagas.IdentityInspector.
func (p *Providers) CheckClient(_ context.Context, clientID string) error {
	return p.call("CheckClient", clientID, func() error {
		c, ok := p.clients[clientID]
		switch {
		case !ok:
			return fmt.Errorf("client %s: %w", clientID, sagas.ErrNotFound)
		case !c.ours:
			return fmt.Errorf("client %s: %w", clientID, sagas.ErrNotOurs)
		}
		return nil
	})
}

// ClientRoles implements sagas.IdentityInspector.
func (p *Providers) ClientRoles(_ context.Context, clientID string) ([]string, error) {
	var out []string
	err := p.call("ClientRoles", clientID, func() error {
		c, ok := p.clients[clientID]
		if !ok {
			return fmt.Errorf("client %s: %w", clientID, sagas.ErrNotFound)
		}
		out = slices.Clone(c.roles)
		return nil
	})
	return out, err
}

// WorkspaceScopeComplete implements sagas.IdentityInspector: complete
// unless dropped by hand (Drop "client_scope").
func (p *Providers) WorkspaceScopeComplete(_ context.Context, clientID string) (bool, error) {
	var ok bool
	err := p.call("WorkspaceScopeComplete", clientID, func() error {
		c, found := p.clients[clientID]
		if !found {
			return fmt.Errorf("client %s: %w", clientID, sagas.ErrNotFound)
		}
		ok = !c.noScope
		return nil
	})
	return ok, err
}

// CheckBucket implements sagas.StoreInspector.
func (p *Providers) CheckBucket(_ context.Context, name string) error {
	return p.call("CheckBucket", name, func() error {
		b, ok := p.buckets[name]
		switch {
		case !ok:
			return fmt.Errorf("bucket %s: %w", name, sagas.ErrNotFound)
		case !b.ours:
			return fmt.Errorf("bucket %s: %w", name, sagas.ErrNotOurs)
		}
		return nil
	})
}

// policyMap is the fake's store of one kind of policy: name -> the bucket
// its document allows.
func (p *Providers) policyMap(readOnly bool) map[string]string {
	if readOnly {
		return p.readOnly
	}
	return p.policies
}

// CheckPolicy implements sagas.StoreInspector.
func (p *Providers) CheckPolicy(_ context.Context, policy, bucketName string, readOnly bool) error {
	return p.call("CheckPolicy", policy, func() error {
		have, ok := p.policyMap(readOnly)[policy]
		switch {
		case !ok:
			return fmt.Errorf("policy %s: %w", policy, sagas.ErrNotFound)
		case have != bucketName:
			return fmt.Errorf("policy %s: %w", policy, sagas.ErrNotOurs)
		}
		return nil
	})
}

// ResetPolicy implements sagas.StoreInspector.
func (p *Providers) ResetPolicy(_ context.Context, policy, bucketName string, readOnly bool) error {
	return p.call("ResetPolicy", policy, func() error {
		p.policyMap(readOnly)[policy] = bucketName
		return nil
	})
}

// User implements sagas.StoreInspector.
func (p *Providers) User(_ context.Context, accessKey string) (sagas.UserState, error) {
	var st sagas.UserState
	err := p.call("User", accessKey, func() error {
		if u, ok := p.minio[accessKey]; ok {
			st = sagas.UserState{Exists: true, Enabled: !u.Disabled, Policies: []string{u.Policy}}
		}
		return nil
	})
	return st, err
}

// DisableUser implements sagas.StoreInspector.
func (p *Providers) DisableUser(_ context.Context, accessKey string) error {
	return p.call("DisableUser", accessKey, func() error {
		if u, ok := p.minio[accessKey]; ok {
			u.Disabled = true
			p.minio[accessKey] = u
		}
		return nil
	})
}

// BucketQuota implements sagas.StoreInspector.
func (p *Providers) BucketQuota(_ context.Context, name string) (uint64, error) {
	var q uint64
	err := p.call("BucketQuota", name, func() error {
		b, ok := p.buckets[name]
		if !ok {
			return fmt.Errorf("bucket %s: %w", name, sagas.ErrNotFound)
		}
		q = b.quota
		return nil
	})
	return q, err
}

// Drop removes a resource by hand, as an operator would behind the
// system's back: kind is "client", "bucket", "policy", "readonly_policy"
// (name is the workspace's), "user" (name is an access key), "quota".
func (p *Providers) Drop(kind, name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch kind {
	case "client":
		delete(p.clients, name)
	case "client_scope":
		if c, ok := p.clients[name]; ok {
			c.noScope = true
		}
	case "bucket":
		delete(p.buckets, name)
	case "policy":
		delete(p.policies, name)
	case "readonly_policy":
		delete(p.readOnly, sagas.ReadOnlyPolicy(name))
	case "user":
		delete(p.minio, name)
	case "quota":
		if b, ok := p.buckets[name]; ok {
			b.quota = 0
		}
	}
}

// DropRole removes a client role, and every mapping to it, by hand.
func (p *Providers) DropRole(clientID, role string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.clients[clientID]
	if !ok {
		return
	}
	c.roles = slices.DeleteFunc(c.roles, func(r string) bool { return r == role })
	for u, rs := range c.mappings {
		c.mappings[u] = slices.DeleteFunc(rs, func(r string) bool { return r == role })
	}
}

// MapRole maps a user to a client role by hand (the role must exist).
func (p *Providers) MapRole(clientID, username, role string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[clientID]; ok && !slices.Contains(c.mappings[username], role) {
		c.mappings[username] = append(c.mappings[username], role)
	}
}

// ChangePolicy writes another document, allowing bucketName, over a policy
// of the workspace (its read-only one when readOnly).
func (p *Providers) ChangePolicy(ws, bucketName string, readOnly bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	name := ws
	if readOnly {
		name = sagas.ReadOnlyPolicy(ws)
	}
	p.policyMap(readOnly)[name] = bucketName
}

// SetUserPolicy binds a user to another policy by hand.
func (p *Providers) SetUserPolicy(accessKey, policy string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if u, ok := p.minio[accessKey]; ok {
		u.Policy = policy
		p.minio[accessKey] = u
	}
}

// MinioUserOf returns the user of that access key, if any.
func (p *Providers) MinioUserOf(accessKey string) (MinioUser, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	u, ok := p.minio[accessKey]
	return u, ok
}
