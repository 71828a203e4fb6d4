package api

import (
	"errors"
	"fmt"
	"net/http"

	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/auth"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas/names"
)

// releaseName lifts the hold on a deleted workspace's name before it
// ends (platform admins): the next create may take it. The release is
// announced as name.released, the admin as its actor.
func (s *server) releaseName(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	if !p.Admin {
		return errorf(http.StatusForbidden, "", "only platform admins may release a held name")
	}
	name := r.PathValue("name")
	if err := validName(name); err != nil {
		return err
	}
	ctx, cancel := s.commandContext(r)
	defer cancel()
	cur, rev, err := s.d.Names.Get(ctx, name)
	switch {
	case err != nil:
		return unavailable("cannot read the name now", err)
	case rev == 0:
		return errorf(http.StatusNotFound, "name", fmt.Sprintf("the name %s is not held", name))
	case cur.HeldUntil == nil:
		return errorf(http.StatusConflict, "name", fmt.Sprintf("the name %s is reserved by a workspace, not held after a deletion", name))
	}
	err = s.d.Names.Unreserve(ctx, name, rev)
	if errors.Is(err, names.ErrTaken) {
		return errorf(http.StatusConflict, "name", fmt.Sprintf("the name %s changed hands meanwhile; read it again", name))
	}
	if err != nil {
		return unavailable("cannot release the name now", err)
	}
	// The name is free already: the event is best effort, logged if it
	// cannot be published, as the API's other audit events.
	if err := names.Announce(ctx, s.d.Publisher, name, events.NameReleasedEarly, p.Username, *cur.HeldUntil); err != nil {
		s.log.Warn("name release not announced", zap.String("name", name), zap.Error(err))
	}
	s.log.Info("held name released", zap.String("name", name), zap.String("actor", p.Username),
		zap.Timep("held_until", cur.HeldUntil))
	w.WriteHeader(http.StatusNoContent)
	return nil
}
