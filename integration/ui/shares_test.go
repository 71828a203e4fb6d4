package ui

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/eo-workspaces/provisioner/integration/stacktest"
	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

// TestOperatorPageShares: a workspace's owner, signed in on the page,
// creates a link to an object, which serves it to anyone, and revokes it,
// confirming; the link is dead at once.
func TestOperatorPageShares(t *testing.T) {
	ctx := browser(t, 1280, 900)
	signIn(t, ctx, kcemu.DevUser1)
	admin := adminToken(t)
	name := createWorkspace(t, admin, kcemu.DevUser1)
	waitAPIStatus(t, admin, name, "ready")
	payload := []byte("shared from the operator page")
	upload(t, name, "out/map.txt", payload)

	run(t, ctx, "create link",
		chromedp.Navigate(sys.api+"/ui/#/ws/"+name),
		chromedp.WaitVisible(chromedp.ID("add-share")),
		chromedp.SendKeys(chromedp.CSS(`#add-share input[name="path"]`), "out/map.txt"),
		chromedp.Click(chromedp.CSS(`#add-share button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("new-share-url")))
	link, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("new-share-url").value`))
	if err != nil || !strings.HasPrefix(link, "http") {
		t.Fatalf("new link %q, %v", link, err)
	}
	if code, body := get(t, link); code != http.StatusOK || !bytes.Equal(body, payload) {
		t.Fatalf("the link answers %d %q", code, body)
	}
	revoke := `button[aria-label="Revoke the link to out/map.txt"]`
	run(t, ctx, "link listed", chromedp.WaitVisible(chromedp.CSS(revoke)))
	shot(t, ctx, "07-share-created")
	run(t, ctx, "revoke link", chromedp.Click(chromedp.CSS(revoke)),
		chromedp.WaitVisible(chromedp.CSS("#confirm[open]")), chromedp.Click(chromedp.ID("confirm-ok")),
		chromedp.WaitNotPresent(chromedp.CSS(revoke)))
	shot(t, ctx, "08-share-revoked")
	stacktest.WaitCond(t, 5*time.Second, "revoked link refused", func() bool {
		code, _ := get(t, link)
		return code == http.StatusNotFound || code == http.StatusGone
	})
}

// upload puts an object into the workspace with its owner's own keys.
func upload(t *testing.T, name, key string, payload []byte) {
	t.Helper()
	tok, err := stacktest.PasswordToken(t.Context(), sys.kc.url, sys.kc.realm, kcemu.DevPublicClientID, kcemu.DevUser1, kcemu.DevPassword, "openid")
	if err != nil {
		t.Fatal(err)
	}
	_, ws := stacktest.CallAPI(t, "GET", sys.api+"/workspaces/"+name, tok, "")
	st, _ := ws["storage"].(map[string]any)
	creds, _ := st["credentials"].(map[string]any)
	if creds == nil {
		t.Fatalf("owner has no credentials: %v", ws)
	}
	c, err := minio.New(strings.TrimPrefix(fmt.Sprint(creds["endpoint"]), "http://"), &minio.Options{
		Creds: credentials.NewStaticV4(fmt.Sprint(creds["access"]), fmt.Sprint(creds["secret"]), ""), Region: fmt.Sprint(creds["region"])})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(t.Context(), name, key, bytes.NewReader(payload), int64(len(payload)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("upload: %v", err)
	}
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}
