package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/readmodel"
	"github.com/eo-workspaces/provisioner/sagas/shares"
)

// fakeObjects is a bucket per workspace in memory.
type fakeObjects struct {
	mu   sync.Mutex
	data map[string][]byte // "bucket/key"
}

func (f *fakeObjects) put(bucket, key, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.data[bucket+"/"+key] = []byte(body)
}

func (f *fakeObjects) Stat(_ context.Context, bucket, key string) (ObjectInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.data[bucket+"/"+key]
	if !ok {
		return ObjectInfo{}, ErrNoObject
	}
	return ObjectInfo{Size: int64(len(b)), ETag: fmt.Sprintf("%x", len(b)), ContentType: "text/plain", ModTime: time.Unix(1e9, 0)}, nil
}

func (f *fakeObjects) Open(_ context.Context, bucket, key string, _ ObjectInfo) io.ReadSeekCloser {
	f.mu.Lock()
	defer f.mu.Unlock()
	return nopCloser{bytes.NewReader(f.data[bucket+"/"+key])}
}

func (f *fakeObjects) Get(ctx context.Context, bucket, key string) (io.ReadSeekCloser, ObjectInfo, error) {
	info, err := f.Stat(ctx, bucket, key)
	if err != nil {
		return nil, info, err
	}
	return f.Open(ctx, bucket, key, info), info, nil
}

type nopCloser struct{ io.ReadSeeker }

func (nopCloser) Close() error { return nil }

// shareStack is storageStack with share links: ws-s holds data/a.txt.
func shareStack(t *testing.T, cfg Config) (*stack, *fakeObjects) {
	s, _ := storageStack(t)
	objs := &fakeObjects{data: map[string][]byte{}}
	objs.put("ws-s", "data/a.txt", "hello, world")
	s.deps.Objects, s.deps.Shares = objs, shares.NewKV(s.kv(events.SharesBucket))
	s.h = s.handler(cfg, s.deps)
	return s, objs
}

// share makes a link as user and returns the answer.
func (s *stack) share(user, body string) shareBody {
	s.t.Helper()
	r := s.call(req{method: "POST", path: "/workspaces/ws-s/shares", user: user, body: body})
	if r.status != http.StatusCreated {
		s.t.Fatalf("share %s: %d %s", body, r.status, r.body)
	}
	var b shareBody
	r.json(s.t, &b)
	return b
}

