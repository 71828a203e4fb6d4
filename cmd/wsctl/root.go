package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// options are the flags every command shares; each falls back to its
// WSCTL_* variable, then (for the connection) to .dev/stack.env.
type options struct {
	api          string
	token        string
	keycloakURL  string
	realm        string
	clientID     string
	clientSecret string
	user         string
	natsURL      string
	output       string
	io           streams
	cl           *client // built on first use
}

// envOf maps each shared flag to the variable that supplies it.
var envOf = map[string]string{
	"api": "WSCTL_API", "token": "WSCTL_TOKEN", "keycloak-url": "WSCTL_KEYCLOAK_URL",
	"realm": "WSCTL_REALM", "client-id": "WSCTL_CLIENT_ID", "client-secret": "WSCTL_CLIENT_SECRET",
	"user": "WSCTL_USER", "nats-url": "WSCTL_NATS_URL", "output": "WSCTL_OUTPUT",
}

func newRoot(s streams) *cobra.Command {
	o := &options{io: s}
	root := &cobra.Command{
		Use:   "wsctl",
		Short: "Operate workspaces: create, watch, retry, manage members, follow the audit trail",
		Long: `wsctl drives the workspace API (and NATS for the audit trail and direct commands).

Sign-in, first found: --token or WSCTL_TOKEN; a password grant (--user, password from
WSCTL_PASSWORD or prompted) or a client-credentials grant (--client-id with
--client-secret) against --keycloak-url and --realm; with none of these, the dev stack
described by .dev/stack.env (searched for from the current directory up), as its
platform admin.

Exit codes: 0 success, 1 the operation failed, 2 bad usage.`,
		Example: `  go tool task dev &                         # the dev stack writes .dev/stack.env
  wsctl create demo --owner example-user-1 --wait
  wsctl list --status failed
  wsctl retry --all-failed --dry-run`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return o.resolveFlags(cmd.Flags()) },
	}
	root.SetOut(s.out)
	root.SetErr(s.err)
	root.SetIn(s.in)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{msg: err.Error()} })
	o.bindFlags(root.PersistentFlags())
	root.AddCommand(newCreate(o), newGet(o), newList(o), newDelete(o), newMembers(o), newRetry(o),
		newEvents(o), newAudit(o), newPublish(o), newCredentials(o), newShares(o), newQuota(o), newDLQ(o), newReconcile(o))
	return root
}

func (o *options) bindFlags(f *pflag.FlagSet) {
	f.StringVar(&o.api, "api", "", "API base URL, e.g. http://127.0.0.1:8080 (env WSCTL_API)")
	f.StringVar(&o.token, "token", "", "bearer token to send as is (env WSCTL_TOKEN)")
	f.StringVar(&o.keycloakURL, "keycloak-url", "", "Keycloak base URL, no /auth (env WSCTL_KEYCLOAK_URL)")
	f.StringVar(&o.realm, "realm", "", "Keycloak realm (env WSCTL_REALM; default eoepca)")
	f.StringVar(&o.clientID, "client-id", "", "OIDC client for the grant (env WSCTL_CLIENT_ID; default demo)")
	f.StringVar(&o.clientSecret, "client-secret", "", "client secret: client-credentials grant when no --user (env WSCTL_CLIENT_SECRET)")
	f.StringVar(&o.user, "user", "", "user for the password grant; password from WSCTL_PASSWORD or prompted (env WSCTL_USER)")
	f.StringVar(&o.natsURL, "nats-url", "", "NATS server for audit and publish (env WSCTL_NATS_URL)")
	f.StringVarP(&o.output, "output", "o", "table", "output format: table or json (audit: jsonl)")
}

// resolveFlags fills each flag left unset from its variable and checks
// the output format.
func (o *options) resolveFlags(f *pflag.FlagSet) error {
	for name, env := range envOf {
		fl := f.Lookup(name)
		if fl == nil || fl.Changed {
			continue
		}
		if v, ok := os.LookupEnv(env); ok && v != "" {
			if err := fl.Value.Set(v); err != nil {
				return usagef("%s=%q: %v", env, v, err)
			}
		}
	}
	switch o.output {
	case "table", "json", "jsonl":
		return nil
	}
	return usagef("-o %q: want table, json or jsonl", o.output)
}

// wantJSON tells a machine-readable output.
func (o *options) wantJSON() bool { return o.output == "json" || o.output == "jsonl" }

// apiBase is the API's base URL: from --api or WSCTL_API, else the dev
// stack's WORKSPACE_API (which names the /workspaces collection).
func (o *options) apiBase() (string, error) {
	if o.api != "" {
		return trimAPI(o.api), nil
	}
	env, path, err := findStackEnv()
	if err != nil {
		return "", usagef("no API given: set --api or WSCTL_API, or start the dev stack (go tool task dev) so .dev/stack.env exists (%v)", err)
	}
	v := env["WORKSPACE_API"]
	if v == "" {
		return "", fmt.Errorf("%s has no WORKSPACE_API", path)
	}
	return trimAPI(v), nil
}

func trimAPI(u string) string {
	return strings.TrimSuffix(strings.TrimSuffix(u, "/"), "/workspaces")
}

// nats returns the NATS URL: --nats-url, WSCTL_NATS_URL or the dev stack's.
func (o *options) nats() (string, error) {
	if o.natsURL != "" {
		return o.natsURL, nil
	}
	env, _, err := findStackEnv()
	if err != nil || env["NATS_URL"] == "" {
		return "", usagef("no NATS server given: set --nats-url or WSCTL_NATS_URL, or start the dev stack (go tool task dev)")
	}
	return env["NATS_URL"], nil
}
