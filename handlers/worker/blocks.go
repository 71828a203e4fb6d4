package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eo-workspaces/provisioner/sagas"
)

// block holds back a workspace whose command went back to the stream: a
// later command of it, pulled before that one is redelivered, would
// overtake it (a Nak with a delay leaves the later ones deliverable).
type block struct {
	seq   uint64 // the command that went back
	until time.Time
}

// errBehind sends a command back because an earlier one of its workspace
// is waiting for redelivery.
var errBehind = fmt.Errorf("%w: an earlier command of the workspace waits for redelivery", sagas.ErrBusy)

// blockAfter notes that msg, of key, went back to the stream.
func (d *dispatcher) blockAfter(key string, msg jetstream.Msg) {
	seq := streamSeq(msg)
	if seq == 0 || d.blockFor <= 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if b, ok := d.blocked[key]; ok && b.seq < seq && time.Now().Before(b.until) {
		return // an earlier one already holds the workspace back
	}
	d.blocked[key] = block{seq: seq, until: time.Now().Add(d.blockFor)}
}

// behind reports whether msg must go back behind an earlier command of
// key; the earlier one's redelivery lifts the block.
func (d *dispatcher) behind(key string, msg jetstream.Msg) bool {
	seq := streamSeq(msg)
	d.mu.Lock()
	defer d.mu.Unlock()
	b, ok := d.blocked[key]
	switch {
	case !ok:
		return false
	case seq <= b.seq || time.Now().After(b.until):
		delete(d.blocked, key)
		return false
	}
	return true
}

// sendBack returns msg to the stream at once, behind the earlier one.
func (d *dispatcher) sendBack(_ context.Context, msg jetstream.Msg) {
	d.settle(msg, errBehind)
}
