package api

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas/shares"
)

// ShareReporter publishes the ends of share links that nobody ends by
// hand (expired, used up: a revocation is published by the API as it
// happens), once each: the event's id is derived from the link and its
// end, so two APIs reporting the same end publish one event, and the
// record remembers it was reported.
type ShareReporter struct {
	Shares    ShareStore
	Publisher Publisher
	Log       *zap.Logger
	Every     time.Duration // default 2s
}

// Actors of the ends nobody asked for.
const (
	actorExpiry  = "provisioner" // the clock
	actorLinkUse = "anonymous"   // whoever held the link
)

// Run reports ends until ctx ends; a failed sweep is logged and tried
// again at the next tick.
func (r *ShareReporter) Run(ctx context.Context) error {
	every := r.Every
	if every == 0 {
		every = 2 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := r.Sweep(ctx); err != nil && ctx.Err() == nil {
			r.Log.Warn("share link ends not reported", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Sweep reports every end not reported yet.
func (r *ShareReporter) Sweep(ctx context.Context) error {
	all, err := r.Shares.List(ctx, "")
	if err != nil {
		return err
	}
	now := time.Now()
	var errs []error
	for _, sh := range all {
		if end := sh.End(now); end != "" && end != shares.EndRevoked && sh.Reported == "" {
			errs = append(errs, r.report(ctx, sh, end))
		}
	}
	return errors.Join(errs...)
}

func (r *ShareReporter) report(ctx context.Context, sh shares.Share, end string) error {
	ended := events.ShareEnded{ID: sh.ID, Path: sh.Path, Uses: sh.Uses}
	var data events.Payload = (*events.ShareExpired)(&ended)
	actor := actorExpiry
	if end == shares.EndUsedUp {
		data, actor = (*events.ShareUsedUp)(&ended), actorLinkUse
	}
	id := uuid.NewSHA1(shareEventNS, []byte(sh.Workspace+"/"+sh.ID+"/"+end)).String()
	env, err := events.New(sh.Workspace, data, events.Meta{ID: id, Source: Source, Actor: actor, Time: time.Now()})
	if err != nil {
		return fmt.Errorf("share %s: %w", sh.ID, err)
	}
	if _, err := r.Publisher.Publish(ctx, env); err != nil {
		return fmt.Errorf("publish end of share %s: %w", sh.ID, err)
	}
	_, err = r.Shares.Change(ctx, sh.Workspace, sh.ID, func(s *shares.Share) error {
		if s.Reported == "" {
			s.Reported = end
		}
		return nil
	})
	if errors.Is(err, shares.ErrNotFound) {
		return nil // its workspace was deleted meanwhile
	}
	return err
}

// shareEventNS is the UUID v5 namespace of share end events' ids.
var shareEventNS = uuid.NewSHA1(uuid.NameSpaceURL, []byte(Source+"/shares"))
