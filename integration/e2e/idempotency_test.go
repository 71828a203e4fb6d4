package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/minio/madmin-go/v3"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/schemas"
	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

// publishRaw publishes one envelope under its own Nats-Msg-Id, so the same
// command can reach the stream several times, as a redelivering or
// retrying publisher makes it.
func publishRaw(t *testing.T, js jetstream.JetStream, env events.Envelope, msgID string) {
	t.Helper()
	v, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	msg, err := events.NewPublisher(js, v).Message(env)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(context.Background(), msg, jetstream.WithMsgID(msgID)); err != nil {
		t.Fatal(err)
	}
}

// TestOneOfEachWhateverTheDuplicates: two create commands with different
// ids for one workspace, and one command that reaches the stream three
// times, each leave exactly one client, bucket, policy and credential.
func TestOneOfEachWhateverTheDuplicates(t *testing.T) {
	nc, err := nats.Connect(sys.nats)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	admin := token(t, kcemu.DevAdminUser)

	twoIDs := unique("twice")
	name, _ := events.NameFor(twoIDs)
	for i := range 2 {
		env, err := events.New(name, &events.Create{PreferredName: twoIDs, DefaultOwner: kcemu.DevUser1}, events.Meta{Actor: "other-system"})
		if err != nil {
			t.Fatal(err)
		}
		publishRaw(t, js, env, fmt.Sprintf("%s-%d", env.ID, i))
	}

	thrice := unique("thrice")
	name3, _ := events.NameFor(thrice)
	env, err := events.New(name3, &events.Create{PreferredName: thrice, DefaultOwner: kcemu.DevUser2}, events.Meta{Actor: "other-system"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		publishRaw(t, js, env, fmt.Sprintf("%s-delivery-%d", env.ID, i))
	}

	for _, ws := range []string{name, name3} {
		waitStatus(t, ws, admin, "ready")
		assertExactlyOne(t, ws)
	}
}

func assertExactlyOne(t *testing.T, name string) {
	t.Helper()
	ctx := context.Background()
	if n := keycloakClients(t, name); n != 1 {
		t.Errorf("%s: %d Keycloak clients, want 1", name, n)
	}
	adm, root, err := adminClients()
	if err != nil {
		t.Fatal(err)
	}
	buckets, err := root.ListBuckets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nb := 0
	for _, b := range buckets {
		if b.Name == name {
			nb++
		}
	}
	if nb != 1 {
		t.Errorf("%s: %d buckets, want 1", name, nb)
	}
	users, err := adm.ListUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// One member, the owner: one user bound to the workspace's policy.
	if bound := usersOf(users, name); len(bound) != 1 {
		t.Errorf("%s: MinIO users %v, want the owner's only", name, bound)
	}
	policies, err := adm.ListCannedPolicies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := policies[name]; !ok {
		t.Errorf("%s: no policy", name)
	}
	var p map[string]any
	if err := json.Unmarshal(policies[name], &p); err != nil {
		t.Errorf("%s: policy not JSON: %v", name, err)
	}
}

// usersOf returns the access keys of the users bound to either policy of
// the workspace.
func usersOf(users map[string]madmin.UserInfo, ws string) []string {
	var out []string
	for k, u := range users {
		if u.PolicyName == ws || u.PolicyName == ws+".readonly" {
			out = append(out, k)
		}
	}
	return out
}
