package ui

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"
	"github.com/chromedp/chromedp"

	"github.com/eo-workspaces/provisioner/integration/stacktest"
	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

// chromium is Debian's package's binary, which `go tool task test`
// installs where missing (task tools:chromium); $CHROMIUM overrides it.
func chromium(t *testing.T) string {
	t.Helper()
	path := os.Getenv("CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := exec.LookPath(path); err != nil {
		t.Fatalf("no Chromium at %s: run go tool task tools:chromium (apt-get install chromium), or set CHROMIUM", path)
	}
	return path
}

// browser starts a headless Chromium with a profile of its own and
// returns a context for driving one tab of it.
func browser(t *testing.T, width, height int) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.NoFirstRun, chromedp.Flag("disable-sync", true), chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(width, height),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(t.Context(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelRun := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(func() { cancelRun(); cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// run performs browser actions; a failure keeps a screenshot of the page.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		shot(t, ctx, "failed-"+what)
		t.Fatalf("%s: %v\nthe browser shows %s\nprovisioner logs:\n%s", what, err, page(ctx), stacktest.LastLines(sys.logs.String(), 40))
	}
}

// page is where the browser is and what it shows, for a failure's report.
func page(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText.slice(0, 2000)`))
	if err != nil {
		return "(unknown: " + err.Error() + ")"
	}
	return text
}

// shot keeps a screenshot of the whole page as a test artefact.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(sys.shots, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("keep screenshot: %v", err)
	}
	t.Logf("screenshot: %s", path)
}

// signIn opens the page, which sends the browser to Keycloak's login
// form, and signs in there; back on the page, the live feed is open.
func signIn(t *testing.T, ctx context.Context, user string) {
	t.Helper()
	run(t, ctx, "sign in", within(time.Minute,
		chromedp.Navigate(sys.api+"/ui/"),
		chromedp.WaitVisible(chromedp.ID("#username")),
		chromedp.SendKeys(chromedp.ID("#username"), user),
		chromedp.SendKeys(chromedp.ID("#password"), kcemu.DevPassword),
		chromedp.Click(chromedp.ID("#kc-login")),
		chromedp.WaitVisible(chromedp.CSS("#live.on")),
		chromedp.WaitVisible(chromedp.ID("#workspaces")),
	))
}

func adminToken(t *testing.T) string {
	t.Helper()
	tok, err := stacktest.PasswordToken(t.Context(), sys.kc.url, sys.kc.realm, kcemu.DevPublicClientID, kcemu.DevAdminUser, kcemu.DevPassword, "openid")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func createWorkspace(t *testing.T, tok, owner string) string {
	t.Helper()
	preferred := fmt.Sprintf("page-%d", rand.IntN(1_000_000))
	code, body := stacktest.CallAPI(t, "POST", sys.api+"/workspaces", tok, fmt.Sprintf(`{"preferred_name":%q,"default_owner":%q}`, preferred, owner))
	if code != http.StatusAccepted {
		t.Fatalf("create = %d %v", code, body)
	}
	return body["name"].(string)
}

// waitAPIStatus polls the API until the workspace has status want.
func waitAPIStatus(t *testing.T, tok, name, want string) {
	t.Helper()
	stacktest.WaitCond(t, 2*time.Minute, name+" "+want+" in the API", func() bool {
		_, ws := stacktest.CallAPI(t, "GET", sys.api+"/workspaces/"+name, tok, "")
		return ws["status"] == want
	})
}

// within runs actions under a deadline of d.
func within(d time.Duration, actions ...chromedp.Action[chromedp.Void]) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		return chromedp.Steps(actions...)(ctx, t)
	}
}

// TestOperatorPage signs in through the login form, watches a new
// workspace turn ready without a reload, retries a failed one, adds and
// removes a member, and keeps screenshots of each stage, on a laptop's
// screen and a phone's.
func TestOperatorPage(t *testing.T) {
	ctx := browser(t, 1280, 900)
	signIn(t, ctx, kcemu.DevAdminUser)
	tok := adminToken(t)

	// A new workspace appears, then turns ready within a second of the API
	// saying so, with no reload.
	name := createWorkspace(t, tok, kcemu.DevUser1)
	row := fmt.Sprintf(`tr[data-name=%q]`, name)
	run(t, ctx, "new workspace listed", chromedp.WaitVisible(chromedp.CSS(row)))
	waitAPIStatus(t, tok, name, "ready")
	run(t, ctx, "ready within 1s", within(time.Second, chromedp.WaitVisible(chromedp.CSS(row+`[data-status="ready"]`))))
	shot(t, ctx, "01-list-live")

	// A create whose owner does not exist fails; the page shows the step
	// and the reason; once the user exists, Retry brings it to ready.
	ghost := fmt.Sprintf("ghost-%d", rand.IntN(1_000_000))
	failed := createWorkspace(t, tok, ghost)
	frow := fmt.Sprintf(`tr[data-name=%q]`, failed)
	run(t, ctx, "failure shown live", chromedp.WaitVisible(chromedp.CSS(frow+`[data-status="failed"]`)),
		chromedp.Click(chromedp.CSS(frow+" a")),
		chromedp.WaitVisible(chromedp.ID("#ws-failure")), chromedp.WaitVisible(chromedp.ID("#retry")))
	reason, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("ws-failure")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(reason, "owner_role") {
		t.Fatalf("failure shown as %q, want the step owner_role", reason)
	}
	shot(t, ctx, "02-failed")
	addUser(t, ghost)
	run(t, ctx, "retry", chromedp.Click(chromedp.ID("#retry")),
		chromedp.WaitVisible(chromedp.CSS("#ws-status.ready")), chromedp.WaitNotVisible(chromedp.ID("#ws-failure")))
	shot(t, ctx, "03-retried")

	// Members: add example-user-2 as a viewer, then remove them, confirming.
	member := fmt.Sprintf(`//table[@id="members"]//td[text()=%q]`, kcemu.DevUser2)
	run(t, ctx, "add member",
		chromedp.WaitVisible(chromedp.ID("#add-member")),
		chromedp.SendKeys(chromedp.CSS(`#add-member input[name="username"]`), kcemu.DevUser2),
		chromedp.SetValue(chromedp.CSS(`#add-member select[name="role"]`), "ws_viewer"),
		chromedp.Click(chromedp.CSS(`#add-member button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.Search(member)))
	shot(t, ctx, "04-member-added")
	viewport(t, ctx, "operator-page") // the README's picture
	run(t, ctx, "remove member",
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`button[aria-label="Remove %s"]`, kcemu.DevUser2))),
		chromedp.WaitVisible(chromedp.CSS("#confirm[open]")),
		chromedp.Click(chromedp.ID("#confirm-ok")),
		chromedp.WaitNotPresent(chromedp.Search(member)))
	shot(t, ctx, "05-member-removed")

	// The same list on a phone's screen.
	run(t, ctx, "phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
		chromedp.Navigate(sys.api+"/ui/#/"), chromedp.WaitVisible(chromedp.CSS("#live.on")),
		chromedp.WaitVisible(chromedp.CSS(row)))
	shot(t, ctx, "06-phone")

	// Signing out ends the Keycloak session: the page sends the browser
	// back to the login form.
	run(t, ctx, "sign out", chromedp.Click(chromedp.ID("signout")), chromedp.WaitVisible(chromedp.ID("username")))
}

// viewport keeps a screenshot of what the window shows.
func viewport(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(sys.shots, name+".png"), png, 0o644); err != nil {
		t.Fatalf("keep screenshot: %v", err)
	}
}

// addUser creates a user in the package's realm, as an operator fixing
// the cause of a failure would.
func addUser(t *testing.T, username string) {
	t.Helper()
	ctx := t.Context()
	gc := gocloak.NewClient(sys.kc.url)
	adm, err := gc.LoginAdmin(ctx, sys.kc.adminUser, sys.kc.adminPassword, "master")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gc.CreateUser(ctx, adm.AccessToken, sys.kc.realm, gocloak.User{
		Username: gocloak.StringP(username), Enabled: gocloak.BoolP(true)}); err != nil {
		t.Fatalf("create user %s: %v", username, err)
	}
}
