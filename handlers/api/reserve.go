package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/readmodel"
	"github.com/eo-workspaces/provisioner/sagas/names"
)

// reserve claims name for a create command. It succeeds when the name is
// free, when the claim is this very request again (same command id), or
// when the workspace holding it has been deleted since it was claimed. The
// returned release undoes the claim if the command cannot be published.
func (s *server) reserve(ctx context.Context, name string, res names.Reservation) (release func(), err error) {
	for range 3 { // a claim released between our Reserve and Get: try again
		rev, err := s.d.Names.Reserve(ctx, name, res)
		if err == nil {
			return s.claimed(ctx, name, rev)
		}
		if !errors.Is(err, names.ErrTaken) {
			return nil, unavailable("cannot reserve the workspace name now", err)
		}
		cur, rev, err := s.d.Names.Get(ctx, name)
		if err != nil {
			return nil, unavailable("cannot reserve the workspace name now", err)
		}
		if rev == 0 {
			continue
		}
		if cur.CommandID == res.CommandID {
			return func() {}, nil // our own earlier attempt: it may have been published
		}
		return s.takeOver(ctx, name, res, cur, rev)
	}
	return nil, unavailable("the workspace name is changing hands; retry", nil)
}

// claimed checks a fresh claim against the projection: a workspace created
// by a command sent straight to NATS has no reservation, yet holds its name.
func (s *server) claimed(ctx context.Context, name string, rev uint64) (func(), error) {
	release := func() {
		if err := s.d.Names.Unreserve(ctx, name, rev); err != nil {
			s.log.Warn("release name reservation: " + err.Error())
		}
	}
	if ws, ok := s.d.Workspaces.Get(name); ok && ws.Status != events.StatusDeleted {
		release()
		return nil, nameTaken(name)
	}
	return release, nil
}

// takeOver claims a name whose workspace was deleted after cur reserved
// it; compare-and-set on the revision lets one request win.
// A tombstone (the delete's last step left it) proves the deletion by
// itself: refused while it holds, taken once its hold is over. A hold
// that ran out is announced as released first, as the workers' expiry
// check would have done (the same event id, so one announcement stays).
func (s *server) takeOver(ctx context.Context, name string, res, cur names.Reservation, rev uint64) (func(), error) {
	if cur.Held(time.Now()) {
		return nil, nameHeld(name, cur)
	}
	if cur.HeldUntil != nil {
		if err := names.Announce(ctx, s.d.Publisher, name, events.NameReleasedExpired, events.DefaultSource, *cur.HeldUntil); err != nil {
			return nil, unavailable("cannot announce the release of the name's expired hold now", err)
		}
	}
	if cur.HeldUntil == nil {
		ws, ok := s.d.Workspaces.Get(name)
		if !ok || ws.Status != events.StatusDeleted || cur.CreatedAt.After(ws.UpdatedAt) {
			return nil, nameTaken(name)
		}
	}
	next, err := s.d.Names.Claim(ctx, name, res, rev)
	if errors.Is(err, names.ErrTaken) {
		return nil, nameTaken(name)
	}
	if err != nil {
		return nil, unavailable("cannot reserve the workspace name now", err)
	}
	return func() {
		if _, err := s.d.Names.Claim(ctx, name, cur, next); err != nil {
			s.log.Warn("restore name reservation: " + err.Error())
		}
	}, nil
}

func nameHeld(name string, cur names.Reservation) error {
	deleted := "deleted"
	if cur.DeletedAt != nil {
		deleted += " at " + cur.DeletedAt.UTC().Format(time.RFC3339)
	}
	return errorf(http.StatusConflict, "preferred_name", fmt.Sprintf(
		"the name %s belonged to a workspace %s and is held until %s, so that grants left for it elsewhere cannot reach a new workspace; a platform admin may release it early (DELETE /names/%s)",
		name, deleted, cur.HeldUntil.UTC().Format(time.RFC3339), name))
}

func nameTaken(name string) error {
	return errorf(http.StatusConflict, "preferred_name", fmt.Sprintf("workspace %s already exists", name))
}

// markDeleting notes on the name's reservation that a delete of ws was
// accepted at at, so that the next read shows it deleting even while the
// worker is busy with something else. A workspace made without the API
// (or deleted already, its name released, while the read model lagged)
// has no reservation: the mark makes one dated when the workspace was
// made, so that once the read model says deleted, the name reads deleted
// and a later create takes it over.
func (s *server) markDeleting(ctx context.Context, ws readmodel.Workspace, at time.Time) error {
	for range 3 {
		res, rev, err := s.d.Names.Get(ctx, ws.Name)
		if err != nil {
			return err
		}
		if rev == 0 {
			res = names.Reservation{Owner: ws.Owner, CreatedAt: ws.CreatedAt}
		}
		res.DeleteAcceptedAt = &at
		if rev == 0 {
			_, err = s.d.Names.Reserve(ctx, ws.Name, res)
		} else {
			_, err = s.d.Names.Claim(ctx, ws.Name, res, rev)
		}
		if !errors.Is(err, names.ErrTaken) {
			return err
		}
	}
	return fmt.Errorf("mark %s deleting: its reservation keeps changing", ws.Name)
}
