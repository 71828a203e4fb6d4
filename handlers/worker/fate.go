package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
	"github.com/eo-workspaces/provisioner/tracing"
)

// Dead-letter subjects and headers: the raw message is kept as it came,
// the reason and origin travel in headers.
const (
	DeadLetterRejected      = events.DeadLetterSubjectPrefix + "rejected"
	DeadLetterMaxDeliveries = events.DeadLetterSubjectPrefix + "max_deliveries"
	HeaderReason            = events.HeaderDeadLetterReason
	HeaderOriginalSubject   = events.HeaderDeadLetterOriginalSubject
	HeaderOriginalSequence  = events.HeaderDeadLetterOriginalSequence
)

// process checks what the message is before any saga sees it: valid
// against its schema, a command, on the subject its envelope names.
func (w *Worker) process(ctx context.Context, commands *sagas.CommandHandler, msg jetstream.Msg) error {
	ctx, span := tracing.Tracer().Start(tracing.Extract(ctx, msg.Headers()), "command "+msg.Subject(),
		trace.WithSpanKind(trace.SpanKindConsumer))
	defer span.End()
	err := w.handle(ctx, commands, msg)
	if err != nil {
		span.RecordError(err)
	}
	return err
}

func (w *Worker) handle(ctx context.Context, commands *sagas.CommandHandler, msg jetstream.Msg) error {
	env, err := events.Parse(msg.Data(), w.deps.Schema)
	if err != nil {
		return sagas.Rejectf("invalid command: %v", err)
	}
	if spec, ok := events.Lookup(env.Type); !ok || spec.Kind != events.KindCommand {
		return sagas.Rejectf("%s is not a command type", env.Type)
	}
	want, err := env.NATSSubject()
	if err != nil || want != msg.Subject() {
		return sagas.Rejectf("published on %s but its envelope (type %s, subject %s) belongs on %s",
			msg.Subject(), env.Type, env.Subject, want)
	}
	return commands.Handle(ctx, env)
}

// settle is the one place that decides a message's fate from what handling
// it returned, and reports whether the message is finished:
//   - nil, or a saga that ended failed (recorded, published): Ack.
//   - rejected (schema, subject, makes no sense now): copy to the dead
//     letters with the reason, then Term; if the copy fails, Nak so
//     nothing disappears.
//   - stopped (shutdown): Nak, redelivered to whoever runs next; the saga
//     record resumes where it stopped.
//   - busy elsewhere, or an infrastructure error: Nak with a delay.
func (w *Worker) settle(msg jetstream.Msg, err error) bool {
	finished := w.decide(msg, err)
	w.metrics.commands.WithLabelValues(commandOf(msg.Subject()), commandOutcome(err, finished)).Inc()
	return finished
}

// decide is settle's decision table.
func (w *Worker) decide(msg jetstream.Msg, err error) bool {
	log := w.log.With(zap.String("subject", msg.Subject()))
	var rejected *sagas.RejectedError
	var failed *sagas.FailedError
	switch {
	case err == nil || errors.As(err, &failed):
		return w.ack(msg, log)
	case errors.As(err, &rejected):
		if derr := w.deadLetterMsg(msg, DeadLetterRejected, rejected.Reason); derr != nil {
			log.Error("worker: dead-lettering failed, will retry", zap.Error(derr))
			_ = msg.NakWithDelay(w.cfg.NakDelay)
			return false
		}
		log.Warn("worker: command rejected", zap.String("reason", rejected.Reason))
		if terr := msg.TermWithReason(oneLine(rejected.Reason)); terr != nil {
			log.Warn("worker: term failed", zap.Error(terr))
		}
		return true
	case errors.Is(err, sagas.ErrStopped):
		_ = msg.Nak()
		return false
	case errors.Is(err, sagas.ErrBusy):
		log.Info("worker: workspace busy elsewhere, redelivering later", zap.Error(err))
		_ = msg.NakWithDelay(w.cfg.NakDelay)
		return false
	default:
		log.Error("worker: command not applied, redelivering later", zap.Error(err))
		_ = msg.NakWithDelay(w.cfg.NakDelay)
		return false
	}
}

func (w *Worker) ack(msg jetstream.Msg, log *zap.Logger) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := msg.DoubleAck(ctx); err != nil {
		// The command's effect is recorded; a redelivery finds it done.
		log.Warn("worker: ack failed", zap.Error(err))
	}
	return true
}

func (w *Worker) deadLetterMsg(msg jetstream.Msg, subject, reason string) error {
	meta, err := msg.Metadata()
	if err != nil {
		return fmt.Errorf("message metadata: %w", err)
	}
	return w.deadLetter(subject, msg.Subject(), meta.Sequence.Stream, msg.Data(), msg.Headers(), reason)
}

