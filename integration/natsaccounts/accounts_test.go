package natsaccounts

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/schemas"
)

// TestAccountModel runs deploy/nats/nats.conf and checks, user by user,
// what each may and may not do. The steps share one server and build on
// each other: the provisioner creates the streams the others then use.
func TestAccountModel(t *testing.T) {
	pw := setPasswords(t)
	opts := loadConf(t, singleConf)
	checkParsedAccounts(t, opts)
	s, slog := startServer(t, opts)
	url := s.ClientURL()
	// The denials below must show in the server's log too: that log is
	// what TestProvisionerRunsAsProvisionerUser checks stays clean.
	t.Cleanup(func() {
		if len(slog.Violations()) == 0 {
			t.Error("the server logged no permissions violation")
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	v, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}

	prov := dial(t, url, "provisioner", pw.provisioner, "")
	provJS, err := jetstream.New(prov.nc)
	if err != nil {
		t.Fatal(err)
	}
	pub := events.NewPublisher(provJS, v)

	t.Run("provisioner creates the topology and publishes", func(t *testing.T) {
		if err := events.EnsureTopology(ctx, provJS, events.TopologyConfig{}); err != nil {
			t.Fatalf("EnsureTopology as provisioner: %v", err)
		}
		// Twice: start-up of a second replica must also pass.
		if err := events.EnsureTopology(ctx, provJS, events.TopologyConfig{}); err != nil {
			t.Fatalf("EnsureTopology again: %v", err)
		}
		cmd := mustEnvelope(t, "ws-alpha", &events.Create{PreferredName: "alpha", DefaultOwner: "example-user-1"})
		ack, err := pub.Publish(ctx, cmd)
		if err != nil || ack.Stream != events.CommandsStream {
			t.Fatalf("publish create: %+v, %v", ack, err)
		}
		evt := mustEnvelope(t, "ws-alpha", &events.StatusChanged{Status: events.StatusProvisioning, Owner: "example-user-1"})
		if ack, err := pub.Publish(ctx, evt); err != nil || ack.Stream != events.EventsStream {
			t.Fatalf("publish status event: %+v, %v", ack, err)
		}
		kv, err := provJS.KeyValue(ctx, events.ProjectionBucket)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, "ws-alpha", []byte(`{}`)); err != nil {
			t.Fatalf("kv put: %v", err)
		}
		if e, err := kv.Get(ctx, "ws-alpha"); err != nil || string(e.Value()) != `{}` {
			t.Fatalf("kv get: %v", err)
		}
		// The operator's one-off step: the auditor's durable pull consumer.
		if _, err := provJS.CreateOrUpdateConsumer(ctx, events.EventsStream, jetstream.ConsumerConfig{
			Durable: "auditor", AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy,
		}); err != nil {
			t.Fatalf("create auditor consumer: %v", err)
		}
	})

	t.Run("portal publishes allowed commands only", func(t *testing.T) {
		portal := dial(t, url, "portal", pw.portal, "_INBOX_portal")
		js, err := jetstream.New(portal.nc)
		if err != nil {
			t.Fatal(err)
		}
		live, err := portal.nc.SubscribeSync(events.EventSubjectPrefix + ">")
		if err != nil {
			t.Fatal(err)
		}
		if err := portal.nc.Flush(); err != nil {
			t.Fatal(err)
		}
		// The portal builds messages the way the provisioner does; only
		// publishing goes through its own connection.
		for _, p := range []events.Payload{
			&events.Create{PreferredName: "beta", DefaultOwner: "example-user-1"},
			&events.MemberAdd{Username: "example-user-2", Role: events.RoleAccess},
			&events.MemberRemove{Username: "example-user-2"},
		} {
			msg := mustMessage(t, pub, mustEnvelope(t, "ws-beta", p))
			ack, err := js.PublishMsg(ctx, msg)
			if err != nil || ack.Stream != events.CommandsStream {
				t.Fatalf("portal publish %s: %+v, %v", msg.Subject, ack, err)
			}
		}

		for _, p := range []events.Payload{&events.Delete{}, &events.Retry{}} {
			msg := mustMessage(t, pub, mustEnvelope(t, "ws-beta", p))
			short, cancel := context.WithTimeout(ctx, time.Second)
			_, err := js.PublishMsg(short, msg)
			cancel()
			if err == nil {
				t.Fatalf("portal publish %s was acknowledged", msg.Subject)
			}
			portal.expectViolation(t, msg.Subject)
			assertNoMessage(t, ctx, provJS, events.CommandsStream, msg.Subject)
		}
		portal.expectPublishDenied(t, "workspace.evt.ws-beta.status")
		portal.expectPublishDenied(t, "workspace.dlq.forged")
		portal.expectPublishDenied(t, "$KV.workspace_projection.ws-beta")
		portal.expectPublishDenied(t, "$JS.API.STREAM.DELETE.WORKSPACE_COMMANDS")

		// Others' replies and the command stream stay out of sight.
		for _, subj := range []string{"_INBOX.>", "workspace.cmd.>"} {
			if _, err := portal.nc.SubscribeSync(subj); err != nil {
				t.Fatal(err)
			}
			if err := portal.nc.Flush(); err != nil {
				t.Fatal(err)
			}
			portal.expectViolation(t, subj)
		}

		// Status events arrive on the plain subscription.
		evt := mustEnvelope(t, "ws-beta", &events.StatusChanged{Status: events.StatusProvisioning})
		if _, err := pub.Publish(ctx, evt); err != nil {
			t.Fatal(err)
		}
		got, err := live.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("portal live event: %v", err)
		}
		var env events.Envelope
		if err := json.Unmarshal(got.Data, &env); err != nil || env.ID != evt.ID {
			t.Fatalf("portal got %s (%v), want event %s", got.Data, err, evt.ID)
		}
	})

	// Permissions restrict the subject, not the reply: a JetStream publish
	// whose reply names a command subject makes the stream store its own
	// PubAck there. What lands is never a valid command, so the worker
	// dead-letters it; deploy/README.md says how separate accounts close it.
	t.Run("a reply subject smuggles only an invalid message in", func(t *testing.T) {
		portal := dial(t, url, "portal", pw.portal, "_INBOX_portal")
		msg := mustMessage(t, pub, mustEnvelope(t, "ws-gamma", &events.Create{PreferredName: "gamma", DefaultOwner: "example-user-1"}))
		msg.Reply = "workspace.cmd.ws-gamma.delete"
		if err := portal.nc.PublishMsg(msg); err != nil {
			t.Fatal(err)
		}
		if err := portal.nc.Flush(); err != nil {
			t.Fatal(err)
		}
		var smuggled *jetstream.RawStreamMsg
		eventually(t, 5*time.Second, "ack stored on the reply subject", func() error {
			var err error
			smuggled, err = mustStream(t, ctx, provJS, events.CommandsStream).GetLastMsgForSubject(ctx, msg.Reply)
			return err
		})
		if err := v.Validate(smuggled.Data); err == nil {
			t.Fatalf("the smuggled message %s is a valid command", smuggled.Data)
		}
		if _, err := events.Parse(smuggled.Data, v); err == nil {
			t.Fatalf("events.Parse accepted %s", smuggled.Data)
		}
	})

	t.Run("auditor reads the events stream and publishes nothing", func(t *testing.T) {
		auditor := dial(t, url, "auditor", pw.auditor, "_INBOX_auditor")
		js, err := jetstream.New(auditor.nc)
		if err != nil {
			t.Fatal(err)
		}
		stream, err := js.Stream(ctx, events.EventsStream)
		if err != nil {
			t.Fatalf("auditor stream info: %v", err)
		}
		first, err := stream.GetMsg(ctx, 1)
		if err != nil || first.Subject != "workspace.evt.ws-alpha.status" {
			t.Fatalf("auditor get message 1: %+v, %v", first, err)
		}
		cons, err := js.Consumer(ctx, events.EventsStream, "auditor")
		if err != nil {
			t.Fatalf("auditor consumer: %v", err)
		}
		batch, err := cons.Fetch(2, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var subjects []string
		for m := range batch.Messages() {
			subjects = append(subjects, m.Subject())
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatalf("auditor ack: %v", err)
			}
		}
		if want := []string{"workspace.evt.ws-alpha.status", "workspace.evt.ws-beta.status"}; !slices.Equal(subjects, want) {
			t.Fatalf("auditor read %v, want %v", subjects, want)
		}

		for _, subj := range []string{
			"workspace.evt.ws-alpha.status", "workspace.cmd.ws-alpha.create", "workspace.cmd.ws-alpha.delete",
			"workspace.dlq.forged", "$KV.workspace_projection.ws-alpha",
			"$JS.API.STREAM.DELETE.WORKSPACE_EVENTS", "$JS.API.STREAM.PURGE.WORKSPACE_EVENTS",
			"$JS.API.CONSUMER.CREATE.WORKSPACE_EVENTS.mine",
		} {
			auditor.expectPublishDenied(t, subj)
		}
		short, cancel := context.WithTimeout(ctx, time.Second)
		_, err = js.Stream(short, events.CommandsStream)
		cancel()
		if err == nil {
			t.Fatal("auditor could read WORKSPACE_COMMANDS")
		}
		if info, err := mustStream(t, ctx, provJS, events.EventsStream).Info(ctx); err != nil || info.State.Msgs != 2 {
			t.Fatalf("events stream after the auditor: %+v, %v", info, err)
		}
	})
}

