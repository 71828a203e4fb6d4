package events

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ensureKV creates or updates a bucket. A replicated bucket is kept
// without direct gets: with them, any replica answers a read, and one
// that has not applied a write yet answers with the value before it (a
// GET on another API right after its 202 said 404). Without them every
// read goes to the stream's leader, which has applied every write it
// acknowledged: read-your-writes on any process, for one hop more.
// nats.go makes buckets with direct gets, and puts them back when it
// creates one that exists, so a replicated bucket's stream is written
// here, in one call, as nats.go would write it but for that. A KV handle
// decides how to read when it binds: processes bind after EnsureTopology.
func ensureKV(ctx context.Context, js jetstream.JetStream, kc jetstream.KeyValueConfig) error {
	if kc.Replicas <= 1 {
		_, err := js.CreateOrUpdateKeyValue(ctx, kc)
		return err
	}
	_, err := js.CreateOrUpdateStream(ctx, kvStreamConfig(kc))
	return err
}

// kvStreamConfig is the stream nats.go makes for kc (its
// prepareKeyValueConfig, for the settings KVConfigs uses), with reads
// through the leader.
func kvStreamConfig(kc jetstream.KeyValueConfig) jetstream.StreamConfig {
	dupes := 2 * time.Minute
	if kc.TTL > 0 && kc.TTL < dupes {
		dupes = kc.TTL
	}
	return jetstream.StreamConfig{
		Name:              "KV_" + kc.Bucket,
		Description:       kc.Description,
		Subjects:          []string{"$KV." + kc.Bucket + ".>"},
		MaxMsgsPerSubject: int64(max(kc.History, 1)),
		MaxBytes:          -1,
		MaxAge:            kc.TTL,
		MaxMsgSize:        -1,
		Storage:           kc.Storage,
		Replicas:          kc.Replicas,
		AllowRollup:       true,
		DenyDelete:        true,
		Duplicates:        dupes,
		MaxMsgs:           -1,
		MaxConsumers:      -1,
		AllowDirect:       false,
		Discard:           jetstream.DiscardNew,
	}
}
