package sagas

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/events"
)

// Retirer deletes the old key pairs that rotations left working for a
// grace, once it is over, and reports each as credentials.revoked. Every
// worker may run one: deleting a user twice is harmless and the event's
// id is the same, so the stream keeps one.
type Retirer struct{ vaultSweeper }

// DefaultRetireInterval is how often the Retirer looks: the lateness of
// a retirement past its grace.
const DefaultRetireInterval = time.Second

// NewRetirer returns a Retirer over the ports (interval 0: the default).
func NewRetirer(p Ports, interval time.Duration) (*Retirer, error) {
	s, err := newVaultSweeper("retirer", p, interval, DefaultRetireInterval)
	if err != nil {
		return nil, err
	}
	return &Retirer{s}, nil
}

// Run sweeps until ctx ends.
func (r *Retirer) Run(ctx context.Context) error {
	Every(ctx, r.interval, r.Sweep, func(err error) {
		r.log.Warn("retirer: sweep failed; trying again", zap.Error(err))
	})
	return nil
}

// Sweep retires every pair whose grace ended by now.
func (r *Retirer) Sweep(ctx context.Context, now time.Time) error {
	all, err := r.vault.Retirements(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, ret := range all {
		if ret.Until.After(now) {
			continue
		}
		if err := r.retireOne(ctx, ret); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// retireOne publishes the event before forgetting the retirement, so a
// crash in between repeats both (the event as a duplicate of its id).
func (r *Retirer) retireOne(ctx context.Context, ret Retirement) error {
	if err := r.store.DeleteUser(ctx, ret.AccessKey); err != nil {
		return err
	}
	actor := ret.Actor
	if actor == "" {
		actor = events.DefaultSource
	}
	id := uuid.NewSHA1(uuid.NameSpaceURL, []byte(events.DefaultSource+"/retire/"+ret.Workspace+"/"+ret.AccessKey)).String()
	env, err := events.New(ret.Workspace, &events.CredentialsRevoked{Username: ret.Username, Reason: "rotated"},
		events.Meta{ID: id, Actor: actor, CausationID: ret.CommandID, CorrelationID: ret.CommandID})
	if err != nil {
		return err
	}
	if _, err := r.events.Publish(ctx, env); err != nil {
		return err
	}
	r.log.Info("retirer: old key pair deleted", zap.String("workspace", ret.Workspace), zap.String("username", ret.Username))
	return r.vault.Retired(ctx, ret)
}
