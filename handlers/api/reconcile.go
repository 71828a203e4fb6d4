package api

import (
	"fmt"
	"net/http"

	"github.com/eo-workspaces/provisioner/auth"
	"github.com/eo-workspaces/provisioner/events"
)

// reconcileRequest is POST /workspaces/{name}/reconcile: nothing, or {}.
type reconcileRequest struct{}

// reconcile answers POST /workspaces/{name}/reconcile (platform admins):
// the worker compares the workspace with Keycloak and MinIO and repairs
// what is its own, as the periodic sweep does.
func (s *server) reconcile(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx, cancel := s.commandContext(r)
	defer cancel()
	ws, err := s.authorize(ctx, p, r.PathValue("name"), adminOnly)
	if err != nil {
		return err
	}
	var req reconcileRequest
	if err := s.decodeBody(w, r, &req, true); err != nil {
		return err
	}
	if ws.Status != events.StatusReady && ws.Status != events.StatusDegraded {
		return errorf(http.StatusConflict, "", fmt.Sprintf("workspace %s is %s: only a ready or degraded workspace is reconciled", ws.Name, ws.Status))
	}
	return s.command(ctx, w, r, p, ws.Name, req, &events.Reconcile{}, acceptedBody{Name: ws.Name}, nil)
}
