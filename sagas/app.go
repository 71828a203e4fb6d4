package sagas

import (
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/events"
)

// Ports are everything the workspace sagas act through, in their own
// terms; adapters implement them.
type Ports struct {
	Progress ProgressStore
	Events   EventPublisher
	Identity Identity
	Store    ObjectStore
	Vault    Vault
	Names    Names
	Shares   Shares      // nil: no share links
	Log      *zap.Logger // nil: none
}

// AppConfig configures the application: the engine, and the S3 endpoint
// and region a ready workspace reports in its storage block.
type AppConfig struct {
	Engine   EngineConfig
	Endpoint string
	Region   string
	NameHold time.Duration // a deleted workspace's name is held this long (zero: not at all)
	// ObserveDrift, if set, learns what each reconcile found (metrics).
	ObserveDrift func(repaired []events.Repair, degraded bool)
}

// NewApplication wires the command handler from ports: the one place
// where the engine, the workspace's sagas and the adapters meet. The
// worker calls it with the real adapters, tests with in-memory ones.
func NewApplication(cfg AppConfig, p Ports) (*CommandHandler, error) {
	if p.Progress == nil || p.Events == nil {
		return nil, errors.New("saga application: progress store and event publisher are required")
	}
	if p.Log == nil {
		p.Log = zap.NewNop()
	}
	engine, err := NewEngine(cfg.Engine, p.Progress, p.Events, p.Log)
	if err != nil {
		return nil, err
	}
	sagas, err := NewProvisioner(ProvisionerDeps{Identity: p.Identity, Store: p.Store, Vault: p.Vault, Names: p.Names,
		Shares: p.Shares, Log: p.Log, NameHold: cfg.NameHold, ObserveDrift: cfg.ObserveDrift}, cfg.Endpoint, cfg.Region)
	if err != nil {
		return nil, fmt.Errorf("saga application: %w", err)
	}
	return NewCommandHandler(engine, p.Progress, sagas, p.Log), nil
}
