package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// sagaKind is what --wait waits for: the statuses that end the command's
// saga well.
type sagaKind struct {
	verb string
	done []string
}

var (
	sagaCreate = sagaKind{verb: "create", done: []string{"ready"}}
	sagaDelete = sagaKind{verb: "delete", done: []string{"deleted"}}
	// A retry resumes whichever saga failed: a create or a delete.
	sagaRetry = sagaKind{verb: "retry", done: []string{"ready", "deleted"}}
)

// pollEvery is how often --wait asks for new events: the API's history
// is read over HTTP, which needs no access to NATS.
const pollEvery = 200 * time.Millisecond

// eventData holds the fields --wait reads from step and status events.
type eventData struct {
	Saga       string `json:"saga"`
	Step       string `json:"step"`
	Error      string `json:"error"`
	Retryable  bool   `json:"retryable"`
	Status     string `json:"status"`
	LastError  string `json:"last_error"`
	FailedStep string `json:"failed_step"`
}

// follow shows the saga the accepted command started, step by step, from
// the workspace's events that carry its correlation id, until it ends.
func (o *options) follow(ctx context.Context, c *client, a accepted, kind sagaKind, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p := o.newProgress(kind.verb + " " + a.Name)
	feed := &historyFeed{c: c, name: a.Name, seen: map[string]bool{}}
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		items, err := feed.next(ctx)
		if err != nil && ctx.Err() == nil {
			p.end("")
			return err
		}
		for _, it := range items {
			if done, err := o.show(p, a, kind, it.envelope()); done {
				return err
			}
		}
		select {
		case <-ctx.Done():
			p.end("")
			return fmt.Errorf("%s %s: not finished after %s; see where it stands with wsctl events %s", kind.verb, a.Name, timeout, a.Name)
		case <-tick.C:
		}
	}
}

// show draws one event of the command's saga and reports whether it
// ended the saga, with the error to exit with.
func (o *options) show(p progress, a accepted, kind sagaKind, ce cloudEvent) (bool, error) {
	if ce.CorrelationID != a.CommandID {
		return false, nil
	}
	var d eventData
	_ = json.Unmarshal(ce.Data, &d) // other types decode to nothing shown
	switch ce.Type {
	case "workspace.step.completed":
		p.step(d.Step, ce.Time)
	case "workspace.step.failed":
		what := "will be retried"
		if !d.Retryable {
			what = "not retryable"
		}
		p.note(fmt.Sprintf("step %s failed (%s): %s", d.Step, what, d.Error), ce.Time)
	case "workspace.status.changed":
		switch {
		case slices.Contains(kind.done, d.Status):
			p.end(fmt.Sprintf("%s is %s", a.Name, d.Status))
			if o.wantJSON() { // the progress went to stderr; stdout gets the outcome
				a.Status = d.Status
				return true, printJSON(o.io.out, a)
			}
			return true, nil
		case d.Status == "failed":
			p.end(fmt.Sprintf("%s failed at step %s: %s", a.Name, d.FailedStep, d.LastError))
			return true, &sagaFailed{name: a.Name, step: d.FailedStep, reason: d.LastError}
		}
	}
	return false, nil
}

// sagaFailed is a saga that ended in failure: exit 1 with what to do.
type sagaFailed struct{ name, step, reason string }

func (e *sagaFailed) Error() string {
	return fmt.Sprintf("%s failed at step %s: %s; fix the cause, then wsctl retry %s", e.name, e.step, e.reason, e.name)
}

// historyFeed reads a workspace's history page by page and hands out
// each item once. The API's cursor only moves while more pages follow, so
// the last page is read again at each poll and the items seen are skipped.
type historyFeed struct {
	c      *client
	name   string
	cursor string
	seen   map[string]bool
}

func (f *historyFeed) next(ctx context.Context) ([]historyItem, error) {
	var out []historyItem
	for {
		q := url.Values{"limit": {"500"}}
		if f.cursor != "" {
			q.Set("cursor", f.cursor)
		}
		var p page[historyItem]
		if err := f.c.call(ctx, "GET", wsPath(f.name, "events")+"?"+q.Encode(), nil, &p); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return out, nil
			}
			return out, err
		}
		for _, it := range p.Items {
			key := it.Stream + ":" + strconv.FormatUint(it.Sequence, 10)
			if !f.seen[key] {
				f.seen[key] = true
				out = append(out, it)
			}
		}
		if p.NextCursor == nil {
			return out, nil
		}
		f.cursor = *p.NextCursor
	}
}
