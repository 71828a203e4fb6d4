package natsaccounts

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestProvisionerRunsAsProvisionerUser runs the real binary, all three
// roles, as the provisioner user of deploy/nats/accounts.conf. Keycloak
// and MinIO are closed ports, so the create fails after the retry budget:
// reaching "failed" means the worker consumed the command, kept saga state,
// published events, and the projection folded them, all within the
// account's permissions. The server must log no violation.
func TestProvisionerRunsAsProvisionerUser(t *testing.T) {
	pw := setPasswords(t)
	s, log := startServer(t, loadConf(t, singleConf))
	bin := buildProvisioner(t)
	closed := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	natsURL := strings.Replace(s.ClientURL(), "nats://", "nats://provisioner:"+pw.provisioner+"@", 1)

	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"PROVISIONER_NATS_URL="+natsURL, "PROVISIONER_HTTP_ADDR=127.0.0.1:0", "PROVISIONER_DATA_DIR="+t.TempDir(),
		"PROVISIONER_INSECURE_NO_AUTH=true", "PROVISIONER_SECRET_KEY=test-passphrase",
		"PROVISIONER_KEYCLOAK_URL="+closed, "PROVISIONER_KEYCLOAK_CLIENT_SECRET=unused",
		"PROVISIONER_S3_ENDPOINT="+closed, "PROVISIONER_MINIO_ACCESS_KEY=unused", "PROVISIONER_MINIO_SECRET_KEY=unused",
		"PROVISIONER_MAX_RETRY_ELAPSED=1s", "PROVISIONER_SHUTDOWN_TIMEOUT=5s",
	)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	api := make(chan string, 1)
	go scanLog(stderr, api, t.Logf)
	go func() { exited <- cmd.Wait() }()
	var base string
	select {
	case base = <-api:
	case err := <-exited:
		t.Fatalf("provisioner exited: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("provisioner API did not start")
	}

	resp, err := http.Post(base+"/workspaces", "application/json",
		strings.NewReader(`{"preferred_name":"perm-check","default_owner":"example-user-1"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /workspaces: %s", resp.Status)
	}
	eventually(t, 90*time.Second, "workspace ws-perm-check failed", func() error {
		status, err := workspaceStatus(base + "/workspaces/ws-perm-check")
		if err != nil {
			return err
		}
		if status != "failed" {
			return fmt.Errorf("status %q", status)
		}
		return nil
	})

	// The closed Keycloak port failed the client step transiently until
	// the retry budget ran out (minio-go's own retries outlast the budget
	// on the storage lane); the dashboard's every series is served.
	exposition := checkDashboardAgainst(t, base)
	for _, p := range []string{"keycloak"} {
		if !regexp.MustCompile(`(?m)^workspace_worker_retries_total\{provider="` + p + `"\} [1-9]`).MatchString(exposition) {
			t.Errorf("no %s retries counted:\n%s", p, grepLines(exposition, "workspace_worker_retries_total"))
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Fatalf("provisioner after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("provisioner did not stop on SIGTERM")
	}
	if v := log.Violations(); len(v) > 0 {
		t.Fatalf("the provisioner user hit permission violations:\n%s", strings.Join(v, "\n"))
	}
}

// scanLog reads the binary's JSON logs, reports the API's URL once, and
// copies warnings and errors into the test log.
func scanLog(r io.Reader, api chan<- string, logf func(string, ...any)) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var line struct{ Level, Msg, URL string }
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		if line.Msg == "api listening" {
			api <- line.URL
		}
		if line.Level == "warn" || line.Level == "error" {
			logf("provisioner: %s", sc.Text())
		}
	}
}

func workspaceStatus(url string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var ws struct{ Status string }
	if err := json.NewDecoder(resp.Body).Decode(&ws); err != nil {
		return "", err
	}
	return ws.Status, nil
}

// grepLines returns the lines of text that contain s.
func grepLines(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
