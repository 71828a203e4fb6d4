package main

import (
	"io"
	"slices"
	"testing"
)

func TestParseArgs(t *testing.T) {
	o, err := parseArgs([]string{"start-dev", "--http-port", "0", "--import-realm", "a.json", "--import-realm", "b.json",
		"--", "go", "test", "--", "-run", "X"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.port != 0 || !slices.Equal(o.realms, []string{"a.json", "b.json"}) {
		t.Errorf("options %+v", o)
	}
	if want := []string{"go", "test", "--", "-run", "X"}; !slices.Equal(o.command, want) {
		t.Errorf("command %q, want %q: everything after the first -- is the command's", o.command, want)
	}
	for _, bad := range [][]string{{"--http-port", "70000"}, {"--"}, {"extra"}, {"--no-such-flag"}} {
		if _, err := parseArgs(bad, io.Discard); err == nil {
			t.Errorf("parseArgs(%q) accepted", bad)
		}
	}
}

func TestListenAddrPicksAFreePort(t *testing.T) {
	addr, err := listenAddr("127.0.0.1", 0)
	if err != nil || addr == "127.0.0.1:0" {
		t.Fatalf("listenAddr = %q, %v", addr, err)
	}
	if got, _ := listenAddr("127.0.0.1", 8180); got != "127.0.0.1:8180" {
		t.Errorf("listenAddr with a port = %q", got)
	}
}
