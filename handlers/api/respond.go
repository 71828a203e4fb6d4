package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// Error is a failure the client is told about: the status, and the body
// {"error": Message, "field": Field} of the contract.
type Error struct {
	Status     int
	Message    string
	Field      string // omitted when no single field is at fault
	RetryAfter int    // seconds; sets Retry-After when > 0
	Challenge  string // sets WWW-Authenticate when not empty
	Err        error  // the cause, logged for 5xx, never shown
	// Expected marks a 5xx that is part of normal operation (not ready
	// during start-up): logged at info, not as an error with a stack.
	Expected bool
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Err }

func errorf(status int, field, msg string) *Error {
	return &Error{Status: status, Field: field, Message: msg}
}

// unavailable says a dependency failed; the client may retry shortly.
func unavailable(msg string, err error) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Message: msg, RetryAfter: 1, Err: err}
}

type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// writeJSON encodes v once and writes it with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	raw, err := json.Marshal(v)
	if err != nil {
		raw, status = []byte(`{"error":"internal error: response encoding failed"}`), http.StatusInternalServerError
	}
	writeRaw(w, status, raw)
}

func writeRaw(w http.ResponseWriter, status int, raw []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(raw)+1))
	w.WriteHeader(status)
	_, _ = w.Write(raw)
	_, _ = w.Write(newline)
}

var newline = []byte("\n")

// writeError answers err; anything that is not an *Error is a bug or an
// outage we did not classify, so it becomes a logged 500.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Status: http.StatusInternalServerError, Message: "internal error", Err: err}
	}
	switch {
	case e.Status >= 500 && e.Expected:
		s.log.Info("request answered "+http.StatusText(e.Status), zap.String("method", r.Method),
			zap.String("path", loggedPath(r)), zap.Int("status", e.Status), zap.String("reason", e.Message))
	case e.Status >= 500:
		s.log.Error("request failed", zap.String("method", r.Method), zap.String("path", loggedPath(r)),
			zap.Int("status", e.Status), zap.Error(e.Err))
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	if e.Challenge != "" {
		w.Header().Set("WWW-Authenticate", e.Challenge)
	}
	writeJSON(w, e.Status, errorBody{Error: e.Message, Field: e.Field})
}

// loggedPath is the request's path fit for a log line: a share link's
// path holds its secret, so only its route is logged.
func loggedPath(r *http.Request) string {
	if strings.HasPrefix(r.URL.Path, sharePathPrefix) {
		return sharePathPrefix + "[redacted]"
	}
	return r.URL.Path
}
