package sagas

import (
	"context"
	"time"
)

// Every calls sweep at each tick of interval until ctx ends; a sweep that
// fails is handed to failed (the next tick tries again), unless ctx ended.
// The Retirer, the Issuer and the names' expiry run this way beside the
// sagas.
func Every(ctx context.Context, interval time.Duration, sweep func(context.Context, time.Time) error, failed func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if err := sweep(ctx, now); err != nil && ctx.Err() == nil {
				failed(err)
			}
		}
	}
}
