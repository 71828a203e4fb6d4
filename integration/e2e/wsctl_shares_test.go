package e2e

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/eo-workspaces/provisioner/integration/stacktest"
	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

// TestWsctlSharesAndQuota: a member shares an object through wsctl, the
// link serves it, the list counts the use, revoking kills it; the
// platform admin sets and lifts a quota.
func TestWsctlSharesAndQuota(t *testing.T) {
	preferred := unique("cli-share")
	name := "ws-" + preferred
	wsctl(t, 0, "create", preferred, "--owner", kcemu.DevUser1, "--wait")
	owner := wsctlEnv(kcemu.DevUser1)

	got := decodeJSON[map[string]any](t, runWsctl(t, "", owner, "get", name, "-o", "json", "--show-secrets"))
	creds := got["storage"].(map[string]any)["credentials"].(map[string]any)
	payload := []byte("shared through wsctl")
	if _, err := s3For(t, creds).PutObject(t.Context(), name, "out/hello.txt", bytes.NewReader(payload), int64(len(payload)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}

	created := runWsctl(t, "", owner, "shares", "create", name, "out/hello.txt", "--expires-in", "1h", "--max-uses", "3", "-o", "json")
	if created.code != 0 {
		t.Fatalf("shares create: %d %s", created.code, created.err)
	}
	share := decodeJSON[map[string]any](t, created)
	link, id := share["url"].(string), share["id"].(string)
	if code, body := fetchLink(t, link); code != http.StatusOK || string(body) != string(payload) {
		t.Fatalf("the link answers %d %q", code, body)
	}
	listed := runWsctl(t, "", owner, "shares", "list", name)
	mustContain(t, "shares list", listed.stdout, id, "out/hello.txt", "1/3", kcemu.DevUser1)
	if strings.Contains(listed.stdout, link) {
		t.Fatal("shares list shows the link's secret url")
	}
	if r := runWsctl(t, "", owner, "shares", "revoke", name, id); r.code != 0 {
		t.Fatalf("shares revoke: %d %s", r.code, r.err)
	}
	stacktestWait(t, "revoked link refused", func() bool { return status(link) == http.StatusNotFound || status(link) == http.StatusGone })

	wsctl(t, 0, "quota", "set", name, "5")
	stacktestWait(t, "quota shown", func() bool {
		return strings.Contains(wsctl(t, 0, "get", name).stdout, "quota_mb")
	})
	wsctl(t, 0, "quota", "set", name, "none")
	wsctl(t, 2, "quota", "set", name, "lots")
	// Only platform admins set quotas: the API refuses, wsctl exits 1.
	if r := runWsctl(t, "", owner, "quota", "set", name, "1"); r.code != 1 || !strings.Contains(r.err, "403") {
		t.Fatalf("a member sets a quota: %d %s", r.code, r.err)
	}
}

// fetchLink GETs a share link without a token, as anyone holding it does.
func fetchLink(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func status(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func stacktestWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	stacktest.WaitCond(t, 30*time.Second, what, cond)
}