// fetch GETs a share link's path from addr, without a token.
func (s *stack) fetch(link, addr string, header map[string]string) *httptest.ResponseRecorder {
	u, err := url.Parse(link)
	if err != nil {
		s.t.Fatal(err)
	}
	hr := httptest.NewRequest("GET", u.Path, nil)
	hr.RemoteAddr = addr + ":4000"
	for k, v := range header {
		hr.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	s.h.ServeHTTP(rec, hr)
	return rec
}

func TestShareLinkDownloadsUntilMaxUses(t *testing.T) {
	s, _ := shareStack(t, Config{})
	b := s.share("bob", `{"path":"data/a.txt","max_uses":2,"expires_in":60}`)
	if b.ID == "" || !strings.Contains(b.URL, "/shares/ws-s."+b.ID+".") || b.MaxUses == nil || *b.MaxUses != 2 || b.Uses != 0 ||
		time.Until(b.ExpiresAt) > time.Minute || b.Path != "data/a.txt" {
		t.Fatalf("created %+v", b)
	}
	rec := s.fetch(b.URL, "10.0.0.1", map[string]string{"Range": "bytes=0-4"})
	if rec.Code != http.StatusPartialContent || rec.Body.String() != "hello" || rec.Header().Get("ETag") != `"c"` ||
		rec.Header().Get("Content-Type") != "text/plain" {
		t.Fatalf("range: %d %q %v", rec.Code, rec.Body, rec.Header())
	}
	if rec := s.fetch(b.URL, "10.0.0.1", nil); rec.Code != http.StatusOK || rec.Body.String() != "hello, world" || rec.Header().Get("Content-Length") != "12" ||
		rec.Header().Get("Content-Disposition") != `attachment; filename=a.txt` || rec.Header().Get("Content-Security-Policy") == "" {
		t.Fatalf("second use: %d %q", rec.Code, rec.Body)
	}
	if rec := s.fetch(b.URL, "10.0.0.1", nil); rec.Code != http.StatusGone {
		t.Fatalf("third use: %d %q", rec.Code, rec.Body)
	}
	var list sharesBody
	r := s.call(req{method: "GET", path: "/workspaces/ws-s/shares", user: "vera"})
	r.json(t, &list)
	secret := b.URL[strings.LastIndex(b.URL, ".")+1:]
	if len(list.Items) != 1 || list.Items[0].Uses != 2 || list.Items[0].State != "used_up" || list.Items[0].URL != "" ||
		bytes.Contains(r.body, []byte(secret)) {
		t.Fatalf("list: %s", r.body)
	}
	raw, _ := s.kv(events.SharesBucket).Get(s.ctx, "ws-s."+b.ID)
	if bytes.Contains(raw.Value(), []byte(secret)) {
		t.Fatal("the secret is stored")
	}
}

func TestConcurrentUsesOfAOneUseLinkSucceedOnce(t *testing.T) {
	s, _ := shareStack(t, Config{})
	b := s.share("alice", `{"path":"data/a.txt","max_uses":1}`)
	var wg sync.WaitGroup
	codes := make(chan int, 16)
	for range 16 {
		wg.Go(func() { codes <- s.fetch(b.URL, "10.0.0.2", nil).Code })
	}
	wg.Wait()
	close(codes)
	n := map[int]int{}
	for c := range codes {
		n[c]++
	}
	if n[http.StatusOK] != 1 || n[http.StatusGone] != 15 {
		t.Fatalf("answers %v, want one 200 and fifteen 410", n)
	}
}

func TestRevokedAndOrphanedLinksAreGone(t *testing.T) {
	s, objs := shareStack(t, Config{})
	b := s.share("bob", `{"path":"data/a.txt"}`)
	if b.MaxUses != nil || time.Until(b.ExpiresAt) < 23*time.Hour {
		t.Fatalf("defaults: %+v", b)
	}
	del := func(user, id string) int {
		return s.call(req{method: "DELETE", path: "/workspaces/ws-s/shares/" + id, user: user}).status
	}
	if code := del("vera", b.ID); code != http.StatusForbidden {
		t.Fatalf("a viewer revoked someone's link: %d", code)
	}
	if code := del("bob", "0123456789abcdef"); code != http.StatusNotFound {
		t.Fatalf("unknown id: %d", code)
	}
	if code := del("alice", b.ID); code != http.StatusNoContent { // a ws_admin
		t.Fatalf("revoke: %d", code)
	}
	if rec := s.fetch(b.URL, "10.0.0.3", nil); rec.Code != http.StatusGone {
		t.Fatalf("after revocation: %d", rec.Code)
	}
	if code := del("bob", b.ID); code != http.StatusNoContent {
		t.Fatalf("revoke again: %d", code)
	}
	if got := s.msgs(events.EventsStream); got != 2 { // created, revoked once
		t.Fatalf("%d events, want created and revoked", got)
	}
	// The object deleted, the creator removed, the workspace deleted.
	objs.put("ws-s", "data/b.txt", "b")
	gone := s.share("bob", `{"path":"data/b.txt"}`)
	objs.mu.Lock()
	delete(objs.data, "ws-s/data/b.txt")
	objs.mu.Unlock()
	if rec := s.fetch(gone.URL, "10.0.0.3", nil); rec.Code != http.StatusGone {
		t.Fatalf("object deleted: %d", rec.Code)
	}
	byBob := s.share("bob", `{"path":"data/a.txt"}`)
	s.emit("ws-s", &events.MemberRemoved{Username: "bob"})
	s.waitFor("ws-s", func(ws readmodel.Workspace, _ bool) bool { return ws.RoleOf("bob") == "" })
	if rec := s.fetch(byBob.URL, "10.0.0.3", nil); rec.Code != http.StatusGone {
		t.Fatalf("creator removed: %d", rec.Code)
	}
	byAlice := s.share("alice", `{"path":"data/a.txt"}`)
	s.emit("ws-s", &events.StatusChanged{Status: events.StatusDeleting})
	s.waitFor("ws-s", func(ws readmodel.Workspace, _ bool) bool { return ws.Status == events.StatusDeleting })
	if rec := s.fetch(byAlice.URL, "10.0.0.3", nil); rec.Code != http.StatusGone {
		t.Fatalf("workspace deleting: %d", rec.Code)
	}
}

func TestBadShareRequests(t *testing.T) {
	s, _ := shareStack(t, Config{})
	post := func(user, body string) req {
		return req{method: "POST", path: "/workspaces/ws-s/shares", user: user, body: body}
	}
	for _, tc := range []struct {
		rq     req
		status int
		field  string
	}{
		{post("bob", `{"path":"data/../x"}`), 422, "path"},
		{post("bob", `{"path":""}`), 422, "path"},
		{post("bob", `{}`), 422, "path"},
		{post("bob", `{"path":"/data/a.txt"}`), 422, "path"},
		{post("bob", `{"path":"`+strings.Repeat("a", 1025)+`"}`), 422, "path"},
		{post("bob", `{"path":"data/a.txt","expires_in":0}`), 422, "expires_in"},
		{post("bob", `{"path":"data/a.txt","expires_in":604801}`), 422, "expires_in"},
		{post("bob", `{"path":"data/a.txt","expires_in":1.5}`), 422, "expires_in"},
		{post("bob", `{"path":"data/a.txt","max_uses":0}`), 422, "max_uses"},
		{post("bob", `{"path":"data/a.txt","max_uses":-1}`), 422, "max_uses"},
		{post("bob", `{"path":"data/a.txt","secret":"x"}`), 422, "secret"},
		{post("bob", `{"path":"data/none.txt"}`), 404, "path"},
		{post("vera", `{"path":"data/a.txt"}`), 403, ""},
		{post("admin", `{"path":"data/a.txt"}`), 403, ""}, // no member: holds no data rights there
		{post("mallory", `{"path":"data/a.txt"}`), 403, ""},
		{req{method: "POST", path: "/workspaces/ws-busy/shares", user: "alice", body: `{"path":"a"}`}, 409, ""},
		{req{method: "GET", path: "/workspaces/ws-s/shares", user: "mallory"}, 403, ""},
		{req{method: "DELETE", path: "/workspaces/ws-s/shares/nothex", user: "alice"}, 404, "id"},
	} {
		r := s.call(tc.rq)
		if r.status != tc.status {
			t.Errorf("%s %s %s: %d %s, want %d", tc.rq.method, tc.rq.path, tc.rq.body, r.status, r.body, tc.status)
			continue
		}
		if e := r.errBody(t); e.Field != tc.field {
			t.Errorf("%s: field %q, want %q", tc.rq.body, e.Field, tc.field)
		}
	}
}

func TestGuessedShareLinksAre404ThenRateLimited(t *testing.T) {
	s, _ := shareStack(t, Config{ShareGuessesPerMinute: 5})
	b := s.share("bob", `{"path":"data/a.txt"}`)
	wrong := b.URL[:len(b.URL)-3] + "AAA"
	var bodies []string
	for i, link := range []string{
		"http://x/shares/nonsense", "http://x/shares/ws-s.0123456789abcdef." + strings.Repeat("A", 43),
		wrong, "http://x/shares/" + strings.Repeat("%ff", 300), "http://x/shares/ws-s..",
	} {
		rec := s.fetch(link, "10.0.0.9", nil)
		if rec.Code != http.StatusNotFound {
			t.Fatalf("guess %d: %d %s", i, rec.Code, rec.Body)
		}
		bodies = append(bodies, rec.Body.String())
	}
	for _, body := range bodies[1:] {
		if body != bodies[0] {
			t.Fatalf("404 answers differ: %q and %q", bodies[0], body)
		}
	}
	if rec := s.fetch(b.URL, "10.0.0.9", nil); rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("after 5 wrong guesses: %d", rec.Code)
	}
	if rec := s.fetch(b.URL, "10.0.0.10", nil); rec.Code != http.StatusOK {
		t.Fatalf("another address: %d", rec.Code)
	}
}

