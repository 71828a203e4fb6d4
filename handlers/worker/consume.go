package worker

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eo-workspaces/provisioner/events"
)

// openConsumer binds the commands consumer, as at start-up, and pulls
// from it; bus.Messages calls it again when the server leading the
// consumer is lost, so the worker rides through a node loss.
func (w *Worker) openConsumer(ctx context.Context, opts ...jetstream.PullMessagesOpt) (jetstream.MessagesContext, error) {
	cons, err := w.deps.JS.CreateOrUpdateConsumer(ctx, events.CommandsStream, w.consumerConfig())
	if err != nil {
		return nil, fmt.Errorf("worker consumer: %w", err)
	}
	return cons.Messages(opts...)
}
