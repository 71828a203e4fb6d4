package secrets_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eo-workspaces/provisioner/bus/bustest"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
	"github.com/eo-workspaces/provisioner/sagas/secrets"
)

func bucket(t *testing.T) jetstream.KeyValue {
	t.Helper()
	ctx := context.Background()
	b := bustest.Start(t)
	kv, err := b.JS.KeyValue(ctx, events.SecretsBucket)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func TestRoundTripEncryptedAtRest(t *testing.T) {
	ctx := context.Background()
	kv := bucket(t)
	s, err := secrets.New(kv, secrets.Config{Key: secrets.KeyFromPassphrase("correct horse battery staple"), Endpoint: "http://127.0.0.1:9000", Region: "eu-1"})
	if err != nil {
		t.Fatal(err)
	}
	c := sagas.Credential{AccessKey: "ws-a", SecretKey: "s3cr3t-value-0123456789"}
	if err := s.Put(ctx, "ws-a", c); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Get(ctx, "ws-a")
	if err != nil || !ok || got != c {
		t.Fatalf("Get = %v %v %v, want %v", got, ok, err, c)
	}
	raw, err := kv.Get(ctx, "ws-a")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw.Value(), []byte(c.SecretKey)) || bytes.Contains(raw.Value(), []byte("secret_key")) {
		t.Fatalf("stored value is not encrypted: %q", raw.Value())
	}
	creds, err := s.Credentials(ctx, "ws-a")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"AWS_ACCESS_KEY_ID": "ws-a", "AWS_SECRET_ACCESS_KEY": c.SecretKey, "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
		"AWS_REGION": "eu-1", "bucketname": "ws-a", "access": "ws-a", "secret": c.SecretKey,
		"endpoint": "http://127.0.0.1:9000", "region": "eu-1",
	}
	if fmt.Sprint(creds) != fmt.Sprint(want) {
		t.Fatalf("Credentials = %v, want %v", creds, want)
	}
}

func TestAbsentWrongKeyAndMovedValue(t *testing.T) {
	ctx := context.Background()
	kv := bucket(t)
	s, _ := secrets.New(kv, secrets.Config{Key: secrets.KeyFromPassphrase("one")})
	creds, err := s.Credentials(ctx, "ws-none")
	if creds != nil || err != nil {
		t.Fatalf("absent: Credentials = %v, %v; want nil, nil", creds, err)
	}
	if err := s.Put(ctx, "ws-a", sagas.Credential{AccessKey: "ws-a", SecretKey: "aaaaaaaaaa"}); err != nil {
		t.Fatal(err)
	}
	other, _ := secrets.New(kv, secrets.Config{Key: secrets.KeyFromPassphrase("two")})
	if _, _, err := other.Get(ctx, "ws-a"); err == nil || !strings.Contains(err.Error(), "cannot decrypt") {
		t.Fatalf("wrong key: err = %v, want a decrypt error", err)
	}
	// The workspace name is authenticated: a value copied under another
	// key does not open.
	e, _ := kv.Get(ctx, "ws-a")
	if _, err := kv.Put(ctx, "ws-b", e.Value()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get(ctx, "ws-b"); err == nil {
		t.Fatal("a value moved to another workspace decrypted")
	}
}

func TestPutIfAbsentKeepsFirstAndDelete(t *testing.T) {
	ctx := context.Background()
	s, _ := secrets.New(bucket(t), secrets.Config{Key: secrets.KeyFromPassphrase("k")})
	first := sagas.Credential{AccessKey: "ws-a", SecretKey: "first-secret"}
	got, err := s.PutIfAbsent(ctx, "ws-a", first)
	if err != nil || got != first {
		t.Fatalf("first PutIfAbsent = %v, %v", got, err)
	}
	got, err = s.PutIfAbsent(ctx, "ws-a", sagas.Credential{AccessKey: "ws-a", SecretKey: "second-secret"})
	if err != nil || got != first {
		t.Fatalf("second PutIfAbsent = %v, %v; want the first", got, err)
	}
	if err := s.Delete(ctx, "ws-a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "ws-a"); err != nil {
		t.Fatalf("deleting an absent credential: %v", err)
	}
	if _, ok, err := s.Get(ctx, "ws-a"); ok || err != nil {
		t.Fatalf("after delete: ok=%v err=%v", ok, err)
	}
	second := sagas.Credential{AccessKey: "ws-a", SecretKey: "third-secret"}
	if got, err := s.PutIfAbsent(ctx, "ws-a", second); err != nil || got != second {
		t.Fatalf("PutIfAbsent after delete = %v, %v", got, err)
	}
}

func TestKeysAndRedaction(t *testing.T) {
	k1, k2 := secrets.KeyFromPassphrase("p"), secrets.KeyFromPassphrase("p")
	if len(k1) != secrets.KeySize || !bytes.Equal(k1, k2) || bytes.Equal(k1, secrets.KeyFromPassphrase("q")) {
		t.Fatal("KeyFromPassphrase must be deterministic, 32 bytes, and differ per passphrase")
	}
	if _, err := secrets.New(bucket(t), secrets.Config{Key: []byte("short")}); err == nil {
		t.Fatal("a short key was accepted")
	}
	c := sagas.Credential{AccessKey: "ws-a", SecretKey: "do-not-print-me"}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, c, c, c)} {
		if strings.Contains(s, c.SecretKey) {
			t.Fatalf("formatted credential leaks the secret: %s", s)
		}
	}
}
