package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/Nerzal/gocloak/v13"
	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

func unique(prefix string) string { return fmt.Sprintf("%s-%d", prefix, rand.IntN(1_000_000)) }

// create asks for a workspace as the platform admin and returns its name.
func create(t *testing.T, admin, preferred, owner string) string {
	t.Helper()
	code, body := call(t, "POST", "/workspaces", admin, fmt.Sprintf(`{"preferred_name":%q,"default_owner":%q}`, preferred, owner))
	if code != http.StatusAccepted || body["status"] != "provisioning" {
		t.Fatalf("create %s = %d %v", preferred, code, body)
	}
	return body["name"].(string)
}

func s3For(t *testing.T, creds map[string]any) *minio.Client {
	t.Helper()
	ep := strings.TrimPrefix(creds["endpoint"].(string), "http://")
	c, err := minio.New(ep, &minio.Options{Creds: credentials.NewStaticV4(creds["access"].(string), creds["secret"].(string), ""), Region: creds["region"].(string)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func adminClients() (*madmin.AdminClient, *minio.Client, error) {
	root := credentials.NewStaticV4(sys.mio.RootUser(), sys.mio.RootPassword(), "")
	adm, err := madmin.NewWithOptions(sys.mio.Endpoint(), &madmin.Options{Creds: root})
	if err != nil {
		return nil, nil, err
	}
	s3, err := minio.New(sys.mio.Endpoint(), &minio.Options{Creds: root, Region: sys.mio.Region()})
	return adm, s3, err
}

// TestNotebookFlow is the EOEPCA notebook flow of issue #4.
func TestNotebookFlow(t *testing.T) {
	ctx := context.Background()
	admin := token(t, kcemu.DevAdminUser)
	mine := create(t, admin, unique("notebook"), kcemu.DevUser1)
	other := create(t, admin, unique("other"), kcemu.DevUser2)

	ws, seen := waitStatus(t, mine, admin, "ready")
	if seen[0] != "provisioning" || seen[len(seen)-1] != "ready" || slices.Contains(seen, "failed") {
		t.Fatalf("statuses seen %v, want provisioning ... ready", seen)
	}
	if ws["owner"] != kcemu.DevUser1 {
		t.Fatalf("owner %v", ws["owner"])
	}
	waitStatus(t, other, admin, "ready")

	// The owner's fresh token carries the workspace, as in EOEPCA.
	user1 := token(t, kcemu.DevUser1)
	c := claims(t, user1)
	aud := fmt.Sprint(c["aud"])
	ra, _ := c["resource_access"].(map[string]any)
	roles := fmt.Sprint(ra[mine])
	if !strings.Contains(aud, mine) || !strings.Contains(roles, "ws_admin") {
		t.Fatalf("example-user-1's token: aud %v resource_access %v", c["aud"], c["resource_access"])
	}

	// The member reads the workspace with its credentials.
	code, view := call(t, "GET", "/workspaces/"+mine, user1, "")
	storage, _ := view["storage"].(map[string]any)
	creds, _ := storage["credentials"].(map[string]any)
	if code != http.StatusOK || creds == nil {
		t.Fatalf("member GET = %d %v", code, view)
	}
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_REGION", "bucketname", "access", "secret", "endpoint", "region"} {
		if s, _ := creds[k].(string); s == "" {
			t.Fatalf("credentials lack %s: %v", k, creds)
		}
	}
	if creds["bucketname"] != mine {
		t.Fatalf("bucketname %v, want %s", creds["bucketname"], mine)
	}

	// Upload, list and read with the returned credentials; denied elsewhere.
	s3 := s3For(t, creds)
	payload := []byte("hello from the notebook")
	if _, err := s3.PutObject(ctx, mine, "notes/hello.txt", bytes.NewReader(payload), int64(len(payload)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("upload: %v", err)
	}
	var listed []string
	for obj := range s3.ListObjects(ctx, mine, minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		listed = append(listed, obj.Key)
	}
	if !slices.Equal(listed, []string{"notes/hello.txt"}) {
		t.Fatalf("listed %v", listed)
	}
	obj, err := s3.GetObject(ctx, mine, "notes/hello.txt", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(obj)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("read back %q, %v", got, err)
	}
	_, err = s3.PutObject(ctx, other, "x.txt", bytes.NewReader(payload), int64(len(payload)), minio.PutObjectOptions{})
	var er minio.ErrorResponse
	if !errors.As(err, &er) || er.Code != "AccessDenied" {
		t.Fatalf("upload to another workspace's bucket: %v, want AccessDenied", err)
	}

	// Someone who is not a member is refused.
	if code, body := call(t, "GET", "/workspaces/"+mine, token(t, kcemu.DevUser2), ""); code != http.StatusForbidden {
		t.Fatalf("example-user-2 GET = %d %v, want 403", code, body)
	}

	// Delete without purge keeps the data and says why; with purge nothing is left.
	if code, body := call(t, "DELETE", "/workspaces/"+mine, admin, ""); code != http.StatusAccepted {
		t.Fatalf("delete = %d %v", code, body)
	}
	failed, _ := waitStatus(t, mine, admin, "failed")
	if !strings.Contains(fmt.Sprint(failed["last_error"]), "purge") {
		t.Fatalf("delete without purge: last_error %v, want a word about purge", failed["last_error"])
	}
	if _, err := s3.StatObject(ctx, mine, "notes/hello.txt", minio.StatObjectOptions{}); err != nil {
		t.Fatalf("data lost by a delete without purge: %v", err)
	}
	if code, body := call(t, "DELETE", "/workspaces/"+mine+"?purge=true", admin, ""); code != http.StatusAccepted || body["status"] != "deleting" {
		t.Fatalf("delete with purge = %d %v", code, body)
	}
	waitStatus(t, mine, admin, "deleted")
	assertGone(t, mine)
}

// assertGone checks that no bucket, policy, MinIO user or Keycloak client
// of the workspace is left.
func assertGone(t *testing.T, name string) {
	t.Helper()
	ctx := context.Background()
	adm, root, err := adminClients()
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := root.BucketExists(ctx, name); err != nil || ok {
		t.Errorf("bucket %s exists=%v err=%v", name, ok, err)
	}
	users, err := adm.ListUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if left := usersOf(users, name); len(left) > 0 {
		t.Errorf("MinIO users of %s still exist: %v", name, left)
	}
	policies, err := adm.ListCannedPolicies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{name, name + ".readonly"} {
		if _, ok := policies[p]; ok {
			t.Errorf("policy %s still exists", p)
		}
	}
	if n := keycloakClients(t, name); n != 0 {
		t.Errorf("%d Keycloak clients %s remain", n, name)
	}
}

func keycloakClients(t *testing.T, clientID string) int {
	t.Helper()
	ctx := context.Background()
	gc := gocloak.NewClient(sys.kc.url)
	tok, err := gc.LoginAdmin(ctx, sys.kc.adminUser, sys.kc.adminPassword, "master")
	if err != nil {
		t.Fatal(err)
	}
	clients, err := gc.GetClients(ctx, tok.AccessToken, sys.kc.realm, gocloak.GetClientsParams{ClientID: gocloak.StringP(clientID)})
	if err != nil {
		t.Fatal(err)
	}
	return len(clients)
}

// TestOneMetricsEndpointForEveryRole: the binary's /metrics holds the
// API's and the worker's series together.
func TestOneMetricsEndpointForEveryRole(t *testing.T) {
	admin := token(t, kcemu.DevAdminUser)
	waitStatus(t, create(t, admin, unique("metrics"), kcemu.DevUser1), admin, "ready")
	resp, err := http.Get(sys.api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, series := range []string{"workspace_api_requests_total", `workspace_worker_commands_total{command="create",outcome="done"}`,
		`workspace_worker_step_duration_seconds_count{outcome="done",saga="create",step="credentials"}`, "go_goroutines"} {
		if !strings.Contains(string(body), series) {
			t.Errorf("/metrics lacks %s", series)
		}
	}
}
