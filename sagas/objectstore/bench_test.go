package objectstore_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/tags"

	"github.com/eo-workspaces/provisioner/sagas"
)

// stepTimes adds up, per provisioning call, the time spent in it.
type stepTimes struct {
	names []string
	total []atomic.Int64
}

func newStepTimes(names ...string) *stepTimes {
	return &stepTimes{names: names, total: make([]atomic.Int64, len(names))}
}

func (s *stepTimes) time(i int, f func() error) error {
	start := time.Now()
	err := f()
	s.total[i].Add(int64(time.Since(start)))
	return err
}

func (s *stepTimes) report(b *testing.B, n int) {
	for i, name := range s.names {
		b.ReportMetric(float64(s.total[i].Load())/float64(n)/1e6, name+"-ms/op")
	}
}

// BenchmarkProvisionDirect provisions one workspace's MinIO side per
// iteration with the plain clients, each call timed on its own: the floor
// the adapter and the saga pipeline add to. "parallel8" runs 8 at once,
// as the saga benchmark's default concurrency does.
func BenchmarkProvisionDirect(b *testing.B) {
	for _, par := range []int{1, 8} {
		b.Run(fmt.Sprintf("parallel%d", par), func(b *testing.B) {
			s3, adm := rootS3(b), rootAdmin(b)
			st := newStepTimes("bucket", "tag", "policy", "user", "setpolicy")
			var created sync.Map
			b.Cleanup(func() { cleanup(b, &created) })
			var n atomic.Int64
			provision := func() {
				id := n.Add(1)
				name := fmt.Sprintf("bench-%d-%d-%d", par, time.Now().UnixNano()%1e6, id)
				created.Store(name, true)
				if err := provisionDirect(context.Background(), s3, adm, st, name); err != nil {
					b.Error(err)
				}
			}
			// RunParallel starts parallelism × GOMAXPROCS goroutines.
			b.SetParallelism(max(1, par/runtime.GOMAXPROCS(0)))
			if par == 1 {
				for b.Loop() {
					provision()
				}
			} else {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						provision()
					}
				})
			}
			st.report(b, int(n.Load()))
		})
	}
}

func provisionDirect(ctx context.Context, s3 *minio.Client, adm *madmin.AdminClient, st *stepTimes, name string) error {
	tg, _ := tags.NewTags(map[string]string{sagas.ManagedByKey: sagas.ManagedByValue}, false)
	steps := []func() error{
		func() error { return s3.MakeBucket(ctx, name, minio.MakeBucketOptions{}) },
		func() error { return s3.SetBucketTagging(ctx, name, tg) },
		func() error {
			return adm.AddCannedPolicy(ctx, name, []byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*"],"Resource":["arn:aws:s3:::`+name+`","arn:aws:s3:::`+name+`/*"]}]}`))
		},
		func() error { return adm.AddUser(ctx, name, "secret-"+name) },
		//lint:ignore SA1019 SetPolicy is 15-20x cheaper than AttachPolicy (no argon2 payload encryption); AttachPolicy is the fallback
		func() error { return adm.SetPolicy(ctx, name, name, false) },
	}
	for i, f := range steps {
		if err := st.time(i, f); err != nil {
			return fmt.Errorf("%s %s: %w", st.names[i], name, err)
		}
	}
	return nil
}

func cleanup(tb testing.TB, created *sync.Map) {
	s := newStore(tb)
	ctx := context.Background()
	created.Range(func(k, _ any) bool {
		name := k.(string)
		_ = s.DeleteUser(ctx, name)
		_ = s.DeletePolicy(ctx, name)
		_ = s.DeleteBucket(ctx, name, true)
		return true
	})
}

// BenchmarkProvisionStore is the same work through the adapter, as the
// create saga calls it (EnsureBucket, EnsureBucketPolicy, EnsureUser).
func BenchmarkProvisionStore(b *testing.B) {
	s := newStore(b)
	var created sync.Map
	b.Cleanup(func() { cleanup(b, &created) })
	st := newStepTimes("bucket", "policy", "user")
	var n int
	for b.Loop() {
		n++
		name := fmt.Sprintf("bench-store-%d-%d", time.Now().UnixNano()%1e6, n)
		created.Store(name, true)
		ctx := context.Background()
		for i, f := range []func() error{
			func() error { return s.EnsureBucket(ctx, name) },
			func() error { return s.EnsureBucketPolicy(ctx, name, name) },
			func() error { return s.EnsureUser(ctx, name, "secret-"+name, name) },
		} {
			if err := st.time(i, f); err != nil {
				b.Fatal(err)
			}
		}
	}
	st.report(b, n)
}

// BenchmarkAdminPayloadEncryption is what madmin does to every add-user
// and attach request body (and the server again to decrypt it, and both
// once more for attach's encrypted answer): an argon2id key derivation
// with 64 MiB of memory, under a process-wide mutex.
func BenchmarkAdminPayloadEncryption(b *testing.B) {
	payload := []byte(`{"secretKey":"0123456789abcdef","status":"enabled"}`)
	for b.Loop() {
		if _, err := madmin.EncryptData("minioadmin", payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAdminCall times single admin calls on an existing user, to see
// which pay for payload encryption: add-user and attach encrypt, the
// deprecated set-user-or-group-policy and user-info do not.
func BenchmarkAdminCall(b *testing.B) {
	ctx, adm, s := context.Background(), rootAdmin(b), newStore(b)
	name := fmt.Sprintf("bench-call-%d", time.Now().UnixNano()%1e6)
	var created sync.Map
	created.Store(name, true)
	b.Cleanup(func() { cleanup(b, &created) })
	if err := s.EnsureBucketPolicy(ctx, name, name); err != nil {
		b.Fatal(err)
	}
	if err := s.EnsureUser(ctx, name, "secret-"+name, name); err != nil {
		b.Fatal(err)
	}
	calls := []struct {
		name string
		f    func() error
	}{
		{"add-user", func() error { return adm.AddUser(ctx, name, "secret-"+name) }},
		{"attach-already-applied", func() error {
			_, err := adm.AttachPolicy(ctx, madmin.PolicyAssociationReq{Policies: []string{name}, User: name})
			if madmin.ToErrorResponse(err).Code == "XMinioAdminPolicyChangeAlreadyApplied" {
				return nil
			}
			return err
		}},
		//lint:ignore SA1019 SetPolicy is 15-20x cheaper than AttachPolicy (no argon2 payload encryption); AttachPolicy is the fallback
		{"set-policy-deprecated", func() error { return adm.SetPolicy(ctx, name, name, false) }},
		{"user-info", func() error { _, err := adm.GetUserInfo(ctx, name); return err }},
		{"add-canned-policy", func() error { return s.EnsureBucketPolicy(ctx, name, name) }},
	}
	for _, c := range calls {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if err := c.f(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
