package objectstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/minio/madmin-go/v3"
)

// BenchmarkMemberKeys compares, in one run, the ways a member could get
// a key pair of their own on a workspace's bucket, each per member added:
//   - user: AddUser, then SetPolicy to the workspace's canned policy (two
//     IAM writes, neither encrypted with argon2id); what the sagas use;
//   - service-account: AddServiceAccount under the workspace's user with
//     an inline policy (one IAM write, but its payload is argon2id-sealed
//     both ways).
//
// Removal is one RemoveUser / DeleteServiceAccount either way.
func BenchmarkMemberKeys(b *testing.B) {
	ctx, adm, s := context.Background(), rootAdmin(b), newStore(b)
	ws := fmt.Sprintf("bench-keys-%d", time.Now().UnixNano()%1e6)
	var created sync.Map
	created.Store(ws, true)
	b.Cleanup(func() { cleanup(b, &created) })
	if err := s.EnsureBucketPolicy(ctx, ws, ws); err != nil {
		b.Fatal(err)
	}
	if err := s.EnsureUser(ctx, ws, "secret-"+ws, ws); err != nil {
		b.Fatal(err)
	}
	inline := []byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*"],"Resource":["arn:aws:s3:::` + ws + `","arn:aws:s3:::` + ws + `/*"]}]}`)
	n := 0
	key := func(kind string) string { n++; return fmt.Sprintf("%s%s%d", kind, ws[len(ws)-6:], n) }
	b.Run("user", func(b *testing.B) {
		for b.Loop() {
			k := key("u")
			if err := s.EnsureUser(ctx, k, "member-secret-"+k, ws); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			_ = s.DeleteUser(ctx, k)
			b.StartTimer()
		}
		b.ReportMetric(2, "iam-writes/member")
	})
	b.Run("service-account", func(b *testing.B) {
		for b.Loop() {
			k := key("s")
			_, err := adm.AddServiceAccount(ctx, madmin.AddServiceAccountReq{
				TargetUser: ws, AccessKey: k, SecretKey: "member-secret-" + k, Policy: inline,
			})
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			_ = adm.DeleteServiceAccount(ctx, k)
			b.StartTimer()
		}
		b.ReportMetric(1, "iam-writes/member")
	})
}
