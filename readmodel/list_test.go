package readmodel_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/bus/bustest"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/readmodel"
)

var (
	listStatuses = []string{events.StatusProvisioning, events.StatusReady, events.StatusFailed,
		events.StatusDeleting, events.StatusDeleted}
	listUsers = []string{"alice", "bob", "carol", "dave", "erin"}
)

// randomWorkspace is a workspace in any status with any owner and members,
// the default owner's creating case (no members yet) included.
func randomWorkspace(rng *rand.Rand, name string) readmodel.Workspace {
	ws := readmodel.Workspace{Name: name, Status: listStatuses[rng.IntN(len(listStatuses))]}
	if rng.IntN(6) > 0 {
		ws.Owner = listUsers[rng.IntN(len(listUsers))]
	}
	for _, u := range listUsers {
		if rng.IntN(3) == 0 {
			ws.Members = append(ws.Members, readmodel.Member{Username: u, Role: events.RoleAccess})
		}
	}
	return ws
}

// TestListPagesMatchAScanOfEveryWorkspace: whatever the writes, renames of
// status, owner or members, and removals the reader has seen through the
// KV watch, paging through any filter with the cursors List returns gives
// exactly the workspaces a scan of all of them selects, in name order.
func TestListPagesMatchAScanOfEveryWorkspace(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	b := bustest.Start(t)
	kv, err := b.JS.KeyValue(ctx, events.ProjectionBucket)
	if err != nil {
		t.Fatal(err)
	}
	r := readmodel.NewReader(zap.NewNop())
	done := make(chan struct{})
	rctx, stop := context.WithCancel(ctx)
	go func() { _ = r.Run(rctx, b.JS); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	<-r.Ready()

	rng := rand.New(rand.NewPCG(22, 35))
	held := map[string]readmodel.Workspace{}
	for round := range 3 {
		for range 300 {
			name := fmt.Sprintf("ws-l%03d", rng.IntN(200))
			if _, ok := held[name]; ok && rng.IntN(5) == 0 {
				if err := kv.Delete(ctx, name); err != nil {
					t.Fatal(err)
				}
				delete(held, name)
				continue
			}
			ws := randomWorkspace(rng, name)
			put(ctx, t, kv, ws)
			held[name] = ws
		}
		awaitSentinel(ctx, t, kv, r, round)
		checkEveryFilter(t, r, held)
	}
}

func put(ctx context.Context, t *testing.T, kv jetstream.KeyValue, ws readmodel.Workspace) {
	t.Helper()
	raw, err := json.Marshal(ws)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, ws.Name, raw); err != nil {
		t.Fatal(err)
	}
}

// awaitSentinel writes a last key and waits until the reader holds it:
// the watch delivers in order, so every write before it is applied too.
func awaitSentinel(ctx context.Context, t *testing.T, kv jetstream.KeyValue, r *readmodel.Reader, round int) {
	t.Helper()
	sentinel := readmodel.Workspace{Name: "ws-sentinel", Status: fmt.Sprintf("round-%d", round)}
	put(ctx, t, kv, sentinel)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ws, ok := r.Get(sentinel.Name); ok && ws.Status == sentinel.Status {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the reader did not catch up within 10s")
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
}

func checkEveryFilter(t *testing.T, r *readmodel.Reader, held map[string]readmodel.Workspace) {
	t.Helper()
	var filters []readmodel.Filter
	for _, st := range append([]string{""}, listStatuses...) {
		for _, owner := range append([]string{"", "nobody"}, listUsers...) {
			for _, reader := range append([]string{"", "nobody"}, listUsers...) {
				filters = append(filters, readmodel.Filter{Status: st, Owner: owner, Reader: reader})
			}
		}
	}
	for _, f := range filters {
		var want []string
		for _, ws := range held {
			if (f.Status == "" || ws.Status == f.Status) && (f.Owner == "" || ws.Owner == f.Owner) &&
				(f.Reader == "" || ws.CanRead(f.Reader)) {
				want = append(want, ws.Name)
			}
		}
		slices.Sort(want)
		for _, limit := range []int{1, 7, 1000} {
			if got := pageThrough(t, r, f, limit); !slices.Equal(got, want) {
				t.Fatalf("filter %+v, limit %d:\n got %v\nwant %v", f, limit, got, want)
			}
		}
	}
}

// pageThrough lists every page of f; the sentinel is left out.
func pageThrough(t *testing.T, r *readmodel.Reader, f readmodel.Filter, limit int) []string {
	t.Helper()
	var names []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatalf("filter %+v: no end after 1000 pages", f)
		}
		items, next := r.List(f, cursor, limit)
		if len(items) > limit || (next != "" && len(items) != limit) {
			t.Fatalf("filter %+v: a page of %d at limit %d, next %q", f, len(items), limit, next)
		}
		for _, ws := range items {
			if ws.Name != "ws-sentinel" {
				names = append(names, ws.Name)
			}
		}
		if next == "" {
			return names
		}
		cursor = next
	}
}

// TestReadersAreMembersAndTheOwnerWhileCreating: the list index files a
// workspace under its Readers, which CanRead consults: every member, and
// the default owner only while the create has made no member yet.
func TestReadersAreMembersAndTheOwnerWhileCreating(t *testing.T) {
	member := []readmodel.Member{{Username: "bob", Role: events.RoleAdmin}}
	for _, c := range []struct {
		ws   readmodel.Workspace
		want []string
	}{
		{readmodel.Workspace{Status: events.StatusProvisioning, Owner: "alice"}, []string{"alice"}},
		{readmodel.Workspace{Status: events.StatusFailed, Owner: "alice"}, []string{"alice"}},
		{readmodel.Workspace{Status: events.StatusReady, Owner: "alice"}, []string{}},
		{readmodel.Workspace{Status: events.StatusProvisioning, Owner: "alice", Members: member}, []string{"bob"}},
		{readmodel.Workspace{Status: events.StatusReady, Owner: "alice", Members: member}, []string{"bob"}},
		{readmodel.Workspace{Status: events.StatusProvisioning}, []string{}},
	} {
		if got := c.ws.Readers(); !slices.Equal(got, c.want) {
			t.Errorf("%+v: readers %v, want %v", c.ws, got, c.want)
		}
		for _, u := range []string{"alice", "bob", "carol"} {
			if c.ws.CanRead(u) != slices.Contains(c.want, u) {
				t.Errorf("%+v: CanRead(%s) %v", c.ws, u, c.ws.CanRead(u))
			}
		}
	}
}
