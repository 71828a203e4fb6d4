package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/readmodel"
	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

// bulkOwner owns the workspaces TestPagingHolds10000 writes; their names
// sort after every other test's, so those stay on the first page.
const bulkOwner = "bulk-owner"

// TestPagingHolds10000: with 10,000 workspaces in the read model, the
// page shows 50 at a time, pages forward and back in under a second
// each, and filters by owner and status.
func TestPagingHolds10000(t *testing.T) {
	fillReadModel(t, 10_000)
	ctx := browser(t, 1280, 900)
	signIn(t, ctx, kcemu.DevAdminUser)
	label := func(want string) chromedp.Action[chromedp.Void] {
		return within(time.Second, chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.getElementById("page-label").textContent === %q`, want)))
	}
	run(t, ctx, "owner filter", chromedp.Navigate(sys.api+"/ui/#/?owner="+bulkOwner),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-name="ws-zz-bulk-00001"]`)), label("1–50"))
	run(t, ctx, "next page", chromedp.Click(chromedp.ID("next")), label("51–100"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-name="ws-zz-bulk-00051"]`)))
	run(t, ctx, "next page again", chromedp.Click(chromedp.ID("next")), label("101–150"))
	run(t, ctx, "previous page", chromedp.Click(chromedp.ID("prev")), label("51–100"))
	shot(t, ctx, "09-paging")
	// Every 100th is failed: 100 of them, two pages.
	run(t, ctx, "status filter", chromedp.Navigate(sys.api+"/ui/#/?status=failed&owner="+bulkOwner),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-name="ws-zz-bulk-00100"]`)), label("1–50"),
		chromedp.Click(chromedp.ID("next")), label("51–100"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-name="ws-zz-bulk-10000"]`)))
	if disabled, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("next").disabled`)); err != nil || !disabled {
		t.Fatalf("the last page of failed ones offers a next page (%v)", err)
	}
}

// fillReadModel writes n workspaces straight into the projection's KV
// bucket, as the projection would after n creates: the page reads the
// read model, so this is its load without n sagas.
func fillReadModel(t *testing.T, n int) {
	t.Helper()
	nc, err := nats.Connect(sys.nats)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	kv, err := js.KeyValue(ctx, events.ProjectionBucket)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for i := 1; i <= n; i++ {
		ws := readmodel.Workspace{Name: fmt.Sprintf("ws-zz-bulk-%05d", i), Status: events.StatusReady, Owner: bulkOwner,
			Members: []readmodel.Member{{Username: bulkOwner, Role: events.RoleAdmin}}, CreatedAt: now, UpdatedAt: now}
		if i%100 == 0 {
			ws.Status, ws.FailedStep, ws.LastError = events.StatusFailed, "bucket", "made up by the test"
		}
		raw, _ := json.Marshal(ws)
		if _, err := kv.Put(ctx, ws.Name, raw); err != nil {
			t.Fatalf("put %s: %v", ws.Name, err)
		}
	}
}
