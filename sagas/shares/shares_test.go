package shares_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eo-workspaces/provisioner/bus/bustest"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas/shares"
)

func store(t *testing.T) *shares.KV {
	b := bustest.Start(t)
	kv, err := b.JS.KeyValue(context.Background(), events.SharesBucket)
	if err != nil {
		t.Fatal(err)
	}
	return shares.NewKV(kv)
}

func TestTokensRoundTripAndMalformedOnesAreRefused(t *testing.T) {
	tok, err := shares.NewToken("ws-a")
	if err != nil {
		t.Fatal(err)
	}
	back, ok := shares.ParseToken(tok.String())
	if !ok || back != tok || len(tok.Secret) != 43 {
		t.Fatalf("%v -> %v %v", tok, back, ok)
	}
	for _, bad := range []string{"", "ws-a", "ws-a." + tok.ID, "WS-A." + tok.ID + "." + tok.Secret, "ws-a.XYZ." + tok.Secret,
		"ws-a." + tok.ID + "." + tok.Secret + "A", "ws-a." + tok.ID + "." + strings.Repeat("*", 43), tok.String() + ".x"} {
		if _, ok := shares.ParseToken(bad); ok {
			t.Errorf("accepted %q", bad)
		}
	}
	sh := shares.Share{Hash: shares.Hash(tok.Secret)}
	// The last character changed, whatever it was.
	last := "A"
	if tok.Secret[42] == 'A' {
		last = "B"
	}
	other := tok.Secret[:42] + last
	if !sh.Matches(tok.Secret) || sh.Matches(other) || strings.Contains(sh.Hash, tok.Secret) {
		t.Fatal("hash comparison")
	}
}

func TestUsesAreCountedExactly(t *testing.T) {
	s, ctx := store(t), context.Background()
	if err := s.Create(ctx, shares.Share{ID: "0123456789abcdef", Workspace: "ws-a", MaxUses: 3, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	var ok, ended atomic.Int32
	var wg sync.WaitGroup
	for range 12 {
		wg.Go(func() {
			sh, rev, err := s.Get(ctx, "ws-a", "0123456789abcdef")
			if err == nil {
				_, err = s.Use(ctx, sh, rev, time.Now())
			}
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, shares.ErrEnded):
				ended.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	sh, _, err := s.Get(ctx, "ws-a", "0123456789abcdef")
	if ok.Load() != 3 || ended.Load() != 9 || err != nil || sh.Uses != 3 || sh.End(time.Now()) != shares.EndUsedUp {
		t.Fatalf("%d uses, %d refused, record %+v (%v)", ok.Load(), ended.Load(), sh, err)
	}
}

func TestListAndDropAWorkspacesLinks(t *testing.T) {
	s, ctx := store(t), context.Background()
	if got, err := s.List(ctx, ""); err != nil || len(got) != 0 {
		t.Fatalf("empty bucket: %v (%v)", got, err)
	}
	for _, k := range []struct{ ws, id string }{{"ws-a", "00000000000000a1"}, {"ws-a", "00000000000000a2"}, {"ws-ab", "00000000000000b1"}} {
		if err := s.Create(ctx, shares.Share{ID: k.id, Workspace: k.ws, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.List(ctx, "ws-a"); err != nil || len(got) != 2 {
		t.Fatalf("ws-a: %v (%v)", got, err)
	}
	for range 2 { // a repeat finds nothing left
		if err := s.DropWorkspace(ctx, "ws-a"); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.List(ctx, ""); err != nil || len(got) != 1 || got[0].Workspace != "ws-ab" {
		t.Fatalf("after drop: %v (%v)", got, err)
	}
	if _, _, err := s.Get(ctx, "ws-a", "00000000000000a1"); !errors.Is(err, shares.ErrNotFound) {
		t.Fatalf("dropped link: %v", err)
	}
}
