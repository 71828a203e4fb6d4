package ui

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/eo-workspaces/provisioner/auth"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/readmodel"
)

// feed is a Watcher whose changes the test sends.
type feed struct{ ch chan readmodel.Workspace }

func (f feed) Subscribe(int) (<-chan readmodel.Workspace, func()) { return f.ch, func() {} }

// bob is signed in unless the request carries no Authorization header.
var bob = auth.Func(func(r *http.Request) (auth.Principal, error) {
	if r.Header.Get("Authorization") == "" {
		return auth.Principal{}, errors.New("no token")
	}
	return auth.Principal{Username: "bob"}, nil
})

func newPage(t *testing.T, f feed) *httptest.Server {
	t.Helper()
	return newPageWith(t, Config{KeycloakURL: "http://kc.example:8080", Realm: "eoepca"}, f)
}

func newPageWith(t *testing.T, cfg Config, f feed) *httptest.Server {
	t.Helper()
	done := make(chan struct{})
	h, err := New(cfg, Deps{Auth: bob, Workspaces: f, Done: done})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() { close(done); srv.Close() })
	return srv
}

func TestPageAndItsConfigAreServed(t *testing.T) {
	srv := newPage(t, feed{ch: make(chan readmodel.Workspace)})
	for path, want := range map[string]string{"/ui/": `<script type="module" src="app.js">`, "/ui/app.js": "code_challenge_method", "/ui/config.json": `"client_id":"workspace-ui"`} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s = %d, want %q in it", path, resp.StatusCode, want)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self' http://kc.example:8080") {
			t.Errorf("GET %s: CSP %q", path, csp)
		}
	}
}

// TestStreamSendsWhatTheCallerMaySee: a workspace bob is no member of
// never reaches him; one he is, does, as a summary without secrets.
func TestStreamSendsWhatTheCallerMaySee(t *testing.T) {
	f := feed{ch: make(chan readmodel.Workspace, 4)}
	srv := newPage(t, f)
	if resp, err := http.Get(srv.URL + "/ui/stream"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("stream without a token: %v %v", resp.StatusCode, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/ui/stream", nil)
	req.Header.Set("Authorization", "Bearer x")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	evs := sse(resp.Body)
	if ev := <-evs; ev[0] != "ready" {
		t.Fatalf("first event %v, want ready", ev)
	}
	f.ch <- readmodel.Workspace{Name: "ws-other", Status: events.StatusReady, Owner: "carol"}
	f.ch <- readmodel.Workspace{Name: "ws-bob", Status: events.StatusReady, Owner: "carol",
		Members: []readmodel.Member{{Username: "bob", Role: events.RoleViewer}}, Storage: &events.Storage{Bucket: "ws-bob"}}
	ev := <-evs
	var got map[string]any
	_ = json.Unmarshal([]byte(ev[1]), &got)
	if ev[0] != "workspace" || got["name"] != "ws-bob" || got["storage"] != nil {
		t.Fatalf("got %v, want ws-bob alone, without storage", ev)
	}
}

// sse yields [event, data] pairs read from a server-sent events stream.
func sse(r io.Reader) <-chan [2]string {
	out := make(chan [2]string)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(r)
		var ev [2]string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev[0] = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev[1] = strings.TrimPrefix(line, "data: ")
			case line == "":
				out <- ev
				ev = [2]string{}
			}
		}
	}()
	return out
}

// TestStreamEndsAfterMaxStream: the page must come back with its token.
func TestStreamEndsAfterMaxStream(t *testing.T) {
	srv := newPageWith(t, Config{KeycloakURL: "http://kc", Realm: "r", MaxStream: 100 * time.Millisecond}, feed{ch: make(chan readmodel.Workspace)})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/ui/stream", nil)
	req.Header.Set("Authorization", "Bearer x")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	done := make(chan error, 1)
	go func() { _, err := io.ReadAll(resp.Body); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stream ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stream still open 5s after its 100ms limit")
	}
}
