package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/handlers/worker"
	"github.com/eo-workspaces/provisioner/sagas/keycloak"
	"github.com/eo-workspaces/provisioner/sagas/objectstore"
	"github.com/eo-workspaces/provisioner/stack/census"
	"github.com/eo-workspaces/provisioner/stack/kcemu"
	"github.com/eo-workspaces/provisioner/stack/minioserver"
)

const outage, creations = 60 * time.Second, 50

// outageStack is a worker over a real MinIO (restartable on its data at
// the same address) and the Keycloak emulator (with fault injection).
type outageStack struct {
	h    *harness
	mio  *minioserver.Server
	opts minioserver.Options
	emu  *kcemu.Server
}

func newOutageStack(t *testing.T, ctx context.Context) *outageStack {
	return newOutageStackWith(t, ctx, func(*worker.Config) {})
}

// newOutageStackWith is newOutageStack with the worker's config tuned.
func newOutageStackWith(t *testing.T, ctx context.Context, tune func(*worker.Config)) *outageStack {
	t.Helper()
	s := &outageStack{opts: minioserver.Options{DataDir: t.TempDir()}}
	var err error
	if s.opts.Addr, err = minioserver.FreeAddr(); err != nil {
		t.Fatal(err)
	}
	if s.mio, err = minioserver.Start(ctx, s.opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.mio.Stop() })
	if s.emu, err = kcemu.Start(ctx, kcemu.Config{DevRealm: true, AdminUser: "admin", AdminPassword: "admin"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.emu.Close() })
	s.h = newHarness(t)
	if s.h.identity, err = keycloak.New(keycloak.Config{BaseURL: s.emu.URL(), Realm: kcemu.DevRealmName,
		ClientID: kcemu.DevWorkerClientID, ClientSecret: kcemu.DevWorkerClientSecret}, s.h.log); err != nil {
		t.Fatal(err)
	}
	if s.h.store, err = objectstore.New(objectstore.Config{Endpoint: s.mio.Endpoint(), AccessKey: s.mio.RootUser(),
		SecretKey: s.mio.RootPassword(), Region: s.mio.Region()}); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig("w-outage")
	cfg.Endpoint, cfg.Region = s.mio.URL(), s.mio.Region()
	cfg.MaxRetryElapsed, cfg.RetryInitial, cfg.RetryMax, cfg.StepTimeout = 0, 0, 0, 0 // the worker's defaults
	tune(&cfg)
	s.h.start(cfg)
	return s
}

// TestCreationsOutlastProviderOutages: while 50 creations run, a provider
// is out for 60 s: MinIO stopped (every request refused) then restarted
// on its data; Keycloak answering 503; Keycloak hanging. With the
// worker's own timeouts and retry budget every workspace ends ready, with
// exactly one owner key pair and one client each.
func TestCreationsOutlastProviderOutages(t *testing.T) {
	cases := []struct {
		name string
		down func(t *testing.T, ctx context.Context, s *outageStack) (up func())
	}{
		{"minio-refused", func(t *testing.T, ctx context.Context, s *outageStack) func() {
			return s.stopMinIO(t, ctx)
		}},
		{"keycloak-503", func(_ *testing.T, _ context.Context, s *outageStack) func() {
			return s.emu.Faults().Add(kcemu.Fault{Path: ".*", Kind: kcemu.Status503})
		}},
		{"keycloak-hang", func(_ *testing.T, _ context.Context, s *outageStack) func() {
			return s.emu.Faults().Add(kcemu.Fault{Path: ".*", Kind: kcemu.Hang})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			s := newOutageStack(t, ctx)
			names := make([]string, creations)
			var up func()
			for i := range names {
				names[i] = fmt.Sprintf("ws-outage-%02d", i)
				s.h.send(create(t, names[i]))
				if i == 5 {
					up = tc.down(t, ctx, s)
				}
			}
			select { // the outage itself: a duration, nothing to await
			case <-time.After(outage):
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			}
			up()
			back := time.Now()
			s.h.waitForWithin(5*time.Minute, "every workspace ready", func() bool { return allReady(t, s.h, names) })
			t.Logf("%d creations, %s for %s: all ready %s after it ended", creations, tc.name, outage, time.Since(back).Round(time.Second))
			s.assertOneOfEach(t, ctx, names)
		})
	}
}

// stopMinIO stops MinIO (every request refused) until the returned up
// restarts it on its data at the same address.
func (s *outageStack) stopMinIO(t *testing.T, ctx context.Context) (up func()) {
	t.Helper()
	if err := s.mio.Stop(); err != nil {
		t.Fatal(err)
	}
	return func() {
		// The address was free a moment ago; on a machine shared with other
		// test runs it can be taken for a moment (MinIO then exits at once),
		// so a failed start is tried again for a while.
		deadline := time.Now().Add(30 * time.Second)
		for {
			mio, err := minioserver.Start(ctx, s.opts)
			if err == nil {
				s.mio = mio
				t.Cleanup(func() { _ = mio.Stop() })
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("restart MinIO on %s: %v", s.opts.Addr, err)
			}
			t.Logf("restart MinIO on %s: %v; trying again", s.opts.Addr, err)
			time.Sleep(time.Second) // the address is someone else's for now
		}
	}
}

func allReady(t *testing.T, h *harness, names []string) bool {
	for _, ws := range names {
		switch h.status(ws) {
		case events.StatusReady:
		case events.StatusFailed:
			t.Fatalf("%s failed during the outage", ws)
		default:
			return false
		}
	}
	return true
}

func (s *outageStack) assertOneOfEach(t *testing.T, ctx context.Context, names []string) {
	t.Helper()
	c, err := census.Take(ctx, census.Keycloak{URL: s.emu.URL(), AdminUser: "admin", AdminPassword: "admin", Realm: kcemu.DevRealmName}, s.mio)
	if err != nil {
		t.Fatal(err)
	}
	per, clients := c.Users, c.Clients
	for _, ws := range names {
		if per[ws] != 1 || clients[ws] != 1 {
			t.Errorf("%s has %d key pairs and %d clients, want 1 of each", ws, per[ws], clients[ws])
		}
	}
}