// deadLetter publishes a copy of a command to the dead-letter stream. Its
// message id is derived from the original sequence, so a copy made twice
// (crash before the Term) is stored once.
func (w *Worker) deadLetter(subject, origSubject string, seq uint64, data []byte, hdr nats.Header, reason string) error {
	m := nats.NewMsg(subject)
	m.Data = data
	if ct := hdr.Get(events.HeaderContentType); ct != "" {
		m.Header.Set(events.HeaderContentType, ct)
	}
	m.Header.Set(HeaderReason, oneLine(reason))
	m.Header.Set(HeaderOriginalSubject, origSubject)
	m.Header.Set(HeaderOriginalSequence, strconv.FormatUint(seq, 10))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id := fmt.Sprintf("dlq:%s:%s:%d", strings.TrimPrefix(subject, events.DeadLetterSubjectPrefix), events.CommandsStream, seq)
	if _, err := w.deps.JS.PublishMsg(ctx, m, jetstream.WithMsgID(id)); err != nil {
		return fmt.Errorf("dead-letter seq %d: %w", seq, err)
	}
	w.metrics.deadLetters.WithLabelValues(subject).Inc()
	return nil
}

// maxDeliveriesAdvisory is the part of the server's advisory we read.
type maxDeliveriesAdvisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// AdvisoryConsumerName is the durable consumer on the advisories stream.
const AdvisoryConsumerName = "worker-advisories"

// watchMaxDeliveries dead-letters every command that ran out of
// deliveries, fetched from the stream by its sequence, so nothing
// disappears silently. The advisories are kept in their own stream and
// read through a durable consumer, so one the server sent while no worker
// ran is acted on when one starts; a dead letter's id derives from the
// command's sequence, so two workers, or a redelivery, store it once.
func (w *Worker) watchMaxDeliveries(ctx context.Context) (stop func(), err error) {
	streams := map[string]jetstream.Stream{}
	for _, name := range []string{events.CommandsStream, events.PartitionsStream} {
		s, err := w.deps.JS.Stream(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", name, err)
		}
		streams[name] = s
	}
	cons, err := w.deps.JS.CreateOrUpdateConsumer(ctx, events.AdvisoriesStream, jetstream.ConsumerConfig{
		Durable:       AdvisoryConsumerName,
		Description:   "Dead-letters commands that ran out of deliveries",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       w.cfg.AckWait,
	})
	if err != nil {
		return nil, fmt.Errorf("advisories consumer: %w", err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if w.onMaxDeliveries(streams, m.Data()) {
			_ = m.Ack()
			return
		}
		_ = m.NakWithDelay(w.cfg.NakDelay)
	})
	if err != nil {
		return nil, fmt.Errorf("consume advisories: %w", err)
	}
	return cc.Stop, nil
}

// onMaxDeliveries dead-letters the command an advisory names, and
// reports whether the advisory is done with (false: try it again later).
func (w *Worker) onMaxDeliveries(streams map[string]jetstream.Stream, data []byte) bool {
	var adv maxDeliveriesAdvisory
	if err := json.Unmarshal(data, &adv); err != nil {
		w.log.Error("worker: undecodable max-deliveries advisory", zap.Error(err))
		return true
	}
	stream, ok := streams[adv.Stream]
	if !ok {
		w.log.Error("worker: max-deliveries advisory of another stream", zap.String("stream", adv.Stream))
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raw, err := stream.GetMsg(ctx, adv.StreamSeq)
	if events.IsNotFound(err) {
		w.log.Error("worker: command that ran out of deliveries is gone", zap.Uint64("seq", adv.StreamSeq), zap.Error(err))
		return true
	}
	if err != nil {
		w.log.Error("worker: reading a command that ran out of deliveries", zap.Uint64("seq", adv.StreamSeq), zap.Error(err))
		return false
	}
	subject, seq := raw.Subject, raw.Sequence
	if orig, _, ok := events.PartitionOfSubject(subject); ok {
		subject = orig
		if s := sourceSeq(raw.Header.Get(streamSourceHeader)); s != 0 {
			seq = s
		}
	}
	reason := fmt.Sprintf("max deliveries: not applied after %d deliveries", adv.Deliveries)
	if err := w.deadLetter(DeadLetterMaxDeliveries, subject, seq, raw.Data, raw.Header, reason); err != nil {
		w.log.Error("worker: dead-lettering failed", zap.Uint64("seq", adv.StreamSeq), zap.Error(err))
		return false
	}
	w.log.Warn("worker: command dead-lettered", zap.String("subject", subject), zap.Uint64("seq", seq),
		zap.String("reason", reason))
	if adv.Stream == events.PartitionsStream {
		// A work queue keeps what was never acknowledged; the dead letter
		// has it now.
		if err := stream.DeleteMsg(ctx, adv.StreamSeq); err != nil && !events.IsNotFound(err) {
			w.log.Warn("worker: removing a dead-lettered command from its partition", zap.Error(err))
		}
	}
	return true
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
