// Command keycloak-real runs the real Keycloak server (stack/keycloakserver:
// the pinned release, fetched with Maven the first time, run with the
// machine's Java) with the same options as cmd/keycloak-emulator:
//
//	keycloak-real [start-dev] --http-host 127.0.0.1 --http-port 8180 --import-realm realm.json
//
// The master realm's admin comes from KC_BOOTSTRAP_ADMIN_USERNAME and
// KC_BOOTSTRAP_ADMIN_PASSWORD (default admin/admin), as in Keycloak 26.
// Ready when GET /realms/master/.well-known/openid-configuration answers 200.
//
// With a command after "--", it runs that command once Keycloak is ready,
// with KEYCLOAK_REAL_URL, KEYCLOAK_REAL_ADMIN_USER and
// KEYCLOAK_REAL_ADMIN_PASSWORD in its environment, then stops Keycloak and
// exits with the command's status: the test task shares one real Keycloak
// with every test package this way.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/eo-workspaces/provisioner/stack/kcemu"
	"github.com/eo-workspaces/provisioner/stack/keycloakserver"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "keycloak-real:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

// options are the command line, in Keycloak's terms.
type options struct {
	host           string
	port           int
	managementPort int
	realms         []string
	dataDir        string
	devRealm       bool
	version        string
	command        []string // run once ready, then stop
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func parseArgs(args []string, stderr io.Writer) (options, error) {
	var o options
	if i := indexOf(args, "--"); i >= 0 {
		args, o.command = args[:i], args[i+1:]
		if len(o.command) == 0 {
			return o, errors.New("nothing to run after --")
		}
	}
	// The emulator's and Keycloak's command lines start with a subcommand.
	if len(args) > 0 && args[0] == "start-dev" {
		args = args[1:]
	}
	fs := flag.NewFlagSet("keycloak-real", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.host, "http-host", "127.0.0.1", "address to listen on")
	fs.IntVar(&o.port, "http-port", 8080, "port to listen on (0 = any free port)")
	fs.IntVar(&o.managementPort, "http-management-port", 0, "port of /health (0 = any free port; Keycloak's own default 9000 would collide between servers)")
	fs.Var((*stringList)(&o.realms), "import-realm", "realm-export JSON file to import at start, unless the realm exists (repeatable)")
	fs.StringVar(&o.dataDir, "data-dir", "", "keep the server's home and database here across restarts (default: a temporary one)")
	fs.BoolVar(&o.devRealm, "dev-realm", false, "also import the project's dev realm ("+kcemu.DevRealmName+"), as keycloak-emulator does")
	fs.StringVar(&o.version, "keycloak-version", keycloakserver.DefaultVersion, "Keycloak release to fetch and run")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.port < 0 || o.port > 65535 {
		return o, fmt.Errorf("--http-port %d out of range", o.port)
	}
	return o, nil
}

func indexOf(args []string, s string) int {
	for i, a := range args {
		if a == s {
			return i
		}
	}
	return -1
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) (int, error) {
	o, err := parseArgs(args, stderr)
	if err != nil {
		return 2, err
	}
	addr, err := listenAddr(o.host, o.port)
	if err != nil {
		return 1, err
	}
	if o.devRealm {
		file, err := writeDevRealm()
		if err != nil {
			return 1, err
		}
		defer os.Remove(file) // Start copies it into the server's home
		o.realms = append(o.realms, file)
	}
	opts := keycloakserver.Options{
		Version: o.version, DataDir: o.dataDir, Addr: addr, ManagementPort: o.managementPort,
		AdminUser: getenv("KC_BOOTSTRAP_ADMIN_USERNAME"), AdminPassword: getenv("KC_BOOTSTRAP_ADMIN_PASSWORD"),
		ImportRealms: o.realms, Logs: stderr,
	}
	var logFile *os.File
	if o.command != nil {
		// The command's output is what the caller reads; Keycloak's goes to a file.
		if logFile, err = os.CreateTemp("", "keycloak-real-*.log"); err != nil {
			return 1, err
		}
		defer logFile.Close()
		opts.Logs = logFile
	}
	begin := time.Now()
	srv, err := keycloakserver.Start(ctx, opts)
	if err != nil {
		return 1, err
	}
	defer func() {
		if err := srv.Stop(); err != nil {
			fmt.Fprintln(stderr, "keycloak-real:", err)
		}
	}()
	fmt.Fprintf(stderr, "keycloak-real: Keycloak %s ready in %s at %s (health %s/health/ready)\n",
		o.version, time.Since(begin).Round(time.Second), srv.URL(), srv.ManagementURL())
	if o.command == nil {
		<-ctx.Done()
		fmt.Fprintln(stderr, "keycloak-real: stopping")
		return 0, nil
	}
	fmt.Fprintf(stderr, "keycloak-real: its log is %s; running %s\n", logFile.Name(), strings.Join(o.command, " "))
	code, err := runCommand(ctx, o.command, srv.Env())
	if code == 0 && err == nil {
		_ = os.Remove(logFile.Name()) // kept only to look into a failure
	}
	return code, err
}

// writeDevRealm puts the dev realm export where --import-realm can read it.
func writeDevRealm() (string, error) {
	f, err := os.CreateTemp("", "devrealm-*.json")
	if err != nil {
		return "", fmt.Errorf("dev realm: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(kcemu.DevRealmJSON()); err != nil {
		return "", fmt.Errorf("dev realm: %w", err)
	}
	return f.Name(), nil
}

// listenAddr is host:port, a free port when port is 0.
func listenAddr(host string, port int) (string, error) {
	if port != 0 {
		return net.JoinHostPort(host, strconv.Itoa(port)), nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("find a free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// runCommand runs argv with env added and returns its exit status; a signal
// to us is passed on to it, and it is waited for.
func runCommand(ctx context.Context, argv, env []string) (int, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return 1, fmt.Errorf("run %s: %w", filepath.Base(argv[0]), err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = cmd.Process.Signal(syscall.SIGTERM)
		err = <-done
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if code := exit.ExitCode(); code > 0 {
			return code, nil
		}
		return 1, nil // killed by a signal
	}
	if err != nil {
		return 1, err
	}
	return 0, nil
}
