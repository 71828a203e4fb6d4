package objectstore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/tags"

	"github.com/eo-workspaces/provisioner/sagas"
	"github.com/eo-workspaces/provisioner/sagas/objectstore"
)

func TestConfigValidate(t *testing.T) {
	ok := objectstore.Config{Endpoint: "127.0.0.1:9000", AccessKey: "a", SecretKey: "s"}
	cases := []struct {
		name  string
		edit  func(*objectstore.Config)
		field string // "" means valid
	}{
		{"host:port", func(*objectstore.Config) {}, ""},
		{"http URL", func(c *objectstore.Config) { c.Endpoint = "http://127.0.0.1:9000" }, ""},
		{"https URL with slash", func(c *objectstore.Config) { c.Endpoint = "https://127.0.0.1:9000/" }, ""},
		{"no endpoint", func(c *objectstore.Config) { c.Endpoint = "" }, "Endpoint"},
		{"path", func(c *objectstore.Config) { c.Endpoint = "http://127.0.0.1:9000/minio" }, "Endpoint"},
		{"scheme", func(c *objectstore.Config) { c.Endpoint = "ftp://127.0.0.1:9000" }, "Endpoint"},
		{"no access key", func(c *objectstore.Config) { c.AccessKey = "" }, "AccessKey"},
		{"no secret key", func(c *objectstore.Config) { c.SecretKey = "" }, "SecretKey"},
		{"negative timeout", func(c *objectstore.Config) { c.Timeout = -time.Second }, "Timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := c.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if _, err := objectstore.New(c); err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("Validate = %v, want an error naming %s", err, tc.field)
			}
			if _, err := objectstore.New(c); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}

func TestEnsureBucketTwiceCreatesOneTaggedBucket(t *testing.T) {
	ctx, s, b := ctxFor(t), newStore(t), name(t)
	for i := range 2 {
		if err := s.EnsureBucket(ctx, b); err != nil {
			t.Fatalf("EnsureBucket #%d: %v", i+1, err)
		}
	}
	tg, err := rootS3(t).GetBucketTagging(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if got := tg.ToMap()[sagas.ManagedByKey]; got != sagas.ManagedByValue {
		t.Fatalf("tag %s = %q, want %q", sagas.ManagedByKey, got, sagas.ManagedByValue)
	}
	if got := countBuckets(t, b); got != 1 {
		t.Fatalf("%d buckets named %q, want 1", got, b)
	}
}

func countBuckets(t *testing.T, bucket string) int {
	t.Helper()
	all, err := rootS3(t).ListBuckets(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, bi := range all {
		if bi.Name == bucket {
			n++
		}
	}
	return n
}

func TestForeignBucketIsNeverAdoptedNorDeleted(t *testing.T) {
	ctx, s, root := ctxFor(t), newStore(t), rootS3(t)
	untagged, other := name(t), name(t)
	for _, b := range []string{untagged, other} {
		if err := root.MakeBucket(ctx, b, minio.MakeBucketOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	tg, _ := tags.NewTags(map[string]string{sagas.ManagedByKey: "someone-else"}, false)
	if err := root.SetBucketTagging(ctx, other, tg); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{untagged, other} {
		err := s.EnsureBucket(ctx, b)
		if !errors.Is(err, sagas.ErrNotOurs) || !sagas.IsPermanent(err) {
			t.Errorf("EnsureBucket(%s) = %v, want permanent ErrNotOurs", b, err)
		}
		for _, purge := range []bool{false, true} {
			if err := s.DeleteBucket(ctx, b, purge); !errors.Is(err, sagas.ErrNotOurs) {
				t.Errorf("DeleteBucket(%s, purge=%v) = %v, want ErrNotOurs", b, purge, err)
			}
		}
		if ok, err := root.BucketExists(ctx, b); err != nil || !ok {
			t.Errorf("bucket %s gone after refusals: %v %v", b, ok, err)
		}
	}
	// The foreign tag is still the owner's, not overwritten with ours.
	got, err := root.GetBucketTagging(ctx, other)
	if err != nil || got.ToMap()[sagas.ManagedByKey] != "someone-else" {
		t.Fatalf("tags of %s now %v (%v)", other, got, err)
	}
}

func put(t *testing.T, c *minio.Client, bucket, key, body string) error {
	t.Helper()
	_, err := c.PutObject(ctxFor(t), bucket, key, strings.NewReader(body), int64(len(body)), minio.PutObjectOptions{})
	return err
}

func get(t *testing.T, c *minio.Client, bucket, key string) (string, error) {
	t.Helper()
	o, err := c.GetObject(ctxFor(t), bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return "", err
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	return string(b), err
}

func TestDeleteBucketWithoutPurgeKeepsData(t *testing.T) {
	ctx, s, root, b := ctxFor(t), newStore(t), rootS3(t), name(t)
	if err := s.EnsureBucket(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := put(t, root, b, "dir/keep.txt", "precious"); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		err := s.DeleteBucket(ctx, b, false)
		if !errors.Is(err, sagas.ErrNotEmpty) || !sagas.IsPermanent(err) {
			t.Fatalf("DeleteBucket #%d without purge = %v, want permanent ErrNotEmpty", i+1, err)
		}
	}
	if got, err := get(t, root, b, "dir/keep.txt"); err != nil || got != "precious" {
		t.Fatalf("object after refused delete = %q, %v", got, err)
	}
	if err := s.DeleteBucket(ctx, b, true); err != nil {
		t.Fatalf("DeleteBucket with purge: %v", err)
	}
	if got := countBuckets(t, b); got != 0 {
		t.Fatalf("bucket still there after purge")
	}
	for _, purge := range []bool{false, true} {
		if err := s.DeleteBucket(ctx, b, purge); err != nil {
			t.Fatalf("DeleteBucket of an absent bucket (purge=%v) = %v, want nil", purge, err)
		}
	}
}

func TestDeleteEmptyBucketWithoutPurge(t *testing.T) {
	ctx, s, b := ctxFor(t), newStore(t), name(t)
	if err := s.EnsureBucket(ctx, b); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := s.DeleteBucket(ctx, b, false); err != nil {
			t.Fatalf("DeleteBucket #%d: %v", i+1, err)
		}
	}
	if got := countBuckets(t, b); got != 0 {
		t.Fatal("empty bucket not deleted")
	}
}

// Purge must reach what a plain listing does not show: old versions,
// delete markers and unfinished multipart uploads.
func TestPurgeRemovesVersionsMarkersAndUploads(t *testing.T) {
	ctx, s, root, b := ctxFor(t), newStore(t), rootS3(t), name(t)
	if err := s.EnsureBucket(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := root.EnableVersioning(ctx, b); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"v1", "v2"} {
		if err := put(t, root, b, "doc.txt", v); err != nil {
			t.Fatal(err)
		}
	}
	if err := root.RemoveObject(ctx, b, "doc.txt", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err) // leaves a delete marker over two versions
	}
	for i := range 25 { // more than one listing page is not needed, but several objects are
		if err := put(t, root, b, "many/"+strings.Repeat("x", i+1), "y"); err != nil {
			t.Fatal(err)
		}
	}
	core := minio.Core{Client: root}
	if _, err := core.NewMultipartUpload(ctx, b, "half-done", minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteBucket(ctx, b, false); !errors.Is(err, sagas.ErrNotEmpty) {
		t.Fatalf("DeleteBucket without purge = %v, want ErrNotEmpty", err)
	}
	if err := s.DeleteBucket(ctx, b, true); err != nil {
		t.Fatalf("DeleteBucket with purge: %v", err)
	}
	if got := countBuckets(t, b); got != 0 {
		t.Fatal("bucket still there after purge")
	}
}

func TestErrorsAreClassified(t *testing.T) {
	ctx := ctxFor(t)
	t.Run("wrong secret is permanent", func(t *testing.T) {
		cfg := rootConfig()
		cfg.SecretKey = "not-the-password"
		s, err := objectstore.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.EnsureBucket(ctx, name(t)); !sagas.IsPermanent(err) {
			t.Errorf("EnsureBucket = %v, want permanent", err)
		}
		if err := s.EnsureBucketPolicy(ctx, name(t), name(t)); !sagas.IsPermanent(err) {
			t.Errorf("EnsureBucketPolicy = %v, want permanent", err)
		}
		if _, err := s.UserExists(ctx, "someone"); !sagas.IsPermanent(err) {
			t.Errorf("UserExists = %v, want permanent", err)
		}
	})
	t.Run("invalid bucket name is permanent", func(t *testing.T) {
		err := newStore(t).EnsureBucket(ctx, "Not_A_Bucket")
		if err == nil || !sagas.IsPermanent(err) {
			t.Fatalf("EnsureBucket = %v, want permanent", err)
		}
	})
	t.Run("too short secret is permanent", func(t *testing.T) {
		s, n := newStore(t), name(t)
		if err := s.EnsureBucketPolicy(ctx, n, n); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.DeletePolicy(context.Background(), n) })
		if err := s.EnsureUser(ctx, "short-secret", "1234567", n); !sagas.IsPermanent(err) {
			t.Fatalf("EnsureUser = %v, want permanent", err)
		}
	})
	for _, tc := range []struct {
		status    int
		permanent bool
	}{
		{http.StatusServiceUnavailable, false},
		{http.StatusInternalServerError, false},
		{http.StatusTooManyRequests, false},
		{http.StatusForbidden, true},
		{http.StatusBadRequest, true},
	} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			// The clients retry 5xx and 429 themselves until the call's
			// deadline, so those get a short one; a 4xx answers at once
			// but AddUser first spends a while deriving an argon2id key.
			timeout := 30 * time.Second
			if !tc.permanent {
				timeout = time.Second
			}
			s := stubStore(t, tc.status, timeout)
			calls := map[string]error{
				"EnsureBucket":       s.EnsureBucket(ctx, "ws-stub"),
				"DeleteBucket":       s.DeleteBucket(ctx, "ws-stub", true),
				"EnsureBucketPolicy": s.EnsureBucketPolicy(ctx, "ws-stub", "ws-stub"),
				"DeletePolicy":       s.DeletePolicy(ctx, "ws-stub"),
				"EnsureUser":         s.EnsureUser(ctx, "ws-stub", "secret-secret", "ws-stub"),
				"DeleteUser":         s.DeleteUser(ctx, "ws-stub"),
			}
			_, calls["UserExists"] = s.UserExists(ctx, "ws-stub")
			for call, err := range calls {
				if err == nil || sagas.IsPermanent(err) != tc.permanent {
					t.Errorf("%s = %v, want an error with permanent=%v", call, err, tc.permanent)
				}
			}
		})
	}
	t.Run("nothing listening is transient", func(t *testing.T) {
		l := httptest.NewServer(http.NotFoundHandler())
		addr := l.Listener.Addr().String()
		l.Close()
		cfg := rootConfig()
		cfg.Endpoint, cfg.Timeout = addr, 500*time.Millisecond
		s, err := objectstore.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.EnsureBucket(ctx, "ws-nobody"); err == nil || sagas.IsPermanent(err) {
			t.Errorf("EnsureBucket = %v, want transient", err)
		}
		if err := s.DeleteUser(ctx, "ws-nobody"); err == nil || sagas.IsPermanent(err) {
			t.Errorf("DeleteUser = %v, want transient", err)
		}
	})
}

// stubStore points a Store at a server answering every request with
// status and an S3-style error body, as a proxy or an overloaded MinIO would.
func stubStore(t *testing.T, status int, timeout time.Duration) *objectstore.Store {
	t.Helper()
	stub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		var body bytes.Buffer
		body.WriteString(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>Stub` + http.StatusText(status) + `</Code><Message>stub</Message></Error>`)
		_, _ = w.Write(body.Bytes())
	}))
	t.Cleanup(stub.Close)
	cfg := rootConfig()
	cfg.Endpoint, cfg.Timeout = stub.URL, timeout
	s, err := objectstore.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