// checkParsedAccounts checks what the parser made of accounts.conf.
func checkParsedAccounts(t *testing.T, opts *server.Options) {
	t.Helper()
	if !opts.JetStream {
		t.Fatal("JetStream is not enabled")
	}
	users := map[string]*server.User{}
	for _, u := range opts.Users {
		users[u.Username] = u
	}
	for _, name := range []string{"provisioner", "portal", "auditor"} {
		u, ok := users[name]
		if !ok {
			t.Fatalf("user %s missing", name)
		}
		if u.Account == nil || u.Account.Name != "WORKSPACES" {
			t.Fatalf("user %s is not in account WORKSPACES", name)
		}
		if u.Permissions == nil || u.Permissions.Publish == nil || len(u.Permissions.Publish.Allow) == 0 {
			t.Fatalf("user %s has no publish allow list", name)
		}
	}
	if got := users["portal"].Permissions.Publish.Allow; slices.ContainsFunc(got, func(s string) bool {
		return s == ">" || s == "workspace.>" || s == "workspace.cmd.>"
	}) {
		t.Fatalf("portal may publish too widely: %v", got)
	}
}

func mustEnvelope(t *testing.T, workspace string, p events.Payload) events.Envelope {
	t.Helper()
	env, err := events.New(workspace, p, events.Meta{Actor: "portal-system"})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// mustMessage builds a schema-valid message with its Nats-Msg-Id.
func mustMessage(t *testing.T, pub *events.Publisher, env events.Envelope) *nats.Msg {
	t.Helper()
	msg, err := pub.Message(env)
	if err != nil {
		t.Fatal(err)
	}
	msg.Header.Set(jetstream.MsgIDHeader, env.ID)
	return msg
}

func mustStream(t *testing.T, ctx context.Context, js jetstream.JetStream, name string) jetstream.Stream {
	t.Helper()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	return s
}

func assertNoMessage(t *testing.T, ctx context.Context, js jetstream.JetStream, stream, subject string) {
	t.Helper()
	_, err := mustStream(t, ctx, js, stream).GetLastMsgForSubject(ctx, subject)
	if !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Fatalf("%s holds a message on %s (err %v)", stream, subject, err)
	}
}
