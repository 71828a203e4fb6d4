package projection

import (
	"context"
	"time"
)

// SetSampleEvery makes the lag sampling fast for tests.
func SetSampleEvery(p *Projector, d time.Duration) { p.sampleEvery = d }

// BeforeRebuildWrites makes f run between a rebuild's read of the stored
// model and its writes, until the test ends.
func BeforeRebuildWrites(t interface{ Cleanup(func()) }, f func()) {
	beforeWrites = f
	t.Cleanup(func() { beforeWrites = func() {} })
}

// SetLeaseTTL makes takeovers fast for tests.
func SetLeaseTTL(p *Projector, d time.Duration) { p.lease.ttl = d }

// ConsumeFrom folds the events after from until ctx ends, holding no
// lease: what a holder that stalled past its expiry still does.
func ConsumeFrom(ctx context.Context, p *Projector, from uint64) error {
	p.applied.Store(from)
	return p.consume(ctx)
}
