package sagatest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/eo-workspaces/provisioner/sagas"
)

// Hook is called with the operation name (the method's) and the resource
// name: Before may return an error to fail the call, After runs once the
// side effect is done (a test panics there to simulate a crash).
type Hook func(op, name string) error

type client struct {
	ours     bool
	roles    []string
	mappings map[string][]string // user -> roles
	noScope  bool                // its workspace client scope removed by hand
}

type bucket struct {
	ours     bool
	untagged bool      // not ours and not marked by anyone: AdoptBucket may take it
	created  time.Time // zero: long ago
	objects  int
	quota    uint64 // bytes; 0: none
}

// MinioUser is what the fake holds for a MinIO user.
type MinioUser struct {
	Secret, Policy string
	Disabled       bool
}

// Providers implements both sagas.Identity and sagas.ObjectStore.
type Providers struct {
	mu       sync.Mutex
	users    map[string]bool
	clients  map[string]*client
	buckets  map[string]*bucket
	policies map[string]string
	readOnly map[string]string // read-only policy -> its bucket
	minio    map[string]MinioUser
	calls    map[string]int
	creates  map[string]int
	before   Hook
	after    Hook
}

var (
	_ sagas.Identity    = (*Providers)(nil)
	_ sagas.ObjectStore = (*Providers)(nil)
)

// New returns empty providers whose realm knows the given users.
func New(users ...string) *Providers {
	p := &Providers{users: map[string]bool{}, clients: map[string]*client{}, buckets: map[string]*bucket{},
		policies: map[string]string{}, readOnly: map[string]string{}, minio: map[string]MinioUser{}, calls: map[string]int{}, creates: map[string]int{}}
	for _, u := range users {
		p.users[u] = true
	}
	return p
}

// SetBefore installs the hook run before every call (nil removes it).
func (p *Providers) SetBefore(h Hook) { p.mu.Lock(); p.before = h; p.mu.Unlock() }

// SetAfter installs the hook run after every call's side effect.
func (p *Providers) SetAfter(h Hook) { p.mu.Lock(); p.after = h; p.mu.Unlock() }

// AddUser adds a realm user.
func (p *Providers) AddUser(u string) { p.mu.Lock(); p.users[u] = true; p.mu.Unlock() }

// Calls is how often op was called.
func (p *Providers) Calls(op string) int { p.mu.Lock(); defer p.mu.Unlock(); return p.calls[op] }

// Creates is how often a resource of kind ("client", "role", "mapping",
// "bucket", "policy", "user") was actually created.
func (p *Providers) Creates(kind string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.creates[kind]
}

// call runs one operation: counts it, asks Before, applies fn under the
// lock, then runs After outside it (After may panic).
func (p *Providers) call(op, name string, fn func() error) error {
	p.mu.Lock()
	p.calls[op]++
	before, after := p.before, p.after
	p.mu.Unlock()
	if before != nil {
		if err := before(op, name); err != nil {
			return err
		}
	}
	p.mu.Lock()
	err := fn()
	p.mu.Unlock()
	if err == nil && after != nil {
		return after(op, name)
	}
	return err
}

// EnsureClient implements sagas.Identity.
func (p *Providers) EnsureClient(_ context.Context, clientID string) (string, error) {
	err := p.call("EnsureClient", clientID, func() error {
		c, ok := p.clients[clientID]
		if ok && !c.ours {
			return fmt.Errorf("client %s: %w", clientID, sagas.ErrNotOurs)
		}
		if !ok {
			p.clients[clientID] = &client{ours: true, mappings: map[string][]string{}}
			p.creates["client"]++
		}
		return nil
	})
	return "id-" + clientID, err
}

// DeleteClient implements sagas.Identity.
func (p *Providers) DeleteClient(_ context.Context, clientID string) error {
	return p.call("DeleteClient", clientID, func() error {
		c, ok := p.clients[clientID]
		if ok && !c.ours {
			return fmt.Errorf("client %s: %w", clientID, sagas.ErrNotOurs)
		}
		delete(p.clients, clientID)
		return nil
	})
}

