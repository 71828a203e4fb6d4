package keycloakserver

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

var errExited = errors.New("keycloak exited before it was ready")

func (s *Server) waitReady(ctx context.Context) error {
	urls := []string{s.ManagementURL() + "/health/ready", s.URL() + "/realms/master/.well-known/openid-configuration"}
	for _, r := range s.realms {
		urls = append(urls, s.URL()+"/realms/"+r+"/.well-known/openid-configuration")
	}
	client := &http.Client{Timeout: 5 * time.Second}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		if allOK(ctx, client, urls) {
			return nil
		}
		select {
		case <-s.Done():
			return fmt.Errorf("%w: %v", errExited, s.Err())
		case <-ctx.Done():
			return fmt.Errorf("wait for readiness: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

func allOK(ctx context.Context, c *http.Client, urls []string) bool {
	for _, u := range urls {
		if !ok(ctx, c, u) {
			return false
		}
	}
	return true
}

func ok(ctx context.Context, c *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// realmName reads the "realm" a realm-export file names.
func realmName(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("realm file: %w", err)
	}
	var rep struct {
		Realm string `json:"realm"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return "", fmt.Errorf("realm file %s: %w", file, err)
	}
	if rep.Realm == "" || strings.ContainsAny(rep.Realm, "/\\") {
		return "", fmt.Errorf("realm file %s: no usable \"realm\" name", file)
	}
	return rep.Realm, nil
}

// URL is the base URL (no /auth), as gocloak and OIDC clients take it.
func (s *Server) URL() string { return "http://" + s.opts.Addr }

// ManagementURL is where /health/ready and /health/live answer.
func (s *Server) ManagementURL() string {
	host, _, _ := net.SplitHostPort(s.opts.Addr)
	return "http://" + net.JoinHostPort(host, strconv.Itoa(s.opts.ManagementPort))
}

// AdminUser and AdminPassword are the master realm's bootstrap admin.
func (s *Server) AdminUser() string     { return s.opts.AdminUser }
func (s *Server) AdminPassword() string { return s.opts.AdminPassword }

// DataDir is the server's home, where its database lives.
func (s *Server) DataDir() string { return s.opts.DataDir }

// Pid is the process id: kc.sh's, which becomes java's when it re-augments.
func (s *Server) Pid() int { return s.proc.Pid() }

// Done is closed once the process has exited, for whatever reason.
func (s *Server) Done() <-chan struct{} { return s.proc.Done() }

// Err is the process's exit error; meaningful once Done is closed.
func (s *Server) Err() error { return s.proc.Err() }

// RSS is the resident memory of the Keycloak JVM, in bytes.
func (s *Server) RSS() (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(s.Pid()) + "/status")
	if err != nil {
		return 0, fmt.Errorf("keycloak memory: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("keycloak memory: no VmRSS for pid %d", s.Pid())
}

// Logs returns what the server printed, when Options.Logs was nil.
func (s *Server) Logs() string { return s.proc.Logs() }

func (s *Server) logTail() string { return s.proc.LogTail() }

// Stop sends SIGTERM, waits up to StopTimeout for Keycloak to exit, then
// SIGKILLs its process group; it removes the temporary home Start made.
// Calling it again returns the first answer.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		s.stopErr = s.stop()
		s.removeTemp()
	})
	return s.stopErr
}

func (s *Server) stop() error {
	return s.proc.Stop(s.opts.StopTimeout)
}

func (s *Server) removeTemp() {
	if s.tempDir != "" {
		_ = os.RemoveAll(s.tempDir)
		s.tempDir = ""
	}
}
