package events

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"github.com/nats-io/nats.go/jetstream"
)

// ensureKV creates or updates a bucket. A replicated bucket is kept
// without direct gets: with them, any replica answers a read, and one
// that has not applied a write yet answers with the value before it (a
// GET on another API right after its 202 said 404). Without them every
// read goes to the stream's leader, which has applied every write it
// acknowledged: read-your-writes on any process, for one hop more.
// nats.go creates buckets with direct gets and turns them back on when it
// updates one, so an existing replicated bucket is updated here, never
// through the KV calls, and a KV handle decides at bind time: processes
// bind after EnsureTopology.
func ensureKV(ctx context.Context, js jetstream.JetStream, kc jetstream.KeyValueConfig) error {
	if kc.Replicas <= 1 {
		_, err := js.CreateOrUpdateKeyValue(ctx, kc)
		return err
	}
	name := kvStreamPrefix + kc.Bucket
	st, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		// Another process may create it at the same moment: either way,
		// it exists next, and is updated below.
		if _, cerr := js.CreateKeyValue(ctx, kc); cerr != nil && !errors.Is(cerr, jetstream.ErrBucketExists) {
			return cerr
		}
		st, err = js.Stream(ctx, name)
	}
	if err != nil {
		return err
	}
	have := st.CachedInfo().Config
	want := leaderReads(have, kc)
	if reflect.DeepEqual(have, want) {
		return nil
	}
	if _, err := js.UpdateStream(ctx, want); err != nil {
		return fmt.Errorf("reads through the leader: %w", err)
	}
	return nil
}

// kvStreamPrefix names the stream behind a bucket.
const kvStreamPrefix = "KV_"

// leaderReads is the bucket's stream config as we keep it: the settings
// of KVConfigs, direct gets off.
func leaderReads(sc jetstream.StreamConfig, kc jetstream.KeyValueConfig) jetstream.StreamConfig {
	sc.Description = kc.Description
	sc.Replicas = kc.Replicas
	sc.MaxAge = kc.TTL
	sc.MaxMsgsPerSubject = int64(max(kc.History, 1))
	sc.AllowDirect = false
	return sc
}
