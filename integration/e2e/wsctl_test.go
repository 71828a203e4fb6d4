package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eo-workspaces/provisioner/integration/stacktest"
	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

// wsctlBin is the wsctl binary, built once for the package's tests.
var wsctlBin = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "wsctl")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "wsctl")
	out, err := exec.Command("go", "build", "-race", "-o", bin, "github.com/eo-workspaces/provisioner/cmd/wsctl").CombinedOutput()
	if err != nil {
		return "", errors.New("build wsctl: " + err.Error() + "\n" + string(out))
	}
	return bin, nil
})

// wsctlResult is what one run of wsctl did.
type wsctlResult struct {
	code        int
	stdout, err string
}

// Where the stack's Keycloak is, in one place for the tests of wsctl.
func kcURL() string             { return sys.kc.url }
func kcRealm() string           { return sys.kc.realm }
func kcAdmin() (string, string) { return sys.kc.adminUser, sys.kc.adminPassword }

// wsctlEnv signs wsctl in to the test stack as user, by the password grant.
func wsctlEnv(user string) []string {
	return []string{"WSCTL_API=" + sys.api, "WSCTL_KEYCLOAK_URL=" + kcURL(), "WSCTL_REALM=" + kcRealm(),
		"WSCTL_CLIENT_ID=" + kcemu.DevPublicClientID, "WSCTL_USER=" + user, "WSCTL_PASSWORD=" + kcemu.DevPassword,
		"WSCTL_NATS_URL=" + sys.nats}
}

// runWsctl runs wsctl in dir ("" : a temporary one, far from any
// .dev/stack.env) with env and nothing else of the test's WSCTL_ variables.
func runWsctl(t *testing.T, dir string, env []string, args ...string) wsctlResult {
	t.Helper()
	bin, err := wsctlBin()
	if err != nil {
		t.Fatal(err)
	}
	if dir == "" {
		dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(withoutWsctl(os.Environ()), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	res := wsctlResult{stdout: out.String(), err: errb.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		res.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("wsctl %v: %v", args, err)
	}
	return res
}

func withoutWsctl(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "WSCTL_") {
			out = append(out, kv)
		}
	}
	return out
}

// wsctl runs wsctl as the platform admin and wants exit code want.
func wsctl(t *testing.T, want int, args ...string) wsctlResult {
	t.Helper()
	res := runWsctl(t, "", wsctlEnv(kcemu.DevAdminUser), args...)
	if res.code != want {
		t.Fatalf("wsctl %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), res.code, want, res.stdout, res.err)
	}
	return res
}

func decodeJSON[T any](t *testing.T, res wsctlResult) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(res.stdout), &v); err != nil {
		t.Fatalf("not JSON (%v):\n%s", err, res.stdout)
	}
	return v
}

// jsonLines decodes each line of JSON Lines output.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not a JSON line (%v): %s", err, sc.Text())
		}
		lines = append(lines, m)
	}
	return lines
}

// eventType is the CloudEvent type of an audit line.
func eventType(line map[string]any) string {
	ev, _ := line["event"].(map[string]any)
	s, _ := ev["type"].(string)
	return s
}

func mustContain(t *testing.T, what, out string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(out, p) {
			t.Fatalf("%s lacks %q:\n%s", what, p, out)
		}
	}
}

