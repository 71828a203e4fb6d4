package objectstore_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/eo-workspaces/provisioner/sagas"
)

func TestObjectsAreStatedAndReadFromAnyOffset(t *testing.T) {
	s, ctx, bucket := newStore(t), ctxFor(t), name(t)
	if err := s.EnsureBucket(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	body := []byte("0123456789")
	if _, err := rootS3(t).PutObject(ctx, bucket, "dir/n.txt", bytes.NewReader(body), 10, minio.PutObjectOptions{ContentType: "text/plain"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StatObject(ctx, bucket, "dir/none"); !errors.Is(err, sagas.ErrNotFound) {
		t.Fatalf("missing object: %v", err)
	}
	info, err := s.StatObject(ctx, bucket, "dir/n.txt")
	if err != nil || info.Size != 10 || info.ContentType != "text/plain" || info.ETag == "" {
		t.Fatalf("stat %+v (%v)", info, err)
	}
	r := s.OpenObject(ctx, bucket, "dir/n.txt", info)
	defer r.Close()
	if _, err := r.Seek(6, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	tail, err := io.ReadAll(r)
	if err != nil || string(tail) != "6789" {
		t.Fatalf("from 6: %q (%v)", tail, err)
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if all, err := io.ReadAll(r); err != nil || !bytes.Equal(all, body) {
		t.Fatalf("whole: %q (%v)", all, err)
	}

	if _, _, err := s.GetObject(ctx, bucket, "dir/none"); !errors.Is(err, sagas.ErrNotFound) {
		t.Fatalf("get missing object: %v", err)
	}
	g, ginfo, err := s.GetObject(ctx, bucket, "dir/n.txt")
	if err != nil || ginfo != info {
		t.Fatalf("get: %+v (%v), stat said %+v", ginfo, err, info)
	}
	defer g.Close()
	// What http.ServeContent does: find the size, back to the start, read.
	if end, err := g.Seek(0, io.SeekEnd); err != nil || end != 10 {
		t.Fatalf("seek end: %d %v", end, err)
	}
	if _, err := g.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if all, err := io.ReadAll(g); err != nil || !bytes.Equal(all, body) {
		t.Fatalf("got whole: %q (%v)", all, err)
	}
	if _, err := g.Seek(-3, io.SeekEnd); err != nil {
		t.Fatal(err)
	}
	if tail, err := io.ReadAll(g); err != nil || string(tail) != "789" {
		t.Fatalf("got tail: %q (%v)", tail, err)
	}
}
