package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

// keysOf returns the storage credentials a caller's GET shows, waiting
// for them: a member who just joined is shown theirs once MinIO holds
// them, a moment after member.added.
func keysOf(t *testing.T, ws, tok string) map[string]any {
	t.Helper()
	view := waitView(t, ws, tok, "the caller's credentials", func(v map[string]any) bool {
		storage, _ := v["storage"].(map[string]any)
		creds, _ := storage["credentials"].(map[string]any)
		return creds != nil
	})
	return view["storage"].(map[string]any)["credentials"].(map[string]any)
}

// waitKeys polls GET until the caller's access key is not old.
func waitKeys(t *testing.T, ws, tok, old string) map[string]any {
	t.Helper()
	view := waitView(t, ws, tok, "new keys", func(v map[string]any) bool {
		storage, _ := v["storage"].(map[string]any)
		creds, _ := storage["credentials"].(map[string]any)
		return creds != nil && creds["access"] != old
	})
	return view["storage"].(map[string]any)["credentials"].(map[string]any)
}

// sessionS3 is an S3 client with STS credentials, as boto3 with
// aws_session_token is.
func sessionS3(t *testing.T, creds map[string]any) *minio.Client {
	t.Helper()
	ep := strings.TrimPrefix(creds["AWS_ENDPOINT_URL"].(string), "http://")
	c, err := minio.New(ep, &minio.Options{Region: creds["AWS_REGION"].(string), Creds: credentials.NewStaticV4(
		creds["AWS_ACCESS_KEY_ID"].(string), creds["AWS_SECRET_ACCESS_KEY"].(string), creds["AWS_SESSION_TOKEN"].(string))})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func putErr(c *minio.Client, bucket, key string) error {
	body := []byte("data of " + key)
	_, err := c.PutObject(context.Background(), bucket, key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{})
	return err
}

func readErr(c *minio.Client, bucket, key string) error {
	_, err := c.StatObject(context.Background(), bucket, key, minio.StatObjectOptions{})
	return err
}

func denied(err error) bool {
	code := minio.ToErrorResponse(err).Code
	return code == "AccessDenied" || code == "InvalidAccessKeyId" || code == "InvalidTokenId" || code == "ExpiredToken"
}

// refusedWithin polls op until the object store refuses it, and fails
// the test if that takes longer than limit; it returns how long it took.
func refusedWithin(t *testing.T, what string, limit time.Duration, op func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := op()
		if err != nil && denied(err) {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("%s still allowed %s later (last: %v)", what, limit, err)
		}
		time.Sleep(20 * time.Millisecond) // as fast as a client retries
	}
}

