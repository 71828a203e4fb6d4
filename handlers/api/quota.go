package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/eo-workspaces/provisioner/auth"
	"github.com/eo-workspaces/provisioner/events"
)

// patchRequest is PATCH /workspaces/{name}: quota_mb only, for now. It
// is kept raw so that a missing field (nothing to change: 422) tells
// from null (remove the quota).
type patchRequest struct {
	QuotaMB json.RawMessage `json:"quota_mb"`
}

// patch answers PATCH /workspaces/{name} (platform admins): the quota
// change is a command, applied by the worker's quota_set saga.
func (s *server) patch(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx, cancel := s.commandContext(r)
	defer cancel()
	ws, err := s.authorize(ctx, p, r.PathValue("name"), adminOnly)
	if err != nil {
		return err
	}
	var req patchRequest
	if err := s.decodeBody(w, r, &req, false); err != nil {
		return err
	}
	quota, err := parseQuota(req.QuotaMB)
	if err != nil {
		return err
	}
	if ws.Status != events.StatusReady {
		return errorf(http.StatusConflict, "", fmt.Sprintf("workspace %s is %s, not ready", ws.Name, ws.Status))
	}
	return s.command(ctx, w, r, p, ws.Name, req, &events.QuotaSet{QuotaMB: quota}, acceptedBody{Name: ws.Name}, nil)
}

// parseQuota reads quota_mb: null removes the quota, a whole number from
// 1 to events.MaxQuotaMB sets it; anything else is 422.
func parseQuota(raw json.RawMessage) (*int64, error) {
	if len(raw) == 0 {
		return nil, errorf(http.StatusUnprocessableEntity, "quota_mb", "quota_mb is required: a whole number of MiB, or null to remove the quota")
	}
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, nil
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err != nil {
		return nil, errorf(http.StatusUnprocessableEntity, "quota_mb", "quota_mb must be a whole number of MiB, or null")
	}
	return &n, validQuota(&n)
}

// validQuota checks a quota in MiB; nil (no quota) is valid.
func validQuota(q *int64) error {
	if q != nil && (*q < 1 || *q > events.MaxQuotaMB) {
		return errorf(http.StatusUnprocessableEntity, "quota_mb", fmt.Sprintf("quota_mb must be from 1 to %d (MiB)", events.MaxQuotaMB))
	}
	return nil
}
