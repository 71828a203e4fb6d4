package scaleout

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eo-workspaces/provisioner/bus/bustest"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/handlers/worker"
	"github.com/eo-workspaces/provisioner/stack/census"
	"github.com/eo-workspaces/provisioner/stack/kcemu"
	"github.com/eo-workspaces/provisioner/stack/minioserver"
)

const (
	total     = 300 // workspaces
	clients   = 24  // platform clients at work at once
	killAfter = 100 // workspaces ready when a worker and a node die
	owner     = kcemu.DevUser1
	member    = kcemu.DevUser2
	secretKey = "scaleout-secret-key-scaleout-secret"
)

// plan is what the commands of workspace i ask for: every one is
// created; a third get a member, half of those see them removed again; a
// tenth are deleted at the end.
type plan struct{ add, remove, del bool }

func planOf(i int) plan { return plan{add: i%3 == 0, remove: i%6 == 0, del: i%10 == 0} }

func nameOf(i int) string { return fmt.Sprintf("ws-so-%03d", i) }

// TestScaleOutOnAClusterThroughAWorkerAndANodeKilled: three nats-server
// nodes (R3 streams and buckets), three worker, two API and two
// projection processes of the real binary, started at once; real MinIO
// and the Keycloak emulator. 300 workspaces are created, a third get a
// member, some lose them again, a tenth are deleted; a worker, the
// projection folding events and the node leading the commands stream
// (which the partitions source) are SIGKILLed when 100 are ready. Every
// workspace ends as its commands say, each outcome's event once, with one
// client, one bucket and one MinIO user per member with write access; a
// GET on either API right after a 202 never answers 404; the processes
// left alive were never restarted, and the other projection took over.
func TestScaleOutOnAClusterThroughAWorkerAndANodeKilled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	begin := time.Now()
	nodes := bustest.StartClusterProcesses(t)
	mio, err := minioserver.Start(ctx, minioserver.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mio.Stop() })
	emu, err := kcemu.Start(ctx, kcemu.Config{DevRealm: true, AdminUser: "admin", AdminPassword: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })

	common := []string{"--nats-url", bustest.URLs(nodes), "--nats-replicas", "3", "--secret-key", secretKey,
		"--keycloak-url", emu.URL(), "--keycloak-realm", kcemu.DevRealmName,
		"--keycloak-client-id", kcemu.DevWorkerClientID, "--keycloak-client-secret", kcemu.DevWorkerClientSecret,
		"--s3-endpoint", mio.URL(), "--s3-region", mio.Region(),
		"--minio-access-key", mio.RootUser(), "--minio-secret-key", mio.RootPassword(),
		// No drift sweep: the test counts every event of every workspace.
		"--reconcile-interval", "0"}
	var workers []*proc
	for i := range 3 {
		id := fmt.Sprintf("w%d", i+1)
		workers = append(workers, startProc(t, id, append(common, "--roles", "worker", "--worker-id", id, "--concurrency", "4")...))
	}
	apiProcs := []*proc{
		startProc(t, "api1", append(common, "--roles", "api", "--insecure-no-auth")...),
		startProc(t, "api2", append(common, "--roles", "api", "--insecure-no-auth")...),
	}
	projections := []*proc{
		startProc(t, "p1", append(common, "--roles", "projection")...),
		startProc(t, "p2", append(common, "--roles", "projection")...),
	}
	started := time.Now()
	all := slices.Concat(workers, apiProcs, projections)
	for _, p := range all {
		p.waitReady(t, 2*time.Minute)
	}
	t.Logf("cluster, MinIO and emulator up in %s; %d processes started together, all ready %s later",
		started.Sub(begin).Round(time.Millisecond), len(all), since(started))
	apis := []string{apiProcs[0].url, apiProcs[1].url}

	js := bustest.Connect(t, strings.Split(bustest.URLs(nodes), ",")...)
	var ready, stale atomic.Int64
	killed := make(chan time.Time, 1)
	lostProjection := make(chan *proc, 1)
	go func() {
		for ready.Load() < killAfter && ctx.Err() == nil {
			pause(ctx, 50*time.Millisecond)
		}
		if ctx.Err() != nil {
			return
		}
		leader := leaderOfCommands(ctx, js)
		var lost *proc
		for _, p := range projections {
			if folding(ctx, p) {
				lost = p
			}
		}
		workers[1].kill(t)
		for _, n := range nodes {
			if n.Name == leader {
				n.Kill(t)
			}
		}
		if lost != nil {
			lost.kill(t)
		} else {
			t.Error("no projection process was folding events")
			lost = &proc{name: "none"}
		}
		t.Logf("SIGKILL to worker w2, to projection %s (the one folding) and to node %s (leading the commands stream) with %d ready, at %s",
			lost.name, leader, ready.Load(), since(begin))
		killed <- time.Now()
		lostProjection <- lost
	}()

	work := time.Now()
	errs := make([]error, total)
	sem := make(chan struct{}, clients)
	var wg sync.WaitGroup
	for i := range total {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = drive(ctx, apis, i, &ready, &stale)
		})
	}
	wg.Wait()
	var at time.Time
	select {
	case at = <-killed:
	default:
		t.Fatal("the run ended before the kill")
	}
	t.Logf("%d workspaces driven to their end state in %s (%s after the kill)", total, since(work), since(at))
	for i, err := range errs {
		if err != nil {
			t.Errorf("%s: %v", nameOf(i), err)
		}
	}
	if n := stale.Load(); n > 0 {
		t.Errorf("%d GETs on the other API right after a 202 answered 404", n)
	}
	lost := <-lostProjection
	left := slices.DeleteFunc(slices.Clone(projections), func(p *proc) bool { return p == lost })
	for _, p := range slices.Concat([]*proc{workers[0], workers[2]}, apiProcs, left) {
		if !p.alive() {
			t.Errorf("%s exited after the kill:\n%s", p.name, p.logs.String())
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	for _, w := range []*proc{workers[0], workers[2]} {
		t.Logf("%s opened its pull of commands again %s times", w.name, restarts(ctx, w))
	}
	for _, p := range left {
		if !folding(ctx, p) {
			t.Errorf("projection %s is not folding after the other one died", p.name)
		}
	}
	checkEndStates(t, ctx, apis[1])
	checkEventsOnce(t, ctx, js)
	checkResources(t, ctx, emu, mio)
	t.Logf("whole test %s", since(begin))
}

// drive runs workspace i's commands as a platform client would, each once
// the last one's outcome shows.
func drive(ctx context.Context, apis []string, i int, ready, stale *atomic.Int64) error {
	name, p, first := nameOf(i), planOf(i), i%2
	body := fmt.Sprintf(`{"preferred_name":%q,"default_owner":%q}`, strings.TrimPrefix(name, "ws-"), owner)
	out, err := command(ctx, apis, first, http.MethodPost, "/workspaces", name+"-create", body)
	if err != nil {
		return err
	}
	if out["name"] != name {
		return fmt.Errorf("created as %v", out["name"])
	}
	// Read-your-writes on the other API, at once.
	if code, _, err := call(ctx, http.MethodGet, apis[1-first]+"/workspaces/"+name, "", ""); err == nil && code == http.StatusNotFound {
		stale.Add(1)
	}
	if err := await(ctx, apis, name, "ready", func(_ int, ws map[string]any) bool { return status(ws) == events.StatusReady }); err != nil {
		return err
	}
	ready.Add(1)
	if p.add {
		add := fmt.Sprintf(`{"username":%q,"role":%q}`, member, events.RoleAccess)
		if _, err := command(ctx, apis, first, http.MethodPost, "/workspaces/"+name+"/members", name+"-add", add); err != nil {
			return err
		}
		if err := await(ctx, apis, name, "listing the member", func(_ int, ws map[string]any) bool {
			return roleOf(ws, member) == events.RoleAccess
		}); err != nil {
			return err
		}
	}
	if p.remove {
		if _, err := command(ctx, apis, first, http.MethodDelete, "/workspaces/"+name+"/members/"+member, name+"-remove", ""); err != nil {
			return err
		}
		if err := await(ctx, apis, name, "without the member", func(_ int, ws map[string]any) bool {
			return roleOf(ws, member) == "" && status(ws) == events.StatusReady
		}); err != nil {
			return err
		}
	}
	if p.del {
		if _, err := command(ctx, apis, first, http.MethodDelete, "/workspaces/"+name, name+"-delete", ""); err != nil {
			return err
		}
		return await(ctx, apis, name, "deleted", func(code int, ws map[string]any) bool {
			return code == http.StatusNotFound || status(ws) == events.StatusDeleted
		})
	}
	return nil
}

// leaderOfCommands names the node leading the shared consumer of a
// version before the partitions, or else the commands stream's leader,
// whose loss the partitions' sourcing must ride through.
func leaderOfCommands(ctx context.Context, js jetstream.JetStream) string {
	if c, err := js.Consumer(ctx, events.CommandsStream, worker.ConsumerName); err == nil {
		if info, err := c.Info(ctx); err == nil && info.Cluster != nil && info.Cluster.Leader != "" {
			return info.Cluster.Leader
		}
	}
	if s, err := js.Stream(ctx, events.CommandsStream); err == nil {
		if info, err := s.Info(ctx); err == nil && info.Cluster != nil {
			return info.Cluster.Leader
		}
	}
	return ""
}

// checkEndStates reads every workspace once more: the status and members
// its commands imply.
func checkEndStates(t *testing.T, ctx context.Context, api string) {
	t.Helper()
	for i := range total {
		name, p := nameOf(i), planOf(i)
		code, ws, err := call(ctx, http.MethodGet, api+"/workspaces/"+name, "", "")
		if err != nil {
			t.Errorf("GET %s: %v", name, err)
			continue
		}
		if p.del {
			if code != http.StatusNotFound && status(ws) != events.StatusDeleted {
				t.Errorf("%s = %d %v, want deleted", name, code, ws)
			}
			continue
		}
		want := 1
		if p.add && !p.remove {
			want = 2
		}
		if code != http.StatusOK || status(ws) != events.StatusReady || roleOf(ws, owner) != events.RoleAdmin ||
			memberCount(ws) != want || (want == 2 && roleOf(ws, member) != events.RoleAccess) {
			t.Errorf("%s = %d %v, want ready with %d members", name, code, ws, want)
		}
	}
}

// checkEventsOnce reads the whole events stream: each workspace became
// ready once, was deleted once if asked, and its member was added and
// removed once each as asked, however often the commands ran.
func checkEventsOnce(t *testing.T, ctx context.Context, js jetstream.JetStream) {
	t.Helper()
	s, err := js.Stream(ctx, events.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]map[string]int{}
	for read := uint64(0); read < info.State.Msgs; read++ {
		msg, err := nextEvent(ctx, cons)
		if err != nil {
			t.Fatalf("event %d of %d: %v", read+1, info.State.Msgs, err)
		}
		var env struct {
			Type    string          `json:"type"`
			Subject string          `json:"subject"`
			Data    json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(msg.Data(), &env); err != nil {
			t.Fatal(err)
		}
		var d struct{ Status, Username string }
		_ = json.Unmarshal(env.Data, &d)
		if counts[env.Subject] == nil {
			counts[env.Subject] = map[string]int{}
		}
		switch env.Type {
		case events.TypeStatusChanged:
			counts[env.Subject]["status "+d.Status]++
		case events.TypeMemberAdded, events.TypeMemberRemoved:
			counts[env.Subject][env.Type+" "+d.Username]++
		}
	}
	one := func(b bool) int {
		if b {
			return 1
		}
		return 0
	}
	for i := range total {
		name, p := nameOf(i), planOf(i)
		want := map[string]int{"status " + events.StatusReady: 1, "status " + events.StatusDeleted: one(p.del),
			events.TypeMemberAdded + " " + member: one(p.add), events.TypeMemberRemoved + " " + member: one(p.remove),
			"status " + events.StatusFailed: 0}
		for k, n := range want {
			if got := counts[name][k]; got != n {
				t.Errorf("%s: %d events %q, want %d", name, got, k, n)
			}
		}
	}
	t.Logf("%d events read, each outcome once", info.State.Msgs)
}

// nextEvent reads on through the cluster's settling after the node loss:
// the ordered consumer makes itself again when a request finds no leader.
func nextEvent(ctx context.Context, cons jetstream.Consumer) (jetstream.Msg, error) {
	var err error
	for range 20 {
		var msg jetstream.Msg
		if msg, err = cons.Next(jetstream.FetchMaxWait(5 * time.Second)); err == nil {
			return msg, nil
		}
		pause(ctx, 250*time.Millisecond)
	}
	return nil, err
}

// checkResources counts what the providers hold: one client and one
// bucket per live workspace, none for a deleted one; one MinIO user per
// member with write access (the owner, and the member where kept).
func checkResources(t *testing.T, ctx context.Context, emu *kcemu.Server, mio *minioserver.Server) {
	t.Helper()
	c, err := census.Take(ctx, census.Keycloak{URL: emu.URL(), AdminUser: "admin", AdminPassword: "admin", Realm: kcemu.DevRealmName}, mio)
	if err != nil {
		t.Fatal(err)
	}
	clients, buckets, keys := c.Clients, c.Buckets, c.Users
	for i := range total {
		name, p := nameOf(i), planOf(i)
		live, writers := 1, 1
		if p.add && !p.remove {
			writers = 2
		}
		if p.del {
			live, writers = 0, 0
		}
		if clients[name] != live || buckets[name] != live || keys[name] != writers {
			t.Errorf("%s: %d clients, %d buckets, %d MinIO users; want %d, %d, %d",
				name, clients[name], buckets[name], keys[name], live, live, writers)
		}
	}
	nc, nb, nu := c.Totals()
	t.Logf("providers hold %d clients, %d buckets, %d MinIO users in all", nc, nb, nu)
}

func since(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }
