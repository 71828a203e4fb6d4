package main

import (
	"context"
	"sync"
	"time"

	"github.com/eo-workspaces/provisioner/handlers/api"
	"github.com/eo-workspaces/provisioner/sagas/objectstore"
)

// Usage figures: buckets up to usageCountLimit objects are counted by
// listing them; each figure is kept usageTTL, so clients polling GET do
// not list the bucket on every request.
const (
	usageCountLimit = 10000
	usageTTL        = 5 * time.Second
)

// usage measures buckets for the API's GET, with a short cache.
type usage struct {
	store *objectstore.Store
	mu    sync.Mutex
	seen  map[string]measured
}

type measured struct {
	api.StorageUsage
	at time.Time // when this API measured it (a scanner figure is older)
}

func newUsage(store *objectstore.Store) *usage {
	return &usage{store: store, seen: map[string]measured{}}
}

func (u *usage) Usage(ctx context.Context, bucket string) (api.StorageUsage, error) {
	u.mu.Lock()
	got, ok := u.seen[bucket]
	u.mu.Unlock()
	if ok && time.Since(got.at) < usageTTL {
		return got.StorageUsage, nil
	}
	m, err := u.store.BucketUsage(ctx, bucket, usageCountLimit)
	if err != nil {
		return api.StorageUsage{}, err
	}
	got = measured{StorageUsage: api.StorageUsage{Bytes: m.Bytes, Objects: m.Objects, MeasuredAt: m.MeasuredAt}, at: time.Now()}
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.seen) > usageCountLimit { // forget them all rather than grow without bound
		clear(u.seen)
	}
	u.seen[bucket] = got
	return got.StorageUsage, nil
}
