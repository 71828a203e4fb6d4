package sagas

import (
	"context"

	"github.com/eo-workspaces/provisioner/events"
)

// A workspace's quota is MinIO's hard quota on its bucket, in MiB. It is
// set by the create saga when the create asks for one, and changed
// (workspace.quota.set) by a side saga of a ready workspace.

// bytesPerMB is what quota_mb counts: MiB, as MinIO's own "MB" in mc.
const bytesPerMB = 1 << 20

// SetQuota is the saga of workspace.quota.set.
func (p *Provisioner) SetQuota() Saga {
	return Saga{Name: SagaQuota, Side: true, Settle: settleQuota, Steps: []Step{
		{Name: "set_quota", Do: p.setQuota, Event: quotaChanged},
	}}
}

// setQuota puts Params.QuotaMB in force; nil removes the quota.
func (p *Provisioner) setQuota(ctx context.Context, st *State) error {
	var bytes uint64
	if q := st.Params.QuotaMB; q != nil {
		bytes = uint64(*q) * bytesPerMB
	}
	return p.d.Store.SetBucketQuota(ctx, st.Workspace, bytes)
}

// initialQuota is the create saga's step: a quota only if one was asked.
func (p *Provisioner) initialQuota(ctx context.Context, st *State) error {
	if st.Params.QuotaMB == nil {
		return nil
	}
	return p.setQuota(ctx, st)
}

func quotaChanged(st *State) events.Payload {
	return &events.QuotaChanged{QuotaMB: st.Params.QuotaMB}
}

// initialQuotaSet reports the create's quota, and nothing without one.
func initialQuotaSet(st *State) []events.Payload {
	if st.Params.QuotaMB == nil {
		return nil
	}
	return []events.Payload{quotaChanged(st)}
}

// settleQuota keeps the quota now in force in the record, for a reconcile.
func settleQuota(r *Record, st *State) { r.Quota = &RecordedQuota{MB: st.Params.QuotaMB} }
