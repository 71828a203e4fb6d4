package natsaccounts

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/bcrypt"
)

// Paths relative to this package's directory, where go test runs.
const (
	repoRoot    = "../.."
	deployDir   = "../../deploy"
	singleConf  = "../../deploy/nats/nats.conf"
	clusterConf = "../../deploy/nats/cluster/n%d.conf"
)

// passwords are the clear-text passwords of the test; the environment
// carries the provisioner's as is and the others as quoted bcrypt hashes,
// the two forms deploy/nats/accounts.conf documents.
type passwords struct{ provisioner, portal, auditor string }

func setPasswords(t *testing.T) passwords {
	t.Helper()
	pw := passwords{provisioner: "prov-secret", portal: "portal-secret", auditor: "audit-secret"}
	t.Setenv("NATS_PROVISIONER_PASSWORD", pw.provisioner)
	t.Setenv("NATS_PORTAL_PASSWORD", quotedBcrypt(t, pw.portal))
	t.Setenv("NATS_AUDITOR_PASSWORD", quotedBcrypt(t, pw.auditor))
	return pw
}

func quotedBcrypt(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatalf("bcrypt: %v", err)
	}
	return `"` + string(h) + `"`
}

// loadConf parses a configuration file with the server's own parser and
// moves it onto loopback, random client port, no monitoring port and a
// temporary store, leaving accounts, users and permissions as written.
func loadConf(t *testing.T, path string) *server.Options {
	t.Helper()
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("ProcessConfigFile(%s): %v", path, err)
	}
	opts.Host, opts.Port = "127.0.0.1", server.RANDOM_PORT
	opts.HTTPHost, opts.HTTPPort = "", 0
	opts.StoreDir = t.TempDir()
	opts.NoSigs = true
	return opts
}

// serverLog records what the server logs about permission violations.
type serverLog struct {
	mu         sync.Mutex
	violations []string
}

func (l *serverLog) record(format string, v ...any) {
	line := fmt.Sprintf(format, v...)
	if strings.Contains(line, "Violation") {
		l.mu.Lock()
		l.violations = append(l.violations, line)
		l.mu.Unlock()
	}
}

func (l *serverLog) Noticef(format string, v ...any) { l.record(format, v...) }
func (l *serverLog) Warnf(format string, v ...any)   { l.record(format, v...) }
func (l *serverLog) Fatalf(format string, v ...any)  { l.record(format, v...) }
func (l *serverLog) Errorf(format string, v ...any)  { l.record(format, v...) }
func (l *serverLog) Debugf(format string, v ...any)  { l.record(format, v...) }
func (l *serverLog) Tracef(format string, v ...any)  { l.record(format, v...) }

// Violations returns the violations logged so far.
func (l *serverLog) Violations() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.violations...)
}

// startServer starts a server and stops it when the test ends.
func startServer(t *testing.T, opts *server.Options) (*server.Server, *serverLog) {
	t.Helper()
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	log := &serverLog{}
	s.SetLoggerV2(log, false, false, false)
	go s.Start()
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	if !s.ReadyForConnections(30 * time.Second) {
		t.Fatalf("nats server %s not ready", opts.ServerName)
	}
	return s, log
}

// client is a connection and the asynchronous errors the server sent it.
type client struct {
	nc   *nats.Conn
	errs chan error
}

// dial connects as user; inboxPrefix is the user's own reply prefix
// ("" for the default _INBOX).
func dial(t *testing.T, url, user, pass, inboxPrefix string) *client {
	t.Helper()
	c := &client{errs: make(chan error, 64)}
	opts := []nats.Option{
		nats.Name(user), nats.UserInfo(user, pass),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case c.errs <- err:
			default:
			}
		}),
	}
	if inboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(inboxPrefix))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	c.nc = nc
	t.Cleanup(nc.Close)
	return c
}

// expectViolation waits for the server's permissions violation naming
// subject; the server answers a denied publish or subscription with it.
func (c *client) expectViolation(t *testing.T, subject string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case err := <-c.errs:
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"`+subject+`"`) {
				return
			}
		case <-deadline:
			t.Fatalf("no permissions violation for %q", subject)
		}
	}
}

// expectPublishDenied publishes on subject and expects the violation.
func (c *client) expectPublishDenied(t *testing.T, subject string) {
	t.Helper()
	if err := c.nc.Publish(subject, []byte(`{}`)); err != nil {
		t.Fatalf("publish %s: %v", subject, err)
	}
	if err := c.nc.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	c.expectViolation(t, subject)
}

// freePort reserves a loopback port by listening and closing. Used only
// where the server needs its port before it starts (cluster routes).
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// buildProvisioner builds ./cmd/provisioner into a temporary directory.
func buildProvisioner(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "provisioner")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/provisioner")
	cmd.Dir = repoRoot
	cmd.Env = os.Environ()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/provisioner: %v\n%s", err, out)
	}
	return bin
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
