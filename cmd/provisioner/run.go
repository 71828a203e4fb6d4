package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sync/errgroup"

	"github.com/eo-workspaces/provisioner/bus"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/handlers/projection"
	"github.com/eo-workspaces/provisioner/schemas"
	"github.com/eo-workspaces/provisioner/tracing"
)

// system is what every role shares: one NATS connection, the schemas and
// the publisher.
type system struct {
	cfg    config
	log    *zap.Logger
	bus    *bus.Bus
	schema *schemas.Validator
	pub    *events.Publisher
	// metrics holds every role's series; /metrics serves it.
	metrics *prometheus.Registry
	ready   *readiness
}

func run(ctx context.Context, cfg config) error {
	log, err := newLogger(cfg)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	stopTracing, err := tracing.Setup(ctx, "provisioner")
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		if err := stopTracing(sctx); err != nil {
			log.Warn("flushing traces", zap.Error(err))
		}
	}()
	if tracing.Enabled() {
		log.Info("tracing on: spans exported over OTLP as the OTEL_* variables say")
	}
	sys, err := connect(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer sys.close()

	g, gctx := errgroup.WithContext(ctx)
	if cfg.has(roleProjection) {
		if err := sys.startProjection(gctx, g); err != nil {
			return err
		}
	}
	if cfg.has(roleWorker) {
		if err := sys.startWorker(gctx, g); err != nil {
			return err
		}
	}
	if cfg.has(roleAPI) {
		if err := sys.startAPI(gctx, g); err != nil {
			return err
		}
	} else if err := sys.serve(gctx, g, sys.opsHandler()); err != nil {
		return err
	}
	log.Info("provisioner running", zap.Strings("roles", cfg.Roles))
	err = g.Wait()
	log.Info("provisioner stopped", zap.Error(err))
	return err
}

func connect(ctx context.Context, cfg config, log *zap.Logger) (*system, error) {
	b, err := bus.Connect(ctx, bus.Config{URL: cfg.NATSURL, DataDir: cfg.DataDir, Listen: cfg.NATSListen, Name: "provisioner"}, log)
	if err != nil {
		return nil, err
	}
	if err := events.EnsureTopology(ctx, b.JS, events.TopologyConfig{Replicas: cfg.Replicas, Partitions: cfg.Partitions}); err != nil {
		_ = b.Close(context.Background())
		return nil, err
	}
	v, err := schemas.New()
	if err != nil {
		_ = b.Close(context.Background())
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	sys := &system{cfg: cfg, log: log, bus: b, schema: v, pub: events.NewPublisher(b.JS, v), metrics: reg}
	sys.ready = newReadiness(sys)
	return sys, nil
}

// close drains NATS after every role has stopped, so in-flight publishes
// and acks reach the server before the embedded one shuts down.
func (s *system) close() {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := s.bus.Close(ctx); err != nil {
		s.log.Warn("nats close", zap.Error(err))
	}
}

func (s *system) startProjection(ctx context.Context, g *errgroup.Group) error {
	p, err := projection.NewProjector(ctx, s.bus.JS, s.schema, s.log.Named("projection"))
	if err != nil {
		return err
	}
	if err := p.RegisterMetrics(s.metrics); err != nil {
		return err
	}
	if s.cfg.WorkerID != "" {
		p.SetHolder(s.cfg.WorkerID)
	}
	g.Go(func() error { return p.Run(ctx) })
	return nil
}

// serve runs an HTTP server until ctx ends, then lets in-flight requests
// finish within the shutdown timeout.
func (s *system) serve(ctx context.Context, g *errgroup.Group, h http.Handler) error {
	ln, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.HTTPAddr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	s.log.Info("api listening", zap.String("url", "http://"+ln.Addr().String()))
	g.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	return nil
}

func newLogger(cfg config) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(cfg.LogLevel)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	zc := zap.NewProductionConfig()
	if !cfg.LogJSON {
		zc = zap.NewDevelopmentConfig()
	}
	zc.Level = zap.NewAtomicLevelAt(lvl)
	return zc.Build()
}

func rebuild(ctx context.Context, cfg config) error {
	log, err := newLogger(cfg)
	if err != nil {
		return err
	}
	sys, err := connect(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer sys.close()
	stats, err := projection.Rebuild(ctx, sys.bus.JS, sys.schema, log)
	if err != nil {
		return err
	}
	log.Info("projection rebuilt; the projection role resumes after the last event folded",
		zap.Int("events", stats.Events), zap.Int("rejected", stats.Rejected), zap.Int("workspaces", stats.Workspaces),
		zap.Int("written", stats.Written), zap.Int("removed", stats.Removed), zap.Uint64("last_seq", stats.LastSeq),
		zap.Duration("took", stats.Took), zap.Float64("events_per_second", stats.EventsPerSecond()))
	return nil
}
