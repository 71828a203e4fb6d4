package scaleout

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// call makes one API request (as a platform admin: the APIs run with
// --insecure-no-auth) and decodes the JSON answer.
func call(ctx context.Context, method, url, key, body string) (int, map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			return resp.StatusCode, nil, fmt.Errorf("%s %s: not JSON: %s", method, url, raw)
		}
	}
	return resp.StatusCode, out, nil
}

// command sends a command until an API accepts it (202), trying the
// other API after a failure: a request caught by the node loss is sent
// again with the same Idempotency-Key, so it counts once.
func command(ctx context.Context, apis []string, first int, method, path, key, body string) (map[string]any, error) {
	var last string
	for attempt := 0; ctx.Err() == nil; attempt++ {
		api := apis[(first+attempt)%len(apis)]
		code, out, err := call(ctx, method, api+path, key, body)
		switch {
		case err == nil && code == http.StatusAccepted:
			return out, nil
		case err == nil && code < 500:
			return nil, fmt.Errorf("%s %s = %d %v", method, path, code, out)
		case err != nil:
			last = err.Error()
		default:
			last = fmt.Sprintf("%d %v", code, out)
		}
		pause(ctx, 200*time.Millisecond)
	}
	return nil, fmt.Errorf("%s %s never accepted: %s", method, path, last)
}

// await polls GET name on the APIs in turn until cond holds.
func await(ctx context.Context, apis []string, name, what string, cond func(code int, ws map[string]any) bool) error {
	var code int
	var ws map[string]any
	for i := 0; ctx.Err() == nil; i++ {
		var err error
		code, ws, err = call(ctx, http.MethodGet, apis[i%len(apis)]+"/workspaces/"+name, "", "")
		if err == nil && cond(code, ws) {
			return nil
		}
		pause(ctx, 100*time.Millisecond)
	}
	return fmt.Errorf("%s never %s: last %d %v", name, what, code, ws)
}

func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func status(ws map[string]any) string { s, _ := ws["status"].(string); return s }

// roleOf is username's role among the members of ws, "" if none.
func roleOf(ws map[string]any, username string) string {
	members, _ := ws["members"].([]any)
	for _, m := range members {
		mm, _ := m.(map[string]any)
		if mm["username"] == username {
			r, _ := mm["role"].(string)
			return r
		}
	}
	return ""
}

func memberCount(ws map[string]any) int {
	members, _ := ws["members"].([]any)
	return len(members)
}

// metrics returns the lines of p's /metrics that start with prefix.
func metrics(ctx context.Context, p *proc, prefix string) []string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/metrics", nil)
	if err != nil {
		return []string{err.Error()}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return []string{err.Error()}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out []string
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// restarts says how often worker p opened its pull of commands again.
func restarts(ctx context.Context, p *proc) string {
	var out []string
	for _, l := range metrics(ctx, p, "workspace_worker_consumer_restarts_total{") {
		out = append(out, strings.TrimPrefix(l, "workspace_worker_consumer_restarts_total"))
	}
	return strings.Join(out, " ")
}

// folding reports whether projection p holds the lease and folds events.
func folding(ctx context.Context, p *proc) bool {
	return slices.Contains(metrics(ctx, p, "workspace_projection_leader "), "workspace_projection_leader 1")
}
