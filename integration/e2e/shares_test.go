package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

// shareLink makes a link as tok and returns its url and id.
func shareLink(t *testing.T, ws, tok, body string) (url, id string) {
	t.Helper()
	code, b := call(t, "POST", "/workspaces/"+ws+"/shares", tok, body)
	url, _ = b["url"].(string)
	id, _ = b["id"].(string)
	if code != http.StatusCreated || url == "" || id == "" {
		t.Fatalf("share %s = %d %v", body, code, b)
	}
	return url, id
}

// download GETs a share link as anyone does: no token.
func download(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET share link: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

func dead(code int) bool { return code == http.StatusGone || code == http.StatusNotFound }

// deadWithin polls a link until it stops working, failing the test if
// that takes longer than limit; the bytes it gives meanwhile must be want.
func deadWithin(t *testing.T, what, url string, want []byte, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		code, body := download(t, url)
		if dead(code) {
			return time.Since(start)
		}
		if code != http.StatusOK || !bytes.Equal(body, want) {
			t.Fatalf("%s: %d %q", what, code, body)
		}
		if time.Since(start) > limit {
			t.Fatalf("%s: the link still works %s later", what, limit)
		}
		time.Sleep(20 * time.Millisecond) // as fast as a client retries
	}
}

func putObject(t *testing.T, c *minio.Client, bucket, key string, body []byte) {
	t.Helper()
	if _, err := c.PutObject(context.Background(), bucket, key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{ContentType: "text/csv"}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// TestShareLinks walks the share links of the contract: uses, expiry,
// revocation, the object and the workspace gone, concurrent one-use.
func TestShareLinks(t *testing.T) {
	admin, owner := token(t, kcemu.DevAdminUser), token(t, kcemu.DevUser1)
	ws := create(t, admin, unique("shares"), kcemu.DevUser1)
	waitStatus(t, ws, admin, "ready")
	s3 := s3For(t, keysOf(t, ws, owner))
	data := []byte(strings.Repeat("id,value\n1,2\n", 100))
	putObject(t, s3, ws, "results/report.csv", data)

	// A viewer may not share; an object that does not exist cannot be shared; bad input is 422.
	if code, b := call(t, "POST", "/workspaces/"+ws+"/members", owner, fmt.Sprintf(`{"username":%q,"role":"ws_viewer"}`, kcemu.DevUser2)); code != http.StatusAccepted {
		t.Fatalf("add viewer = %d %v", code, b)
	}
	waitMember(t, ws, admin, kcemu.DevUser2, "ws_viewer")
	for _, tc := range []struct {
		tok, body string
		code      int
	}{
		{token(t, kcemu.DevUser2), `{"path":"results/report.csv"}`, http.StatusForbidden},
		{owner, `{"path":"results/none.csv"}`, http.StatusNotFound},
		{owner, `{"path":"results/../x"}`, http.StatusUnprocessableEntity},
		{owner, `{"path":"results/report.csv","expires_in":604801}`, http.StatusUnprocessableEntity},
		{owner, `{"path":"results/report.csv","max_uses":0}`, http.StatusUnprocessableEntity},
	} {
		if code, b := call(t, "POST", "/workspaces/"+ws+"/shares", tc.tok, tc.body); code != tc.code {
			t.Errorf("share %s = %d %v, want %d", tc.body, code, b, tc.code)
		}
	}

	// Until max_uses: the same bytes each time, then no more.
	twice, twiceID := shareLink(t, ws, owner, `{"path":"results/report.csv","max_uses":2}`)
	for i := range 2 {
		if code, body := download(t, twice); code != http.StatusOK || !bytes.Equal(body, data) {
			t.Fatalf("use %d: %d, %d bytes", i+1, code, len(body))
		}
	}
	if code, _ := download(t, twice); !dead(code) {
		t.Fatalf("third use of a two-use link = %d", code)
	}
	secret := twice[strings.LastIndex(twice, ".")+1:]
	code, list := call(t, "GET", "/workspaces/"+ws+"/shares", token(t, kcemu.DevUser2), "")
	if raw := mustJSON(t, list); code != http.StatusOK || strings.Contains(raw, secret) || !strings.Contains(raw, `"uses":2`) {
		t.Fatalf("list = %d %s", code, raw)
	}

	// A range of the object, with its type and ETag (one use).
	ranged, _ := shareLink(t, ws, owner, `{"path":"results/report.csv","max_uses":1}`)
	req, _ := http.NewRequest("GET", ranged, nil)
	req.Header.Set("Range", "bytes=0-7")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || string(part) != "id,value" || resp.Header.Get("ETag") == "" ||
		resp.Header.Get("Content-Type") != "text/csv" || resp.Header.Get("Content-Length") != "8" {
		t.Fatalf("range = %d %q %v", resp.StatusCode, part, resp.Header)
	}
	if code, _ := download(t, ranged); !dead(code) {
		t.Fatalf("after its one (ranged) use = %d", code)
	}

	// Until expiry.
	start := time.Now()
	short, _ := shareLink(t, ws, owner, `{"path":"results/report.csv","expires_in":2}`)
	deadWithin(t, "short link", short, data, 5*time.Second)
	if lived := time.Since(start); lived < time.Second {
		t.Fatalf("a 2 s link died after %s", lived)
	}

	// Not after revocation, within 1 s (its creator or a ws_admin revokes).
	revoked, revokedID := shareLink(t, ws, owner, `{"path":"results/report.csv"}`)
	if code, _ := download(t, revoked); code != http.StatusOK {
		t.Fatalf("before revocation: %d", code)
	}
	if code, b := call(t, "DELETE", "/workspaces/"+ws+"/shares/"+revokedID, owner, ""); code != http.StatusNoContent {
		t.Fatalf("revoke = %d %v", code, b)
	}
	t.Logf("revoked link refused after %s", deadWithin(t, "revoked link", revoked, data, time.Second))

	// Concurrent uses of a one-use link: exactly one succeeds.
	once, _ := shareLink(t, ws, owner, `{"path":"results/report.csv","max_uses":1}`)
	var mu sync.Mutex
	var wg sync.WaitGroup
	got := map[int]int{}
	for range 10 {
		wg.Go(func() {
			code, body := download(t, once)
			if code == http.StatusOK && !bytes.Equal(body, data) {
				t.Errorf("the one use got %d bytes", len(body))
			}
			mu.Lock()
			got[code]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if got[http.StatusOK] != 1 || got[http.StatusOK]+got[http.StatusGone] != 10 {
		t.Fatalf("10 concurrent uses of a one-use link: %v", got)
	}

	// Not after the object is deleted.
	putObject(t, s3, ws, "tmp/scratch.csv", data)
	scratch, _ := shareLink(t, ws, owner, `{"path":"tmp/scratch.csv"}`)
	if err := s3.RemoveObject(context.Background(), ws, "tmp/scratch.csv", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if code, _ := download(t, scratch); !dead(code) {
		t.Fatalf("link to a deleted object = %d", code)
	}

	// The trail: created, used up, expired, revoked, with actors, never the secret.
	waitView(t, ws, owner, "share events", func(map[string]any) bool {
		return historyHas(t, ws, owner, "workspace.share.used_up", twiceID) && historyHas(t, ws, owner, "workspace.share.expired") &&
			historyHas(t, ws, owner, "workspace.share.revoked", revokedID, kcemu.DevUser1) &&
			historyHas(t, ws, owner, "workspace.share.created", kcemu.DevUser1)
	})
	if historyHas(t, ws, owner, secret) {
		t.Fatal("a share link's secret is in the audit trail")
	}

	// Not after the workspace is deleted.
	live, _ := shareLink(t, ws, owner, `{"path":"results/report.csv"}`)
	if code, b := call(t, "DELETE", "/workspaces/"+ws+"?purge=true", admin, ""); code != http.StatusAccepted {
		t.Fatalf("delete = %d %v", code, b)
	}
	deadWithin(t, "link of a deleted workspace", live, data, 30*time.Second)
	waitStatus(t, ws, admin, "deleted")
	if code, _ := download(t, live); !dead(code) {
		t.Fatalf("after deletion: %d", code)
	}
}

// TestGuessedShareLinks: 404 for every wrong link, then 429 from an
// address that keeps guessing. It guesses from 127.0.0.2, so the other
// tests' address is not the one blocked.
func TestGuessedShareLinks(t *testing.T) {
	guesser := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext}}
	guess := func(path string) int {
		resp, err := guesser.Get(sys.api + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	for i, path := range []string{"/shares/x", "/shares/ws-nope.0123456789abcdef." + strings.Repeat("A", 43), "/shares/%00%ff"} {
		if code := guess(path); code != http.StatusNotFound {
			t.Fatalf("guess %d = %d", i, code)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code := guess("/shares/guess")
		if code == http.StatusTooManyRequests {
			return
		}
		if code != http.StatusNotFound || time.Now().After(deadline) {
			t.Fatalf("guessing on: %d", code)
		}
	}
}
