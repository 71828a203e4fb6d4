package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/nats-io/nats.go"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

// BenchmarkRevocation measures what the storage access issue promises:
// how long after a removal is accepted (its command on the stream) the
// removed member's kept keys are refused, p50 and p99 over BENCH_REMOVALS
// removals, and beside it, in the same run, what adding a member costs
// (command → member.added) and how long the same keys took to work.
func BenchmarkRevocation(b *testing.B) {
	n, c := envInt(b, "BENCH_REMOVALS", 50), envInt(b, "BENCH_C", 8)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	st := startProvisionStack(ctx, b)
	pipe := startPipeline(ctx, b, st, c)
	ws := "ws-bench-revoke"
	if _, err := pipe.provision(ctx, ws); err != nil {
		b.Fatal(err)
	}
	facts := watchMembers(b, st)
	adds, revokes := &latencies{}, &latencies{}
	b.ResetTimer()
	for i := range n {
		user := kcemu.DevUser2
		if i%2 == 1 {
			user = kcemu.DevAdminUser
		}
		d, err := membership(ctx, pipe, facts, ws, &events.MemberAdd{Username: user, Role: events.RoleAccess}, "added/"+user)
		if err != nil {
			b.Fatal(err)
		}
		adds.add(d)
		if err := facts.wait("credentials.issued/"+user, readyTimeout); err != nil { // the keys follow the membership
			b.Fatal(err)
		}
		keys, ok, err := st.vault.GetMember(ctx, ws, user)
		if err != nil || !ok {
			b.Fatalf("keys of %s: %v %v", user, ok, err)
		}
		s3 := memberS3(b, st, keys.AccessKey, keys.SecretKey)
		t0 := time.Now()
		if err := publish(ctx, pipe, ws, &events.MemberRemove{Username: user}); err != nil {
			b.Fatal(err)
		}
		revokes.add(untilRefused(ctx, b, s3, ws, t0))
		if err := facts.wait("removed/"+user, readyTimeout); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(ms(revokes.pct(0.50)), "revoke-p50-ms")
	b.ReportMetric(ms(revokes.pct(0.99)), "revoke-p99-ms")
	b.ReportMetric(ms(adds.pct(0.50)), "member-add-p50-ms")
	fmt.Printf("revocation, removal accepted → kept keys refused, %d removals: p50 %.1f ms, p99 %.1f ms (target: within 1000 ms)\n",
		n, ms(revokes.pct(0.50)), ms(revokes.pct(0.99)))
	fmt.Printf("member add, command → member.added (the Keycloak grant; the keys follow), %d adds: p50 %.1f ms, p99 %.1f ms\n",
		n, ms(adds.pct(0.50)), ms(adds.pct(0.99)))
}

// memberFacts hands out member.added, member.removed and
// credentials.issued as they happen.
type memberFacts struct {
	mu   sync.Mutex
	seen map[string]chan struct{}
}

func watchMembers(b *testing.B, st *provisionStack) *memberFacts {
	f := &memberFacts{seen: map[string]chan struct{}{}}
	sub, err := st.bus.Conn.Subscribe(events.EventSubjectPrefix+"*.>", func(m *nats.Msg) {
		var env events.Envelope
		if json.Unmarshal(m.Data, &env) != nil {
			return
		}
		var d struct{ Username string }
		_ = json.Unmarshal(env.Data, &d)
		kind := strings.TrimPrefix(strings.TrimPrefix(env.Type, "workspace.member."), "workspace.")
		if kind != "added" && kind != "removed" && kind != "credentials.issued" {
			return
		}
		f.ch(kind + "/" + d.Username) <- struct{}{}
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := st.bus.Conn.Flush(); err != nil {
		b.Fatal(err)
	}
	return f
}

func (f *memberFacts) ch(key string) chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seen[key] == nil {
		f.seen[key] = make(chan struct{}, 64)
	}
	return f.seen[key]
}

func (f *memberFacts) wait(key string, d time.Duration) error {
	select {
	case <-f.ch(key):
		return nil
	case <-time.After(d):
		return fmt.Errorf("no %s within %s", key, d)
	}
}

func publish(ctx context.Context, p *pipeline, ws string, data events.Payload) error {
	env, err := events.New(ws, data, events.Meta{Actor: "bench"})
	if err != nil {
		return err
	}
	_, err = p.pub.Publish(ctx, env)
	return err
}

// membership publishes a membership command and waits for its fact.
func membership(ctx context.Context, p *pipeline, facts *memberFacts, ws string, data events.Payload, fact string) (time.Duration, error) {
	t0 := time.Now()
	if err := publish(ctx, p, ws, data); err != nil {
		return 0, err
	}
	err := facts.wait(fact, readyTimeout)
	return time.Since(t0), err
}

func memberS3(b *testing.B, st *provisionStack, access, secret string) *minio.Client {
	c, err := minio.New(st.mio.Endpoint(), &minio.Options{Creds: credentials.NewStaticV4(access, secret, ""),
		Region: st.mio.Region(), MaxRetries: 1})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// untilRefused writes with the keys every 2 ms until MinIO refuses them,
// and returns the time since t0.
func untilRefused(ctx context.Context, b *testing.B, c *minio.Client, bucket string, t0 time.Time) time.Duration {
	for {
		_, err := c.PutObject(ctx, bucket, "probe", bytes.NewReader([]byte("x")), 1, minio.PutObjectOptions{})
		if err != nil {
			if code := minio.ToErrorResponse(err).Code; code != "InvalidAccessKeyId" && code != "AccessDenied" {
				b.Fatalf("probe: %v", err)
			}
			return time.Since(t0)
		}
		if time.Since(t0) > readyTimeout {
			b.Fatal("the removed member's keys still work")
		}
		time.Sleep(2 * time.Millisecond) // a client hammering its kept keys
	}
}
