package main

import (
	"context"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/eo-workspaces/provisioner/sagas"

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
		WorkspaceScopeClients: s.workspaceScopeClients(),
	}, s.log.Named("keycloak"))
	if err != nil {
		return err
	}
	if shape, _ := keycloak.ParseTokenShape(s.cfg.KeycloakTokenShape); shape != keycloak.TokenShapeAsIs {
		g.Go(func() error { return s.applyTokenShape(ctx, identity, shape) })
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
		ReconcileKeep: s.reconcileKeep(),
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

// applyTokenShape sets the sign-in clients for the token shape, retrying
// while Keycloak does not answer (it may start after the worker); an
// unknown client or role stops the process, as bad configuration should.
func (s *system) applyTokenShape(ctx context.Context, kc *keycloak.Adapter, shape keycloak.TokenShape) error {
	b := backoff.WithContext(backoff.NewExponentialBackOff(backoff.WithMaxElapsedTime(0), backoff.WithMaxInterval(30*time.Second)), ctx)
	err := backoff.Retry(func() error {
		err := kc.ApplyTokenShape(ctx, shape, s.cfg.KeycloakSignIn, []string{s.cfg.AdminRole})
		if sagas.IsPermanent(err) {
			return backoff.Permanent(err)
		}
		if err != nil {
			s.log.Warn("keycloak token shape not applied yet; retrying", zap.Error(err))
		}
		return err
	}, b)
	switch {
	case ctx.Err() != nil:
		return nil
	case err != nil:
		return fmt.Errorf("--keycloak-token-shape %s: %w", shape, err)
	}
	s.log.Info("keycloak token shape applied", zap.String("shape", string(shape)), zap.Strings("sign_in_clients", s.cfg.KeycloakSignIn))
	return nil
}

func (s *system) workspaceScopeClients() []string {
	if !s.cfg.KeycloakWSScopes {
		return nil
	}
	return s.cfg.KeycloakSignIn
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

// reconcileKeep maps --reconcile-keep 0 ("for good") to the worker's
// negative, its zero being the default.
func (s *system) reconcileKeep() time.Duration {
	if s.cfg.ReconcileKeep <= 0 {
		return -1
	}
	return s.cfg.ReconcileKeep
}