func TestShareEndsAreReportedOnce(t *testing.T) {
	s, _ := shareStack(t, Config{})
	store := shares.NewKV(s.kv(events.SharesBucket))
	past := time.Now().Add(-time.Minute)
	for _, sh := range []shares.Share{
		{ID: "00000000000000a1", Workspace: "ws-s", Path: "p", CreatedBy: "bob", ExpiresAt: past},
		{ID: "00000000000000a2", Workspace: "ws-s", Path: "p", CreatedBy: "bob", ExpiresAt: time.Now().Add(time.Hour), MaxUses: 1, Uses: 1},
		{ID: "00000000000000a3", Workspace: "ws-s", Path: "p", CreatedBy: "bob", ExpiresAt: time.Now().Add(time.Hour)},
	} {
		if err := store.Create(s.ctx, sh); err != nil {
			t.Fatal(err)
		}
	}
	rep := &ShareReporter{Shares: store, Publisher: s.pub, Log: s.deps.Log}
	for range 2 {
		if err := rep.Sweep(s.ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.msgs(events.EventsStream); got != 2 {
		t.Fatalf("%d events, want expired and used_up once each", got)
	}
	for id, want := range map[string]string{"00000000000000a1": shares.EndExpired, "00000000000000a2": shares.EndUsedUp, "00000000000000a3": ""} {
		if sh, _, _ := store.Get(s.ctx, "ws-s", id); sh.Reported != want {
			t.Errorf("%s reported %q, want %q", id, sh.Reported, want)
		}
	}
}
