package objectstore_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/eo-workspaces/provisioner/sagas/objectstore"
	"github.com/eo-workspaces/provisioner/stack/minioserver"
)

// srv is the one MinIO all tests in this package share; each test keeps
// to the buckets, policies and users it names itself.
var srv *minioserver.Server

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	s, err := minioserver.Start(ctx, minioserver.Options{})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv = s
	code := m.Run()
	if err := s.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

func rootConfig() objectstore.Config {
	return objectstore.Config{
		Endpoint:  srv.Endpoint(),
		AccessKey: srv.RootUser(),
		SecretKey: srv.RootPassword(),
		Region:    srv.Region(),
	}
}

func newStore(tb testing.TB) *objectstore.Store {
	tb.Helper()
	s, err := objectstore.New(rootConfig())
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// s3As is a plain minio-go client with the given credentials, as a
// workspace's user would have.
func s3As(tb testing.TB, access, secret string) *minio.Client {
	tb.Helper()
	c, err := minio.New(srv.Endpoint(), &minio.Options{
		Creds:      credentials.NewStaticV4(access, secret, ""),
		Region:     srv.Region(),
		MaxRetries: 1,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func rootS3(tb testing.TB) *minio.Client { return s3As(tb, srv.RootUser(), srv.RootPassword()) }

func rootAdmin(tb testing.TB) *madmin.AdminClient {
	tb.Helper()
	a, err := madmin.NewWithOptions(srv.Endpoint(), &madmin.Options{
		Creds: credentials.NewStaticV4(srv.RootUser(), srv.RootPassword(), ""),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

func ctxFor(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	tb.Cleanup(cancel)
	return ctx
}

var seq atomic.Int64

var notName = regexp.MustCompile(`[^a-z0-9]+`)

// name gives a bucket, policy and user name unique to this test run, valid
// for all three, from the test's name.
func name(tb testing.TB) string {
	base := strings.Trim(notName.ReplaceAllString(strings.ToLower(tb.Name()), "-"), "-")
	if len(base) > 40 {
		base = base[len(base)-40:]
	}
	return fmt.Sprintf("ws-%s-%d", strings.Trim(base, "-"), seq.Add(1))
}
