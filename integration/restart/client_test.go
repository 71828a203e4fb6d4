package restart

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"
	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/eo-workspaces/provisioner/integration/stacktest"
)

// stack is a running `go tool task dev`, seen only through .dev/stack.env,
// as an outside tool sees it.
type stack struct {
	run *stacktest.Run
	env map[string]string
}

// token gets a password-grant access token through the dev realm's public
// demo client, as a notebook user does.
func (s *stack) token(t *testing.T, user string) string {
	t.Helper()
	tok, err := stacktest.PasswordToken(t.Context(), s.env["KEYCLOAK_URL"], s.env["KEYCLOAK_REALM"], "demo", user, "changeme", "openid")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// call sends a request to the API: path is relative to WORKSPACE_API
// ("" is the collection, "/ws-x" one workspace).
func (s *stack) call(t *testing.T, method, path, tok, body string) (int, map[string]any) {
	t.Helper()
	return stacktest.CallAPI(t, method, s.env["WORKSPACE_API"]+path, tok, body)
}

// create asks for a workspace owned by example-user-1 and returns its name.
func (s *stack) create(t *testing.T, admin, preferred string) string {
	t.Helper()
	code, body := s.call(t, "POST", "", admin, fmt.Sprintf(`{"preferred_name":%q,"default_owner":"example-user-1"}`, preferred))
	if code != http.StatusAccepted || body["status"] != "provisioning" {
		t.Fatalf("POST %s = %d %v", preferred, code, body)
	}
	return body["name"].(string)
}

// status is the workspace's status and current step as GET answers them.
func (s *stack) status(t *testing.T, name, tok string) (status, step string) {
	t.Helper()
	code, ws := s.call(t, "GET", "/"+name, tok, "")
	if code != http.StatusOK {
		return fmt.Sprintf("HTTP %d", code), ""
	}
	status, _ = ws["status"].(string)
	step, _ = ws["step"].(string)
	return status, step
}

// waitReady polls until every workspace is ready; a failed one fails the test.
func (s *stack) waitReady(t *testing.T, tok string, names []string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for _, name := range names {
		for {
			st, _ := s.status(t, name, tok)
			if st == "ready" {
				break
			}
			if st == "failed" {
				_, ws := s.call(t, "GET", "/"+name, tok, "")
				t.Fatalf("%s failed: %v", name, ws)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s is %s, not ready, after %s", name, st, d)
			}
			<-time.After(100 * time.Millisecond) // poll interval, as a client polls
		}
	}
}

// credentials returns the storage credentials GET gives a ready workspace.
func (s *stack) credentials(t *testing.T, name, tok string) map[string]any {
	t.Helper()
	code, ws := s.call(t, "GET", "/"+name, tok, "")
	storage, _ := ws["storage"].(map[string]any)
	creds, _ := storage["credentials"].(map[string]any)
	if code != http.StatusOK || creds == nil {
		t.Fatalf("GET %s = %d %v, want credentials", name, code, ws)
	}
	return creds
}

// s3For is an S3 client with a workspace's credentials.
func s3For(t *testing.T, creds map[string]any) *minio.Client {
	t.Helper()
	str := func(k string) string { v, _ := creds[k].(string); return v }
	c, err := minio.New(strings.TrimPrefix(str("endpoint"), "http://"), &minio.Options{
		Creds: credentials.NewStaticV4(str("access"), str("secret"), ""), Region: str("region")})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// rootS3 is S3 and the MinIO admin API with the root credentials of stack.env.
func (s *stack) rootS3(t *testing.T) (*minio.Client, *madmin.AdminClient) {
	t.Helper()
	host := strings.TrimPrefix(s.env["S3_ENDPOINT"], "http://")
	creds := credentials.NewStaticV4(s.env["MINIO_ROOT_USER"], s.env["MINIO_ROOT_PASSWORD"], "")
	c, err := minio.New(host, &minio.Options{Creds: creds, Region: s.env["S3_REGION"]})
	if err != nil {
		t.Fatal(err)
	}
	adm, err := madmin.NewWithOptions(host, &madmin.Options{Creds: creds})
	if err != nil {
		t.Fatal(err)
	}
	return c, adm
}

// keycloak logs in as the master realm's admin of stack.env.
func (s *stack) keycloak(t *testing.T, ctx context.Context) (*gocloak.GoCloak, string) {
	t.Helper()
	gc := gocloak.NewClient(s.env["KEYCLOAK_URL"])
	tok, err := gc.LoginAdmin(ctx, s.env["KEYCLOAK_ADMIN_USER"], s.env["KEYCLOAK_ADMIN_PASSWORD"], "master")
	if err != nil {
		t.Fatalf("LoginAdmin on master: %v", err)
	}
	return gc, tok.AccessToken
}

// clientsNamed lists the realm's clients whose clientId is name.
func (s *stack) clientsNamed(t *testing.T, ctx context.Context, gc *gocloak.GoCloak, admin, name string) []*gocloak.Client {
	t.Helper()
	cs, err := gc.GetClients(ctx, admin, s.env["KEYCLOAK_REALM"], gocloak.GetClientsParams{ClientID: &name})
	if err != nil {
		t.Fatalf("GetClients %s: %v", name, err)
	}
	return slices.DeleteFunc(cs, func(c *gocloak.Client) bool { return gocloak.PString(c.ClientID) != name })
}

// clientRolesOf lists the roles of client (its uuid) username holds.
func (s *stack) clientRolesOf(t *testing.T, ctx context.Context, gc *gocloak.GoCloak, admin, clientUUID, username string) []string {
	t.Helper()
	realm := s.env["KEYCLOAK_REALM"]
	exact := true
	users, err := gc.GetUsers(ctx, admin, realm, gocloak.GetUsersParams{Username: &username, Exact: &exact})
	if err != nil || len(users) != 1 {
		t.Fatalf("user %s: %d found, err %v", username, len(users), err)
	}
	roles, err := gc.GetClientRolesByUserID(ctx, admin, realm, clientUUID, gocloak.PString(users[0].ID))
	if err != nil {
		t.Fatalf("client roles of %s: %v", username, err)
	}
	var names []string
	for _, r := range roles {
		names = append(names, gocloak.PString(r.Name))
	}
	return names
}
