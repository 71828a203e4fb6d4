package objectstore_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/eo-workspaces/provisioner/sagas"
	"github.com/eo-workspaces/provisioner/sagas/objectstore"
)

// TestErrorsAreMarkedAsMinIOs checks the mark the retry metrics count
// by: a MinIO that does not answer fails as MinIO's, transiently.
func TestErrorsAreMarkedAsMinIOs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	s, err := objectstore.New(objectstore.Config{Endpoint: closed, AccessKey: "unused", SecretKey: "unused-secret"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err = s.EnsureBucket(ctx, "ws-marked")
	if err == nil {
		t.Fatal("EnsureBucket on a closed port succeeded")
	}
	if got := sagas.ProviderOf(err); got != sagas.ProviderMinIO || sagas.IsPermanent(err) {
		t.Errorf("provider %q, permanent %v: want a transient MinIO error (%v)", got, sagas.IsPermanent(err), err)
	}
}