// TestWsctlWorkspaceLifecycle drives a workspace's whole life through
// wsctl: create --wait with its steps, get with and without secrets,
// list, members, credentials, events, delete --wait.
func TestWsctlWorkspaceLifecycle(t *testing.T) {
	preferred := unique("cli")
	res := wsctl(t, 0, "create", preferred, "--owner", kcemu.DevUser1, "--wait")
	name := "ws-" + preferred
	// Not a terminal: one plain line per step, then the outcome.
	mustContain(t, "create --wait", res.stdout, "step keycloak_client done", "step bucket done", "step credentials done", name+" is ready")

	got := wsctl(t, 0, "get", name)
	mustContain(t, "get", got.stdout, "ready", kcemu.DevUser1+" ws_admin")
	// The admin is no member: no credentials at all; a member's are hidden.
	member := runWsctl(t, "", wsctlEnv(kcemu.DevUser1), "get", name, "-o", "json")
	ws := decodeJSON[map[string]any](t, member)
	creds := ws["storage"].(map[string]any)["credentials"].(map[string]any)
	if creds["AWS_SECRET_ACCESS_KEY"] != "(hidden: --show-secrets)" || creds["bucketname"] != name {
		t.Fatalf("member get without --show-secrets: %v", creds)
	}
	shown := decodeJSON[map[string]any](t, runWsctl(t, "", wsctlEnv(kcemu.DevUser1), "get", name, "-o", "json", "--show-secrets"))
	secret := shown["storage"].(map[string]any)["credentials"].(map[string]any)["AWS_SECRET_ACCESS_KEY"].(string)
	if secret == "" || strings.Contains(secret, "hidden") {
		t.Fatalf("--show-secrets shows %q", secret)
	}

	list := decodeJSON[[]map[string]any](t, wsctl(t, 0, "list", "--owner", kcemu.DevUser1, "-o", "json"))
	if !slicesHasName(list, name) {
		t.Fatalf("list -o json lacks %s: %v", name, list)
	}
	mustContain(t, "list", wsctl(t, 0, "list", "--status", "ready").stdout, "NAME", "STATUS", "OWNER", "MEMBERS", "AGE", name)

	wsctl(t, 0, "members", "add", name, kcemu.DevUser2, "--role", "ws_viewer", "--wait")
	mustContain(t, "members list", wsctl(t, 0, "members", "list", name).stdout, kcemu.DevUser2, "ws_viewer", "user")
	wsctl(t, 0, "members", "remove", name, kcemu.DevUser2, "--wait")
	if strings.Contains(wsctl(t, 0, "members", "list", name).stdout, kcemu.DevUser2) {
		t.Fatal("removed member still listed")
	}

	sts := decodeJSON[map[string]map[string]string](t, runWsctl(t, "", wsctlEnv(kcemu.DevUser1), "credentials", "sts", name, "--prefix", "out/", "--duration", "15m", "-o", "json"))
	if sts["credentials"]["AWS_SESSION_TOKEN"] == "" || sts["credentials"]["prefix"] != "out/" {
		t.Fatalf("credentials sts: %v", sts)
	}
	rot := runWsctl(t, "", wsctlEnv(kcemu.DevUser1), "credentials", "rotate", name, "--grace", "0s")
	if rot.code != 0 || !strings.Contains(rot.stdout, "rotation of "+name+" accepted") {
		t.Fatalf("credentials rotate: %d %s %s", rot.code, rot.stdout, rot.err)
	}

	events := wsctl(t, 0, "events", name)
	mustContain(t, "events", events.stdout, "workspace.create", kcemu.DevAdminUser, "workspace.step.completed", "workspace.member.removed", "workspace.credentials.session.issued")

	del := wsctl(t, 0, "delete", name, "--wait")
	mustContain(t, "delete --wait", del.stdout, "step release_name done", name+" is deleted")
}

func slicesHasName(list []map[string]any, name string) bool {
	for _, ws := range list {
		if ws["name"] == name {
			return true
		}
	}
	return false
}

// TestWsctlFailureAndRetry: creates whose owner does not exist fail;
// --wait exits 1 naming the step and the reason; once the user exists,
// retry NAME --wait resumes one to ready, and retry --all-failed the other.
func TestWsctlFailureAndRetry(t *testing.T) {
	ghost := unique("ghost")
	preferred := unique("cli-fail")
	name, other := "ws-"+preferred, "ws-"+preferred+"-b"
	res := wsctl(t, 1, "create", preferred, "--owner", ghost, "--wait")
	mustContain(t, "failed create --wait", res.stdout+res.err, name+" failed at step owner_role", ghost, "wsctl retry "+name)
	wsctl(t, 1, "create", preferred+"-b", "--owner", ghost, "--wait")

	dry := wsctl(t, 0, "retry", "--all-failed", "--dry-run")
	mustContain(t, "retry --all-failed --dry-run", dry.stdout, name, other, "owner_role", "would retry")
	if got := wsctl(t, 0, "get", name, "-o", "json").stdout; !strings.Contains(got, `"status": "failed"`) {
		t.Fatalf("a dry run retried: %s", got)
	}

	addUser(t, ghost)
	again := wsctl(t, 0, "retry", name, "--wait")
	mustContain(t, "retry --wait", again.stdout, "step owner_role done", name+" is ready")
	mustContain(t, "get after retry", wsctl(t, 0, "get", name).stdout, ghost+" ws_admin")

	all := decodeJSON[[]map[string]any](t, wsctl(t, 0, "retry", "--all-failed", "-o", "json"))
	retried := false
	for _, r := range all {
		retried = retried || (r["name"] == other && r["retried"] == true)
	}
	if !retried {
		t.Fatalf("retry --all-failed did not retry %s: %v", other, all)
	}
	waitStatus(t, other, token(t, kcemu.DevAdminUser), "ready")

	// Bad usage exits 2, whatever the stack.
	wsctl(t, 2, "retry")
	wsctl(t, 2, "retry", name, "--all-failed")
	wsctl(t, 2, "create", "x")
	wsctl(t, 2, "list", "-o", "yaml")
	wsctl(t, 2, "members", "frobnicate")
	// A refused operation exits 1: nothing failed, nothing to retry.
	wsctl(t, 1, "retry", name)
}

