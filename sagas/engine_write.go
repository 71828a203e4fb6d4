package sagas

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"time"

	"go.uber.org/zap"
)

// write saves change applied to a copy of the record, with
// compare-and-set over the revision last saved; the caller holds h.mu.
// A conflict means another worker took the lease (h.lost), with one
// exception: when the previous write got no answer (the bus lost the
// request's server), it may have landed, and the conflict is with
// ourselves. Then the stored record is read back: if it is that write,
// its revision is adopted and change applied again on top of it.
func (h *handle) write(ctx context.Context, change func(*Record)) error {
	next := h.next(change)
	rev, err := h.e.progress.Save(ctx, h.ws, next, h.rev)
	if errors.Is(err, ErrRecordChanged) && h.unsure != nil && h.adoptUnsure(ctx) {
		next = h.next(change)
		rev, err = h.e.progress.Save(ctx, h.ws, next, h.rev)
	}
	switch {
	case errors.Is(err, ErrRecordChanged):
		h.lost, h.unsure = true, nil
	case err != nil:
		h.unsure = &next
	default:
		h.rec, h.rev, h.unsure = next, rev, nil
	}
	return err
}

// next is change applied to a deep enough copy of the record.
func (h *handle) next(change func(*Record)) Record {
	next := h.rec
	next.Run = h.rec.Run.clone()
	if m := h.rec.Member; m != nil {
		cp := m.clone()
		next.Member = &cp
	}
	change(&next)
	return next
}

// adoptUnsure reports whether the stored record is the unanswered write,
// and if so takes it as the last saved.
func (h *handle) adoptUnsure(ctx context.Context) bool {
	stored, rev, err := h.e.progress.Load(ctx, h.ws)
	if err != nil || rev == 0 || !sameRecord(stored, *h.unsure) {
		return false
	}
	h.e.log.Info("saga: a save whose answer was lost had landed; going on from it", zap.String("workspace", h.ws))
	h.rec, h.rev, h.unsure = *h.unsure, rev, nil
	return true
}

// sameRecord compares two records but for the time each was saved.
func sameRecord(a, b Record) bool {
	a.UpdatedAt, b.UpdatedAt = time.Time{}, time.Time{}
	ja, erra := json.Marshal(a)
	jb, errb := json.Marshal(b)
	return erra == nil && errb == nil && bytes.Equal(ja, jb)
}
