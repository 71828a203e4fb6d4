package minioserver_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/eo-workspaces/provisioner/stack/minioserver"
)

// srv is the package's shared server (see the package doc).
var srv *minioserver.Server

func TestMain(m *testing.M) {
	if os.Getenv("MINIOSERVER_ORPHAN_HELPER") == "1" {
		orphanHelper()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	begin := time.Now()
	s, err := minioserver.Start(ctx, minioserver.Options{})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "shared minio:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "shared minio ready on %s in %s\n", s.Endpoint(), time.Since(begin).Round(time.Millisecond))
	srv = s
	code := m.Run()
	if err := s.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop shared minio:", err)
		code = 1
	}
	os.Exit(code)
}

func ctxFor(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func s3Client(t *testing.T, s *minioserver.Server) *minio.Client {
	t.Helper()
	c, err := minio.New(s.Endpoint(), &minio.Options{
		Creds:  credentials.NewStaticV4(s.RootUser(), s.RootPassword(), ""),
		Region: s.Region(),
	})
	if err != nil {
		t.Fatalf("minio client: %v", err)
	}
	return c
}

func TestHealthEndpointsAnswer200(t *testing.T) {
	for _, path := range []string{"/minio/health/live", "/minio/health/ready", "/minio/health/cluster"} {
		resp, err := http.Get(srv.URL() + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", path, resp.StatusCode)
		}
	}
	if !strings.HasPrefix(srv.Endpoint(), "127.0.0.1:") || srv.URL() != "http://"+srv.Endpoint() {
		t.Errorf("endpoint %q, url %q: want loopback host:port and its http URL", srv.Endpoint(), srv.URL())
	}
}

func TestBucketPutGetObject(t *testing.T) {
	ctx := ctxFor(t)
	c := s3Client(t, srv)
	const bucket = "put-get"
	if err := c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: srv.Region()}); err != nil {
		t.Fatalf("make bucket: %v", err)
	}
	t.Cleanup(func() {
		_ = c.RemoveObject(context.Background(), bucket, "hello.txt", minio.RemoveObjectOptions{})
		_ = c.RemoveBucket(context.Background(), bucket)
	})
	body := []byte("hello, workspace")
	if _, err := c.PutObject(ctx, bucket, "hello.txt", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{ContentType: "text/plain"}); err != nil {
		t.Fatalf("put object: %v", err)
	}
	obj, err := c.GetObject(ctx, bucket, "hello.txt", minio.GetObjectOptions{})
	if err != nil {
		t.Fatalf("get object: %v", err)
	}
	defer obj.Close()
	got, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("read object: %v", err)
	}
	if !bytes.Equal(got, body) {
		t.Errorf("object = %q, want %q", got, body)
	}
	loc, err := c.GetBucketLocation(ctx, bucket)
	if err != nil {
		t.Fatalf("bucket location: %v", err)
	}
	if loc != srv.Region() {
		t.Errorf("bucket location %q, want %q", loc, srv.Region())
	}
}

func TestWrongCredentialsRefused(t *testing.T) {
	c, err := minio.New(srv.Endpoint(), &minio.Options{Creds: credentials.NewStaticV4(srv.RootUser(), "not-the-password", "")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ListBuckets(ctxFor(t))
	var resp minio.ErrorResponse
	if !errors.As(err, &resp) || resp.Code != "SignatureDoesNotMatch" {
		t.Fatalf("list buckets with a wrong secret: err = %v, want SignatureDoesNotMatch", err)
	}
}

func TestAdminServerInfoWithRootCredentials(t *testing.T) {
	adm, err := madmin.NewWithOptions(srv.Endpoint(), &madmin.Options{
		Creds: credentials.NewStaticV4(srv.RootUser(), srv.RootPassword(), ""),
	})
	if err != nil {
		t.Fatalf("madmin client: %v", err)
	}
	info, err := adm.ServerInfo(ctxFor(t))
	if err != nil {
		t.Fatalf("server info: %v", err)
	}
	if info.Mode != "online" || len(info.Servers) != 1 || info.Servers[0].State != "online" {
		t.Errorf("server info mode %q servers %+v, want one online server", info.Mode, info.Servers)
	}
	// IAM is up too: a user can be created right away.
	if err := adm.AddUser(ctxFor(t), "probe-user", "probe-user-secret"); err != nil {
		t.Fatalf("add user: %v", err)
	}
	t.Cleanup(func() { _ = adm.RemoveUser(context.Background(), "probe-user") })
}

// TestOwnServerStopFreesPortAndKeepsData starts servers of its own on one
// data directory: what a second one finds is what the first one wrote, and
// each Stop ends the process and frees the port.
func TestOwnServerStopFreesPortAndKeepsData(t *testing.T) {
	ctx := ctxFor(t)
	dataDir := t.TempDir()
	first := startOwn(t, ctx, minioserver.Options{DataDir: dataDir})
	if err := s3Client(t, first).MakeBucket(ctx, "kept", minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("make bucket: %v", err)
	}
	stopAndCheck(t, first)

	second := startOwn(t, ctx, minioserver.Options{DataDir: dataDir, Addr: first.Endpoint()})
	ok, err := s3Client(t, second).BucketExists(ctx, "kept")
	if err != nil || !ok {
		t.Fatalf("bucket after restart: exists=%v err=%v", ok, err)
	}
	stopAndCheck(t, second)
	if err := second.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func startOwn(t *testing.T, ctx context.Context, opts minioserver.Options) *minioserver.Server {
	t.Helper()
	begin := time.Now()
	s, err := minioserver.Start(ctx, opts)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	t.Logf("minio ready on %s in %s (pid %d)", s.Endpoint(), time.Since(begin).Round(time.Millisecond), s.Pid())
	return s
}

func stopAndCheck(t *testing.T, s *minioserver.Server) {
	t.Helper()
	begin := time.Now()
	if err := s.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	t.Logf("minio stopped in %s", time.Since(begin).Round(time.Millisecond))
	select {
	case <-s.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
	if err := syscall.Kill(s.Pid(), 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("pid %d still exists after Stop (kill 0: %v)", s.Pid(), err)
	}
	l, err := net.Listen("tcp", s.Endpoint())
	if err != nil {
		t.Fatalf("port %s not freed: %v", s.Endpoint(), err)
	}
	l.Close()
}

// TestMinioDiesWithItsParent runs a helper process that starts MinIO and
// is then SIGKILLed, with no chance to clean up: MinIO must go too.
func TestMinioDiesWithItsParent(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := minioserver.EnsureBinary(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "MINIOSERVER_ORPHAN_HELPER=1", minioserver.EnvBinary+"="+bin)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("helper did not report the minio pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("helper said %q: %v", line, err)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("minio pid %d not running before the parent dies: %v", pid, err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitGone(t, pid, 30*time.Second)
}

// orphanHelper starts MinIO, prints its pid and waits to be killed.
func orphanHelper() {
	s, err := minioserver.Start(context.Background(), minioserver.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(s.Pid())
	select {}
}

// waitGone polls until pid no longer exists; the orphaned MinIO is reaped by init.
func waitGone(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := syscall.Kill(pid, 0)
		if errors.Is(err, syscall.ESRCH) || zombie(pid) {
			return
		}
		select {
		case <-deadline:
			t.Fatalf("pid %d still alive %s after its parent died", pid, within)
		case <-tick.C:
		}
	}
}

func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] == 'Z'
}