// addUser creates a user in the dev realm, as an operator fixing the
// cause of a failure would.
func addUser(t *testing.T, username string) {
	t.Helper()
	ctx := t.Context()
	gc := gocloak.NewClient(kcURL())
	adminUser, adminPassword := kcAdmin()
	adm, err := gc.LoginAdmin(ctx, adminUser, adminPassword, "master")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gc.CreateUser(ctx, adm.AccessToken, kcRealm(), gocloak.User{
		Username: gocloak.StringP(username), Enabled: gocloak.BoolP(true)}); err != nil {
		t.Fatalf("create user %s: %v", username, err)
	}
}

// TestWsctlAuditAndPublish: publish checks a command against its schema
// before it reaches NATS; audit tail and export read the trail there.
func TestWsctlAuditAndPublish(t *testing.T) {
	preferred := unique("cli-audit")
	name := "ws-" + preferred
	start := time.Now().Add(-time.Second).UTC().Format(time.RFC3339)
	wsctl(t, 0, "create", preferred, "--owner", kcemu.DevUser1, "--wait")

	// Broken data is refused with the field named, and nothing is published.
	bad := wsctl(t, 1, "publish", "--type", "workspace.member.add", "--workspace", name, "--data", `{"username":"example-user-2","role":"superuser"}`)
	mustContain(t, "publish of a broken command", bad.err, "not published", "data.role")
	wsctl(t, 2, "publish", "--type", "workspace.status.changed", "--workspace", name)
	wsctl(t, 2, "publish", "--type", "workspace.member.add")

	pub := wsctl(t, 0, "publish", "--type", "workspace.member.add", "--workspace", name, "--actor", "ops-bot",
		"--data", `{"username":"example-user-2","role":"ws_viewer"}`, "-o", "json")
	if p := decodeJSON[map[string]any](t, pub); p["stream"] != "WORKSPACE_COMMANDS" {
		t.Fatalf("publish: %v", p)
	}
	waitMember(t, name, token(t, kcemu.DevAdminUser), kcemu.DevUser2, "ws_viewer")

	// tail from the start of the test, filtered by actor: the published command.
	tail := wsctl(t, 0, "audit", "tail", "--workspace", name, "--since", start, "--actor", "ops-bot", "--type", "workspace.member.add", "--count", "1", "-o", "jsonl")
	if lines := jsonLines(t, tail.stdout); len(lines) != 1 || eventType(lines[0]) != "workspace.member.add" {
		t.Fatalf("audit tail: %v", lines)
	}
	// A live tail sees what happens after it starts.
	live := make(chan wsctlResult, 1)
	go func() {
		live <- runWsctl(t, "", wsctlEnv(kcemu.DevAdminUser), "audit", "tail", "--workspace", name, "--type", "workspace.member.removed", "--count", "1", "-o", "jsonl")
	}()
	waitTailing(t, name)
	wsctl(t, 0, "members", "remove", name, kcemu.DevUser2)
	select {
	case r := <-live:
		if lines := jsonLines(t, r.stdout); r.code != 0 || len(lines) != 1 {
			t.Fatalf("live audit tail: exit %d %v %s", r.code, lines, r.err)
		}
	case <-time.After(time.Minute):
		t.Fatal("live audit tail saw no member removal within a minute")
	}

	export := wsctl(t, 0, "audit", "export", "--since", start, "--workspace", name)
	lines := jsonLines(t, export.stdout)
	var types []string
	for i, l := range lines {
		types = append(types, eventType(l))
		if i > 0 && l["time"].(string) < lines[i-1]["time"].(string) {
			t.Fatalf("export out of order at line %d", i)
		}
	}
	mustContain(t, "audit export", strings.Join(types, " "), "workspace.create", "workspace.status.changed", "workspace.member.add", "workspace.member.removed")
	if until := wsctl(t, 0, "audit", "export", "--since", start, "--until", start, "--workspace", name); until.stdout != "" {
		t.Fatalf("export of an empty period: %s", until.stdout)
	}
}

