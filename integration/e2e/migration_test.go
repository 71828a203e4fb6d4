package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/minio/madmin-go/v3"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
	"github.com/eo-workspaces/provisioner/sagas/progress"
	"github.com/eo-workspaces/provisioner/sagas/secrets"
	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

// sharedLayout turns a ready workspace, on the real stack, into what the
// versions before per-member keys left: one MinIO user named after the
// workspace holding its policy, its secret stored under the workspace's
// name, no member's own keys, no read-only policy, a record without a
// layout. It returns the shared pair.
func sharedLayout(t *testing.T, ws string, memberKeys ...string) (access, secret string) {
	t.Helper()
	ctx := context.Background()
	adm, _, err := adminClients()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range memberKeys {
		if err := adm.RemoveUser(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := adm.RemoveCannedPolicy(ctx, sagas.ReadOnlyPolicy(ws)); err != nil {
		t.Fatal(err)
	}
	secret = "shared-secret-of-" + ws
	if err := adm.AddUser(ctx, ws, secret); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.AttachPolicy(ctx, madmin.PolicyAssociationReq{Policies: []string{ws}, User: ws}); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(sys.nats)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	legacyVault(t, ctx, js, ws, secret)
	legacyRecord(t, ctx, js, ws)
	return ws, secret
}

// legacyVault stores the shared pair and forgets the members' own.
func legacyVault(t *testing.T, ctx context.Context, js jetstream.JetStream, ws, secret string) {
	t.Helper()
	kv, err := js.KeyValue(ctx, events.SecretsBucket)
	if err != nil {
		t.Fatal(err)
	}
	vault, err := secrets.New(kv, secrets.Config{Key: secrets.KeyFromPassphrase(secretKey)})
	if err != nil {
		t.Fatal(err)
	}
	members, err := vault.Members(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		if err := vault.DeleteMember(ctx, ws, m.Username); err != nil {
			t.Fatal(err)
		}
	}
	if err := vault.Put(ctx, ws, sagas.Credential{AccessKey: ws, SecretKey: secret}); err != nil {
		t.Fatal(err)
	}
}

func legacyRecord(t *testing.T, ctx context.Context, js jetstream.JetStream, ws string) {
	t.Helper()
	kv, err := js.KeyValue(ctx, events.SagaBucket)
	if err != nil {
		t.Fatal(err)
	}
	store := progress.NewKV(kv)
	rec, rev, err := store.Load(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	rec.Layout = sagas.LayoutShared
	if _, err := store.Save(ctx, ws, rec, rev); err != nil {
		t.Fatal(err)
	}
}

// restart stops the provisioner and starts it again on its data, as an
// upgrade does.
func restart(t *testing.T) {
	t.Helper()
	if err := sys.stop(); err != nil {
		t.Fatal(err)
	}
	s, err := startProvisioner(t.Context(), sys.bin, sys.data, sys.kc, sys.mio)
	if err != nil {
		t.Fatal(err)
	}
	sys = s
}

// TestUpgradeMigratesSharedKeysToKeysPerMember: a workspace on the shared
// layout, with data, an owner and a member, is moved to per-member keys
// by the worker's start-up alone; nobody loses access or data, and the
// shared pair stops working.
func TestUpgradeMigratesSharedKeysToKeysPerMember(t *testing.T) {
	admin, user1 := token(t, kcemu.DevAdminUser), token(t, kcemu.DevUser1)
	ws := create(t, admin, unique("legacy"), kcemu.DevUser1)
	waitStatus(t, ws, admin, "ready")
	if code, body := call(t, "POST", "/workspaces/"+ws+"/members", user1, fmt.Sprintf(`{"username":%q}`, kcemu.DevUser2)); code != http.StatusAccepted {
		t.Fatalf("add = %d %v", code, body)
	}
	waitMember(t, ws, admin, kcemu.DevUser2, "ws_access")
	k1, k2 := keysOf(t, ws, user1), keysOf(t, ws, token(t, kcemu.DevUser2))
	access, secret := sharedLayout(t, ws, k1["access"].(string), k2["access"].(string))
	shared := s3For(t, map[string]any{"endpoint": k1["endpoint"], "access": access, "secret": secret, "region": k1["region"]})
	if err := putErr(shared, ws, "before-upgrade.txt"); err != nil {
		t.Fatalf("the shared pair before the upgrade: %v", err)
	}

	restart(t)
	for _, user := range []string{kcemu.DevUser1, kcemu.DevUser2} {
		tok := token(t, user)
		keys := waitView(t, ws, tok, "keys of "+user+"'s own", func(v map[string]any) bool {
			storage, _ := v["storage"].(map[string]any)
			creds, _ := storage["credentials"].(map[string]any)
			return creds != nil && creds["access"] != access
		})["storage"].(map[string]any)["credentials"].(map[string]any)
		c := s3For(t, keys)
		if err := readErr(c, ws, "before-upgrade.txt"); err != nil {
			t.Fatalf("%s reads the data kept across the upgrade: %v", user, err)
		}
		if err := putErr(c, ws, user+".txt"); err != nil {
			t.Fatalf("%s writes with their own keys: %v", user, err)
		}
	}
	// The shared pair goes in the migration's last step, after everyone's own.
	refusedWithin(t, "the shared pair after the migration", 30*time.Second, func() error { return putErr(shared, ws, "after-upgrade.txt") })
	if !historyHas(t, ws, admin, `"type":"workspace.credentials.issued"`, `"reason":"migrated"`) {
		t.Fatal("no credentials.issued (migrated) in the history")
	}
	// ws_viewer works on a migrated workspace.
	if code, body := call(t, "POST", "/workspaces/"+ws+"/members", user1, fmt.Sprintf(`{"username":%q,"role":"ws_viewer"}`, kcemu.DevUser2)); code != http.StatusAccepted {
		t.Fatalf("viewer = %d %v", code, body)
	}
	waitMember(t, ws, admin, kcemu.DevUser2, "ws_viewer")
}
