package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"
	"github.com/minio/minio-go/v7"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

// awaitCondition polls cond until it holds, failing the test after limit.
func awaitCondition(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s\nlogs:\n%s", what, limit, tail(sys.logs.String()))
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
}

func reconcileNow(t *testing.T, ws, admin string) {
	t.Helper()
	if code, body := call(t, "POST", "/workspaces/"+ws+"/reconcile", admin, ""); code != http.StatusAccepted {
		t.Fatalf("reconcile %s = %d %v", ws, code, body)
	}
}

// TestDriftIsRepairedAndAStrangersBucketDegrades: a bucket (empty), a
// policy, a client role (with the owner's mapping to it) and the owner's
// MinIO user deleted by hand are each back after one reconcile, the same
// keys working; a bucket deleted and re-created by someone else with an
// object makes the workspace degraded, the bucket and its object
// untouched and the owner's keys refused on it (403); once the operator
// removes it, the next reconcile makes ours and the workspace is ready.
func TestDriftIsRepairedAndAStrangersBucketDegrades(t *testing.T) {
	ctx := context.Background()
	admin, owner := token(t, kcemu.DevAdminUser), token(t, kcemu.DevUser1)
	ws := create(t, admin, unique("drift"), kcemu.DevUser1)
	waitStatus(t, ws, admin, "ready")
	creds := keysOf(t, ws, owner)
	user := s3For(t, creds)
	adm, root, err := adminClients()
	if err != nil {
		t.Fatal(err)
	}
	gc := gocloak.NewClient(sys.kc.url)
	kcTok, err := gc.LoginAdmin(ctx, sys.kc.adminUser, sys.kc.adminPassword, "master")
	if err != nil {
		t.Fatal(err)
	}
	clients, err := gc.GetClients(ctx, kcTok.AccessToken, sys.kc.realm, gocloak.GetClientsParams{ClientID: gocloak.StringP(ws)})
	if err != nil || len(clients) != 1 {
		t.Fatalf("clients %v %v", clients, err)
	}
	clientUUID := *clients[0].ID

	// By hand: the bucket (empty), the read-only policy, the ws_admin role
	// (the owner's mapping goes with it) and the owner's MinIO user.
	if err := root.RemoveBucket(ctx, ws); err != nil {
		t.Fatal(err)
	}
	if err := adm.RemoveCannedPolicy(ctx, sagas.ReadOnlyPolicy(ws)); err != nil {
		t.Fatal(err)
	}
	if err := gc.DeleteClientRole(ctx, kcTok.AccessToken, sys.kc.realm, clientUUID, events.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if err := adm.RemoveUser(ctx, creds["access"].(string)); err != nil {
		t.Fatal(err)
	}
	if err := putErr(user, ws, "before.txt"); err == nil {
		t.Fatal("the owner's keys still work after their user was deleted")
	}

	sent := time.Now()
	reconcileNow(t, ws, admin)
	awaitCondition(t, "drift repaired", time.Minute, func() bool {
		return historyHas(t, ws, admin, events.TypeDriftRepaired, `"member_key"`)
	})
	t.Logf("four kinds of drift repaired by one reconcile, in the audit trail %s after the POST", time.Since(sent))
	if err := putErr(user, ws, "after.txt"); err != nil {
		t.Fatalf("the owner's same keys on the repaired bucket: %v", err)
	}
	for _, kind := range []string{`"bucket"`, `"policy"`, `"client_role"`, `"role_mapping"`, `"member_key"`} {
		if !historyHas(t, ws, admin, events.TypeDriftRepaired, kind) {
			t.Errorf("no %s among the repairs", kind)
		}
	}
	if tags, err := root.GetBucketTagging(ctx, ws); err != nil || tags.ToMap()[sagas.ManagedByKey] != sagas.ManagedByValue {
		t.Fatalf("the re-made bucket is not marked ours: %v %v", tags, err)
	}
	if _, err := adm.InfoCannedPolicyV2(ctx, sagas.ReadOnlyPolicy(ws)); err != nil {
		t.Fatalf("the read-only policy: %v", err)
	}
	roles, err := gc.GetClientRolesByUserID(ctx, kcTok.AccessToken, sys.kc.realm, clientUUID, userID(t, gc, kcTok.AccessToken, kcemu.DevUser1))
	if err != nil || len(roles) != 1 || *roles[0].Name != events.RoleAdmin {
		t.Fatalf("the owner's client roles after the repair: %v %v", roles, err)
	}

	// Deleted, then re-created by someone else with an object.
	if err := root.RemoveObject(ctx, ws, "after.txt", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := root.RemoveBucket(ctx, ws); err != nil {
		t.Fatal(err)
	}
	if err := root.MakeBucket(ctx, ws, minio.MakeBucketOptions{Region: sys.mio.Region()}); err != nil {
		t.Fatal(err)
	}
	theirs := []byte("someone else's data")
	if _, err := root.PutObject(ctx, ws, "theirs.txt", bytes.NewReader(theirs), int64(len(theirs)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	sent = time.Now()
	reconcileNow(t, ws, admin)
	view, _ := waitStatus(t, ws, admin, events.StatusDegraded)
	t.Logf("degraded, shown by GET, %s after the POST", time.Since(sent))
	if reason, _ := view["last_error"].(string); !strings.Contains(reason, "someone else") {
		t.Fatalf("degraded without the reason: %v", view)
	}
	if tags, err := root.GetBucketTagging(ctx, ws); err == nil && tags.ToMap()[sagas.ManagedByKey] != "" {
		t.Fatalf("the stranger's bucket was tagged: %v", tags.ToMap())
	}
	obj, err := root.GetObject(ctx, ws, "theirs.txt", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(obj); err != nil || !bytes.Equal(got, theirs) {
		t.Fatalf("the stranger's object: %q %v", got, err)
	}
	for what, err := range map[string]error{"read": readErr(user, ws, "theirs.txt"), "write": putErr(user, ws, "mine.txt")} {
		if code := minio.ToErrorResponse(err).StatusCode; code != http.StatusForbidden {
			t.Fatalf("%s on the stranger's bucket with the owner's keys: %d %v, want 403", what, code, err)
		}
	}

	// The operator removes it; the next reconcile makes ours again.
	if err := root.RemoveObject(ctx, ws, "theirs.txt", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := root.RemoveBucket(ctx, ws); err != nil {
		t.Fatal(err)
	}
	reconcileNow(t, ws, admin)
	if view, _ := waitStatus(t, ws, admin, events.StatusReady); view["last_error"] != nil {
		t.Fatalf("ready again with an error: %v", view)
	}
	if err := putErr(user, ws, "back.txt"); err != nil {
		t.Fatalf("the owner's keys once ready again: %v", err)
	}
}

func userID(t *testing.T, gc *gocloak.GoCloak, tok, username string) string {
	t.Helper()
	users, err := gc.GetUsers(context.Background(), tok, sys.kc.realm, gocloak.GetUsersParams{Username: &username, Exact: gocloak.BoolP(true)})
	if err != nil || len(users) != 1 {
		t.Fatalf("user %s: %v %v", username, users, err)
	}
	return *users[0].ID
}
