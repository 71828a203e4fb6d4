package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/eo-workspaces/provisioner/handlers/api"
	"github.com/eo-workspaces/provisioner/sagas"
	"github.com/eo-workspaces/provisioner/sagas/objectstore"
)

// objects reads workspaces' objects for share links, with the API's
// MinIO admin identity: a link is checked (its creator still a member
// who may read and write) before anything is read.
type objects struct{ store *objectstore.Store }

func (o objects) Stat(ctx context.Context, bucket, key string) (api.ObjectInfo, error) {
	info, err := o.store.StatObject(ctx, bucket, key)
	if errors.Is(err, sagas.ErrNotFound) {
		return api.ObjectInfo{}, fmt.Errorf("%w: %w", api.ErrNoObject, err)
	}
	return api.ObjectInfo(info), err
}

func (o objects) Open(ctx context.Context, bucket, key string, info api.ObjectInfo) io.ReadSeekCloser {
	return o.store.OpenObject(ctx, bucket, key, objectstore.ObjectInfo(info))
}

func (o objects) Get(ctx context.Context, bucket, key string) (io.ReadSeekCloser, api.ObjectInfo, error) {
	body, info, err := o.store.GetObject(ctx, bucket, key)
	if errors.Is(err, sagas.ErrNotFound) {
		return nil, api.ObjectInfo{}, fmt.Errorf("%w: %w", api.ErrNoObject, err)
	}
	return body, api.ObjectInfo(info), err
}
