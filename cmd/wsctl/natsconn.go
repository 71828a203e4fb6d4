package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// jetStream connects to the NATS server the commands that bypass the API
// need; close ends the connection.
func (o *options) jetStream() (js jetstream.JetStream, close func(), err error) {
	u, err := o.nats()
	if err != nil {
		return nil, nil, err
	}
	nc, err := nats.Connect(u, nats.Name("wsctl"), nats.Timeout(5*time.Second))
	if err != nil {
		return nil, nil, fmt.Errorf("cannot reach NATS at %s (set --nats-url or WSCTL_NATS_URL): %w", u, err)
	}
	js, err = jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream on %s: %w", u, err)
	}
	return js, nc.Close, nil
}

// parseSince reads a point in time: RFC 3339, or a duration back from now
// ("24h" is a day ago).
func parseSince(flag, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.DateTime, time.DateOnly} {
		if t, err := time.ParseInLocation(layout, v, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usagef("--%s %q: give an RFC 3339 time (2026-11-30T08:00:00Z), a date (2026-11-30) or a duration back from now (24h)", flag, v)
}

// auditSubjects are the subjects of the audit trail, for one workspace or
// every one, in the commands and events streams.
func auditSubjects(workspace string) map[string]string {
	tok := "*"
	if workspace != "" {
		tok = workspace
	}
	return map[string]string{
		"WORKSPACE_COMMANDS": "workspace.cmd." + tok + ".>",
		"WORKSPACE_EVENTS":   "workspace.evt." + tok + ".>",
	}
}

// kindOf names a stream's messages as the API's history does.
func kindOf(stream string) string {
	if strings.Contains(stream, "COMMANDS") {
		return "command"
	}
	return "event"
}
