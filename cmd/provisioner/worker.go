package main

import (
	"context"

	"golang.org/x/sync/errgroup"
)

func (s *system) startWorker(ctx context.Context, g *errgroup.Group) error {
	_ = ctx
	_ = g
	return nil
}
