package sagas

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/events"
)

// The drift sweep publishes a reconcile command for every ready or
// degraded workspace once per interval; the reconcile saga does the work,
// in the workspace's order like any other command.

// ReconcileID is the id of the sweep's reconcile command of a workspace
// for the interval starting at slot: the same whichever worker publishes
// it, so when several workers sweep the same interval the stream keeps
// one command (and a record that applied it skips a late copy).
func ReconcileID(ws string, slot time.Time) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte(fmt.Sprintf("%s/reconcile/%s/%d", events.DefaultSource, ws, slot.UTC().UnixNano()))).String()
}

// Swept is what one sweep did.
type Swept struct {
	Published int // reconcile commands published
	Degraded  int // workspaces degraded when the sweep read them
}

// SweepAll publishes the reconcile command of every ready or degraded
// workspace for the interval starting at slot.
func SweepAll(ctx context.Context, list Lister, progress ProgressStore, pub EventPublisher, slot time.Time, log *zap.Logger) (Swept, error) {
	var out Swept
	names, err := list.Workspaces(ctx)
	if err != nil {
		return out, err
	}
	for _, ws := range names {
		rec, rev, err := progress.Load(ctx, ws)
		if err != nil {
			return out, err
		}
		if rev == 0 || (rec.Status != events.StatusReady && rec.Status != events.StatusDegraded) {
			continue
		}
		if rec.Status == events.StatusDegraded {
			out.Degraded++
		}
		env, err := events.New(ws, &events.Reconcile{}, events.Meta{ID: ReconcileID(ws, slot), Actor: events.DefaultSource})
		if err != nil {
			return out, err
		}
		if _, err := pub.Publish(ctx, env); err != nil {
			return out, fmt.Errorf("publish the reconcile of %s: %w", ws, err)
		}
		out.Published++
	}
	log.Info("drift sweep: reconciles requested", zap.Int("workspaces", out.Published), zap.Int("degraded", out.Degraded))
	return out, nil
}
