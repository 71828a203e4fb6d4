package objectstore

import (
	"context"
	"sync/atomic"
)

// Attach exposes the attach fallback of EnsureUser to the tests.
func (s *Store) Attach(ctx context.Context, accessKey, policy string) error {
	return s.attach(ctx, new(atomic.Int32), accessKey, policy)
}
