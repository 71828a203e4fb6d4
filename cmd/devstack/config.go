package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The Keycloaks devstack can run (--keycloak).
const (
	keycloakReal     = "real"
	keycloakEmulator = "emulator"
)

// Fixed names of the dev realm and its worker client (--dev-realm of
// keycloak-real and of keycloak-emulator).
const (
	devRealm         = "eoepca"
	workerClientID   = "workspace-worker"
	workerSecret     = "workspace-worker-secret"
	defaultS3Region  = "us-east-1"
	defaultKCAdmin   = "admin"
	defaultMinIOUser = "minioadmin"
	// defaultSecretKey encrypts the provisioner's stored secrets. It must stay
	// the same across restarts, or the kept state cannot be read back.
	defaultSecretKey = "6465762d6f6e6c792d6b65792d6e6f742d666f722d70726f64756374696f6e21"
)

// Config is everything devstack needs, filled from flags and the environment.
type Config struct {
	Root         string // repository root; state goes under Root/.dev
	BinDir       string // where minio, keycloak-real or keycloak-emulator, and provisioner are
	Fresh        bool   // wipe .dev/data before starting
	Keycloak     string // keycloakReal or keycloakEmulator
	Ports        Ports  // 0 means: the port used last time if free, else any free one
	KCAdminUser  string
	KCAdminPass  string
	MinIOUser    string
	MinIOPass    string
	SecretKey    string
	StartTimeout time.Duration
	StopTimeout  time.Duration
}

// Ports are the loopback ports of the stack's parts.
type Ports struct {
	API          int `json:"api"`
	NATS         int `json:"nats"`
	Keycloak     int `json:"keycloak"`
	MinIO        int `json:"minio"`
	MinIOConsole int `json:"minio_console"`
}

// fields ties each port to its flag and environment variable, in one place.
func (p *Ports) fields() []struct {
	flag, env string
	v         *int
} {
	return []struct {
		flag, env string
		v         *int
	}{
		{"api-port", "DEV_API_PORT", &p.API},
		{"nats-port", "DEV_NATS_PORT", &p.NATS},
		{"keycloak-port", "DEV_KEYCLOAK_PORT", &p.Keycloak},
		{"minio-port", "DEV_MINIO_PORT", &p.MinIO},
		{"minio-console-port", "DEV_MINIO_CONSOLE_PORT", &p.MinIOConsole},
	}
}

// parseConfig reads flags, then fills what they leave unset from env
// (getenv), then defaults. Flags win over the environment.
func parseConfig(args []string, getenv func(string) string, root string, stderr io.Writer) (Config, error) {
	cfg := Config{Root: root}
	fs := flag.NewFlagSet("devstack", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.BinDir, "bin-dir", envOr(getenv, "DEV_BIN_DIR", filepath.Join(root, ".bin")), "directory holding minio, keycloak-emulator and provisioner (env DEV_BIN_DIR)")
	fs.BoolVar(&cfg.Fresh, "fresh", false, "delete .dev/data first and start from nothing")
	fs.StringVar(&cfg.Keycloak, "keycloak", envOr(getenv, "DEV_KEYCLOAK", keycloakReal), "which Keycloak to run: "+keycloakReal+" (the server itself, needs Java 17+ and Maven) or "+keycloakEmulator+" (env DEV_KEYCLOAK)")
	// The real Keycloak's first start on a busy two-core machine took 2.5 minutes.
	fs.DurationVar(&cfg.StartTimeout, "start-timeout", 5*time.Minute, "how long every part may take to answer")
	fs.DurationVar(&cfg.StopTimeout, "stop-timeout", 10*time.Second, "how long a part may take to stop after SIGTERM before SIGKILL")
	for _, f := range cfg.Ports.fields() {
		def := 0
		if s := getenv(f.env); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				return Config{}, fmt.Errorf("%s=%q: not a port number", f.env, s)
			}
			def = n
		}
		fs.IntVar(f.v, f.flag, def, fmt.Sprintf("port on 127.0.0.1 (env %s; default: last one used if free, else any free)", f.env))
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	cfg.KCAdminUser = envOr(getenv, "KC_BOOTSTRAP_ADMIN_USERNAME", defaultKCAdmin)
	cfg.KCAdminPass = envOr(getenv, "KC_BOOTSTRAP_ADMIN_PASSWORD", defaultKCAdmin)
	cfg.MinIOUser = envOr(getenv, "MINIO_ROOT_USER", defaultMinIOUser)
	cfg.MinIOPass = envOr(getenv, "MINIO_ROOT_PASSWORD", defaultMinIOUser)
	cfg.SecretKey = envOr(getenv, "DEV_SECRET_KEY", defaultSecretKey)
	if abs, err := filepath.Abs(cfg.BinDir); err == nil {
		cfg.BinDir = abs
	}
	return cfg, cfg.Validate()
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// Validate names the first setting that cannot work.
func (c Config) Validate() error {
	if c.Root == "" || c.BinDir == "" {
		return errors.New("root and bin-dir must be set")
	}
	for _, f := range c.Ports.fields() {
		if *f.v < 0 || *f.v > 65535 {
			return fmt.Errorf("--%s %d: not a port number", f.flag, *f.v)
		}
	}
	if c.Keycloak != keycloakReal && c.Keycloak != keycloakEmulator {
		return fmt.Errorf("--keycloak %q: want %s or %s", c.Keycloak, keycloakReal, keycloakEmulator)
	}
	if c.StartTimeout <= 0 || c.StopTimeout <= 0 {
		return errors.New("--start-timeout and --stop-timeout must be positive")
	}
	for name, v := range map[string]string{
		"KC_BOOTSTRAP_ADMIN_USERNAME": c.KCAdminUser, "KC_BOOTSTRAP_ADMIN_PASSWORD": c.KCAdminPass,
		"MINIO_ROOT_USER": c.MinIOUser, "MINIO_ROOT_PASSWORD": c.MinIOPass, "DEV_SECRET_KEY": c.SecretKey,
	} {
		// stack.env quotes values with single quotes; these two cannot be written.
		if strings.ContainsAny(v, "'\n") {
			return fmt.Errorf("%s must not contain a single quote or a newline", name)
		}
	}
	if len(c.MinIOUser) < 3 || len(c.MinIOPass) < 8 {
		return errors.New("MINIO_ROOT_USER needs at least 3 characters and MINIO_ROOT_PASSWORD at least 8")
	}
	return nil
}

// Paths of the stack's files under the repository root.
func (c Config) devDir() string       { return filepath.Join(c.Root, ".dev") }
func (c Config) dataDir() string      { return filepath.Join(c.devDir(), "data") }
func (c Config) stackEnvPath() string { return filepath.Join(c.devDir(), "stack.env") }
func (c Config) lockPath() string     { return filepath.Join(c.devDir(), "dev.lock") }
func (c Config) portsPath() string    { return filepath.Join(c.dataDir(), "ports.json") }

// keycloakBinary is the program that runs the chosen Keycloak.
func (c Config) keycloakBinary() string { return "keycloak-" + c.Keycloak }

// keycloakDataDir keeps each Keycloak's state apart: the emulator's state
// file, or the real server's home with its dev-file database.
func (c Config) keycloakDataDir() string {
	if c.Keycloak == keycloakReal {
		return filepath.Join(c.dataDir(), "keycloak-real")
	}
	return filepath.Join(c.dataDir(), "keycloak")
}
