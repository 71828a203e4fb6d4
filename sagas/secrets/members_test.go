package secrets_test

import (
	"context"
	"slices"
	"testing"

	"github.com/eo-workspaces/provisioner/sagas"
	"github.com/eo-workspaces/provisioner/sagas/secrets"
)

func TestMemberKeyPairsAreSeparateAndListed(t *testing.T) {
	ctx := context.Background()
	s, err := secrets.New(bucket(t), secrets.Config{Key: secrets.KeyFromPassphrase("correct horse battery staple"), Endpoint: "http://s3", Region: "eu-1"})
	if err != nil {
		t.Fatal(err)
	}
	alice := sagas.Credential{AccessKey: "AKALICE", SecretKey: "alice-secret-0123456789"}
	got, err := s.PutMemberIfAbsent(ctx, "ws-a", "alice@example.org", alice)
	if err != nil || got.AccessKey != alice.AccessKey || got.Username != "alice@example.org" {
		t.Fatalf("PutMemberIfAbsent = %v, %v", got, err)
	}
	// a second attempt gets back what the first stored
	again, err := s.PutMemberIfAbsent(ctx, "ws-a", "alice@example.org", sagas.Credential{AccessKey: "OTHER", SecretKey: "x"})
	if err != nil || again.AccessKey != alice.AccessKey {
		t.Fatalf("repeat PutMemberIfAbsent = %v, %v; want the first key pair", again, err)
	}
	if _, err := s.PutMemberIfAbsent(ctx, "ws-a", "bob", sagas.Credential{AccessKey: "AKBOB", SecretKey: "bob-secret"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutMemberIfAbsent(ctx, "ws-ab", "carol", sagas.Credential{AccessKey: "AKCAROL", SecretKey: "c"}); err != nil {
		t.Fatal(err)
	}
	members, err := s.Members(ctx, "ws-a")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range members {
		names = append(names, m.Username)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"alice@example.org", "bob"}) {
		t.Fatalf("Members(ws-a) = %v, want alice and bob only", names)
	}
	block, err := s.MemberCredentials(ctx, "ws-a", "bob")
	if err != nil || block["AWS_ACCESS_KEY_ID"] != "AKBOB" || block["bucketname"] != "ws-a" {
		t.Fatalf("MemberCredentials(bob) = %v, %v", block, err)
	}
	if err := s.DeleteMember(ctx, "ws-a", "bob"); err != nil {
		t.Fatal(err)
	}
	if block, err := s.MemberCredentials(ctx, "ws-a", "bob"); err != nil || block != nil {
		t.Fatalf("after DeleteMember: %v, %v; want none", block, err)
	}
	// a pair stored before its MinIO user exists is not shown yet
	if _, err := s.PutMemberIfAbsent(ctx, "ws-a", "dave", sagas.Credential{AccessKey: "AKDAVE", SecretKey: "d", Pending: true}); err != nil {
		t.Fatal(err)
	}
	if block, err := s.MemberCredentials(ctx, "ws-a", "dave"); err != nil || block != nil {
		t.Fatalf("a pending pair: %v, %v; want none shown", block, err)
	}
	if block, err := s.MemberCredentials(ctx, "ws-a", "mallory"); err != nil || block != nil {
		t.Fatalf("a non-member: %v, %v; want none", block, err)
	}
}