// TestStorageAccessFollowsMembership walks the README's "Storage access":
// keys per member, revocation, viewers, role changes, the last admin.
func TestStorageAccessFollowsMembership(t *testing.T) {
	admin, user1 := token(t, kcemu.DevAdminUser), token(t, kcemu.DevUser1)
	ws := create(t, admin, unique("access"), kcemu.DevUser1)
	waitStatus(t, ws, admin, "ready")
	members := "/workspaces/" + ws + "/members"
	if code, body := call(t, "POST", members, user1, fmt.Sprintf(`{"username":%q}`, kcemu.DevUser2)); code != http.StatusAccepted {
		t.Fatalf("add = %d %v", code, body)
	}
	waitMember(t, ws, admin, kcemu.DevUser2, "ws_access")

	// Every member holds keys of their own; both work; an admin who is no member sees none.
	k1, k2 := keysOf(t, ws, user1), keysOf(t, ws, token(t, kcemu.DevUser2))
	if k1["access"] == k2["access"] || k1["bucketname"] != ws || k2["bucketname"] != ws {
		t.Fatalf("keys: %v and %v", k1["access"], k2["access"])
	}
	s1, s2 := s3For(t, k1), s3For(t, k2)
	for who, c := range map[string]*minio.Client{"owner": s1, "member": s2} {
		if err := putErr(c, ws, who+".txt"); err != nil {
			t.Fatalf("%s put: %v", who, err)
		}
	}
	if code, view := call(t, "GET", "/workspaces/"+ws, admin, ""); code != http.StatusOK || view["storage"] != nil {
		t.Fatalf("platform admin GET = %d storage %v, want null", code, view["storage"])
	}

	// Removed: their kept keys are refused within 1 s of member.removed; the owner's work.
	if code, body := call(t, "DELETE", members+"/"+kcemu.DevUser2, user1, ""); code != http.StatusAccepted {
		t.Fatalf("remove = %d %v", code, body)
	}
	waitMember(t, ws, admin, kcemu.DevUser2, "")
	refusedWithin(t, "the removed member's write", time.Second, func() error { return putErr(s2, ws, "after.txt") })
	refusedWithin(t, "the removed member's read", time.Second, func() error { return readErr(s2, ws, "owner.txt") })
	if err := putErr(s1, ws, "still.txt"); err != nil {
		t.Fatalf("the owner's keys after the removal: %v", err)
	}

	// A viewer reads and lists, never writes; a role change takes effect at once, on the same keys.
	if code, body := call(t, "POST", members, user1, fmt.Sprintf(`{"username":%q,"role":"ws_viewer"}`, kcemu.DevUser2)); code != http.StatusAccepted {
		t.Fatalf("add viewer = %d %v", code, body)
	}
	waitMember(t, ws, admin, kcemu.DevUser2, "ws_viewer")
	kv := keysOf(t, ws, token(t, kcemu.DevUser2))
	if kv["access"] == k2["access"] {
		t.Fatal("a member who came back holds their old keys")
	}
	viewer := s3For(t, kv)
	if err := readErr(viewer, ws, "owner.txt"); err != nil {
		t.Fatalf("viewer read: %v", err)
	}
	if err := putErr(viewer, ws, "viewer.txt"); !denied(err) {
		t.Fatalf("viewer put = %v, want AccessDenied", err)
	}
	if code, body := call(t, "POST", members, user1, fmt.Sprintf(`{"username":%q,"role":"ws_access"}`, kcemu.DevUser2)); code != http.StatusAccepted {
		t.Fatalf("role change = %d %v", code, body)
	}
	waitMember(t, ws, admin, kcemu.DevUser2, "ws_access")
	if err := putErr(viewer, ws, "promoted.txt"); err != nil {
		t.Fatalf("write after the change to ws_access: %v", err)
	}
	if again := keysOf(t, ws, token(t, kcemu.DevUser2)); again["access"] != kv["access"] {
		t.Fatal("a role change replaced the keys")
	}
	if !historyHas(t, ws, admin, `"type":"workspace.member.added"`, `"role":"ws_viewer"`) {
		t.Fatal("no member.added for the viewer in the history")
	}
}

