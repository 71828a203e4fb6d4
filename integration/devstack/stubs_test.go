package devstack

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// envStubs tells this test binary, started under another name by devstack,
// to play that part instead of running tests.
const envStubs = "DEVSTACK_TEST_STUBS"

// runStub plays the part named by the binary's name, if asked to; it
// reports whether it did.
func runStub() bool {
	if os.Getenv(envStubs) != "1" {
		return false
	}
	var err error
	switch filepath.Base(os.Args[0]) {
	case "provisioner":
		err = stubProvisioner(os.Args[1:])
	case "keycloak-emulator":
		err = stubKeycloak(os.Args[1:])
	default:
		return false
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "stub:", err)
		os.Exit(1)
	}
	os.Exit(0)
	return true
}

// recordArgs writes the flags a stub was given to dataDir/args.json, so the
// test can check how devstack wired the parts together.
func recordArgs(fs *flag.FlagSet, dataDir string) error {
	got := map[string]string{}
	fs.Visit(func(f *flag.Flag) { got[f.Name] = f.Value.String() })
	for _, k := range []string{"KC_BOOTSTRAP_ADMIN_USERNAME", "KC_BOOTSTRAP_ADMIN_PASSWORD"} {
		got["env:"+k] = os.Getenv(k)
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}
	b, err := json.Marshal(got)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dataDir, "args.json"), b, 0o644)
}

// stubProvisioner stands in for .bin/provisioner until it exists: the flags
// devstack passes, an embedded NATS server with JetStream on --nats-listen,
// and /readyz on --http-addr.
func stubProvisioner(args []string) error {
	fs := flag.NewFlagSet("provisioner", flag.ContinueOnError)
	httpAddr := fs.String("http-addr", "", "")
	dataDir := fs.String("data-dir", "", "")
	natsListen := fs.String("nats-listen", "", "")
	for _, name := range []string{"keycloak-url", "keycloak-realm", "keycloak-client-id", "keycloak-client-secret",
		"s3-endpoint", "s3-region", "minio-access-key", "minio-secret-key", "secret-key", "worker-id"} {
		fs.String(name, "", "")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := recordArgs(fs, *dataDir); err != nil {
		return err
	}
	host, portStr, err := net.SplitHostPort(*natsListen)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return err
	}
	ns, err := server.NewServer(&server.Options{Host: host, Port: port, JetStream: true, StoreDir: filepath.Join(*dataDir, "nats")})
	if err != nil {
		return err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		return fmt.Errorf("nats not ready on %s", *natsListen)
	}
	defer ns.Shutdown()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	return serveUntilTerm(*httpAddr, mux)
}

// stubKeycloak stands in for .bin/keycloak-emulator while cmd/keycloak-emulator
// has no code yet: the flags devstack passes and the readiness document.
func stubKeycloak(args []string) error {
	fs := flag.NewFlagSet("keycloak-emulator", flag.ContinueOnError)
	host := fs.String("http-host", "", "")
	port := fs.String("http-port", "", "")
	fs.Bool("dev-realm", false, "")
	dataDir := fs.String("data-dir", "", "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := recordArgs(fs, *dataDir); err != nil {
		return err
	}
	base := "http://" + net.JoinHostPort(*host, *port)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /realms/master/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": base + "/realms/master"})
	})
	return serveUntilTerm(net.JoinHostPort(*host, *port), mux)
}

func serveUntilTerm(addr string, h http.Handler) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	return srv.Close()
}
