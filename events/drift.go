package events

// Drift: what a reconcile (workspace.reconcile) finds when it compares a
// workspace with Keycloak and MinIO.

// Command and event types of the drift sweep.
const (
	TypeReconcile     = "workspace.reconcile"
	TypeDriftRepaired = "workspace.drift.repaired"
	TypeDegraded      = "workspace.degraded"
)

// StatusDegraded is a workspace that was ready and whose resources drifted
// in a way no repair can undo without taking someone else's resource (a
// bucket of its name re-created by someone else); its members' storage
// keys are disabled meanwhile. A later reconcile that finds everything
// right again returns it to ready.
const StatusDegraded = "degraded"

// Reconcile asks for one workspace to be compared with the providers and
// what is ours repaired.
type Reconcile struct{}

// Drift kinds: what a reconcile checks and repairs.
const (
	DriftClient      = "client"      // the Keycloak client
	DriftClientRole  = "client_role" // one of its three roles
	DriftRoleMap     = "role_mapping"
	DriftClientScope = "client_scope" // its client scope workspace:<name>, where workspaces have one
	DriftBucket      = "bucket"
	DriftPolicy      = "policy"     // the read-write or read-only policy
	DriftMemberKey   = "member_key" // a member's MinIO user, its state or policy
	DriftQuota       = "quota"
)

// Repair is one thing a reconcile put right: its kind and the resource
// (a name, a role, a username; never a key or secret).
type Repair struct {
	Kind     string `json:"kind"`
	Resource string `json:"resource"`
}

// DriftRepaired records what a reconcile found missing or changed and
// repaired.
type DriftRepaired struct {
	Repaired []Repair `json:"repaired"`
}

// Degraded records that a reconcile found drift it must not repair, and
// why; the workspace's status is StatusDegraded from then on.
type Degraded struct {
	Reason string `json:"reason"`
	// Kind is what drifted (a Drift kind).
	Kind string `json:"kind"`
}

// EventType implements Payload.
func (*Reconcile) EventType() string { return TypeReconcile }

// EventType implements Payload.
func (*DriftRepaired) EventType() string { return TypeDriftRepaired }

// EventType implements Payload.
func (*Degraded) EventType() string { return TypeDegraded }
