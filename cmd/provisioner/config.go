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
	"github.com/eo-workspaces/provisioner/sagas/keycloak"
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
	KeycloakTokenShape   string
	KeycloakSignIn       []string
	KeycloakWSScopes     bool
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
	// ReconcileInterval: the drift sweep's period, 0 disabling it.
	ReconcileInterval time.Duration
	// ReconcileKeep: how long a sweep's reconcile command is kept, 0 for good.
	ReconcileKeep time.Duration
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
	fs.StringVar(&c.KeycloakTokenShape, "keycloak-token-shape", "", "what members' tokens carry of their workspaces, set by the worker on --keycloak-sign-in-clients at start: eoepca (each workspace in aud and resource_access; grows with the memberships) or compact (none, the --admin-role kept; the same size at any count); empty leaves the realm as it is")
	fs.StringSliceVar(&c.KeycloakSignIn, "keycloak-sign-in-clients", nil, "clients users sign in with, whose scope --keycloak-token-shape sets")
	fs.BoolVar(&c.KeycloakWSScopes, "keycloak-workspace-scopes", false, "give each workspace a client scope workspace:<name>, optional on --keycloak-sign-in-clients: a token asked for with it carries that workspace alone")
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
	fs.StringVar(&c.WorkerID, "worker-id", "", "this process's name in saga leases and the projection's lease, unique among live processes of its role; a restart under the same name resumes its sagas and the projection at once instead of after the lease expires (default: hostname plus a random suffix)")
	fs.DurationVar(&c.MaxRetryElapsed, "max-retry-elapsed", sagas.DefaultMaxRetryElapsed, "how long a step retries a provider outage before the saga fails")
	fs.DurationVar(&c.NameHold, "name-hold", worker.DefaultNameHold, "how long a deleted workspace's name is refused to new creates (0: freed at once); a platform admin may release one early")
	fs.DurationVar(&c.ReconcileInterval, "reconcile-interval", worker.DefaultReconcileInterval, "how often the drift sweep compares every ready or degraded workspace with Keycloak and MinIO and repairs what is ours (0: never; POST /workspaces/{name}/reconcile still works)")
	fs.DurationVar(&c.ReconcileKeep, "reconcile-keep", worker.DefaultReconcileKeep, "how long WORKSPACE_COMMANDS keeps each reconcile command the drift sweep publishes (0: for good, like every other command)")
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
	if err := c.validateTokenShape(); err != nil {
		return err
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

func (c *config) validateTokenShape() error {
	shape, err := keycloak.ParseTokenShape(c.KeycloakTokenShape)
	switch {
	case err != nil:
		return fmt.Errorf("--keycloak-token-shape: %w", err)
	case shape != keycloak.TokenShapeAsIs && len(c.KeycloakSignIn) == 0:
		return fmt.Errorf("--keycloak-sign-in-clients: required by --keycloak-token-shape %s", shape)
	case c.KeycloakWSScopes && len(c.KeycloakSignIn) == 0:
		return errors.New("--keycloak-sign-in-clients: required by --keycloak-workspace-scopes")
	}
	return nil
}

// envName is the environment variable of a flag, given with or without
// its leading dashes.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(strings.TrimPrefix(flag, "--"), "-", "_"))
}
