package events_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eo-workspaces/provisioner/bus/bustest"
	"github.com/eo-workspaces/provisioner/events"
)

// Two processes on two servers of a cluster, as two APIs are: what one
// writes, the other reads at once, every time. With direct gets a replica
// that had not applied the write yet answered "not found" now and then.
func TestReplicatedKVReadsItsWritesOnAnotherServer(t *testing.T) {
	urls := bustest.StartClusterServers(t)
	writer, reader := bustest.Connect(t, urls[0]), bustest.Connect(t, urls[1])
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := events.TopologyConfig{Replicas: 3}
	if err := events.EnsureTopology(ctx, writer, cfg); err != nil {
		t.Fatal(err)
	}
	// A second start (every process runs it) keeps direct gets off.
	if err := events.EnsureTopology(ctx, reader, cfg); err != nil {
		t.Fatal(err)
	}
	for _, kc := range events.KVConfigs(cfg) {
		st, err := writer.Stream(ctx, "KV_"+kc.Bucket)
		if err != nil {
			t.Fatal(err)
		}
		c := st.CachedInfo().Config
		if c.AllowDirect || c.Replicas != 3 || c.MaxAge != kc.TTL || c.MaxMsgsPerSubject != int64(kc.History) {
			t.Errorf("bucket %s: direct %v replicas %d max age %s history %d", kc.Bucket, c.AllowDirect, c.Replicas, c.MaxAge, c.MaxMsgsPerSubject)
		}
	}
	w, r := bind(t, ctx, writer), bind(t, ctx, reader)
	stale := 0
	for i := range 300 {
		key := fmt.Sprintf("ws-ryw-%d", i)
		if _, err := w.Create(ctx, key, []byte("reserved")); err != nil {
			t.Fatal(err)
		}
		// A plain put: a compare-and-set right after the create is now and
		// then refused by a replicated stream (10164) with nothing else
		// writing, which is not what this test is about.
		rev, err := w.Put(ctx, key, []byte("deleting"))
		if err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		e, err := r.Get(ctx, key)
		if err != nil || e.Revision() != rev || string(e.Value()) != "deleting" {
			stale++
		}
	}
	if stale > 0 {
		t.Fatalf("%d of 300 reads on another server missed the write just acknowledged", stale)
	}
}

func bind(t *testing.T, ctx context.Context, js jetstream.JetStream) jetstream.KeyValue {
	t.Helper()
	kv, err := js.KeyValue(ctx, events.NamesBucket)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// BenchmarkReplicatedKVGet prints what reads through the leader cost next
// to direct gets, on a three-server cluster, reading from a server that
// may or may not lead the bucket.
func BenchmarkReplicatedKVGet(b *testing.B) {
	urls := bustest.StartClusterServers(b)
	js := bustest.Connect(b, urls...)
	reader := bustest.Connect(b, urls[1])
	ctx := context.Background()
	for _, direct := range []bool{true, false} {
		kc := jetstream.KeyValueConfig{Bucket: fmt.Sprintf("bench_direct_%v", direct), Replicas: 3}
		// The first request waits for the cluster to elect its leader.
		if err := events.EnsureTopology(ctx, js, events.TopologyConfig{Replicas: 3}); err != nil {
			b.Fatal(err)
		}
		if _, err := js.CreateKeyValue(ctx, kc); err != nil {
			b.Fatal(err)
		}
		st, err := js.Stream(ctx, "KV_"+kc.Bucket)
		if err != nil {
			b.Fatal(err)
		}
		sc := st.CachedInfo().Config
		sc.AllowDirect = direct
		if _, err := js.UpdateStream(ctx, sc); err != nil {
			b.Fatal(err)
		}
		kv, err := reader.KeyValue(ctx, kc.Bucket)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
			b.Fatal(err)
		}
		name := "leader"
		if direct {
			name = "direct"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := kv.Get(ctx, "k"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The stream of a replicated bucket is the one nats.go would make, but
// for direct gets: a bucket made by an older version (with them) is
// updated in place, and one made here binds as a bucket.
func TestReplicatedBucketsAreNATSBucketsWithoutDirectGets(t *testing.T) {
	js := bustest.StartBareCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := events.TopologyConfig{Replicas: 3}
	kcs := events.KVConfigs(cfg)
	// An older version made the first bucket through nats.go.
	if err := events.EnsureTopology(ctx, js, events.TopologyConfig{Replicas: 3, SetupTimeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	made, err := js.Stream(ctx, "KV_"+kcs[0].Bucket)
	if err != nil {
		t.Fatal(err)
	}
	ours := made.CachedInfo().Config
	if err := js.DeleteKeyValue(ctx, kcs[0].Bucket); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateKeyValue(ctx, kcs[0]); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, "KV_"+kcs[0].Bucket)
	if err != nil {
		t.Fatal(err)
	}
	theirs := st.CachedInfo().Config
	theirs.AllowDirect = false
	if !reflect.DeepEqual(ours, theirs) {
		t.Fatalf("bucket stream differs from nats.go's but for direct gets:\nours   %+v\ntheirs %+v", ours, theirs)
	}
	if err := events.EnsureTopology(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	for _, kc := range kcs {
		st, err := js.Stream(ctx, "KV_"+kc.Bucket)
		if err != nil {
			t.Fatal(err)
		}
		if st.CachedInfo().Config.AllowDirect {
			t.Errorf("bucket %s still has direct gets", kc.Bucket)
		}
		if _, err := js.KeyValue(ctx, kc.Bucket); err != nil {
			t.Errorf("bucket %s does not bind: %v", kc.Bucket, err)
		}
	}
}
