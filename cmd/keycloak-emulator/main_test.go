package main

import (
	"io"
	"slices"
	"testing"
)

func TestParseArgsTakesKeycloakCommandLines(t *testing.T) {
	o, err := parseArgs([]string{"start-dev", "--http-host", "127.0.0.1", "--http-port=8180",
		"--import-realm", "a.json", "--import-realm=b.json", "--dev-realm"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.host != "127.0.0.1" || o.port != 8180 || !o.devRealm || !slices.Equal(o.realms, []string{"a.json", "b.json"}) {
		t.Fatalf("parsed %+v", o)
	}
	o, err = parseArgs(nil, io.Discard)
	if err != nil || o.host != "127.0.0.1" || o.port != 8080 || o.dataDir != "" {
		t.Fatalf("defaults: %+v %v", o, err)
	}
	for _, bad := range [][]string{{"--http-port", "70000"}, {"--fresh"}, {"extra"}, {"--no-such-flag"}} {
		if _, err := parseArgs(bad, io.Discard); err == nil {
			t.Errorf("%v: want an error", bad)
		}
	}
}
