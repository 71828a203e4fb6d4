// Package restart proves that the local stack keeps its state: `go tool
// task dev` stopped with SIGTERM, or killed outright (every process at
// once, as a power cut would) while workspaces are being provisioned,
// comes back with every workspace, member, token, Keycloak client, bucket
// and credential it had, nothing made twice; and `--fresh` starts from
// nothing. It drives a copy of the repository the way a newcomer does.
package restart

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/eo-workspaces/provisioner/integration/stacktest"
)

const (
	// firstStart bounds the first `go tool task dev` in a new checkout:
	// it compiles the project and links four binaries first, then the real
	// Keycloak starts (up to 2.5 minutes on a busy two-core machine; about
	// a minute on a restart, as start-dev re-augments the server each time).
	firstStart = 6 * time.Minute
	restart    = 4 * time.Minute
	member     = "example-user-2"
	owner      = "example-user-1"
)

func TestRestartKeepsEverything(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	root, cleanup, err := stacktest.MakeCheckout(ctx, "restart-checkout-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)

	// 1. Five workspaces and a member, then a clean stop.
	s := startDev(t, root, firstStart)
	admin := s.token(t, "example-admin")
	var five []string
	for i := range 5 {
		five = append(five, s.create(t, admin, "keep-"+strconv.Itoa(i+1)))
	}
	begin := time.Now()
	s.waitReady(t, admin, five, 2*time.Minute)
	t.Logf("5 workspaces ready in %s", since(begin))
	shared := five[0]
	addMember(t, s, admin, shared)
	memberToken := s.token(t, member) // taken before the restart, used after it
	before := map[string]string{}
	for _, name := range five {
		key := "before-restart.txt"
		putGet(t, ctx, s3For(t, s.credentials(t, name, s.token(t, owner))), name, key, "kept "+name)
		before[name] = key
	}
	stop(t, s)

	// 2. The same data, started again: everything is still there and works.
	s = startDev(t, root, restart)
	admin = s.token(t, "example-admin")
	checkKept(t, ctx, s, admin, five, shared, memberToken, before)

	// 3. Ten creations in flight, then every process killed at once.
	var ten []string
	for i := range 10 {
		ten = append(ten, s.create(t, admin, "inflight-"+strconv.Itoa(i+1)))
	}
	killMidSaga(t, s, admin, ten)

	s = startDev(t, root, restart)
	admin = s.token(t, "example-admin")
	begin = time.Now()
	s.waitReady(t, admin, ten, 3*time.Minute)
	t.Logf("after the power cut, all 10 ready %s after the restart's stack.env", since(begin))
	exactlyOne(t, ctx, s, append(slices.Clone(five), ten...))
	for _, name := range ten {
		putGet(t, ctx, s3For(t, s.credentials(t, name, s.token(t, owner))), name, "after-kill.txt", name)
	}
	stop(t, s)

	// 4. --fresh starts from nothing.
	begin = time.Now()
	fresh := stacktest.StartTask(t, root, nil, "dev", "--", "--fresh")
	s = &stack{run: fresh, env: fresh.WaitStackEnv(t, root, firstStart)} // a new Keycloak database: a first start
	t.Logf("go tool task dev -- --fresh: stack.env after %s", since(begin))
	admin = s.token(t, "example-admin")
	code, list := s.call(t, "GET", "", admin, "")
	if items, _ := list["items"].([]any); code != http.StatusOK || len(items) != 0 {
		t.Errorf("after --fresh GET /workspaces = %d %v, want no workspaces", code, list)
	}
	root3, _ := s.rootS3(t)
	if buckets, err := root3.ListBuckets(ctx); err != nil || len(buckets) != 0 {
		t.Errorf("after --fresh MinIO holds buckets %v (err %v), want none", buckets, err)
	}
	gc, kcAdmin := s.keycloak(t, ctx)
	if cs := s.clientsNamed(t, ctx, gc, kcAdmin, five[0]); len(cs) != 0 {
		t.Errorf("after --fresh Keycloak still has client %s", five[0])
	}
	stop(t, s)

	// 5. The emulator's contract suite against a blank `go tool task keycloak`.
	contractSuite(t, ctx, root)
}

func since(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }

// startDev runs `go tool task dev` in root and waits for its stack.env.
func startDev(t *testing.T, root string, d time.Duration) *stack {
	t.Helper()
	begin := time.Now()
	run := stacktest.StartTask(t, root, nil, "dev")
	env := run.WaitStackEnv(t, root, d)
	t.Logf("go tool task dev: stack.env after %s", since(begin))
	return &stack{run: run, env: env}
}

// stop sends one SIGTERM to the go process, as `kill <pid>` does, and
// waits for every process of the run to end.
func stop(t *testing.T, s *stack) {
	t.Helper()
	begin := time.Now()
	s.run.Record()
	if err := syscall.Kill(s.run.Pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := s.run.ExitCode(t, time.Minute); code != 0 {
		t.Fatalf("go tool task %s exited %d after SIGTERM, want 0:\n%s", s.run.Name, code, stacktest.LastLines(s.run.Out.String(), 30))
	}
	s.run.WaitGone(t, 30*time.Second)
	t.Logf("SIGTERM: go tool task %s stopped in %s", s.run.Name, since(begin))
}

// addMember makes example-user-2 a ws_access member of name and waits until
// GET lists it.
func addMember(t *testing.T, s *stack, admin, name string) {
	t.Helper()
	begin := time.Now()
	code, body := s.call(t, "POST", "/"+name+"/members", admin, fmt.Sprintf(`{"username":%q,"role":"ws_access"}`, member))
	if code != http.StatusAccepted {
		t.Fatalf("add member = %d %v", code, body)
	}
	stacktest.WaitCond(t, time.Minute, member+" listed as a member of "+name, func() bool {
		_, ws := s.call(t, "GET", "/"+name, admin, "")
		return hasMember(ws, member, "ws_access")
	})
	t.Logf("member added and listed in %s", since(begin))
}

func hasMember(ws map[string]any, user, role string) bool {
	members, _ := ws["members"].([]any)
	for _, m := range members {
		mm, _ := m.(map[string]any)
		if mm["username"] == user && mm["role"] == role {
			return true
		}
	}
	return false
}

// checkKept proves the restart lost nothing: statuses (projection), the
// member's old token (signing keys, membership), Keycloak clients and role
// mappings, buckets, their objects and credentials.
func checkKept(t *testing.T, ctx context.Context, s *stack, admin string, names []string, shared, memberToken string, objects map[string]string) {
	t.Helper()
	for _, name := range names {
		if st, _ := s.status(t, name, admin); st != "ready" {
			t.Errorf("after restart %s is %q, want ready", name, st)
		}
	}
	code, ws := s.call(t, "GET", "/"+shared, memberToken, "")
	if code != http.StatusOK || !hasMember(ws, member, "ws_access") {
		t.Errorf("after restart the member's token from before it: GET %s = %d %v, want 200 listing the member", shared, code, ws)
	}
	gc, kcAdmin := s.keycloak(t, ctx)
	for _, name := range names {
		cs := s.clientsNamed(t, ctx, gc, kcAdmin, name)
		if len(cs) != 1 {
			t.Errorf("after restart %d Keycloak clients %s, want 1", len(cs), name)
			continue
		}
		id := *cs[0].ID
		if roles := s.clientRolesOf(t, ctx, gc, kcAdmin, id, owner); !slices.Contains(roles, "ws_admin") {
			t.Errorf("after restart %s holds %v of %s, want ws_admin", owner, roles, name)
		}
		if name == shared {
			if roles := s.clientRolesOf(t, ctx, gc, kcAdmin, id, member); !slices.Contains(roles, "ws_access") {
				t.Errorf("after restart %s holds %v of %s, want ws_access", member, roles, name)
			}
		}
		c := s3For(t, s.credentials(t, name, s.token(t, owner)))
		if got := get(t, ctx, c, name, objects[name]); got != "kept "+name {
			t.Errorf("after restart %s/%s reads %q", name, objects[name], got)
		}
		putGet(t, ctx, c, name, "after-restart.txt", "new "+name)
	}
}

// killMidSaga waits until some of names are part-way through their saga,
// best in its MinIO steps (the Keycloak ones done: the bucket, whose create
// and tag are two requests, next or under way), and cuts the power.
func killMidSaga(t *testing.T, s *stack, admin string, names []string) {
	t.Helper()
	var snapshot []string
	stacktest.WaitCond(t, time.Minute, "a workspace mid-saga", func() bool {
		snapshot = snapshot[:0]
		mid, deep, pending := 0, 0, 0
		for _, name := range names {
			st, step := s.status(t, name, admin) // step: the last one completed
			snapshot = append(snapshot, name+"="+st+"@"+step)
			if st != "ready" {
				pending++
				if step != "" {
					mid++
				}
				if step == "owner_role" || step == "bucket" || step == "policy" {
					deep++
				}
			}
		}
		// Once everything is ready it is too late; fail rather than pass vacuously.
		return deep > 0 || (mid > 0 && pending <= 3) || pending == 0
	})
	procs := s.run.PowerCut(t)
	t.Logf("SIGKILL to all %d processes with %s", len(procs), strings.Join(snapshot, " "))
	if !slices.ContainsFunc(snapshot, func(s string) bool { return !strings.Contains(s, "=ready@") }) {
		t.Fatal("every workspace was ready before the kill; nothing was in flight")
	}
}

// exactlyOne checks that each workspace has one Keycloak client, bucket,
// policy and MinIO user, and that nothing else of ours exists.
func exactlyOne(t *testing.T, ctx context.Context, s *stack, names []string) {
	t.Helper()
	gc, kcAdmin := s.keycloak(t, ctx)
	for _, name := range names {
		if cs := s.clientsNamed(t, ctx, gc, kcAdmin, name); len(cs) != 1 {
			t.Errorf("%d Keycloak clients %s, want 1", len(cs), name)
		}
	}
	c, adm := s.rootS3(t)
	buckets, err := c.ListBuckets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	policies, err := adm.ListCannedPolicies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	users, err := adm.ListUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var bucketNames, policyNames, readOnlyNames []string
	for _, b := range buckets {
		bucketNames = append(bucketNames, b.Name)
	}
	for p := range policies {
		switch {
		case strings.HasSuffix(p, ".readonly"):
			readOnlyNames = append(readOnlyNames, strings.TrimSuffix(p, ".readonly"))
		case strings.HasPrefix(p, "ws-"):
			policyNames = append(policyNames, p)
		}
	}
	want := slices.Sorted(slices.Values(names))
	for what, got := range map[string][]string{"buckets": bucketNames, "ws-* policies": policyNames, "read-only policies": readOnlyNames} {
		if slices.Sort(got); !slices.Equal(got, want) {
			t.Errorf("MinIO %s %v, want exactly %v", what, got, want)
		}
	}
	// One user per member, each bound to its workspace's policy.
	perWorkspace := map[string]int{}
	for u, info := range users {
		ws := strings.TrimSuffix(info.PolicyName, ".readonly")
		if !slices.Contains(names, ws) {
			t.Errorf("MinIO user %s holds policy %q, of no workspace", u, info.PolicyName)
		}
		perWorkspace[ws]++
	}
	admin := s.token(t, "example-admin")
	for _, name := range names {
		_, ws := s.call(t, "GET", "/"+name, admin, "")
		if members, _ := ws["members"].([]any); perWorkspace[name] != len(members) {
			t.Errorf("%s: %d MinIO users for %d members", name, perWorkspace[name], len(members))
		}
	}
}

func putGet(t *testing.T, ctx context.Context, c *minio.Client, bucket, key, body string) {
	t.Helper()
	if _, err := c.PutObject(ctx, bucket, key, strings.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("put %s/%s with the workspace's credentials: %v", bucket, key, err)
	}
	if got := get(t, ctx, c, bucket, key); got != body {
		t.Fatalf("get %s/%s = %q, want %q", bucket, key, got, body)
	}
}

func get(t *testing.T, ctx context.Context, c *minio.Client, bucket, key string) string {
	t.Helper()
	o, err := c.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	if err != nil {
		t.Fatalf("read %s/%s with the workspace's credentials: %v", bucket, key, err)
	}
	return string(b)
}

// contractSuite runs integration/kccontract, as a suite written for a
// real Keycloak, against `go tool task keycloak` started blank in the
// checkout whose .dev/data holds the dev stack's emulator state.
func contractSuite(t *testing.T, ctx context.Context, root string) {
	t.Helper()
	port := stacktest.FreePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	kc := stacktest.StartTask(t, root, []string{"KC_BOOTSTRAP_ADMIN_USERNAME=admin", "KC_BOOTSTRAP_ADMIN_PASSWORD=admin-pw"},
		"keycloak", "--", "--http-host", "127.0.0.1", "--http-port", strconv.Itoa(port))
	kc.Poll(t, restart, "the emulator's master discovery document", func() bool {
		return stacktest.HTTPStatus(base+"/realms/master/.well-known/openid-configuration") == http.StatusOK
	})
	kc.Record()
	if code := stacktest.HTTPStatus(base + "/realms/eoepca/.well-known/openid-configuration"); code != http.StatusNotFound {
		t.Fatalf("the emulator alone knows the dev realm (%d): not blank", code)
	}
	begin := time.Now()
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "./integration/kccontract/")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "KEYCLOAK_URL="+base, "KEYCLOAK_ADMIN_USER=admin", "KEYCLOAK_ADMIN_PASSWORD=admin-pw")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("kccontract against a blank go tool task keycloak: %v\n%s", err, stacktest.LastLines(out.String(), 40))
	}
	t.Logf("kccontract against a blank go tool task keycloak passed in %s: %s", since(begin), strings.TrimSpace(out.String()))
	stop(t, &stack{run: kc})
}
