package sagas_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/eo-workspaces/provisioner/bus/bustest"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
	"github.com/eo-workspaces/provisioner/sagas/names"
	"github.com/eo-workspaces/provisioner/sagas/progress"
	"github.com/eo-workspaces/provisioner/sagas/sagatest"
	"github.com/eo-workspaces/provisioner/sagas/secrets"
	"github.com/eo-workspaces/provisioner/schemas"
)

const (
	owner    = "example-user-1"
	endpoint = "http://127.0.0.1:9000"
	region   = "us-east-1"
)

// harness is a real in-process JetStream with the saga machinery over
// in-memory providers.
type harness struct {
	t        *testing.T
	js       jetstream.JetStream
	prov     *sagatest.Providers
	vault    *secrets.Store
	progress *progress.KV
	pub      *events.Publisher
	namesKV  jetstream.KeyValue
	logs     *observer.ObservedLogs
	log      *zap.Logger
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessOn(t, bustest.Start(t).JS)
}

// newHarnessOn is a harness over js, whose topology is set up.
func newHarnessOn(t *testing.T, js jetstream.JetStream) *harness {
	t.Helper()
	ctx := context.Background()
	kv := func(name string) jetstream.KeyValue {
		k, err := js.KeyValue(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	vault, err := secrets.New(kv(events.SecretsBucket), secrets.Config{Key: secrets.KeyFromPassphrase("test")})
	if err != nil {
		t.Fatal(err)
	}
	schema, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	return &harness{t: t, js: js, prov: sagatest.New(owner), vault: vault, progress: progress.NewKV(kv(events.SagaBucket)),
		pub: events.NewPublisher(js, schema), namesKV: kv(events.NamesBucket), logs: logs, log: zap.New(core)}
}

// fastRetries keeps in-place retries short for tests.
func fastRetries(workerID string) sagas.EngineConfig {
	return sagas.EngineConfig{WorkerID: workerID, LeaseTTL: 3 * time.Second, MaxRetryElapsed: 2 * time.Second,
		RetryInitial: 5 * time.Millisecond, RetryMax: 50 * time.Millisecond, StepTimeout: 5 * time.Second}
}

func (h *harness) coordinator(cfg sagas.EngineConfig) *sagas.CommandHandler {
	h.t.Helper()
	return h.application(cfg, h.pub)
}

// application wires the sagas as the worker does, over the harness's
// providers and the given publisher.
func (h *harness) application(cfg sagas.EngineConfig, pub sagas.EventPublisher) *sagas.CommandHandler {
	h.t.Helper()
	app, err := sagas.NewApplication(sagas.AppConfig{Engine: cfg, Endpoint: endpoint, Region: region}, sagas.Ports{
		Progress: h.progress, Events: pub, Identity: h.prov, Store: h.prov, Vault: h.vault,
		Names: names.NewKV(h.namesKV), Log: h.log,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return app
}

func command(t *testing.T, ws string, p events.Payload) events.Envelope {
	t.Helper()
	env, err := events.New(ws, p, events.Meta{Actor: "admin", CorrelationID: "corr-" + uuid.NewString()})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func create(t *testing.T, ws string) events.Envelope {
	return command(t, ws, &events.Create{PreferredName: strings.TrimPrefix(ws, "ws-"), DefaultOwner: owner})
}

func (h *harness) record(ws string) sagas.Record {
	h.t.Helper()
	r, _, err := h.progress.Load(context.Background(), ws)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

// eventsOf returns every event published for ws, oldest first.
func (h *harness) eventsOf(ws string) []events.Envelope {
	h.t.Helper()
	ctx := context.Background()
	s, err := h.js.Stream(ctx, events.EventsStream)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []events.Envelope
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			h.t.Fatal(err)
		}
		if !strings.HasPrefix(m.Subject, events.EventSubjectPrefix+ws+".") {
			continue
		}
		var env events.Envelope
		if err := json.Unmarshal(m.Data, &env); err != nil {
			h.t.Fatal(err)
		}
		out = append(out, env)
	}
	return out
}

// summary renders events as "type:detail" for comparison.
func summary(t *testing.T, envs []events.Envelope) []string {
	t.Helper()
	out := make([]string, 0, len(envs))
	for _, e := range envs {
		p, err := e.DecodeData()
		if err != nil {
			t.Fatal(err)
		}
		switch d := p.(type) {
		case *events.StatusChanged:
			out = append(out, "status:"+d.Status)
		case *events.StepCompleted:
			out = append(out, d.Saga+":"+d.Step)
		case *events.StepFailed:
			out = append(out, "failed:"+d.Step)
		case *events.MemberAdded:
			out = append(out, "member:"+d.Username+"="+d.Role)
		case *events.MemberRemoved:
			out = append(out, "removed:"+d.Username)
		case *events.CredentialsIssued:
			out = append(out, "issued:"+d.Username)
		case *events.CredentialsRevoked:
			out = append(out, "revoked:"+d.Username)
		default:
			out = append(out, e.Type)
		}
	}
	return out
}

// crashAfter makes the providers panic right after op's side effect, the
// first time only: a worker killed between the side effect and saving
// its progress.
type crash struct{ op string }

func crashAfter(p *sagatest.Providers, op string) {
	fired := false
	p.SetAfter(func(got, _ string) error {
		if got == op && !fired {
			fired = true
			panic(crash{op})
		}
		return nil
	})
}

// handleCrashing runs Handle and reports whether it crashed.
func handleCrashing(t *testing.T, c *sagas.CommandHandler, env events.Envelope) (crashed bool, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(crash); !ok {
				panic(r)
			}
			crashed = true
		}
	}()
	return false, c.Handle(context.Background(), env)
}
