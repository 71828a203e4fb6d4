package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/eo-workspaces/provisioner/auth"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/handlers/ui"
	"github.com/eo-workspaces/provisioner/handlers/worker"
	"github.com/eo-workspaces/provisioner/sagas"
	"github.com/eo-workspaces/provisioner/sagas/objectstore"
)

// envPrefix names every environment variable that sets a flag:
// --http-addr is PROVISIONER_HTTP_ADDR.
const envPrefix = "PROVISIONER_"

// config is every setting of the binary, filled from flags and env.
type config struct {
	Roles    []string
	HTTPAddr string
	DataDir  string
	LogLevel string
	LogJSON  bool

	NATSURL    string
	NATSListen string
	Replicas   int
	Partitions int

	KeycloakURL          string
	KeycloakRealm        string
	KeycloakClientID     string
	KeycloakClientSecret string
	OIDCAudience         string
	AdminRole            string
	InsecureNoAuth       bool
	UIKeycloakURL        string
	UIClientID           string

	S3Endpoint     string
	S3Region       string
	S3PublicURL    string
	APIPublicURL   string
	MinIOAccessKey string
	MinIOSecretKey string
	SecretKey      string

	Concurrency     int
	SideConcurrency int
	WorkerID        string
	MaxRetryElapsed time.Duration
	NameHold        time.Duration
	ShutdownTimeout time.Duration
}

const (
	roleAPI        = "api"
	roleWorker     = "worker"
	roleProjection = "projection"
)

func (c *config) bind(fs *pflag.FlagSet) {
	fs.StringSliceVar(&c.Roles, "roles", []string{roleAPI, roleWorker, roleProjection}, "components to run: api, worker, projection")
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:8080", "address of the HTTP API")
	fs.StringVar(&c.DataDir, "data-dir", "data", "directory for the embedded NATS store")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&c.LogJSON, "log-json", true, "JSON logs (false: human-readable console logs)")
	fs.StringVar(&c.NATSURL, "nats-url", "", "external NATS server or cluster; empty runs an embedded server")
	fs.StringVar(&c.NATSListen, "nats-listen", "", "client address of the embedded NATS server (host:port); empty: in-process only")
	fs.IntVar(&c.Replicas, "nats-replicas", events.DefaultReplicas, "stream and KV replicas (3 on a cluster)")
	fs.IntVar(&c.Partitions, "nats-partitions", 0, fmt.Sprintf("command partitions shared by the workers, fixed when the deployment is first set up; 0: as set up (%d on a new one)", events.DefaultPartitions))
	fs.StringVar(&c.KeycloakURL, "keycloak-url", "", "Keycloak base URL, without /auth")
	fs.StringVar(&c.KeycloakRealm, "keycloak-realm", "eoepca", "realm of the workspaces")
	fs.StringVar(&c.KeycloakClientID, "keycloak-client-id", "workspace-worker", "confidential client the worker logs in with")
	fs.StringVar(&c.KeycloakClientSecret, "keycloak-client-secret", "", "its secret")
	fs.StringVar(&c.OIDCAudience, "oidc-audience", "workspace-api", "audience API tokens must carry")
	fs.StringVar(&c.AdminRole, "admin-role", auth.DefaultAdminRole, "realm role of platform admins")
	fs.StringVar(&c.UIKeycloakURL, "ui-keycloak-url", "", "Keycloak base URL as browsers reach it, for the operator page's sign-in (default: --keycloak-url)")
	fs.StringVar(&c.UIClientID, "ui-client-id", ui.DefaultClientID, "public client the operator page signs in with (authorization code and PKCE)")
	fs.BoolVar(&c.InsecureNoAuth, "insecure-no-auth", false, "accept every API call as a platform admin (tests and demos only)")
	fs.StringVar(&c.S3Endpoint, "s3-endpoint", "", "MinIO endpoint URL, e.g. http://127.0.0.1:9000")
	fs.StringVar(&c.S3Region, "s3-region", objectstore.DefaultRegion, "region reported with the credentials")
	fs.StringVar(&c.S3PublicURL, "s3-public-url", "", "endpoint URL given to users (default: --s3-endpoint)")
	fs.StringVar(&c.APIPublicURL, "api-public-url", "", "the API's base URL as clients reach it, for share links (default: the request's host)")
	fs.StringVar(&c.MinIOAccessKey, "minio-access-key", "", "MinIO admin access key")
	fs.StringVar(&c.MinIOSecretKey, "minio-secret-key", "", "MinIO admin secret key")
	fs.StringVar(&c.SecretKey, "secret-key", "", "passphrase that encrypts stored credentials at rest")
	fs.IntVar(&c.Concurrency, "concurrency", worker.DefaultConcurrency, "workspaces provisioned in parallel")
	fs.IntVar(&c.SideConcurrency, "side-concurrency", 0, "membership, key and quota changes in parallel, in slots of their own so creates held up by an outage cannot stall them (default: --concurrency)")
	fs.StringVar(&c.WorkerID, "worker-id", "", "this worker's name in saga leases, unique among live workers; a restart under the same name resumes its sagas at once instead of after the lease expires (default: hostname plus a random suffix)")
	fs.DurationVar(&c.MaxRetryElapsed, "max-retry-elapsed", sagas.DefaultMaxRetryElapsed, "how long a step retries a provider outage before the saga fails")
	fs.DurationVar(&c.NameHold, "name-hold", worker.DefaultNameHold, "how long a deleted workspace's name is refused to new creates (0: freed at once); a platform admin may release one early")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long SIGTERM waits for in-flight work")
}

// applyEnv sets every flag not given on the command line from its
// environment variable, so flags win over env.
func applyEnv(fs *pflag.FlagSet) error {
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			return
		}
		name := envName(f.Name)
		if v, ok := os.LookupEnv(name); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
	})
	return errors.Join(errs...)
}

func (c *config) has(role string) bool { return slices.Contains(c.Roles, role) }

// Validate names the first setting that cannot work.
func (c *config) Validate() error {
	if len(c.Roles) == 0 {
		return errors.New("--roles: name at least one of api, worker, projection")
	}
	for _, r := range c.Roles {
		if r != roleAPI && r != roleWorker && r != roleProjection {
			return fmt.Errorf("--roles: unknown role %q (api, worker, projection)", r)
		}
	}
	if c.NATSURL == "" && c.DataDir == "" {
		return errors.New("--data-dir: required for the embedded NATS server (or give --nats-url)")
	}
	if c.has(roleWorker) {
		for flag, v := range map[string]string{
			"--keycloak-url": c.KeycloakURL, "--keycloak-client-secret": c.KeycloakClientSecret,
			"--s3-endpoint": c.S3Endpoint, "--minio-access-key": c.MinIOAccessKey, "--minio-secret-key": c.MinIOSecretKey,
			"--secret-key": c.SecretKey,
		} {
			if v == "" {
				return fmt.Errorf("%s: required by the worker (env %s)", flag, envName(flag))
			}
		}
	}
	if c.has(roleAPI) {
		if c.SecretKey == "" {
			return fmt.Errorf("--secret-key: required by the API to read credentials (env %s)", envName("--secret-key"))
		}
		if !c.InsecureNoAuth && c.KeycloakURL == "" {
			return errors.New("--keycloak-url: required to verify API tokens (or --insecure-no-auth for tests)")
		}
	}
	if c.Concurrency < 1 {
		return fmt.Errorf("--concurrency: %d, want at least 1", c.Concurrency)
	}
	return nil
}

// envName is the environment variable of a flag, given with or without
// its leading dashes.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(strings.TrimPrefix(flag, "--"), "-", "_"))
}
