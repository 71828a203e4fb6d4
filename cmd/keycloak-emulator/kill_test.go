package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestAcknowledgedWritesSurviveAKill kills the emulator with SIGKILL while
// clients are being created: every create it answered 201 must be there
// after a restart on the same data directory, whatever the log's tail.
func TestAcknowledgedWritesSurviveAKill(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "keycloak-emulator")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	cmd, base := startBinary(t, bin, dir)
	acked := createUntilKilled(t, cmd, base, 40)
	_ = cmd.Wait()

	_, base = startBinary(t, bin, dir)
	tok := adminToken(t, base)
	for _, id := range acked {
		if !clientExists(t, base, tok, id) {
			t.Errorf("client %s was acknowledged before the kill and is gone after it", id)
		}
	}
}

// createUntilKilled creates clients from several goroutines and kills the
// process once n were acknowledged, with others in flight.
func createUntilKilled(t *testing.T, cmd *exec.Cmd, base string, n int) []string {
	tok := adminToken(t, base)
	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
		next  int
	)
	enough := make(chan struct{})
	var once sync.Once
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				next++
				id := fmt.Sprintf("kill-%d", next)
				mu.Unlock()
				if createClient(base, tok, id) != nil {
					return // killed
				}
				mu.Lock()
				acked = append(acked, id)
				if len(acked) >= n {
					once.Do(func() { close(enough) })
				}
				mu.Unlock()
			}
		}()
	}
	<-enough
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	return acked
}

func createClient(base, tok, clientID string) error {
	req, _ := http.NewRequest(http.MethodPost, base+"/admin/realms/master/clients", strings.NewReader(`{"clientId":"`+clientID+`"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("create %s: %d", clientID, resp.StatusCode)
	}
	return nil
}

func clientExists(t *testing.T, base, tok, clientID string) bool {
	req, _ := http.NewRequest(http.MethodGet, base+"/admin/realms/master/clients?clientId="+clientID, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	return len(list) == 1
}

func adminToken(t *testing.T, base string) string {
	resp, err := http.PostForm(base+"/realms/master/protocol/openid-connect/token", url.Values{
		"grant_type": {"password"}, "client_id": {"admin-cli"}, "username": {"admin"}, "password": {"admin"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.AccessToken == "" {
		t.Fatalf("admin token: %d %v", resp.StatusCode, err)
	}
	return body.AccessToken
}

// startBinary runs the emulator on a free port over dir and returns once
// it logs that it is ready.
func startBinary(t *testing.T, bin, dir string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(bin, "start-dev", "--http-port=0", "--data-dir", dir)
	cmd.Env = os.Environ()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line struct{ Msg, URL string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "keycloak emulator ready" {
				ready <- line.URL
			}
		}
		close(ready)
	}()
	select {
	case u, ok := <-ready:
		if !ok {
			t.Fatal("emulator exited before ready")
		}
		return cmd, u
	case <-time.After(60 * time.Second):
		t.Fatal("emulator not ready in 60s")
	}
	return nil, ""
}
