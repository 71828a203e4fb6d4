package api

import (
	"errors"
	"testing"
)

// bodyDecoders decode and check one request body each, as the handlers
// do before anything is published.
var bodyDecoders = []func(raw []byte) error{
	func(raw []byte) error {
		var req createRequest
		if err := decodeStrict(raw, &req); err != nil {
			return err
		}
		_, err := req.validate()
		return err
	},
	func(raw []byte) error {
		var req memberRequest
		if err := decodeStrict(raw, &req); err != nil {
			return err
		}
		_, err := validMember(req)
		return err
	},
	func(raw []byte) error {
		var req stsRequest
		if err := decodeStrict(raw, &req); err != nil {
			return err
		}
		_, err := validSession(req, "ws_access")
		return err
	},
	func(raw []byte) error {
		var req shareRequest
		if err := decodeStrict(raw, &req); err != nil {
			return err
		}
		_, err := req.validate()
		return err
	},
	func(raw []byte) error { var req rotateRequest; return decodeStrict(raw, &req) },
	func(raw []byte) error { var req patchRequest; return decodeStrict(raw, &req) },
	func(raw []byte) error { var req retryRequest; return decodeStrict(raw, &req) },
	func(raw []byte) error {
		var req replayRequest
		if err := decodeStrict(raw, &req); err != nil || len(req.Command) == 0 {
			return err
		}
		_, err := replayable(req.Command)
		return err
	},
}

// FuzzRequestBodies: whatever a client sends as a body, every decoder
// either takes it or refuses it as the client's error (400 or 422 with
// the contract's body), never as the server's, and never panics.
// Seeds: testdata/fuzz/FuzzRequestBodies.
func FuzzRequestBodies(f *testing.F) {
	f.Add([]byte(`{"preferred_name":"demo","default_owner":"alice"}`))
	f.Add([]byte(`{"username":"bob","role":"ws_viewer"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		for i, decode := range bodyDecoders {
			err := decode(raw)
			if err == nil {
				continue
			}
			var e *Error
			if !errors.As(err, &e) || (e.Status != 400 && e.Status != 422) {
				t.Fatalf("decoder %d: %q refused with %v, want a 400 or 422 answer", i, raw, err)
			}
		}
	})
}
