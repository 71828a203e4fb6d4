package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/handlers/worker"
	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

// TestMemberChangesCompleteDuringAMinIOOutage: with MinIO stopped
// (connection refused), members added to ready workspaces are announced
// within seconds, even while removals waiting for MinIO are more than
// the side slots; the new members are shown no credentials until MinIO
// is back, then get keys that work. The removals are announced only once
// MinIO is back, and their keys are refused by then.
func TestMemberChangesCompleteDuringAMinIOOutage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s := newOutageStackWith(t, ctx, func(c *worker.Config) { c.SideConcurrency = 2 })
	leaving := []string{"ws-mo-a", "ws-mo-b", "ws-mo-c"} // three removals for two side slots
	joining := []string{"ws-mo-d", "ws-mo-e"}
	for _, ws := range append(append([]string{}, leaving...), joining...) {
		s.h.send(create(t, ws))
	}
	s.h.waitForWithin(time.Minute, "every workspace ready", func() bool { return allReady(t, s.h, append(leaving, joining...)) })
	s.addUsers(t, ctx, "leaver", "joiner-1", "joiner-2", "joiner-3")
	for _, ws := range leaving {
		s.h.send(command(t, ws, &events.MemberAdd{Username: "leaver", Role: events.RoleAccess}))
	}
	old := map[string]map[string]string{}
	s.h.waitFor("the leaver's keys", func() bool {
		for _, ws := range leaving {
			if old[ws] = s.h.memberCredentials(t, ws, "leaver"); old[ws] == nil {
				return false
			}
		}
		return true
	})
	for _, ws := range leaving {
		if err := s.listWith(ctx, ws, old[ws]); err != nil {
			t.Fatalf("the leaver's keys on %s before the outage: %v", ws, err)
		}
	}

	owners := s.h.countEvents(t, joining, events.TypeMemberAdded) // the creates'
	issued := s.h.countEvents(t, joining, events.TypeCredentialsIssued)
	up := s.stopMinIO(t, ctx)
	for _, ws := range leaving {
		s.h.send(command(t, ws, &events.MemberRemove{Username: "leaver"}))
	}
	sent := time.Now()
	var adds int
	for _, ws := range joining {
		for _, u := range []string{"joiner-1", "joiner-2", "joiner-3"} {
			s.h.send(command(t, ws, &events.MemberAdd{Username: u, Role: events.RoleAccess}))
			adds++
		}
	}
	s.h.waitForWithin(10*time.Second, "every add announced", func() bool {
		return s.h.countEvents(t, joining, events.TypeMemberAdded) == owners+adds
	})
	took := time.Since(sent)
	t.Logf("%d member adds announced %s after they were sent, MinIO refusing and %d removals waiting on it with 2 side slots",
		adds, took.Round(time.Millisecond), len(leaving))
	for _, ws := range joining {
		if c := s.h.memberCredentials(t, ws, "joiner-1"); c != nil {
			t.Fatalf("%s shows joiner-1 credentials MinIO does not know", ws)
		}
	}
	if n := s.h.countEvents(t, leaving, events.TypeMemberRemoved); n != 0 {
		t.Fatalf("%d removals announced while MinIO still accepts the keys", n)
	}

	select { // the rest of a 10 s outage: a duration, nothing to await
	case <-time.After(10*time.Second - time.Since(sent)):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	if n := s.h.countEvents(t, leaving, events.TypeMemberRemoved); n != 0 {
		t.Fatalf("%d removals announced while MinIO was down", n)
	}
	up()
	back := time.Now()
	s.h.waitForWithin(2*time.Minute, "every removal announced", func() bool {
		return s.h.countEvents(t, leaving, events.TypeMemberRemoved) == len(leaving)
	})
	removedAfter := time.Since(back)
	for _, ws := range leaving { // the contract: refused within 1 s of member.removed
		deadline := time.Now().Add(time.Second)
		for err := s.listWith(ctx, ws, old[ws]); !refused(err); err = s.listWith(ctx, ws, old[ws]) {
			if time.Now().After(deadline) {
				t.Fatalf("the removed member's keys on %s still answer a second after member.removed: %v", ws, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	s.h.waitForWithin(time.Minute, "every new member's keys issued", func() bool {
		return s.h.countEvents(t, joining, events.TypeCredentialsIssued) == issued+adds
	})
	issuedAfter := time.Since(back)
	for _, ws := range joining {
		for _, u := range []string{"joiner-1", "joiner-2", "joiner-3"} {
			c := s.h.memberCredentials(t, ws, u)
			if c == nil {
				t.Fatalf("%s's credentials on %s not shown after credentials.issued", u, ws)
			}
			if err := s.listWith(ctx, ws, c); err != nil {
				t.Fatalf("%s's keys on %s: %v", u, ws, err)
			}
		}
	}
	t.Logf("after MinIO's return: removals announced in %s, new members' keys issued in %s",
		removedAfter.Round(time.Millisecond), issuedAfter.Round(time.Millisecond))
	if n := s.h.countEvents(t, joining, events.TypeMemberAdded); n != owners+adds {
		t.Fatalf("%d member.added events, want %d", n, owners+adds)
	}
}

// addUsers creates realm users in the emulator.
func (s *outageStack) addUsers(t *testing.T, ctx context.Context, names ...string) {
	t.Helper()
	gc := gocloak.NewClient(s.emu.URL())
	tok, err := gc.LoginAdmin(ctx, "admin", "admin", "master")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if _, err := gc.CreateUser(ctx, tok.AccessToken, kcemu.DevRealmName, gocloak.User{Username: gocloak.StringP(n),
			Enabled: gocloak.BoolP(true)}); err != nil {
			t.Fatalf("user %s: %v", n, err)
		}
	}
}

// listWith lists the workspace's bucket with a member's credentials.
func (s *outageStack) listWith(ctx context.Context, ws string, creds map[string]string) error {
	c, err := minio.New(s.mio.Endpoint(), &minio.Options{Region: s.mio.Region(), MaxRetries: 1,
		Creds: credentials.NewStaticV4(creds["access"], creds["secret"], "")})
	if err != nil {
		return err
	}
	for obj := range c.ListObjects(ctx, ws, minio.ListObjectsOptions{MaxKeys: 1}) {
		if obj.Err != nil {
			return obj.Err
		}
	}
	return nil
}

// refused tells an S3 error that refuses the keys (403).
func refused(err error) bool {
	code := minio.ToErrorResponse(err).Code
	return code == "AccessDenied" || code == "InvalidAccessKeyId"
}

func (h *harness) memberCredentials(t *testing.T, ws, username string) map[string]string {
	t.Helper()
	c, err := h.vault.MemberCredentials(context.Background(), ws, username)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// countEvents counts the events of one type published for the workspaces.
func (h *harness) countEvents(t *testing.T, workspaces []string, typ string) int {
	t.Helper()
	n := 0
	for _, env := range h.eventsFor(t, workspaces...) {
		if env.Type == typ {
			n++
		}
	}
	return n
}

// eventsFor reads every event of the workspaces from the events stream.
func (h *harness) eventsFor(t *testing.T, workspaces ...string) []events.Envelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	filters := make([]string, len(workspaces))
	for i, ws := range workspaces {
		filters[i] = events.EventSubjectPrefix + ws + ".>"
	}
	c, err := h.js.OrderedConsumer(ctx, events.EventsStream, jetstream.OrderedConsumerConfig{FilterSubjects: filters})
	if err != nil {
		t.Fatal(err)
	}
	var out []events.Envelope
	for {
		batch, err := c.FetchNoWait(500)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			var env events.Envelope
			if err := json.Unmarshal(m.Data(), &env); err != nil {
				t.Fatal(fmt.Errorf("event %s: %w", m.Subject(), err))
			}
			out = append(out, env)
			got++
		}
		if err := batch.Error(); err != nil {
			t.Fatal(err)
		}
		if got == 0 {
			return out
		}
	}
}
