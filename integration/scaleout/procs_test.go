package scaleout

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/eo-workspaces/provisioner/integration/stacktest"
	"github.com/eo-workspaces/provisioner/stack/minioserver"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "scaleout-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Without -race: five processes of it share two cores with the cluster,
	// MinIO and the emulator; the race detector runs in this test process.
	binary = filepath.Join(dir, "provisioner")
	out, err := exec.Command("go", "build", "-o", binary, "github.com/eo-workspaces/provisioner/cmd/provisioner").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build provisioner: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// proc is one provisioner process.
type proc struct {
	name string
	url  string // http://host:port, the API or the probes
	cmd  *exec.Cmd
	logs *stacktest.SyncBuffer
	done chan struct{}
}

func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	addr, err := minioserver.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, url: "http://" + addr, logs: &stacktest.SyncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(binary, append([]string{"--http-addr", addr, "--log-level", "warn"}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		if !p.alive() {
			return
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.done
}

// waitReady polls /readyz until it answers 200.
func (p *proc) waitReady(t *testing.T, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if !p.alive() {
			t.Fatalf("%s exited at start:\n%s", p.name, stacktest.LastLines(p.logs.String(), 30))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within %s:\n%s", p.name, d, stacktest.LastLines(p.logs.String(), 30))
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
}
