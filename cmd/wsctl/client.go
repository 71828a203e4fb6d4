package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// client calls the workspace API with a token it keeps valid.
type client struct {
	base   string
	tokens tokenSource
	http   *http.Client
}

// client builds the API client on first use: commands that only speak
// NATS never need a token.
func (o *options) client() (*client, error) {
	if o.cl != nil {
		return o.cl, nil
	}
	base, err := o.apiBase()
	if err != nil {
		return nil, err
	}
	ts, err := o.signIn()
	if err != nil {
		return nil, err
	}
	o.cl = &client{base: base, tokens: ts, http: &http.Client{Timeout: 30 * time.Second}}
	return o.cl, nil
}

// apiError is the API's error answer: the contract's {"error","field"}.
type apiError struct {
	Method, Path string
	Status       int
	Message      string `json:"error"`
	Field        string `json:"field"`
}

func (e *apiError) Error() string {
	msg := fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.Field != "" {
		msg += " (field " + e.Field + ")"
	}
	switch e.Status {
	case http.StatusUnauthorized:
		msg += "; sign in again (--token, WSCTL_TOKEN, --user)"
	case http.StatusForbidden:
		msg += "; sign in as a platform admin or a workspace admin (--user)"
	}
	return msg
}

// call sends body (as JSON, unless nil) and decodes the answer into out
// (unless nil). A 401 gets one more try with a fresh token: the one held
// may have been revoked or expired early.
func (c *client) call(ctx context.Context, method, path string, body, out any) error {
	return c.callIdem(ctx, method, path, "", body, out)
}

// callIdem is call with an Idempotency-Key header, when key is not empty.
func (c *client) callIdem(ctx context.Context, method, path, key string, body, out any) error {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
	}
	status, answer, err := c.send(ctx, method, path, key, raw)
	if status == http.StatusUnauthorized {
		c.tokens.Invalidate()
		status, answer, err = c.send(ctx, method, path, key, raw)
	}
	if err != nil {
		return err
	}
	if status >= 300 {
		ae := &apiError{Method: method, Path: path, Status: status}
		_ = json.Unmarshal(answer, ae) // a body that is not the contract's leaves the status alone
		return ae
	}
	if out == nil || len(answer) == 0 {
		return nil
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

func (c *client) send(ctx context.Context, method, path, idemKey string, body []byte) (int, []byte, error) {
	tok, err := c.tokens.Token(ctx)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("cannot reach the API at %s (is the stack running? set --api or WSCTL_API): %w", c.base, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	return resp.StatusCode, answer, nil
}

// wsPath is the path of a workspace, or of something under it.
func wsPath(name string, rest ...string) string {
	p := "/workspaces/" + url.PathEscape(name)
	for _, r := range rest {
		p += "/" + url.PathEscape(r)
	}
	return p
}
