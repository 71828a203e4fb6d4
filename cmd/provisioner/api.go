package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/eo-workspaces/provisioner/auth"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/handlers/api"
	"github.com/eo-workspaces/provisioner/handlers/ui"
	"github.com/eo-workspaces/provisioner/readmodel"
	"github.com/eo-workspaces/provisioner/sagas/names"
	"github.com/eo-workspaces/provisioner/sagas/secrets"
	"github.com/eo-workspaces/provisioner/sagas/shares"
)

func (s *system) startAPI(ctx context.Context, g *errgroup.Group) error {
	js := s.bus.JS
	namesKV, err := js.KeyValue(ctx, events.NamesBucket)
	if err != nil {
		return fmt.Errorf("names bucket: %w", err)
	}
	idem, err := js.KeyValue(ctx, events.IdempotencyBucket)
	if err != nil {
		return fmt.Errorf("idempotency bucket: %w", err)
	}
	creds, err := s.secretStore(ctx)
	if err != nil {
		return err
	}
	var sts api.Sessions // without MinIO settings, STS answers 503
	var use api.Usage    // usage is null
	var objs api.Objects // and share links answer 503
	if s.cfg.S3Endpoint != "" {
		store, err := s.objectStore()
		if err != nil {
			return err
		}
		sts = sessions{vault: creds, store: store, endpoint: s.publicS3URL(), region: s.cfg.S3Region}
		use, objs = newUsage(store), objects{store: store}
	}
	sharesKV, err := js.KeyValue(ctx, events.SharesBucket)
	if err != nil {
		return fmt.Errorf("shares bucket: %w", err)
	}
	links := shares.NewKV(sharesKV)
	reporter := &api.ShareReporter{Shares: links, Publisher: s.pub, Log: s.log.Named("shares")}
	g.Go(func() error { return reporter.Run(ctx) })
	authn, err := s.authenticator(ctx)
	if err != nil {
		return err
	}
	reader := readmodel.NewReader(s.log.Named("reader"))
	g.Go(func() error { return reader.Run(ctx, js) })
	ready := func(ctx context.Context) error {
		select {
		case <-reader.Ready():
		default:
			return errors.New("read model still loading")
		}
		if err := s.ready.check(ctx); err != nil {
			return errors.New(reason(err))
		}
		return nil
	}
	h, err := api.New(api.Config{AdminRole: s.cfg.AdminRole, PublicURL: s.cfg.APIPublicURL}, api.Deps{
		Publisher: s.pub, Workspaces: reader, Credentials: creds, Shares: links, Objects: objs,
		Sessions: sts, Usage: use, Names: names.NewKV(namesKV), Idempotency: idem, JS: js, Auth: authn,
		Ready: ready, Log: s.log.Named("api"), Metrics: s.metrics,
	})
	if err != nil {
		return err
	}
	return s.serve(ctx, g, s.withUI(ctx, h, authn, reader))
}

// withUI mounts the operator page at /ui/ beside the API, when there is a
// Keycloak for it to sign in with.
func (s *system) withUI(ctx context.Context, apiHandler http.Handler, authn api.Authenticator, reader *readmodel.Reader) http.Handler {
	kc := s.cfg.UIKeycloakURL
	if kc == "" {
		kc = s.cfg.KeycloakURL
	}
	page, err := ui.New(ui.Config{KeycloakURL: kc, Realm: s.cfg.KeycloakRealm, ClientID: s.cfg.UIClientID, AdminRole: s.cfg.AdminRole},
		ui.Deps{Auth: authn, Workspaces: reader, Done: ctx.Done(), Log: s.log.Named("ui")})
	if err != nil {
		s.log.Info("operator page off", zap.Error(err))
		return apiHandler
	}
	mux := http.NewServeMux()
	mux.Handle("/ui/", page)
	mux.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))
	mux.Handle("/", apiHandler)
	return mux
}

func (s *system) secretStore(ctx context.Context) (*secrets.Store, error) {
	kv, err := s.bus.JS.KeyValue(ctx, events.SecretsBucket)
	if err != nil {
		return nil, fmt.Errorf("secrets bucket: %w", err)
	}
	return secrets.New(kv, secrets.Config{Key: secrets.KeyFromPassphrase(s.cfg.SecretKey), Endpoint: s.publicS3URL(), Region: s.cfg.S3Region})
}

func (s *system) publicS3URL() string {
	if s.cfg.S3PublicURL != "" {
		return s.cfg.S3PublicURL
	}
	return s.cfg.S3Endpoint
}

func (s *system) authenticator(ctx context.Context) (api.Authenticator, error) {
	if s.cfg.InsecureNoAuth {
		s.log.Warn("API authentication is OFF: every caller is a platform admin (--insecure-no-auth)")
		return auth.Static(auth.Principal{Subject: "anonymous", Username: "anonymous", Admin: true}), nil
	}
	issuer := s.cfg.KeycloakURL + "/realms/" + s.cfg.KeycloakRealm
	a, err := auth.NewJWT(ctx, auth.JWTConfig{IssuerURL: issuer, Audience: s.cfg.OIDCAudience, AdminRole: s.cfg.AdminRole})
	if err != nil {
		return nil, fmt.Errorf("token verification for %s: %w", issuer, err)
	}
	s.log.Info("API tokens verified", zap.String("issuer", issuer), zap.String("audience", s.cfg.OIDCAudience))
	return a, nil
}
