package sagas

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
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

// vaultSweeper is what the Issuer and the Retirer share: the ports they
// read and change, and how often they look.
type vaultSweeper struct {
	store    ObjectStore
	vault    Vault
	events   EventPublisher
	log      *zap.Logger
	interval time.Duration
}

// newVaultSweeper checks p for what a sweeper needs (name says which in
// the error) and fills the defaults: interval def when not positive.
func newVaultSweeper(name string, p Ports, interval, def time.Duration) (vaultSweeper, error) {
	if p.Store == nil || p.Vault == nil || p.Events == nil {
		return vaultSweeper{}, fmt.Errorf("%s: store, vault and events are required", name)
	}
	if interval <= 0 {
		interval = def
	}
	if p.Log == nil {
		p.Log = zap.NewNop()
	}
	return vaultSweeper{store: p.Store, vault: p.Vault, events: p.Events, log: p.Log, interval: interval}, nil
}