// EnsureClientRoles implements sagas.Identity.
func (p *Providers) EnsureClientRoles(_ context.Context, clientID string, roles ...string) error {
	return p.call("EnsureClientRoles", clientID, func() error {
		c, ok := p.clients[clientID]
		if !ok {
			return fmt.Errorf("client %s: %w", clientID, sagas.ErrNotFound)
		}
		for _, r := range roles {
			if !slices.Contains(c.roles, r) {
				c.roles = append(c.roles, r)
				p.creates["role"]++
			}
		}
		c.noScope = false // as Keycloak's adapter ensures the scope each time
		return nil
	})
}

// ServiceAccountUser implements sagas.Identity: a realm user named
// "service-account-<clientID>" stands for the client's service account.
func (p *Providers) ServiceAccountUser(_ context.Context, clientID string) (string, error) {
	name := "service-account-" + strings.ToLower(clientID)
	err := p.call("ServiceAccountUser", clientID, func() error {
		if !p.users[name] {
			return fmt.Errorf("client %s: %w", clientID, sagas.ErrUnknownUser)
		}
		return nil
	})
	return name, err
}

// RoleHolders implements sagas.Identity.
func (p *Providers) RoleHolders(_ context.Context, clientID, role string) ([]string, error) {
	var out []string
	err := p.call("RoleHolders", clientID, func() error {
		c, ok := p.clients[clientID]
		if !ok {
			return fmt.Errorf("client %s: %w", clientID, sagas.ErrNotFound)
		}
		for u, roles := range c.mappings {
			if slices.Contains(roles, role) {
				out = append(out, u)
			}
		}
		slices.Sort(out)
		return nil
	})
	return out, err
}

// GrantClientRole implements sagas.Identity.
func (p *Providers) GrantClientRole(_ context.Context, clientID, username, role string) error {
	return p.call("GrantClientRole", clientID, func() error {
		c, ok := p.clients[clientID]
		switch {
		case !ok:
			return fmt.Errorf("client %s: %w", clientID, sagas.ErrNotFound)
		case !p.users[username]:
			return fmt.Errorf("user %s: %w", username, sagas.ErrUnknownUser)
		case !slices.Contains(c.roles, role):
			return fmt.Errorf("role %s: %w", role, sagas.ErrNotFound)
		}
		if !slices.Contains(c.mappings[username], role) {
			c.mappings[username] = append(c.mappings[username], role)
			p.creates["mapping"]++
		}
		return nil
	})
}

// RevokeClientRole implements sagas.Identity.
func (p *Providers) RevokeClientRole(_ context.Context, clientID, username, role string) error {
	return p.call("RevokeClientRole", clientID, func() error {
		if c, ok := p.clients[clientID]; ok {
			c.mappings[username] = slices.DeleteFunc(c.mappings[username], func(r string) bool { return r == role })
		}
		return nil
	})
}

// EnsureBucket implements sagas.ObjectStore.
func (p *Providers) EnsureBucket(_ context.Context, name string) error {
	return p.call("EnsureBucket", name, func() error {
		b, ok := p.buckets[name]
		if ok && !b.ours {
			return fmt.Errorf("bucket %s: %w", name, sagas.ErrNotOurs)
		}
		if !ok {
			p.buckets[name] = &bucket{ours: true}
			p.creates["bucket"]++
		}
		return nil
	})
}

// AdoptBucket implements sagas.ObjectStore.
func (p *Providers) AdoptBucket(_ context.Context, name string, since time.Time) error {
	return p.call("AdoptBucket", name, func() error {
		b, ok := p.buckets[name]
		switch {
		case !ok:
			return fmt.Errorf("bucket %s: %w", name, sagas.ErrNotFound)
		case b.ours:
			return nil
		case !b.untagged || b.objects > 0 || b.created.Before(since):
			return fmt.Errorf("bucket %s: %w", name, sagas.ErrNotOurs)
		}
		b.ours, b.untagged = true, false
		return nil
	})
}

