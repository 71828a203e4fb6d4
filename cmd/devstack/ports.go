package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"
	"time"
)

// resolvePorts settles every port: one asked for must be free; otherwise the
// one remembered from the last run is reused when free (so URLs, token
// issuers and stored S3 endpoints stay valid across restarts), else a new
// free one is taken. The answer is remembered in path.
//
// A remembered port gets up to grace to come free: after a killed run the
// old children may still be exiting (a killed process's sockets close only
// once all its threads are gone), and a new port would break the URLs that
// stored credentials and issued tokens carry.
func resolvePorts(asked Ports, path string, grace time.Duration) (Ports, error) {
	remembered, err := readPorts(path)
	if err != nil {
		return Ports{}, err
	}
	got := asked
	rem := remembered.fields()
	deadline := time.Now().Add(grace)
	// Hold every chosen port open until all are chosen, so no two parts get the same one.
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for i, f := range got.fields() {
		if *f.v != 0 {
			l, err := listen(*f.v)
			if err != nil {
				return Ports{}, fmt.Errorf("--%s %d: port in use: %w", f.flag, *f.v, err)
			}
			held = append(held, l)
			continue
		}
		if p := *rem[i].v; p != 0 {
			if l, err := listenBy(p, deadline); err == nil {
				held = append(held, l)
				*f.v = p
				continue
			}
		}
		l, err := listen(0)
		if err != nil {
			return Ports{}, fmt.Errorf("find a free port for --%s: %w", f.flag, err)
		}
		held = append(held, l)
		*f.v = l.Addr().(*net.TCPAddr).Port
	}
	if err := writeFileAtomic(path, mustJSON(got)); err != nil {
		return Ports{}, err
	}
	return got, nil
}

func listen(port int) (net.Listener, error) {
	return net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
}

// listenBy retries listen until it succeeds or deadline passes.
func listenBy(port int, deadline time.Time) (net.Listener, error) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		l, err := listen(port)
		if err == nil || time.Now().After(deadline) {
			return l, err
		}
		<-tick.C
	}
}

func readPorts(path string) (Ports, error) {
	var p Ports
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("read remembered ports: %w", err)
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%s is not a ports file (%v); delete it or start with --fresh", path, err)
	}
	return p, nil
}

func mustJSON(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(err) // only plain structs are passed
	}
	return append(b, '\n')
}
