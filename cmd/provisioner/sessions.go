package main

import (
	"context"
	"errors"

	"github.com/eo-workspaces/provisioner/handlers/api"
	"github.com/eo-workspaces/provisioner/sagas/objectstore"
	"github.com/eo-workspaces/provisioner/sagas/secrets"
)

// sessions issues STS credentials for the API from a member's stored key
// pair: MinIO's AssumeRole is signed with the member's own keys, so a
// session can never exceed what the member's user may do, and dies with it.
type sessions struct {
	vault            *secrets.Store
	store            *objectstore.Store
	endpoint, region string
}

func (s sessions) Issue(ctx context.Context, ws, username string, req api.SessionRequest) (api.Session, error) {
	cred, ok, err := s.vault.GetMember(ctx, ws, username)
	if err != nil {
		return api.Session{}, err
	}
	if !ok {
		return api.Session{}, api.ErrNoKeys
	}
	sess, err := s.store.AssumeRole(ctx, cred.AccessKey, cred.SecretKey, objectstore.SessionRequest{
		Bucket: ws, Prefix: req.Prefix, ReadOnly: req.ReadOnly, Duration: req.Duration,
	})
	if errors.Is(err, objectstore.ErrSTSRefused) {
		// stored keys MinIO no longer knows: the member is being removed
		return api.Session{}, api.ErrNoKeys
	}
	if err != nil {
		return api.Session{}, err
	}
	return api.Session{AccessKey: sess.AccessKey, SecretKey: sess.SecretKey, SessionToken: sess.SessionToken,
		Endpoint: s.endpoint, Region: s.region, Expiration: sess.Expiration}, nil
}
