package sagas_test

import (
	"context"
	"slices"
	"testing"

	"github.com/eo-workspaces/provisioner/events"
)

func TestQuotaAtCreationAndChangedLater(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	q := int64(5)
	if err := c.Handle(context.Background(), command(t, "ws-quota", &events.Create{PreferredName: "quota", DefaultOwner: owner, QuotaMB: &q})); err != nil {
		t.Fatal(err)
	}
	if got := h.prov.Quota("ws-quota"); got != 5<<20 {
		t.Fatalf("quota after create: %d bytes", got)
	}
	if got := summary(t, h.eventsOf("ws-quota")); !slices.Contains(got, events.TypeQuotaChanged) || !slices.Contains(got, "create:quota") {
		t.Fatalf("create events %v", got)
	}
	n := len(h.eventsOf("ws-quota"))
	more := int64(50)
	h.handleAll(c, command(t, "ws-quota", &events.QuotaSet{QuotaMB: &more}))
	if got := h.prov.Quota("ws-quota"); got != 50<<20 {
		t.Fatalf("quota after raise: %d bytes", got)
	}
	h.handleAll(c, command(t, "ws-quota", &events.QuotaSet{}))
	if got := h.prov.Quota("ws-quota"); got != 0 {
		t.Fatalf("quota after removal: %d bytes", got)
	}
	want := []string{"quota_set:set_quota", events.TypeQuotaChanged, "quota_set:set_quota", events.TypeQuotaChanged}
	if got := summary(t, h.tail("ws-quota", n)); !slices.Equal(got, want) {
		t.Fatalf("events\n got %v\nwant %v", got, want)
	}
	if rec := h.record("ws-quota"); rec.Status != events.StatusReady || rec.Member != nil {
		t.Fatalf("record after quota changes: %s, side run %v", rec.Status, rec.Member)
	}
}

func TestNoQuotaAtCreationSetsNone(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	h.ready(c, "ws-free")
	if h.prov.Calls("SetBucketQuota") != 0 || slices.Contains(summary(t, h.eventsOf("ws-free")), events.TypeQuotaChanged) {
		t.Fatal("a create without quota_mb set a quota")
	}
}
