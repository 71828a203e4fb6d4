package api

import (
	"context"
	"fmt"
	"net/http"

	"github.com/eo-workspaces/provisioner/auth"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/readmodel"
	"github.com/eo-workspaces/provisioner/sagas/names"
)

// reserved is what a reservation tells before the worker has said
// anything: the workspace is being provisioned, or deleted if the API
// has accepted that since.
func reserved(name string, res names.Reservation) readmodel.Workspace {
	ws := readmodel.Workspace{Name: name, Status: events.StatusProvisioning, Owner: res.Owner,
		CreatedAt: res.CreatedAt, UpdatedAt: res.CreatedAt}
	if res.DeleteAcceptedAt != nil {
		ws.Status, ws.UpdatedAt = events.StatusDeleting, *res.DeleteAcceptedAt
	}
	return ws
}

// lookup returns the workspace as the API knows it (read your own
// writes): from the projection, or from its name reservation while the
// worker has not reported on what the API accepted: a create (including
// a name re-created after a deletion) reads provisioning, a delete reads
// deleting.
func (s *server) lookup(ctx context.Context, name string) (readmodel.Workspace, bool, error) {
	ws, ok := s.d.Workspaces.Get(name)
	live := ok && ws.Status != events.StatusDeleted
	res, rev, err := s.d.Names.Get(ctx, name)
	switch {
	case err != nil && live:
		return ws, true, nil // the projection alone is a fair answer
	case err != nil:
		return ws, ok, unavailable("cannot read the workspace now", err)
	case rev == 0:
		return ws, ok, nil
	case live && deleteAccepted(res, ws):
		ws.Status, ws.UpdatedAt = events.StatusDeleting, *res.DeleteAcceptedAt
		return ws, true, nil
	case live:
		return ws, true, nil
	case !ok || res.CreatedAt.After(ws.UpdatedAt):
		return reserved(name, res), true, nil
	}
	return ws, ok, nil
}

// deleteAccepted reports whether the API accepted a delete of ws that
// the projection has no news of yet.
func deleteAccepted(res names.Reservation, ws readmodel.Workspace) bool {
	return res.DeleteAcceptedAt != nil && res.DeleteAcceptedAt.After(ws.UpdatedAt) && ws.Status != events.StatusDeleting
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
func (s *server) authorize(ctx context.Context, p auth.Principal, name string, need access) (readmodel.Workspace, error) {
	if err := validName(name); err != nil {
		return readmodel.Workspace{}, err
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
	case need == readAccess && ws.CanRead(p.Username):
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
