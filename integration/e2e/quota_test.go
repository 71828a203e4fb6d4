package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

// TestQuotaAndUsage: a write past the quota is refused, allowed once
// the quota is raised; usage appears in GET.
func TestQuotaAndUsage(t *testing.T) {
	admin, owner := token(t, kcemu.DevAdminUser), token(t, kcemu.DevUser1)
	preferred := unique("quota")
	code, body := call(t, "POST", "/workspaces", admin, fmt.Sprintf(`{"preferred_name":%q,"default_owner":%q,"quota_mb":1}`, preferred, kcemu.DevUser1))
	if code != http.StatusAccepted {
		t.Fatalf("create = %d %v", code, body)
	}
	ws := body["name"].(string)
	view, _ := waitStatus(t, ws, admin, "ready")
	if view["quota_mb"] != float64(1) {
		t.Fatalf("quota_mb = %v", view["quota_mb"])
	}
	s3 := s3For(t, keysOf(t, ws, owner))
	big := make([]byte, 2<<20)
	put := func(key string, b []byte) error {
		_, err := s3.PutObject(context.Background(), ws, key, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{})
		return err
	}
	if err := put("big.bin", big); minio.ToErrorResponse(err).Code != "XMinioAdminBucketQuotaExceeded" {
		t.Fatalf("a 2 MiB write under a 1 MiB quota: %v", err)
	}
	if err := put("small.txt", []byte("0123456789")); err != nil {
		t.Fatalf("a write under the quota: %v", err)
	}
	waitView(t, ws, owner, "usage of one object", func(v map[string]any) bool {
		u, _ := v["usage"].(map[string]any)
		return u != nil && u["objects"] == float64(1) && u["bytes"] == float64(10) && u["measured_at"] != nil
	})

	for _, bad := range []string{`{"quota_mb":0}`, `{"quota_mb":1.5}`, `{}`} {
		if code, b := call(t, "PATCH", "/workspaces/"+ws, admin, bad); code != http.StatusUnprocessableEntity || b["field"] != "quota_mb" {
			t.Errorf("PATCH %s = %d %v", bad, code, b)
		}
	}
	if code, b := call(t, "PATCH", "/workspaces/"+ws, owner, `{"quota_mb":10}`); code != http.StatusForbidden {
		t.Fatalf("PATCH by a workspace admin = %d %v", code, b)
	}
	if code, b := call(t, "PATCH", "/workspaces/"+ws, admin, `{"quota_mb":10}`); code != http.StatusAccepted {
		t.Fatalf("PATCH = %d %v", code, b)
	}
	waitView(t, ws, owner, "quota_mb 10", func(v map[string]any) bool { return v["quota_mb"] == float64(10) })
	if err := put("big.bin", big); err != nil {
		t.Fatalf("a 2 MiB write under a raised quota of 10 MiB: %v", err)
	}
	waitView(t, ws, owner, "usage of two objects", func(v map[string]any) bool {
		u, _ := v["usage"].(map[string]any)
		return u != nil && u["objects"] == float64(2) && u["bytes"] == float64(2<<20+10)
	})
	if code, b := call(t, "PATCH", "/workspaces/"+ws, admin, `{"quota_mb":null}`); code != http.StatusAccepted {
		t.Fatalf("PATCH null = %d %v", code, b)
	}
	waitView(t, ws, owner, "no quota", func(v map[string]any) bool { _, ok := v["quota_mb"]; return ok && v["quota_mb"] == nil })
	if !historyHas(t, ws, admin, "workspace.quota.changed", `"quota_mb":10`) {
		t.Fatal("no workspace.quota.changed in the trail")
	}
}
