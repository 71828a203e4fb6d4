package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/auth"
	"github.com/eo-workspaces/provisioner/bus"
	"github.com/eo-workspaces/provisioner/bus/bustest"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/handlers/api"
	"github.com/eo-workspaces/provisioner/readmodel"
	"github.com/eo-workspaces/provisioner/sagas/names"
	"github.com/eo-workspaces/provisioner/schemas"
)

// dlqAPI is the real API over an in-process JetStream, every caller a
// platform admin; it returns the API's URL and the bus.
func dlqAPI(t *testing.T) (string, *bus.Bus) {
	t.Helper()
	b := bustest.Start(t)
	schema, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	namesKV, _ := b.JS.KeyValue(ctx, events.NamesBucket)
	idem, _ := b.JS.KeyValue(ctx, events.IdempotencyBucket)
	h, err := api.New(api.Config{}, api.Deps{Publisher: events.NewPublisher(b.JS, schema), Workspaces: readmodel.NewReader(zap.NewNop()),
		Names: names.NewKV(namesKV), Idempotency: idem, JS: b.JS, Log: zap.NewNop(),
		Auth: auth.Static(auth.Principal{Username: "ops", RealmRoles: []string{auth.DefaultAdminRole}})})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL, b
}

func wsctlRun(t *testing.T, apiURL string, wantCode int, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	args = append([]string{"--api", apiURL, "--token", "t"}, args...)
	if code := run(context.Background(), args, streams{in: strings.NewReader(""), out: &out, err: &errOut}); code != wantCode {
		t.Fatalf("wsctl %v: exit %d, want %d\n%s%s", args, code, wantCode, out.String(), errOut.String())
	}
	return out.String()
}

// A rejected command: listed, shown, refused when replayed as kept (it
// still breaks its schema), replayed fixed from a file; another one
// discarded.
func TestWsctlDLQ(t *testing.T) {
	apiURL, b := dlqAPI(t)
	bad := `{"specversion":"1.0","id":"cmd-dlq-1","source":"portal","type":"workspace.create","subject":"ws-dlq",` +
		`"time":"2026-01-01T00:00:00Z","datacontenttype":"application/json","actor":"portal","correlationid":"c",` +
		`"data":{"preferred_name":"dlq","default_owner":"alice","colour":"blue"}}`
	for _, body := range []string{bad, "not json"} {
		m := nats.NewMsg(events.DeadLetterSubjectPrefix + "rejected")
		m.Data = []byte(body)
		m.Header.Set(events.HeaderDeadLetterReason, "invalid command: colour is not allowed")
		if _, err := b.JS.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	var listed []deadLetter
	if err := json.Unmarshal([]byte(wsctlRun(t, apiURL, exitOK, "dlq", "list", "-o", "json")), &listed); err != nil || len(listed) != 2 {
		t.Fatalf("listed %+v (%v)", listed, err)
	}
	if table := wsctlRun(t, apiURL, exitOK, "dlq", "list"); !strings.Contains(table, "ws-dlq") || !strings.Contains(table, "colour") {
		t.Fatalf("table:\n%s", table)
	}
	first, second := strconv.FormatUint(listed[0].Seq, 10), strconv.FormatUint(listed[1].Seq, 10)
	if shown := wsctlRun(t, apiURL, exitOK, "dlq", "show", first); !strings.Contains(shown, `"colour": "blue"`) {
		t.Fatalf("show:\n%s", shown)
	}
	wsctlRun(t, apiURL, exitFailed, "dlq", "replay", first)
	fixed := filepath.Join(t.TempDir(), "fixed.json")
	if err := os.WriteFile(fixed, []byte(strings.Replace(bad, `,"colour":"blue"`, "", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := wsctlRun(t, apiURL, exitOK, "dlq", "replay", first, "--file", fixed); !strings.Contains(out, "workspace.cmd.ws-dlq.create") {
		t.Fatalf("replay: %s", out)
	}
	wsctlRun(t, apiURL, exitOK, "dlq", "discard", second)
	if out := wsctlRun(t, apiURL, exitOK, "dlq", "list", "-o", "json"); strings.TrimSpace(out) != "null" && strings.TrimSpace(out) != "[]" {
		t.Fatalf("left after replay and discard: %s", out)
	}
	wsctlRun(t, apiURL, exitUsage, "dlq", "show", "zero")
	wsctlRun(t, apiURL, exitFailed, "dlq", "discard", second)
}
