package events_test

import (
	"encoding/json"
	"testing"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/schemas"
)

// FuzzParseEnvelope: any bytes on a command subject are either refused
// with an error or give an envelope that survives a round trip; nothing
// panics. Seeds: testdata/fuzz/FuzzParseEnvelope.
func FuzzParseEnvelope(f *testing.F) {
	schema, err := schemas.New()
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"specversion":"1.0","id":"a","source":"s","type":"workspace.create","subject":"ws-a","time":"2026-01-01T00:00:00Z","datacontenttype":"application/json","actor":"x","correlationid":"c","data":{"preferred_name":"a","default_owner":"u"}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		env, err := events.Parse(raw, schema)
		if err != nil {
			return
		}
		if _, err := env.DecodeData(); err != nil {
			return // the schema allows what no Go type takes: refused, not a crash
		}
		again, err := json.Marshal(env)
		if err != nil {
			t.Fatalf("marshal a parsed envelope: %v", err)
		}
		back, err := events.Parse(again, schema)
		if err != nil {
			t.Fatalf("a parsed envelope does not parse again: %v\n%s", err, again)
		}
		if back.ID != env.ID || back.Type != env.Type || back.Subject != env.Subject {
			t.Fatalf("round trip changed the envelope: %+v -> %+v", env, back)
		}
	})
}

// FuzzDecodeCommand: a command's data, of any registered type, decodes
// strictly or is refused; what decodes encodes and decodes to the same.
// Seeds: testdata/fuzz/FuzzDecodeCommand.
func FuzzDecodeCommand(f *testing.F) {
	f.Add("workspace.create", []byte(`{"preferred_name":"a","default_owner":"u"}`))
	f.Add("workspace.member.add", []byte(`{"username":"bob","role":"ws_viewer"}`))
	f.Fuzz(func(t *testing.T, typ string, data []byte) {
		p, err := events.Envelope{Type: typ, Data: data}.DecodeData()
		if err != nil {
			return
		}
		raw, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("marshal %T: %v", p, err)
		}
		q, err := events.Envelope{Type: typ, Data: raw}.DecodeData()
		if err != nil {
			t.Fatalf("%s re-encoded as %s does not decode: %v", typ, raw, err)
		}
		if again, _ := json.Marshal(q); string(again) != string(raw) {
			t.Fatalf("round trip changed %s: %s -> %s", typ, raw, again)
		}
	})
}