// TestSessionsAreLimitedToTheirBucketAndPrefix covers STS.
func TestSessionsAreLimitedToTheirBucketAndPrefix(t *testing.T) {
	admin, user1 := token(t, kcemu.DevAdminUser), token(t, kcemu.DevUser1)
	ws := create(t, admin, unique("sts"), kcemu.DevUser1)
	other := create(t, admin, unique("sts-other"), kcemu.DevUser1)
	waitStatus(t, ws, admin, "ready")
	waitStatus(t, other, admin, "ready")
	sts := "/workspaces/" + ws + "/credentials/sts"
	code, body := call(t, "POST", sts, user1, `{"prefix":"data/","duration_seconds":900}`)
	creds, _ := body["credentials"].(map[string]any)
	if code != http.StatusCreated || creds["AWS_SESSION_TOKEN"] == "" || creds["prefix"] != "data/" || creds["bucketname"] != ws {
		t.Fatalf("sts = %d %v", code, body)
	}
	exp, err := time.Parse(time.RFC3339, creds["expiration"].(string))
	if err != nil || time.Until(exp) < 14*time.Minute || time.Until(exp) > 16*time.Minute {
		t.Fatalf("expiration %v (%v), want in about 15 minutes", creds["expiration"], err)
	}
	c := sessionS3(t, creds)
	if err := putErr(c, ws, "data/in.txt"); err != nil {
		t.Fatalf("put under the prefix: %v", err)
	}
	for bucket, key := range map[string]string{ws: "out.txt", other: "data/in.txt"} {
		if err := putErr(c, bucket, key); !denied(err) {
			t.Fatalf("put %s/%s = %v, want AccessDenied", bucket, key, err)
		}
	}
	code, body = call(t, "POST", sts, user1, `{"read_only":true}`)
	ro, _ := body["credentials"].(map[string]any)
	if code != http.StatusCreated {
		t.Fatalf("read-only sts = %d %v", code, body)
	}
	if err := readErr(sessionS3(t, ro), ws, "data/in.txt"); err != nil {
		t.Fatalf("read-only session read: %v", err)
	}
	if err := putErr(sessionS3(t, ro), ws, "data/ro.txt"); !denied(err) {
		t.Fatalf("read-only session put = %v, want AccessDenied", err)
	}
	for _, tc := range []struct {
		tok, body string
		want      int
	}{
		{user1, `{"prefix":"../x"}`, 422}, {user1, `{"duration_seconds":10}`, 422}, {user1, `{"duration_seconds":"x"}`, 422},
		{token(t, kcemu.DevUser2), `{}`, 403},
	} {
		if code, body := call(t, "POST", sts, tc.tok, tc.body); code != tc.want {
			t.Errorf("sts %s = %d %v, want %d", tc.body, code, body, tc.want)
		}
	}
	if !historyHas(t, ws, admin, `"type":"workspace.credentials.session.issued"`, `"prefix":"data/"`) {
		t.Fatal("no session.issued in the history")
	}
}

// TestRotationWithAndWithoutGrace replaces the owner's keys twice.
func TestRotationWithAndWithoutGrace(t *testing.T) {
	admin, user1 := token(t, kcemu.DevAdminUser), token(t, kcemu.DevUser1)
	ws := create(t, admin, unique("rotate"), kcemu.DevUser1)
	waitStatus(t, ws, admin, "ready")
	rotate := "/workspaces/" + ws + "/credentials/rotate"
	first := keysOf(t, ws, user1)
	if code, body := call(t, "POST", rotate, user1, `{}`); code != http.StatusAccepted {
		t.Fatalf("rotate = %d %v", code, body)
	}
	second := waitKeys(t, ws, user1, first["access"].(string))
	refusedWithin(t, "the rotated-out keys", 2*time.Second, func() error { return putErr(s3For(t, first), ws, "old.txt") })
	if err := putErr(s3For(t, second), ws, "new.txt"); err != nil {
		t.Fatalf("new keys: %v", err)
	}

	if code, body := call(t, "POST", rotate, user1, `{"grace_seconds":2}`); code != http.StatusAccepted {
		t.Fatalf("rotate with grace = %d %v", code, body)
	}
	third := waitKeys(t, ws, user1, second["access"].(string))
	if err := putErr(s3For(t, second), ws, "grace.txt"); err != nil {
		t.Fatalf("old keys within their grace: %v", err)
	}
	refusedWithin(t, "the old keys after their grace", 6*time.Second, func() error { return putErr(s3For(t, second), ws, "late.txt") })
	if err := putErr(s3For(t, third), ws, "third.txt"); err != nil {
		t.Fatalf("newest keys: %v", err)
	}
	if !historyHas(t, ws, admin, `"type":"workspace.credentials.revoked"`, `"reason":"rotated"`) {
		t.Fatal("no credentials.revoked in the history")
	}
}