// AddHalfMade creates an untagged bucket now, counted as a bucket created:
// what a real EnsureBucket leaves when killed between create and tag.
func (p *Providers) AddHalfMade(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buckets[name] = &bucket{untagged: true, created: time.Now()}
	p.creates["bucket"]++
}

// AddForeignBucket creates an untagged bucket this system did not create,
// made at created and holding that many objects.
func (p *Providers) AddForeignBucket(name string, created time.Time, objects int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buckets[name] = &bucket{untagged: true, created: created, objects: objects}
}

// SetBucketQuota implements sagas.ObjectStore.
func (p *Providers) SetBucketQuota(_ context.Context, name string, bytes uint64) error {
	return p.call("SetBucketQuota", name, func() error {
		b, ok := p.buckets[name]
		if !ok {
			return sagas.Permanent(fmt.Errorf("bucket %s: %w", name, sagas.ErrNotFound))
		}
		b.quota = bytes
		return nil
	})
}

// Quota is the bucket's hard quota in bytes (0: none or no bucket).
func (p *Providers) Quota(name string) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b, ok := p.buckets[name]; ok {
		return b.quota
	}
	return 0
}

// DeleteBucket implements sagas.ObjectStore.
func (p *Providers) DeleteBucket(_ context.Context, name string, purge bool) error {
	return p.call("DeleteBucket", name, func() error {
		b, ok := p.buckets[name]
		switch {
		case !ok:
			return nil
		case !b.ours:
			return fmt.Errorf("bucket %s: %w", name, sagas.ErrNotOurs)
		case b.objects > 0 && !purge:
			return fmt.Errorf("bucket %s: %w", name, sagas.ErrNotEmpty)
		}
		delete(p.buckets, name)
		return nil
	})
}

// EnsureBucketPolicy implements sagas.ObjectStore.
func (p *Providers) EnsureBucketPolicy(_ context.Context, policy, bucketName string) error {
	return p.call("EnsureBucketPolicy", policy, func() error {
		have, ok := p.policies[policy]
		switch {
		case !ok:
			p.creates["policy"]++
			p.policies[policy] = bucketName
		case have != bucketName:
			return fmt.Errorf("policy %s: %w", policy, sagas.ErrNotOurs)
		}
		return nil
	})
}

// DeletePolicy implements sagas.ObjectStore.
func (p *Providers) DeletePolicy(_ context.Context, policy string) error {
	return p.call("DeletePolicy", policy, func() error {
		if have, ok := p.policies[policy]; ok && have != policy {
			return fmt.Errorf("policy %s: %w", policy, sagas.ErrNotOurs)
		}
		delete(p.policies, policy)
		return nil
	})
}

// EnsureReadOnlyPolicy implements sagas.ObjectStore.
func (p *Providers) EnsureReadOnlyPolicy(_ context.Context, policy, bucketName string) error {
	return p.call("EnsureReadOnlyPolicy", bucketName, func() error {
		have, ok := p.readOnly[policy]
		switch {
		case !ok:
			p.creates["policy"]++
			p.readOnly[policy] = bucketName
		case have != bucketName:
			return fmt.Errorf("policy %s: %w", policy, sagas.ErrNotOurs)
		}
		return nil
	})
}

// DeleteReadOnlyPolicy implements sagas.ObjectStore.
func (p *Providers) DeleteReadOnlyPolicy(_ context.Context, policy, bucketName string) error {
	return p.call("DeleteReadOnlyPolicy", bucketName, func() error {
		if have, ok := p.readOnly[policy]; ok && have != bucketName {
			return fmt.Errorf("policy %s: %w", policy, sagas.ErrNotOurs)
		}
		delete(p.readOnly, policy)
		return nil
	})
}

