package api

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/readmodel"
)

// StorageUsage is what a workspace's bucket holds, as of MeasuredAt.
type StorageUsage struct {
	Bytes, Objects int64
	MeasuredAt     time.Time
}

// Usage measures a workspace's bucket.
type Usage interface {
	Usage(ctx context.Context, bucket string) (StorageUsage, error)
}

type usageBody struct {
	Bytes      int64     `json:"bytes"`
	Objects    int64     `json:"objects"`
	MeasuredAt time.Time `json:"measured_at"`
}

// usageOf measures a ready workspace; null when it is not ready, the API
// has no object store, or the measure fails (logged: a GET still answers).
func (s *server) usageOf(ctx context.Context, ws readmodel.Workspace, ready bool) *usageBody {
	if !ready || s.d.Usage == nil {
		return nil
	}
	u, err := s.d.Usage.Usage(ctx, ws.Name)
	if err != nil {
		s.log.Warn("usage not measured", zap.String("workspace", ws.Name), zap.Error(err))
		return nil
	}
	return &usageBody{Bytes: u.Bytes, Objects: u.Objects, MeasuredAt: u.MeasuredAt.UTC()}
}
