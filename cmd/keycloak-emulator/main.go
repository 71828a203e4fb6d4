// Command keycloak-emulator runs the Keycloak emulator (stack/kcemu)
// with Keycloak's own option names, so suites written for a real Keycloak can
// point at it:
//
//	keycloak-emulator [start-dev] --http-host 127.0.0.1 --http-port 8180 --import-realm realm.json
//
// The master realm's admin comes from KC_BOOTSTRAP_ADMIN_USERNAME and
// KC_BOOTSTRAP_ADMIN_PASSWORD (default admin/admin), as in Keycloak 26.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "keycloak-emulator:", err)
		os.Exit(1)
	}
}

// options are the command line, in Keycloak's terms.
type options struct {
	host     string
	port     int
	realms   []string
	dataDir  string
	devRealm bool
	fresh    bool
	verbose  bool
	version  string
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func parseArgs(args []string, stderr io.Writer) (options, error) {
	// People paste Keycloak command lines; its subcommand means nothing here.
	if len(args) > 0 && (args[0] == "start-dev" || args[0] == "start") {
		args = args[1:]
	}
	var o options
	fs := flag.NewFlagSet("keycloak-emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.host, "http-host", "127.0.0.1", "address to listen on")
	fs.IntVar(&o.port, "http-port", 8080, "port to listen on (0 = any free port)")
	fs.Var((*stringList)(&o.realms), "import-realm", "realm-export JSON file to import (repeatable)")
	fs.StringVar(&o.dataDir, "data-dir", "", "keep state in this directory across restarts (default: memory only)")
	fs.BoolVar(&o.devRealm, "dev-realm", false, "also import the built-in dev realm ("+kcemu.DevRealmName+")")
	fs.BoolVar(&o.fresh, "fresh", false, "discard the state kept in --data-dir before starting")
	fs.BoolVar(&o.verbose, "verbose", false, "log every request")
	fs.StringVar(&o.version, "keycloak-version", kcemu.DefaultVersion, "Keycloak release to follow where 26.x releases differ (26.6 and later answer a bad password with 400, earlier ones 401)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.port < 0 || o.port > 65535 {
		return o, fmt.Errorf("--http-port %d out of range", o.port)
	}
	if o.fresh && o.dataDir == "" {
		return o, errors.New("--fresh needs --data-dir")
	}
	return o, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	o, err := parseArgs(args, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(o.verbose)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	if o.fresh {
		// Only the emulator's own files: the directory may hold other parts' state.
		if err := kcemu.RemoveState(o.dataDir); err != nil {
			return fmt.Errorf("--fresh: %w", err)
		}
	}
	srv, err := kcemu.Start(ctx, kcemu.Config{
		Addr:          net.JoinHostPort(o.host, strconv.Itoa(o.port)),
		AdminUser:     getenv("KC_BOOTSTRAP_ADMIN_USERNAME"),
		AdminPassword: getenv("KC_BOOTSTRAP_ADMIN_PASSWORD"),
		Realms:        o.realms,
		DevRealm:      o.devRealm,
		DataDir:       o.dataDir,
		Version:       o.version,
		Logger:        log,
	})
	if err != nil {
		return err
	}
	log.Info("keycloak emulator ready", zap.String("url", srv.URL()),
		zap.String("readiness", srv.URL()+"/realms/master/.well-known/openid-configuration"))
	<-ctx.Done()
	log.Info("keycloak emulator stopping")
	return srv.Close()
}

func newLogger(verbose bool) (*zap.Logger, error) {
	cfg := zap.NewProductionConfig()
	if verbose {
		cfg.Level = zap.NewAtomicLevelAt(zap.DebugLevel)
	}
	log, err := cfg.Build()
	if err != nil {
		return nil, fmt.Errorf("logger: %w", err)
	}
	return log, nil
}