// EnsureUser implements sagas.ObjectStore.
func (p *Providers) EnsureUser(_ context.Context, accessKey, secretKey, policy string) error {
	// hooks see the workspace a user belongs to, not its random key
	return p.call("EnsureUser", strings.TrimSuffix(policy, ".readonly"), func() error {
		_, rw := p.policies[policy]
		if _, ro := p.readOnly[policy]; !rw && !ro {
			return fmt.Errorf("policy %s: %w", policy, sagas.ErrNotFound)
		}
		if _, ok := p.minio[accessKey]; !ok {
			p.creates["user"]++
		}
		p.minio[accessKey] = MinioUser{Secret: secretKey, Policy: policy}
		return nil
	})
}

// UserExists implements sagas.ObjectStore.
func (p *Providers) UserExists(_ context.Context, accessKey string) (bool, error) {
	var exists bool
	err := p.call("UserExists", accessKey, func() error { _, exists = p.minio[accessKey]; return nil })
	return exists, err
}

// DeleteUser implements sagas.ObjectStore.
func (p *Providers) DeleteUser(_ context.Context, accessKey string) error {
	p.mu.Lock()
	ws := strings.TrimSuffix(p.minio[accessKey].Policy, ".readonly")
	p.mu.Unlock()
	if ws == "" {
		ws = accessKey
	}
	return p.call("DeleteUser", ws, func() error { delete(p.minio, accessKey); return nil })
}

// State is a snapshot of what exists for one workspace name.
type State struct {
	Client   bool
	Roles    []string
	Mappings map[string][]string
	Bucket   bool
	Objects  int
	Policy   string // the bucket it allows, "" if none
	// ReadOnlyPolicy is the bucket the read-only policy allows, "" if none.
	ReadOnlyPolicy string
	// User is a user named after the workspace (the shared key pair of
	// versions before per-member keys, or someone else's).
	User *MinioUser
	// Users are the users bound to either policy of the workspace, by
	// access key.
	Users      map[string]MinioUser
	ForeignAny bool // some resource of that name is not ours
}

// Workspace returns what exists under name.
func (p *Providers) Workspace(name string) State {
	p.mu.Lock()
	defer p.mu.Unlock()
	var s State
	if c, ok := p.clients[name]; ok {
		s.Client, s.Roles, s.Mappings = true, slices.Clone(c.roles), map[string][]string{}
		for u, r := range c.mappings {
			s.Mappings[u] = slices.Clone(r)
		}
		s.ForeignAny = s.ForeignAny || !c.ours
	}
	if b, ok := p.buckets[name]; ok {
		s.Bucket, s.Objects = true, b.objects
		s.ForeignAny = s.ForeignAny || !b.ours
	}
	s.Policy = p.policies[name]
	s.ReadOnlyPolicy = p.readOnly[sagas.ReadOnlyPolicy(name)]
	if u, ok := p.minio[name]; ok {
		s.User = &u
	}
	s.Users = map[string]MinioUser{}
	for k, u := range p.minio {
		if u.Policy == name || u.Policy == sagas.ReadOnlyPolicy(name) {
			s.Users[k] = u
		}
	}
	return s
}

// Empty reports whether nothing at all exists under name.
func (s State) Empty() bool {
	return !s.Client && !s.Bucket && s.Policy == "" && s.ReadOnlyPolicy == "" && s.User == nil && len(s.Users) == 0
}

// PutObject adds an object to a bucket.
func (p *Providers) PutObject(bucketName string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, ok := p.buckets[bucketName]
	if !ok {
		return fmt.Errorf("bucket %s: %w", bucketName, sagas.ErrNotFound)
	}
	b.objects++
	return nil
}

// AddForeign creates resources of that name this system did not create:
// kind is "client", "bucket" (untagged, made long ago), "user" or "policy"
// (allowing another bucket).
func (p *Providers) AddForeign(kind, name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch kind {
	case "client":
		p.clients[name] = &client{mappings: map[string][]string{}}
	case "bucket":
		p.buckets[name] = &bucket{untagged: true}
	case "user":
		p.minio[name] = MinioUser{Secret: "not-ours-secret"}
	case "policy":
		p.policies[name] = "someone-elses-bucket"
	}
}
