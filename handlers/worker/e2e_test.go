package worker_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"
	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas/keycloak"
	"github.com/eo-workspaces/provisioner/sagas/objectstore"
	"github.com/eo-workspaces/provisioner/stack/kcemu"
	"github.com/eo-workspaces/provisioner/stack/minioserver"
)

// TestWorkerAgainstRealMinIOAndTheKeycloakEmulator runs the create and
// delete sagas through the worker with the real adapters.
func TestWorkerAgainstRealMinIOAndTheKeycloakEmulator(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MinIO and the Keycloak emulator")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	mio, err := minioserver.Start(ctx, minioserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mio.Stop() })
	emu, err := kcemu.Start(ctx, kcemu.Config{DevRealm: true, AdminUser: "admin", AdminPassword: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })

	h := newHarness(t)
	idp, err := keycloak.New(keycloak.Config{BaseURL: emu.URL(), Realm: kcemu.DevRealmName,
		ClientID: kcemu.DevWorkerClientID, ClientSecret: kcemu.DevWorkerClientSecret}, h.log)
	if err != nil {
		t.Fatal(err)
	}
	store, err := objectstore.New(objectstore.Config{Endpoint: mio.Endpoint(), AccessKey: mio.RootUser(),
		SecretKey: mio.RootPassword(), Region: mio.Region()})
	if err != nil {
		t.Fatal(err)
	}
	h.identity, h.store = idp, store
	cfg := testConfig("w-e2e")
	cfg.Endpoint, cfg.Region = mio.URL(), mio.Region()
	h.start(cfg)

	const ws = "ws-e2e-notebook"
	sent := time.Now()
	h.send(create(t, ws))
	h.waitFor("ready", func() bool { return h.status(ws) == events.StatusReady })
	t.Logf("create -> ready through the worker: %s", time.Since(sent))

	// Keycloak: the client, its roles, the owner holding ws_admin.
	gc := gocloak.NewClient(emu.URL())
	tok, err := gc.LoginAdmin(ctx, "admin", "admin", "master")
	if err != nil {
		t.Fatal(err)
	}
	clients, err := gc.GetClients(ctx, tok.AccessToken, kcemu.DevRealmName, gocloak.GetClientsParams{ClientID: gocloak.StringP(ws)})
	if err != nil || len(clients) != 1 {
		t.Fatalf("clients %v %v", clients, err)
	}
	users, err := gc.GetUsers(ctx, tok.AccessToken, kcemu.DevRealmName, gocloak.GetUsersParams{Username: gocloak.StringP(owner), Exact: gocloak.BoolP(true)})
	if err != nil || len(users) != 1 {
		t.Fatalf("users %v %v", users, err)
	}
	roles, err := gc.GetClientRolesByUserID(ctx, tok.AccessToken, kcemu.DevRealmName, *clients[0].ID, *users[0].ID)
	if err != nil || len(roles) != 1 || *roles[0].Name != events.RoleAdmin {
		t.Fatalf("owner's client roles %v %v", roles, err)
	}

	// MinIO: the stored credentials work on the bucket and nowhere else.
	creds, err := h.vault.MemberCredentials(ctx, ws, owner)
	if err != nil || creds == nil {
		t.Fatalf("credentials %v %v", creds, err)
	}
	user, err := minio.New(mio.Endpoint(), &minio.Options{Region: mio.Region(), MaxRetries: 1,
		Creds: credentials.NewStaticV4(creds["AWS_ACCESS_KEY_ID"], creds["AWS_SECRET_ACCESS_KEY"], "")})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("hello workspace")
	if _, err := user.PutObject(ctx, ws, "a.txt", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("put with the workspace credentials: %v", err)
	}
	obj, err := user.GetObject(ctx, ws, "a.txt", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(obj); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("read back %q %v", got, err)
	}
	root, _ := minio.New(mio.Endpoint(), &minio.Options{Region: mio.Region(),
		Creds: credentials.NewStaticV4(mio.RootUser(), mio.RootPassword(), "")})
	if err := root.MakeBucket(ctx, "someone-elses", minio.MakeBucketOptions{Region: mio.Region()}); err != nil {
		t.Fatal(err)
	}
	core := minio.Core{Client: user}
	if _, err := core.ListObjectsV2("someone-elses", "", "", "", "", 1); err == nil || !strings.Contains(err.Error(), "Access Denied") {
		t.Fatalf("listing another bucket with the workspace credentials: %v", err)
	}

	// Delete without purge keeps the data; with purge nothing is left.
	h.send(command(t, ws, &events.Delete{}))
	h.waitFor("failed delete", func() bool { return h.status(ws) == events.StatusFailed })
	if ok, _ := root.BucketExists(ctx, ws); !ok {
		t.Fatal("the bucket went without purge")
	}
	h.send(command(t, ws, &events.Delete{Purge: true}))
	h.waitFor("deleted", func() bool { return h.status(ws) == events.StatusDeleted })
	if ok, err := root.BucketExists(ctx, ws); ok || err != nil {
		t.Fatalf("bucket left: %v %v", ok, err)
	}
	adm, err := madmin.NewWithOptions(mio.Endpoint(), &madmin.Options{Creds: credentials.NewStaticV4(mio.RootUser(), mio.RootPassword(), "")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adm.GetUserInfo(ctx, ws); err == nil {
		t.Fatal("minio user left")
	}
	if _, err := adm.InfoCannedPolicyV2(ctx, ws); err == nil {
		t.Fatal("policy left")
	}
	if clients, err := gc.GetClients(ctx, tok.AccessToken, kcemu.DevRealmName, gocloak.GetClientsParams{ClientID: gocloak.StringP(ws)}); err != nil || len(clients) != 0 {
		t.Fatalf("keycloak client left: %v %v", clients, err)
	}

	// A create that fails half-way on someone else's policy, its bucket of
	// ours holding an object: a force delete removes all of ours and
	// touches neither that policy nor a bystander's bucket.
	const half = "ws-e2e-half"
	foreign := []byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::elsewhere/*"]}]}`)
	if err := adm.AddCannedPolicy(ctx, half, foreign); err != nil {
		t.Fatal(err)
	}
	if _, err := root.PutObject(ctx, "someone-elses", "theirs.txt", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	h.send(create(t, half))
	h.waitFor("the half-made create failed", func() bool { return h.status(half) == events.StatusFailed })
	if _, err := root.PutObject(ctx, half, "ours.txt", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("the half-made workspace has no bucket of ours: %v", err)
	}
	h.send(command(t, half, &events.Delete{Purge: true, Force: true}))
	h.waitFor("force-deleted", func() bool { return h.status(half) == events.StatusDeleted })
	if ok, err := root.BucketExists(ctx, half); ok || err != nil {
		t.Fatalf("our bucket left by the force delete: %v %v", ok, err)
	}
	if clients, err := gc.GetClients(ctx, tok.AccessToken, kcemu.DevRealmName, gocloak.GetClientsParams{ClientID: gocloak.StringP(half)}); err != nil || len(clients) != 0 {
		t.Fatalf("our keycloak client left by the force delete: %v %v", clients, err)
	}
	if info, err := adm.InfoCannedPolicyV2(ctx, half); err != nil || !strings.Contains(string(info.Policy), "elsewhere") {
		t.Fatalf("the foreign policy was touched: %v %s", err, info.Policy)
	}
	if _, err := root.StatObject(ctx, "someone-elses", "theirs.txt", minio.StatObjectOptions{}); err != nil {
		t.Fatalf("the bystander's object was touched: %v", err)
	}
}
