package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/nats-io/nats.go"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

// TestDeletedNameIsHeldUntilReleased: after a delete the name is refused
// with the reason and until when; a platform admin releases it and the
// same name is created again.
func TestDeletedNameIsHeldUntilReleased(t *testing.T) {
	admin := token(t, kcemu.DevAdminUser)
	preferred := unique("held")
	name := create(t, admin, preferred, kcemu.DevUser1)
	waitStatus(t, name, admin, "ready")
	if code, body := call(t, "DELETE", "/workspaces/"+name, admin, ""); code != http.StatusAccepted {
		t.Fatalf("delete = %d %v", code, body)
	}
	waitStatus(t, name, admin, "deleted")
	again := fmt.Sprintf(`{"preferred_name":%q,"default_owner":%q}`, preferred, kcemu.DevUser1)
	code, body := call(t, "POST", "/workspaces", admin, again)
	if reason := fmt.Sprint(body["error"]); code != http.StatusConflict || body["field"] != "preferred_name" || !strings.Contains(reason, "held until") {
		t.Fatalf("create of a held name = %d %v, want 409 saying until when", code, body)
	}
	if code, body := call(t, "DELETE", "/names/"+name, token(t, kcemu.DevUser1), ""); code != http.StatusForbidden {
		t.Fatalf("release by a user = %d %v", code, body)
	}
	if code, body := call(t, "DELETE", "/names/"+name, admin, ""); code != http.StatusNoContent {
		t.Fatalf("release = %d %v", code, body)
	}
	if code, body := call(t, "POST", "/workspaces", admin, again); code != http.StatusAccepted {
		t.Fatalf("create after the release = %d %v", code, body)
	}
	waitStatus(t, name, admin, "ready")
}

// TestSchemaViolatingCommandIsReplayedFixed: a create with a field its
// schema does not allow, published straight to NATS, lands in the dead
// letters with the reason; replayed fixed, the workspace ends ready.
func TestSchemaViolatingCommandIsReplayedFixed(t *testing.T) {
	admin := token(t, kcemu.DevAdminUser)
	preferred := unique("dlq")
	name, _ := events.NameFor(preferred)
	id := "cmd-" + preferred
	bad := fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"portal","type":"workspace.create","subject":%q,`+
		`"time":"2026-01-01T00:00:00Z","datacontenttype":"application/json","actor":"portal","correlationid":%q,`+
		`"data":{"preferred_name":%q,"default_owner":%q,"colour":"blue"}}`, id, name, id, preferred, kcemu.DevUser1)
	nc, err := nats.Connect(sys.nats)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Publish(events.CommandSubjectPrefix+name+".create", []byte(bad)); err != nil {
		t.Fatal(err)
	}
	var seq float64
	deadline := time.Now().Add(time.Minute)
	for seq == 0 {
		code, list := call(t, "GET", "/deadletters?limit=500", admin, "")
		items, _ := list["items"].([]any)
		for _, it := range items {
			if dl := it.(map[string]any); dl["id"] == id {
				if !strings.Contains(fmt.Sprint(dl["reason"]), "colour") {
					t.Fatalf("dead letter without the reason: %v", dl)
				}
				seq = dl["seq"].(float64)
			}
		}
		if seq == 0 && time.Now().After(deadline) {
			t.Fatalf("the bad command is not among the dead letters: %d %v", code, list)
		}
		time.Sleep(100 * time.Millisecond) // polling interval, as an operator polls
	}
	fixed := strings.Replace(bad, `,"colour":"blue"`, "", 1)
	path := fmt.Sprintf("/deadletters/%d/replay", int64(seq))
	if code, body := call(t, "POST", path, admin, `{"command":`+fixed+`}`); code != http.StatusAccepted {
		t.Fatalf("replay fixed = %d %v", code, body)
	}
	waitStatus(t, name, admin, "ready")
}

// TestForceDeleteOfAHalfMadeWorkspace: a create fails on someone else's
// policy of its name, its bucket of ours holding an object; a force delete
// ends deleted with nothing of ours left and the policy untouched.
func TestForceDeleteOfAHalfMadeWorkspace(t *testing.T) {
	ctx := context.Background()
	admin := token(t, kcemu.DevAdminUser)
	preferred := unique("half")
	name, _ := events.NameFor(preferred)
	adm, root, err := adminClients()
	if err != nil {
		t.Fatal(err)
	}
	foreign := []byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::elsewhere/*"]}]}`)
	if err := adm.AddCannedPolicy(ctx, name, foreign); err != nil {
		t.Fatal(err)
	}
	create(t, admin, preferred, kcemu.DevUser1)
	failed, _ := waitStatus(t, name, admin, "failed")
	if failed["failed_step"] != "policy" {
		t.Fatalf("failed at %v, want policy: %v", failed["failed_step"], failed)
	}
	body := strings.NewReader("ours")
	if _, err := root.PutObject(ctx, name, "ours.txt", body, int64(body.Len()), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("no bucket of ours in the half-made workspace: %v", err)
	}
	if code, body := call(t, "DELETE", "/workspaces/"+name+"?force=true", admin, ""); code != http.StatusAccepted {
		t.Fatalf("force delete = %d %v", code, body)
	}
	waitStatus(t, name, admin, "deleted")
	if ok, err := root.BucketExists(ctx, name); ok || err != nil {
		t.Fatalf("our bucket left: %v %v", ok, err)
	}
	if n := keycloakClients(t, name); n != 0 {
		t.Fatalf("%d Keycloak clients %s left", n, name)
	}
	if info, err := adm.InfoCannedPolicyV2(ctx, name); err != nil || !strings.Contains(string(info.Policy), "elsewhere") {
		t.Fatalf("the foreign policy was touched: %v %s", err, info.Policy)
	}
}
