package bus

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// SamplePending asks the server for cons's state now and then every
// interval, and hands observe what it has not delivered yet (NumPending)
// and what it delivered without an ack (NumAckPending), until the
// returned stop is called or ctx ends. A sample the server does not answer
// (a leader election, an outage) is skipped: the next tick tries again,
// and /readyz reports the outage.
func SamplePending(ctx context.Context, cons jetstream.Consumer, every time.Duration,
	observe func(pending, ackPending uint64)) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			samplePending(ctx, cons, every, observe)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

func samplePending(ctx context.Context, cons jetstream.Consumer, timeout time.Duration,
	observe func(pending, ackPending uint64)) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	info, err := cons.Info(ctx)
	if err != nil {
		return
	}
	observe(info.NumPending, uint64(info.NumAckPending))
}
