package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

// TestMembership is issue #5's flow: a member added through the API gets a
// token that carries the workspace and S3 access through the returned
// credentials; once removed, their old, unexpired token gets 403 at once.
func TestMembership(t *testing.T) {
	ctx := context.Background()
	admin := token(t, kcemu.DevAdminUser)
	ws := create(t, admin, unique("members"), kcemu.DevUser1)
	waitStatus(t, ws, admin, "ready")
	members := "/workspaces/" + ws + "/members"

	// The platform admin adds example-user-2 as ws_access.
	addUser2 := fmt.Sprintf(`{"username":%q,"role":"ws_access"}`, kcemu.DevUser2)
	if code, body := call(t, "POST", members, admin, addUser2); code != http.StatusAccepted {
		t.Fatalf("add member = %d %v", code, body)
	}
	view := waitMember(t, ws, admin, kcemu.DevUser2, "ws_access")
	if role := roleIn(view, kcemu.DevUser1); role != "ws_admin" || view["owner"] != kcemu.DevUser1 {
		t.Fatalf("owner %v holds %q, want ws_admin", view["owner"], role)
	}

	// Their new token carries the workspace, as in EOEPCA.
	user2 := token(t, kcemu.DevUser2)
	if aud, roles := tokenAccess(t, user2, ws); !strings.Contains(aud, ws) || !strings.Contains(roles, "ws_access") {
		t.Fatalf("example-user-2's token: aud %s resource_access[%s] %s", aud, ws, roles)
	}

	// They read the workspace with its credentials, and S3 works with them.
	creds := keysOf(t, ws, user2)
	if creds["bucketname"] != ws {
		t.Fatalf("member's credentials %v", creds["bucketname"])
	}
	s3 := s3For(t, creds)
	payload := []byte("shared with example-user-2")
	if _, err := s3.PutObject(ctx, ws, "shared.txt", bytes.NewReader(payload), int64(len(payload)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("member upload: %v", err)
	}
	obj, err := s3.GetObject(ctx, ws, "shared.txt", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if back, err := io.ReadAll(obj); err != nil || !bytes.Equal(back, payload) {
		t.Fatalf("member read back %q, %v", back, err)
	}

	// A ws_access member may not manage members.
	if code, body := call(t, "POST", members, user2, `{"username":"example-admin","role":"ws_admin"}`); code != http.StatusForbidden {
		t.Fatalf("ws_access adds a member = %d %v, want 403", code, body)
	}
	if code, body := call(t, "DELETE", members+"/"+kcemu.DevUser1, user2, ""); code != http.StatusForbidden {
		t.Fatalf("ws_access removes a member = %d %v, want 403", code, body)
	}

	// Removed, their old token is refused at once, though not expired.
	if code, body := call(t, "DELETE", members+"/"+kcemu.DevUser2, admin, ""); code != http.StatusAccepted {
		t.Fatalf("remove member = %d %v", code, body)
	}
	waitMember(t, ws, admin, kcemu.DevUser2, "")
	exp, _ := claims(t, user2)["exp"].(float64)
	if left := time.Until(time.Unix(int64(exp), 0)); left <= 0 {
		t.Fatalf("the old token expired already (%s ago): the check proves nothing", -left)
	}
	if code, body := call(t, "GET", "/workspaces/"+ws, user2, ""); code != http.StatusForbidden {
		t.Fatalf("removed member with the old token = %d %v, want 403", code, body)
	}

	// The owner, a ws_admin, manages members too.
	user1 := token(t, kcemu.DevUser1)
	if code, body := call(t, "POST", members, user1, addUser2); code != http.StatusAccepted {
		t.Fatalf("owner adds a member = %d %v", code, body)
	}
	waitMember(t, ws, admin, kcemu.DevUser2, "ws_access")
	if code, body := call(t, "DELETE", members+"/"+kcemu.DevUser2, user1, ""); code != http.StatusAccepted {
		t.Fatalf("owner removes a member = %d %v", code, body)
	}
	waitMember(t, ws, admin, kcemu.DevUser2, "")

	// An unknown user is a visible failure; the workspace stays ready.
	nobody := unique("nobody")
	if code, body := call(t, "POST", members, admin, fmt.Sprintf(`{"username":%q,"role":"ws_access"}`, nobody)); code != http.StatusAccepted {
		t.Fatalf("add unknown = %d %v", code, body)
	}
	view = waitMemberError(t, ws, admin, nobody)
	if view["status"] != "ready" || !strings.Contains(fmt.Sprint(view["last_member_error"]), "does not exist") || roleIn(view, nobody) != "" {
		t.Fatalf("after adding an unknown user: %v", view)
	}
	if !historyHas(t, ws, admin, `"saga":"member_add"`, nobody) {
		t.Fatalf("no member_add step.failed naming %s in the history", nobody)
	}

	// The last ws_admin can be neither removed nor demoted: 409 with why.
	for _, try := range []struct{ method, path, body string }{
		{"DELETE", members + "/" + kcemu.DevUser1, ""},
		{"POST", members, fmt.Sprintf(`{"username":%q,"role":"ws_viewer"}`, kcemu.DevUser1)},
	} {
		code, body := call(t, try.method, try.path, user1, try.body)
		if code != http.StatusConflict || !strings.Contains(fmt.Sprint(body["error"]), "last ws_admin") {
			t.Fatalf("%s %s by the last admin = %d %v, want 409", try.method, try.path, code, body)
		}
	}

	// Deleting the workspace removes the client, and with its roles every
	// mapping (as Keycloak's JpaUserProvider.preRemove(realm, role) does).
	if code, body := call(t, "POST", members, admin, addUser2); code != http.StatusAccepted {
		t.Fatalf("add member = %d %v", code, body)
	}
	waitMember(t, ws, admin, kcemu.DevUser2, "ws_access")
	if code, body := call(t, "DELETE", "/workspaces/"+ws+"?purge=true", admin, ""); code != http.StatusAccepted {
		t.Fatalf("delete = %d %v", code, body)
	}
	waitStatus(t, ws, admin, "deleted")
	for _, u := range []string{kcemu.DevUser1, kcemu.DevUser2} {
		if aud, roles := tokenAccess(t, token(t, u), ws); strings.Contains(aud, ws) || roles != "<nil>" {
			t.Fatalf("%s's token after the delete: aud %s resource_access[%s] %s", u, aud, ws, roles)
		}
	}
	assertGone(t, ws)
}

// tokenAccess returns a token's aud and its resource_access entry for ws.
func tokenAccess(t *testing.T, tok, ws string) (aud, roles string) {
	t.Helper()
	c := claims(t, tok)
	ra, _ := c["resource_access"].(map[string]any)
	return fmt.Sprint(c["aud"]), fmt.Sprint(ra[ws])
}

// roleIn returns user's role among a workspace view's members, "" if none.
func roleIn(view map[string]any, user string) string {
	list, _ := view["members"].([]any)
	for _, m := range list {
		if mm, _ := m.(map[string]any); mm["username"] == user {
			role, _ := mm["role"].(string)
			return role
		}
	}
	return ""
}

// waitMember polls GET until user holds role ("": is no member).
func waitMember(t *testing.T, ws, tok, user, role string) map[string]any {
	t.Helper()
	return waitView(t, ws, tok, fmt.Sprintf("%s holding %q", user, role), func(v map[string]any) bool { return roleIn(v, user) == role })
}

// waitMemberError polls GET until last_member_error mentions want.
func waitMemberError(t *testing.T, ws, tok, want string) map[string]any {
	t.Helper()
	return waitView(t, ws, tok, "last_member_error about "+want, func(v map[string]any) bool {
		s, _ := v["last_member_error"].(string)
		return strings.Contains(s, want)
	})
}

func waitView(t *testing.T, ws, tok, what string, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		code, v := call(t, "GET", "/workspaces/"+ws, tok, "")
		if code == http.StatusOK && ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %s; last %d %v\nlogs:\n%s", ws, what, code, v, tail(sys.logs.String()))
		}
		time.Sleep(100 * time.Millisecond) // polling interval, as a client polls
	}
}

// historyHas reports whether one entry of the workspace's audit history
// contains every one of parts.
func historyHas(t *testing.T, ws, tok string, parts ...string) bool {
	t.Helper()
	cursor := ""
	for range 50 {
		code, body := call(t, "GET", "/workspaces/"+ws+"/events?limit=100"+cursor, tok, "")
		if code != http.StatusOK {
			t.Fatalf("history = %d %v", code, body)
		}
		items, _ := body["items"].([]any)
		for _, it := range items {
			raw := fmt.Sprintf("%v", it)
			entry, _ := it.(map[string]any)
			if ev, ok := entry["event"]; ok {
				raw = mustJSON(t, ev)
			}
			if containsAll(raw, parts) {
				return true
			}
		}
		next, _ := body["next_cursor"].(string)
		if next == "" {
			return false
		}
		cursor = "&cursor=" + next
	}
	return false
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}
