package main

import (
	"fmt"
	"io"
	"path/filepath"
	"text/template"
)

var bannerTmpl = template.Must(template.New("banner").Parse(`
================================================================================
 Local stack ready. Settings for tools: {{.EnvFile}}
 State kept in {{.DataDir}} (start with --fresh to wipe it). Ctrl-C stops it all.

   Workspace API   {{.API}}/workspaces    (OpenAPI: {{.API}}/openapi.yaml)
   Operator page   {{.API}}/ui/    (sign in as a dev user)
   Keycloak        {{.Keycloak}}    realm {{.Realm}}, master admin {{.KCUser}} / {{.KCPass}}
   NATS            {{.NATS}}
   MinIO S3        {{.MinIO}}    root {{.MinIOUser}} / {{.MinIOPass}}
   MinIO console   {{.Console}}

 Dev users, password "changeme": example-admin (workspace API admin),
 example-user-1, example-user-2. Public client for the password grant: demo.

 Try it from another terminal in the repository: wsctl finds this stack by itself
 and signs in as example-admin:

   go run ./cmd/wsctl create demo --owner example-user-1 --wait
   go run ./cmd/wsctl list
   WSCTL_PASSWORD=changeme go run ./cmd/wsctl --user example-user-1 get ws-demo --show-secrets

 Or with curl and jq:

   set -a; . .dev/stack.env; set +a
   TOKEN=$(curl -s "$KEYCLOAK_URL/realms/$KEYCLOAK_REALM/protocol/openid-connect/token" \
     -d grant_type=password -d client_id=demo -d username=example-admin -d password=changeme \
     | jq -r .access_token)
   curl -s -X POST "$WORKSPACE_API" -H "Authorization: Bearer $TOKEN" \
     -H 'Content-Type: application/json' \
     -d '{"preferred_name":"demo","default_owner":"example-user-1"}'
   # repeat until it says "ready":
   curl -s "$WORKSPACE_API/ws-demo" -H "Authorization: Bearer $TOKEN" | jq -r .status
   # the credentials' AWS_* keys are what the AWS CLI reads:
   eval "$(curl -s "$WORKSPACE_API/ws-demo" -H "Authorization: Bearer $TOKEN" | jq -r \
     '.storage.credentials | to_entries[] | select(.key | startswith("AWS_")) | "export \(.key)=\(.value)"')"
   echo hello > hello.txt
   aws s3 cp hello.txt s3://ws-demo/hello.txt && aws s3 ls s3://ws-demo/

 No AWS CLI? Use mc (mc alias set ws "$AWS_ENDPOINT_URL" "$AWS_ACCESS_KEY_ID"
 "$AWS_SECRET_ACCESS_KEY"; mc cp hello.txt ws/ws-demo/), or Go with minio-go:
 minio.New(host, &minio.Options{Creds: credentials.NewStaticV4(access, secret, "")}).
================================================================================
`))

func printBanner(out io.Writer, cfg Config, p Ports) {
	rel := func(path string) string {
		if r, err := filepath.Rel(cfg.Root, path); err == nil {
			return r
		}
		return path
	}
	err := bannerTmpl.Execute(out, map[string]any{
		"EnvFile":   rel(cfg.stackEnvPath()),
		"DataDir":   rel(cfg.dataDir()),
		"API":       fmt.Sprintf("http://127.0.0.1:%d", p.API),
		"Keycloak":  fmt.Sprintf("http://127.0.0.1:%d", p.Keycloak),
		"Realm":     devRealm,
		"KCUser":    cfg.KCAdminUser,
		"KCPass":    cfg.KCAdminPass,
		"NATS":      fmt.Sprintf("nats://127.0.0.1:%d", p.NATS),
		"MinIO":     fmt.Sprintf("http://127.0.0.1:%d", p.MinIO),
		"MinIOUser": cfg.MinIOUser,
		"MinIOPass": cfg.MinIOPass,
		"Console":   fmt.Sprintf("http://127.0.0.1:%d", p.MinIOConsole),
	})
	if err != nil {
		fmt.Fprintln(out, "devstack: banner:", err)
	}
}
