package main

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a terminal stand-in the spinner may write to from its
// own goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestLiveProgressNamesTheStepsDone(t *testing.T) {
	var out lockedBuffer
	p := newLiveProgress(&out, "create ws-demo")
	p.step("keycloak_client", time.Now())
	p.step("bucket", time.Now())
	p.note("step policy failed (will be retried): boom", time.Now())
	p.end("ws-demo is ready")
	got := out.String()
	for _, want := range []string{"create ws-demo: ✓ keycloak_client ✓ bucket", "step policy failed (will be retried): boom", "ws-demo is ready"} {
		if !strings.Contains(got, want) {
			t.Errorf("live progress lacks %q:\n%q", want, got)
		}
	}
}

func TestPlainProgressWritesALinePerStep(t *testing.T) {
	var out bytes.Buffer
	p := &plainProgress{w: &out, title: "delete ws-demo"}
	p.step("bucket_empty_check", time.Now())
	p.end("ws-demo is deleted")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasSuffix(lines[0], "delete ws-demo: step bucket_empty_check done") || lines[1] != "ws-demo is deleted" {
		t.Fatalf("plain progress:\n%s", out.String())
	}
}
