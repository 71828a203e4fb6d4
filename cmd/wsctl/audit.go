package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
)

func newAudit(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "The audit trail straight from NATS: follow it live, or export a period as JSON Lines",
		Example: `  wsctl audit tail --workspace ws-demo
  wsctl audit tail --actor example-admin --type workspace.delete -o jsonl
  wsctl audit export --since 2026-11-01 --until 2026-12-01 > trail-2026-11.jsonl`,
	}
	cmd.AddCommand(newAuditTail(o), newAuditExport(o))
	return group(cmd)
}

// auditFilter selects entries of the trail.
type auditFilter struct {
	workspace, actor, typ string
}

func (f *auditFilter) bind(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.workspace, "workspace", "", "only this workspace")
	cmd.Flags().StringVar(&f.actor, "actor", "", "only what this user asked for, or caused")
	cmd.Flags().StringVar(&f.typ, "type", "", "only this type, e.g. workspace.member.add")
}

func (f auditFilter) match(e auditEntry) bool {
	ce := e.envelope()
	return (f.actor == "" || ce.Actor == f.actor) && (f.typ == "" || ce.Type == f.typ)
}

// auditEntry is one line of the trail: the CloudEvent as stored, and
// where; the shape of GET /workspaces/{name}/events items.
type auditEntry = historyItem

func entryOf(stream string, m jetstream.Msg) (auditEntry, error) {
	meta, err := m.Metadata()
	if err != nil {
		return auditEntry{}, fmt.Errorf("message metadata: %w", err)
	}
	return auditEntry{Kind: kindOf(stream), Stream: stream, Sequence: meta.Sequence.Stream,
		Time: meta.Timestamp.UTC(), Event: json.RawMessage(m.Data())}, nil
}

func newAuditTail(o *options) *cobra.Command {
	var f auditFilter
	var since string
	var count int
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Follow the audit trail live (commands and events), until Ctrl-C",
		Example: `  wsctl audit tail
  wsctl audit tail --workspace ws-demo --since 1h
  wsctl audit tail --type workspace.step.failed -o jsonl | tee failures.jsonl`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			start, err := parseSince("since", since, time.Now())
			if err != nil {
				return err
			}
			js, closeNATS, err := o.jetStream()
			if err != nil {
				return err
			}
			defer closeNATS()
			return o.tail(cmd.Context(), js, f, start, count)
		},
	}
	f.bind(cmd)
	cmd.Flags().StringVar(&since, "since", "", "start this far back (24h) or at this time (RFC 3339); default: from now on")
	cmd.Flags().IntVar(&count, "count", 0, "stop after this many entries (default: follow until interrupted)")
	return cmd
}

// tail prints the entries of both streams as they arrive.
func (o *options) tail(ctx context.Context, js jetstream.JetStream, f auditFilter, since time.Time, count int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	entries := make(chan auditEntry)
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	for stream, subject := range auditSubjects(f.workspace) {
		cons, err := js.OrderedConsumer(ctx, stream, orderedFrom(subject, since))
		if err != nil {
			return fmt.Errorf("follow %s: %w", stream, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- pump(ctx, stream, cons, entries)
		}()
	}
	defer wg.Wait()
	defer cancel()
	printed := 0
	for {
		select {
		case <-ctx.Done():
			return nil // interrupted: the normal end of a tail
		case err := <-errs:
			return err
		case e := <-entries:
			if !f.match(e) {
				continue
			}
			if err := o.printEntry(e); err != nil {
				return err
			}
			if printed++; count > 0 && printed >= count {
				return nil
			}
		}
	}
}

func orderedFrom(subject string, since time.Time) jetstream.OrderedConsumerConfig {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverNewPolicy}
	if !since.IsZero() {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	return cfg
}

// pump sends each message of an ordered consumer to out until ctx ends.
func pump(ctx context.Context, stream string, cons jetstream.Consumer, out chan<- auditEntry) error {
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("follow %s: %w", stream, err)
	}
	go func() { <-ctx.Done(); it.Stop() }()
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("follow %s: %w", stream, err)
		}
		e, err := entryOf(stream, m)
		if err != nil {
			return err
		}
		select {
		case out <- e:
		case <-ctx.Done():
			return nil
		}
	}
}

// printEntry writes one entry: a JSON line, or a readable line.
func (o *options) printEntry(e auditEntry) error {
	if o.wantJSON() {
		return writeJSONLine(o.io.out, e)
	}
	ce := e.envelope()
	_, err := fmt.Fprintf(o.io.out, "%s  %-7s  %-36s  %-16s  %-20s  %s\n", e.Time.Local().Format(time.DateTime+".000"),
		e.Kind, ce.Type, ce.Subject, dash(ce.Actor), detail(ce.Data))
	return err
}

func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode entry: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func newAuditExport(o *options) *cobra.Command {
	var f auditFilter
	var since, until string
	cmd := &cobra.Command{
		Use:   "export --since TIME [--until TIME]",
		Short: "Write the trail of a period as JSON Lines, oldest first, for archiving",
		Long: `Each line is {"kind","stream","sequence","time","event"}: the CloudEvent exactly as
stored in WORKSPACE_COMMANDS or WORKSPACE_EVENTS, with where and when it was stored.`,
		Example: `  wsctl audit export --since 2026-11-01 --until 2026-12-01 > trail-2026-11.jsonl
  wsctl audit export --since 24h --workspace ws-demo`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := time.Now()
			from, err := parseSince("since", since, now)
			if err != nil {
				return err
			}
			if from.IsZero() {
				return usagef("audit export needs --since")
			}
			to := now
			if until != "" {
				if to, err = parseSince("until", until, now); err != nil {
					return err
				}
			}
			js, closeNATS, err := o.jetStream()
			if err != nil {
				return err
			}
			defer closeNATS()
			return o.export(cmd.Context(), js, f, from, to)
		},
	}
	f.bind(cmd)
	cmd.Flags().StringVar(&since, "since", "", "first instant (RFC 3339, a date, or a duration back from now)")
	cmd.Flags().StringVar(&until, "until", "", "last instant (default: now)")
	return cmd
}

// export reads both streams from since up to until and writes their
// entries merged by the time they were stored.
func (o *options) export(ctx context.Context, js jetstream.JetStream, f auditFilter, since, until time.Time) error {
	var all []auditEntry
	for stream, subject := range auditSubjects(f.workspace) {
		got, err := readPeriod(ctx, js, stream, subject, since, until)
		if err != nil {
			return err
		}
		all = append(all, got...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Time.Before(all[j].Time) })
	for _, e := range all {
		if !f.match(e) {
			continue
		}
		if err := writeJSONLine(o.io.out, e); err != nil {
			return err
		}
	}
	return nil
}

// readPeriod reads one stream's messages stored from since to until; it
// stops at the first later one, or once nothing is pending.
func readPeriod(ctx context.Context, js jetstream.JetStream, stream, subject string, since, until time.Time) ([]auditEntry, error) {
	cons, err := js.OrderedConsumer(ctx, stream, orderedFrom(subject, since))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	if info.NumPending == 0 {
		return nil, nil
	}
	it, err := cons.Messages()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	defer it.Stop()
	var out []auditEntry
	for {
		m, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", stream, err)
		}
		e, err := entryOf(stream, m)
		if err != nil {
			return nil, err
		}
		if e.Time.After(until) {
			return out, nil
		}
		out = append(out, e)
		if meta, _ := m.Metadata(); meta.NumPending == 0 {
			return out, nil
		}
	}
}
