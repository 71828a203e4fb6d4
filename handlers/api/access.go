package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/handlers/auth"
	"github.com/eo-workspaces/provisioner/handlers/projection"
)

// reservation is the value of a name in the Names bucket: which create
// command claimed the name, for whom, and when.
type reservation struct {
	CommandID          string    `json:"command_id"`
	Actor              string    `json:"actor"`
	Owner              string    `json:"owner,omitempty"`
	IdempotencyKeyHash string    `json:"idempotency_key_hash,omitempty"`
	CreatedAt          time.Time `json:"created_at"`
}

// workspace is what a reservation tells before the worker has said
// anything: the workspace is being provisioned.
func (res reservation) workspace(name string) projection.Workspace {
	return projection.Workspace{Name: name, Status: events.StatusProvisioning, Owner: res.Owner,
		CreatedAt: res.CreatedAt, UpdatedAt: res.CreatedAt}
}

func (s *server) getReservation(ctx context.Context, name string) (reservation, jetstream.KeyValueEntry, error) {
	e, err := s.d.Names.Get(ctx, name)
	if events.IsNotFound(err) {
		return reservation{}, nil, nil
	}
	if err != nil {
		return reservation{}, nil, fmt.Errorf("read reservation %s: %w", name, err)
	}
	var res reservation
	if err := json.Unmarshal(e.Value(), &res); err != nil {
		return reservation{}, nil, fmt.Errorf("decode reservation %s: %w", name, err)
	}
	return res, e, nil
}

// lookup returns the workspace as the API knows it: from the projection,
// or from its name reservation while the worker has not reported on it
// yet (read-your-write), including a name re-created after a deletion.
func (s *server) lookup(ctx context.Context, name string) (projection.Workspace, bool, error) {
	ws, ok := s.d.Workspaces.Get(name)
	if ok && ws.Status != events.StatusDeleted {
		return ws, true, nil
	}
	res, entry, err := s.getReservation(ctx, name)
	if err != nil {
		return ws, ok, unavailable("cannot read the workspace now", err)
	}
	if entry != nil && (!ok || res.CreatedAt.After(ws.UpdatedAt)) {
		return res.workspace(name), true, nil
	}
	return ws, ok, nil
}

// access is what a caller needs to be allowed on a workspace.
type access int

const (
	readAccess    access = iota // platform admins and every member
	manageMembers               // platform admins and ws_admin members
	adminOnly                   // platform admins
)

// authorize finds the workspace named in the path and checks the caller
// may act on it. Membership comes from the projection, never from the
// token, so a removed member loses access at once. Everyone, admin or
// not, gets 404 for a workspace that does not exist and 403 for one they
// may not touch (names are derived from public preferred names, so their
// existence is no secret; the EOEPCA API answers the same way).
func (s *server) authorize(ctx context.Context, p auth.Principal, name string, need access) (projection.Workspace, error) {
	if err := validName(name); err != nil {
		return projection.Workspace{}, err
	}
	ws, ok, err := s.lookup(ctx, name)
	if err != nil {
		return ws, err
	}
	if !ok {
		return ws, errorf(http.StatusNotFound, "name", fmt.Sprintf("workspace %s does not exist", name))
	}
	if p.Admin {
		return ws, nil
	}
	role := ws.RoleOf(p.Username)
	switch {
	case need == readAccess && role != "":
		return ws, nil
	case need == manageMembers && role == events.RoleAdmin:
		return ws, nil
	case need == manageMembers && role != "":
		return ws, errorf(http.StatusForbidden, "", fmt.Sprintf("only platform admins and %s members may manage the members of %s", events.RoleAdmin, name))
	case need == adminOnly:
		return ws, errorf(http.StatusForbidden, "", "only platform admins may do this")
	default:
		return ws, errorf(http.StatusForbidden, "", fmt.Sprintf("you are not a member of %s", name))
	}
}

// reserve claims name for a create command. It succeeds when the name is
// free, when the claim is this very request again (same command id), or
// when the workspace holding it has been deleted since it was claimed. The
// returned release undoes the claim if the command cannot be published.
func (s *server) reserve(ctx context.Context, name string, res reservation) (release func(), err error) {
	raw, err := json.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("encode reservation: %w", err)
	}
	for range 3 { // a claim released between our Create and Get: try again
		rev, err := s.d.Names.Create(ctx, name, raw)
		if err == nil {
			return s.claimed(ctx, name, rev)
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, unavailable("cannot reserve the workspace name now", err)
		}
		cur, entry, err := s.getReservation(ctx, name)
		if err != nil {
			return nil, unavailable("cannot reserve the workspace name now", err)
		}
		if entry == nil {
			continue
		}
		if cur.CommandID == res.CommandID {
			return func() {}, nil // our own earlier attempt: it may have been published
		}
		return s.takeOver(ctx, name, raw, cur, entry)
	}
	return nil, unavailable("the workspace name is changing hands; retry", nil)
}

// claimed checks a fresh claim against the projection: a workspace created
// by a command sent straight to NATS has no reservation, yet holds its name.
func (s *server) claimed(ctx context.Context, name string, rev uint64) (func(), error) {
	release := func() {
		if err := s.d.Names.Delete(ctx, name, jetstream.LastRevision(rev)); err != nil {
			s.log.Warn("release name reservation: " + err.Error())
		}
	}
	if ws, ok := s.d.Workspaces.Get(name); ok && ws.Status != events.StatusDeleted {
		release()
		return nil, nameTaken(name)
	}
	return release, nil
}

// takeOver claims a name whose workspace was deleted after it was
// reserved; compare-and-set on the revision lets one request win.
func (s *server) takeOver(ctx context.Context, name string, raw []byte, cur reservation, entry jetstream.KeyValueEntry) (func(), error) {
	ws, ok := s.d.Workspaces.Get(name)
	if !ok || ws.Status != events.StatusDeleted || cur.CreatedAt.After(ws.UpdatedAt) {
		return nil, nameTaken(name)
	}
	rev, err := s.d.Names.Update(ctx, name, raw, entry.Revision())
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return nil, nameTaken(name)
	}
	if err != nil {
		return nil, unavailable("cannot reserve the workspace name now", err)
	}
	previous := entry.Value()
	return func() {
		if _, err := s.d.Names.Update(ctx, name, previous, rev); err != nil {
			s.log.Warn("restore name reservation: " + err.Error())
		}
	}, nil
}

func nameTaken(name string) error {
	return errorf(http.StatusConflict, "preferred_name", fmt.Sprintf("workspace %s already exists", name))
}
