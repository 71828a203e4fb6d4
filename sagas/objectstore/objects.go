package objectstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/eo-workspaces/provisioner/sagas"
)

// ObjectInfo is what a download needs to know of an object.
type ObjectInfo struct {
	Size        int64
	ETag        string
	ContentType string
	ModTime     time.Time
}

// StatObject returns an object's size, ETag, type and date; ErrNotFound
// when the object or its bucket does not exist.
func (s *Store) StatObject(ctx context.Context, bucket, key string) (ObjectInfo, error) {
	ctx, st, cancel := s.call(ctx)
	defer cancel()
	oi, err := s.s3.StatObject(ctx, bucket, key, minio.StatObjectOptions{})
	switch errCode(err) {
	case "":
	case "NoSuchKey", codeNoSuchBucket:
		return ObjectInfo{}, fmt.Errorf("object %q in %q: %w", key, bucket, sagas.ErrNotFound)
	}
	if err != nil {
		return ObjectInfo{}, classify(st, err, "stat object %q in %q", key, bucket)
	}
	return ObjectInfo{Size: oi.Size, ETag: oi.ETag, ContentType: oi.ContentType, ModTime: oi.LastModified}, nil
}

// GetObject starts reading a whole object: one GET, whose answer gives
// its info too (where StatObject then OpenObject cost a HEAD and a GET).
// ErrNotFound when the object or its bucket does not exist. The reader
// serves seeks as OpenObject's does.
func (s *Store) GetObject(ctx context.Context, bucket, key string) (io.ReadSeekCloser, ObjectInfo, error) {
	body, oi, _, err := minio.Core{Client: s.s3}.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
	switch errCode(err) {
	case "":
	case "NoSuchKey", codeNoSuchBucket:
		return nil, ObjectInfo{}, fmt.Errorf("object %q in %q: %w", key, bucket, sagas.ErrNotFound)
	}
	if err != nil {
		return nil, ObjectInfo{}, fmt.Errorf("get object %q in %q: %w", key, bucket, err)
	}
	info := ObjectInfo{Size: oi.Size, ETag: oi.ETag, ContentType: oi.ContentType, ModTime: oi.LastModified}
	return &objectReader{ctx: ctx, s3: s.s3, bucket: bucket, key: key, size: info.Size, etag: info.ETag, body: body}, info, nil
}

// OpenObject returns a reader of the object StatObject described: it
// asks MinIO for the bytes from the current offset on the first Read
// after each Seek, so serving a whole object or one range
// (http.ServeContent) costs one GET. Each GET requires the ETag seen, so
// an object replaced meanwhile fails the read instead of mixing versions.
// The object is read under ctx, without the adapter's call timeout: a
// large download may take its time.
func (s *Store) OpenObject(ctx context.Context, bucket, key string, info ObjectInfo) io.ReadSeekCloser {
	return &objectReader{ctx: ctx, s3: s.s3, bucket: bucket, key: key, size: info.Size, etag: info.ETag}
}

type objectReader struct {
	ctx         context.Context
	s3          *minio.Client
	bucket, key string
	size, off   int64
	etag        string
	body        io.ReadCloser // nil until a Read needs one
	bodyOff     int64         // where body is: a Read elsewhere opens another
}

func (o *objectReader) Read(p []byte) (int, error) {
	if o.off >= o.size {
		return 0, io.EOF
	}
	if o.body != nil && o.bodyOff != o.off {
		_ = o.Close()
	}
	if o.body == nil {
		opts := minio.GetObjectOptions{}
		if err := o.options(&opts); err != nil {
			return 0, fmt.Errorf("read object %q: %w", o.key, err)
		}
		obj, err := o.s3.GetObject(o.ctx, o.bucket, o.key, opts)
		if err != nil {
			return 0, fmt.Errorf("read object %q: %w", o.key, err)
		}
		o.body, o.bodyOff = obj, o.off
	}
	n, err := o.body.Read(p)
	o.off += int64(n)
	o.bodyOff = o.off
	return n, err
}

func (o *objectReader) options(opts *minio.GetObjectOptions) error {
	if o.etag != "" {
		if err := opts.SetMatchETag(o.etag); err != nil {
			return err
		}
	}
	if o.off > 0 {
		return opts.SetRange(o.off, 0)
	}
	return nil
}

func (o *objectReader) Seek(offset int64, whence int) (int64, error) {
	next := offset
	switch whence {
	case io.SeekCurrent:
		next += o.off
	case io.SeekEnd:
		next += o.size
	}
	if next < 0 {
		return o.off, errors.New("seek before the start of the object")
	}
	o.off = next // the body, if any, is dropped only if a Read comes elsewhere
	return next, nil
}

// Close releases the body being read, if any.
func (o *objectReader) Close() error {
	if o.body == nil {
		return nil
	}
	err := o.body.Close()
	o.body = nil
	return err
}
