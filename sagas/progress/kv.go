package progress

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
)

// KV reads and writes saga records in events.SagaBucket.
type KV struct{ kv jetstream.KeyValue }

// NewKV binds to the saga bucket.
func NewKV(kv jetstream.KeyValue) *KV { return &KV{kv: kv} }

var _ sagas.ProgressStore = (*KV)(nil)

// Load returns the record of ws and its revision; revision 0 means none.
func (p *KV) Load(ctx context.Context, ws string) (sagas.Record, uint64, error) {
	e, err := p.kv.Get(ctx, ws)
	if events.IsNotFound(err) {
		return sagas.Record{}, 0, nil
	}
	if err != nil {
		return sagas.Record{}, 0, fmt.Errorf("load saga of %s: %w", ws, err)
	}
	var r sagas.Record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return sagas.Record{}, 0, fmt.Errorf("decode saga of %s: %w", ws, err)
	}
	return r, e.Revision(), nil
}

// Save writes r if the stored revision is still rev (0: no record yet)
// and returns the new revision; sagas.ErrRecordChanged if someone wrote first.
func (p *KV) Save(ctx context.Context, ws string, r sagas.Record, rev uint64) (uint64, error) {
	r.UpdatedAt = time.Now().UTC()
	raw, err := json.Marshal(r)
	if err != nil {
		return 0, fmt.Errorf("encode saga of %s: %w", ws, err)
	}
	var next uint64
	if rev == 0 {
		next, err = p.kv.Create(ctx, ws, raw)
	} else {
		next, err = p.kv.Update(ctx, ws, raw, rev)
	}
	if events.IsConflict(err) {
		return 0, fmt.Errorf("save saga of %s: %w", ws, sagas.ErrRecordChanged)
	}
	if err != nil {
		return 0, fmt.Errorf("save saga of %s: %w", ws, err)
	}
	return next, nil
}

// Workspaces lists the workspaces that have a saga record.
func (p *KV) Workspaces(ctx context.Context) ([]string, error) {
	lister, err := p.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list saga records: %w", err)
	}
	var out []string
	for k := range lister.Keys() { // drained whole: the lister stops when done
		out = append(out, k)
	}
	return out, nil
}