// waitTailing waits until a consumer follows the workspace's events: the
// live tail is listening.
func waitTailing(t *testing.T, name string) {
	t.Helper()
	nc, err := nats.Connect(sys.nats)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stacktest.WaitCond(t, 30*time.Second, "audit tail consumer", func() bool {
		stream, err := js.Stream(t.Context(), "WORKSPACE_EVENTS")
		if err != nil {
			return false
		}
		consumers := stream.ListConsumers(t.Context())
		for info := range consumers.Info() {
			if slices.Contains(info.Config.FilterSubjects, "workspace.evt."+name+".>") || info.Config.FilterSubject == "workspace.evt."+name+".>" {
				return true
			}
		}
		return false
	})
}

// TestWsctlSignIn: with nothing given wsctl finds .dev/stack.env above
// the current directory and signs in as the dev admin; a token given
// with --token is sent as is; a wrong password says what to check.
func TestWsctlSignIn(t *testing.T) {
	root := t.TempDir()
	deep := filepath.Join(root, "a", "b")
	if err := os.MkdirAll(filepath.Join(root, ".dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	env := "WORKSPACE_API='" + sys.api + "/workspaces'\nKEYCLOAK_URL='" + kcURL() + "'\nKEYCLOAK_REALM='" + kcRealm() + "'\nNATS_URL='" + sys.nats + "'\n"
	if err := os.WriteFile(filepath.Join(root, ".dev", "stack.env"), []byte(env), 0o644); err != nil {
		t.Fatal(err)
	}
	if res := runWsctl(t, deep, nil, "list", "-o", "json"); res.code != 0 || !strings.HasPrefix(res.stdout, "[") {
		t.Fatalf("wsctl list from the dev stack's env: %d %s %s", res.code, res.stdout, res.err)
	}
	if res := runWsctl(t, deep, nil, "audit", "export", "--since", "1h"); res.code != 0 {
		t.Fatalf("audit export from the dev stack's env: %d %s", res.code, res.err)
	}

	tok := token(t, kcemu.DevAdminUser)
	if res := runWsctl(t, "", []string{"WSCTL_API=" + sys.api}, "--token", tok, "list"); res.code != 0 {
		t.Fatalf("--token: %d %s", res.code, res.err)
	}
	if res := runWsctl(t, "", []string{"WSCTL_API=" + sys.api, "WSCTL_TOKEN=" + tok}, "list"); res.code != 0 {
		t.Fatalf("WSCTL_TOKEN: %d %s", res.code, res.err)
	}
	bad := runWsctl(t, "", append(wsctlEnv(kcemu.DevAdminUser), "WSCTL_PASSWORD=wrong"), "list")
	if bad.code != 1 || !strings.Contains(bad.err, "sign in refused") {
		t.Fatalf("wrong password: %d %s", bad.code, bad.err)
	}
	// No terminal and no WSCTL_PASSWORD: bad usage, not a hang.
	noPass := runWsctl(t, "", []string{"WSCTL_API=" + sys.api, "WSCTL_KEYCLOAK_URL=" + kcURL(), "WSCTL_REALM=" + kcRealm(), "WSCTL_USER=" + kcemu.DevUser1}, "list")
	if noPass.code != 2 || !strings.Contains(noPass.err, "WSCTL_PASSWORD") {
		t.Fatalf("no password: %d %s", noPass.code, noPass.err)
	}
}
