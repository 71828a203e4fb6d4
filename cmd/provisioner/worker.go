package main

import (
	"context"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/eo-workspaces/provisioner/handlers/worker"
	"github.com/eo-workspaces/provisioner/sagas/keycloak"
	"github.com/eo-workspaces/provisioner/sagas/objectstore"
)

// objectStore is the MinIO adapter, for the worker's sagas and the API's
// temporary credentials.
func (s *system) objectStore() (*objectstore.Store, error) {
	return objectstore.New(objectstore.Config{
		Endpoint: s.cfg.S3Endpoint, AccessKey: s.cfg.MinIOAccessKey, SecretKey: s.cfg.MinIOSecretKey, Region: s.cfg.S3Region,
	})
}

func (s *system) startWorker(ctx context.Context, g *errgroup.Group) error {
	identity, err := keycloak.New(keycloak.Config{
		BaseURL: s.cfg.KeycloakURL, Realm: s.cfg.KeycloakRealm,
		ClientID: s.cfg.KeycloakClientID, ClientSecret: s.cfg.KeycloakClientSecret,
	}, s.log.Named("keycloak"))
	if err != nil {
		return err
	}
	store, err := s.objectStore()
	if err != nil {
		return err
	}
	secretStore, err := s.secretStore(ctx)
	if err != nil {
		return err
	}
	w, err := worker.New(worker.Config{
		Concurrency: s.cfg.Concurrency, SideConcurrency: s.cfg.SideConcurrency, MaxRetryElapsed: s.cfg.MaxRetryElapsed, WorkerID: s.cfg.WorkerID,
		Endpoint: s.publicS3URL(), Region: s.cfg.S3Region, NameHold: s.nameHold(), ReconcileInterval: s.reconcileInterval(),
	}, worker.Deps{
		JS: s.bus.JS, Publisher: s.pub, Schema: s.schema,
		Identity: identity, Store: store, Secrets: secretStore, Log: s.log.Named("worker"), Metrics: s.metrics,
	})
	if err != nil {
		return err
	}
	g.Go(func() error { return w.Run(ctx) })
	return nil
}

// nameHold maps --name-hold 0 ("freed at once") to the worker's
// negative, its zero being the default.
func (s *system) nameHold() time.Duration {
	if s.cfg.NameHold <= 0 {
		return -1
	}
	return s.cfg.NameHold
}

// reconcileInterval maps --reconcile-interval 0 ("never") to the
// worker's negative, its zero being the default.
func (s *system) reconcileInterval() time.Duration {
	if s.cfg.ReconcileInterval <= 0 {
		return -1
	}
	return s.cfg.ReconcileInterval
}
