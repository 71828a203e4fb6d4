package objectstore_test

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7"

	"github.com/eo-workspaces/provisioner/sagas"
)

func TestInspectorSeesDriftAndRepairsIt(t *testing.T) {
	ctx, s, ws := ctxFor(t), newStore(t), name(t)
	ro := sagas.ReadOnlyPolicy(ws)
	if err := s.CheckBucket(ctx, ws); !errors.Is(err, sagas.ErrNotFound) {
		t.Fatalf("no bucket: %v", err)
	}
	if err := s.EnsureBucket(ctx, ws); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckBucket(ctx, ws); err != nil {
		t.Fatalf("our bucket: %v", err)
	}
	if q, err := s.BucketQuota(ctx, ws); err != nil || q != 0 {
		t.Fatalf("quota of a bucket without one: %d %v", q, err)
	}
	if err := s.SetBucketQuota(ctx, ws, 3<<20); err != nil {
		t.Fatal(err)
	}
	if q, err := s.BucketQuota(ctx, ws); err != nil || q != 3<<20 {
		t.Fatalf("quota: %d %v", q, err)
	}

	if err := s.CheckPolicy(ctx, ro, ws, true); !errors.Is(err, sagas.ErrNotFound) {
		t.Fatalf("no policy: %v", err)
	}
	if err := s.EnsureReadOnlyPolicy(ctx, ro, ws); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckPolicy(ctx, ro, ws, true); err != nil {
		t.Fatalf("our read-only policy: %v", err)
	}
	if err := s.CheckPolicy(ctx, ro, ws, false); !errors.Is(err, sagas.ErrNotOurs) {
		t.Fatalf("the read-only policy checked as the read-write one: %v", err)
	}
	// changed by hand, then reset
	if err := rootAdmin(t).AddCannedPolicy(ctx, ro, []byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*"],"Resource":["arn:aws:s3:::*"]}]}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckPolicy(ctx, ro, ws, true); !errors.Is(err, sagas.ErrNotOurs) {
		t.Fatalf("a changed policy: %v", err)
	}
	if err := s.ResetPolicy(ctx, ro, ws, true); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckPolicy(ctx, ro, ws, true); err != nil {
		t.Fatalf("after the reset: %v", err)
	}

	key, secret := "K"+ws[len(ws)-10:], "secret-of-"+ws
	if u, err := s.User(ctx, key); err != nil || u.Exists {
		t.Fatalf("no user: %+v %v", u, err)
	}
	if err := s.EnsureUser(ctx, key, secret, ro); err != nil {
		t.Fatal(err)
	}
	if u, err := s.User(ctx, key); err != nil || !u.Exists || !u.Enabled || !slices.Equal(u.Policies, []string{ro}) {
		t.Fatalf("user: %+v %v", u, err)
	}
	body := []byte("x")
	if _, err := rootS3(t).PutObject(ctx, ws, "o", bytes.NewReader(body), 1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.DisableUser(ctx, key); err != nil {
		t.Fatal(err)
	}
	if u, err := s.User(ctx, key); err != nil || u.Enabled {
		t.Fatalf("disabled user: %+v %v", u, err)
	}
	if _, err := s3As(t, key, secret).StatObject(ctx, ws, "o", minio.StatObjectOptions{}); err == nil {
		t.Fatal("a disabled user's key still reads")
	}
	if err := s.EnsureUser(ctx, key, secret, ro); err != nil {
		t.Fatal(err)
	}
	if _, err := s3As(t, key, secret).StatObject(ctx, ws, "o", minio.StatObjectOptions{}); err != nil {
		t.Fatalf("re-enabled user: %v", err)
	}
	if err := s.DisableUser(ctx, "NOSUCHUSER"+ws[len(ws)-6:]); err != nil {
		t.Fatalf("disabling nobody: %v", err)
	}
	if st, _ := rootAdmin(t).GetUserInfo(ctx, key); st.Status != madmin.AccountEnabled {
		t.Fatalf("status %s", st.Status)
	}
	t.Cleanup(func() {
		_ = s.DeleteUser(ctx, key)
		_ = s.DeleteReadOnlyPolicy(ctx, ro, ws)
		_ = s.DeleteBucket(ctx, ws, true)
	})
}

func TestInspectorTellsAStrangersBucket(t *testing.T) {
	ctx, s, ws := ctxFor(t), newStore(t), name(t)
	foreignBucket(t, ws, 1)
	if err := s.CheckBucket(ctx, ws); !errors.Is(err, sagas.ErrNotOurs) {
		t.Fatalf("a stranger's bucket: %v", err)
	}
}
