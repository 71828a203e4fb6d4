package sagas

import "context"

// Slot is a concurrency slot the worker gives a run (a bulkhead's). A run
// that waits to retry a transient failure gives it back for the wait and
// takes one again before the next attempt, so runs waiting out a
// provider's outage (a member removal waiting for MinIO) do not keep
// runs that need only the other provider from starting. Release and
// Acquire must be safe to call from several goroutines and in any order.
type Slot interface {
	Release()
	Acquire(ctx context.Context) error
}

type slotKey struct{}

// WithSlot returns ctx carrying the run's slot.
func WithSlot(ctx context.Context, s Slot) context.Context {
	return context.WithValue(ctx, slotKey{}, s)
}

// slotFrom returns the run's slot, nil when it has none.
func slotFrom(ctx context.Context) Slot {
	s, _ := ctx.Value(slotKey{}).(Slot)
	return s
}
