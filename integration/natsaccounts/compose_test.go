package natsaccounts

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/eo-workspaces/provisioner/stack/keycloakserver"
)

// provisionerImage is the image compose builds from this repository.
const provisionerImage = "workspaces-provisioner:dev"

// TestCompose checks that deploy/docker-compose.yml runs issue 22's
// topology, with the images the project pins and flags, ports and
// variables the binary knows.
func TestCompose(t *testing.T) {
	c := yamlDocs(t, filepath.Join(deployDir, "docker-compose.yml"))[0]
	services := map[string]map[string]any{}
	for name, s := range c["services"].(map[string]any) {
		services[name] = s.(map[string]any)
	}
	for _, s := range []string{"nats-1", "nats-2", "nats-3", "minio", "keycloak"} {
		if services[s] == nil {
			t.Fatalf("service %s missing", s)
		}
	}
	checkImagesPinned(t, services)
	checkKeycloakService(t, services["keycloak"])
	checkNATSServices(t, services)
	checkProvisionerServices(t, services, helpFlags(t))
	checkDockerfile(t, services)
	for name, svc := range services {
		for _, p := range asList(svc["ports"]) {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("%s: port %s is published beyond loopback", name, p)
			}
		}
	}
}

// The Keycloak compose file for the contract suite runs the release the
// tests pin, like the full stack's.
func TestKeycloakComposeRunsThePinnedRelease(t *testing.T) {
	c := yamlDocs(t, filepath.Join(deployDir, "docker-compose.keycloak.yml"))[0]
	kc, _ := c["services"].(map[string]any)["keycloak"].(map[string]any)
	if want := "quay.io/keycloak/keycloak:" + keycloakserver.DefaultVersion; kc["image"] != want {
		t.Errorf("keycloak image %v, want %s (stack/keycloakserver.DefaultVersion)", kc["image"], want)
	}
}

// checkImagesPinned: every image but the one built here names a release,
// never a moving tag.
func checkImagesPinned(t *testing.T, services map[string]map[string]any) {
	t.Helper()
	for name, svc := range services {
		image, _ := svc["image"].(string)
		if image == provisionerImage && svc["build"] != nil {
			continue
		}
		_, tag, ok := strings.Cut(strings.TrimPrefix(image, "quay.io/"), ":")
		if !ok || tag == "latest" || !regexp.MustCompile(`\d`).MatchString(tag) {
			t.Errorf("%s: image %q is not pinned to a release", name, image)
		}
	}
}

// checkKeycloakService: the release the tests run, the dev realm imported.
func checkKeycloakService(t *testing.T, kc map[string]any) {
	t.Helper()
	if want := "quay.io/keycloak/keycloak:" + keycloakserver.DefaultVersion; kc["image"] != want {
		t.Errorf("keycloak image %v, want %s (stack/keycloakserver.DefaultVersion)", kc["image"], want)
	}
	if cmd := asList(kc["command"]); len(cmd) == 0 || cmd[0] != "start-dev" || !slices.Contains(cmd, "--import-realm") {
		t.Errorf("keycloak command %v", cmd)
	}
	mounted := false
	for _, v := range asList(kc["volumes"]) {
		parts := strings.Split(v, ":")
		if strings.HasPrefix(parts[1], "/opt/keycloak/data/import/") {
			if _, err := os.Stat(filepath.Join(deployDir, parts[0])); err != nil {
				t.Errorf("realm %s: %v", parts[0], err)
			}
			mounted = strings.HasSuffix(parts[0], "stack/kcemu/devrealm.json")
		}
	}
	if !mounted {
		t.Error("the dev realm is not mounted into /opt/keycloak/data/import")
	}
}

// checkNATSServices: three nodes of the nats-server version in go.mod,
// each named as its service, whose configuration the server itself parses
// into a three-route JetStream cluster of those services.
func checkNATSServices(t *testing.T, services map[string]map[string]any) {
	t.Helper()
	want := "nats:" + strings.TrimPrefix(goModVersion(t, "github.com/nats-io/nats-server/v2"), "v") + "-alpine"
	setPasswords(t)
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("nats-%d", i)
		svc := services[name]
		if svc["image"] != want {
			t.Errorf("%s: image %v, want %s (go.mod)", name, svc["image"], want)
		}
		env := svc["environment"].(map[string]any)
		for k := range env {
			if !strings.HasPrefix(k, "NATS_") {
				t.Errorf("%s: env %s", name, k)
			}
		}
		if env["NATS_SERVER_NAME"] != name {
			t.Errorf("%s: NATS_SERVER_NAME %v", name, env["NATS_SERVER_NAME"])
		}
		cmd := asList(svc["command"])
		conf := filepath.Join(deployDir, "nats", strings.TrimPrefix(cmd[len(cmd)-1], "/etc/nats/"))
		t.Setenv("NATS_SERVER_NAME", name)
		opts, err := server.ProcessConfigFile(conf)
		if err != nil {
			t.Fatalf("%s: %v", conf, err)
		}
		if opts.ServerName != name || opts.Cluster.Name != "workspaces" || !opts.JetStream || len(opts.Routes) != 3 {
			t.Errorf("%s: server %q, cluster %q, JetStream %v, %d routes", conf, opts.ServerName, opts.Cluster.Name, opts.JetStream, len(opts.Routes))
		}
		for _, r := range opts.Routes {
			if services[r.Hostname()] == nil || r.Port() != "6222" {
				t.Errorf("%s: route %s is not a compose service's cluster port", conf, r)
			}
		}
	}
}

// checkProvisionerServices: 2 APIs, 3 workers with distinct ids, one
// projection, all on three replicas and every node; every flag is one
// the binary lists, every published port its --http-addr's.
func checkProvisionerServices(t *testing.T, services map[string]map[string]any, flags map[string]bool) {
	t.Helper()
	roles := map[string]int{}
	var workerIDs []string
	for name, svc := range services {
		if svc["image"] != provisionerImage {
			continue
		}
		args := commandFlags(t, name, asList(svc["command"]), flags)
		env := svc["environment"].(map[string]any)
		roles[args["roles"]]++
		if args["nats-replicas"] != "3" {
			t.Errorf("%s: --nats-replicas %q, want 3", name, args["nats-replicas"])
		}
		if args["roles"] == "worker" {
			workerIDs = append(workerIDs, args["worker-id"])
		}
		if urls := strings.Split(env["PROVISIONER_NATS_URL"].(string), ","); len(urls) != 3 {
			t.Errorf("%s: NATS URL names %d nodes, want 3", name, len(urls))
		}
		_, port, err := net.SplitHostPort(env["PROVISIONER_HTTP_ADDR"].(string))
		if err != nil {
			t.Fatalf("%s: PROVISIONER_HTTP_ADDR: %v", name, err)
		}
		for _, p := range asList(svc["ports"]) {
			if !strings.HasSuffix(p, ":"+port) {
				t.Errorf("%s: port %s is not --http-addr's %s", name, p, port)
			}
		}
	}
	if roles["api"] != 2 || roles["worker"] != 3 || roles["projection"] != 2 || len(roles) != 3 {
		t.Errorf("processes by roles %v, want api 2, worker 3, projection 2", roles)
	}
	slices.Sort(workerIDs)
	if len(slices.Compact(workerIDs)) != 3 || slices.Contains(workerIDs, "") {
		t.Errorf("worker ids %v, want three distinct", workerIDs)
	}
}

// commandFlags reads "--flag value" pairs, each flag one of the binary's.
func commandFlags(t *testing.T, service string, cmd []string, flags map[string]bool) map[string]string {
	t.Helper()
	args := map[string]string{}
	for i := 0; i < len(cmd); i++ {
		name, ok := strings.CutPrefix(cmd[i], "--")
		if !ok {
			t.Errorf("%s: %q is not a flag", service, cmd[i])
			continue
		}
		if !flags[name] {
			t.Errorf("%s: --%s is not a flag of provisioner --help", service, name)
		}
		if i+1 < len(cmd) && !strings.HasPrefix(cmd[i+1], "--") {
			args[name] = cmd[i+1]
			i++
		}
	}
	return args
}

// checkDockerfile: the image the provisioner services build.
func checkDockerfile(t *testing.T, services map[string]map[string]any) {
	t.Helper()
	build := services["api-1"]["build"].(map[string]any)
	docker, err := os.ReadFile(filepath.Join(deployDir, build["context"].(string), build["dockerfile"].(string)))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"FROM golang:1.26 ", "./cmd/provisioner", "CGO_ENABLED=0", "FROM gcr.io/distroless/static", "USER nonroot", "EXPOSE 8080"} {
		if !bytes.Contains(docker, []byte(want)) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}

// goModVersion is the version go.mod requires of module.
func goModVersion(t *testing.T, module string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(module) + `\s+(v\S+)`).FindSubmatch(raw)
	if m == nil {
		t.Fatalf("go.mod does not require %s", module)
	}
	return string(m[1])
}

// asAnyList is a YAML sequence; nil when absent.
func asAnyList(v any) []any {
	l, _ := v.([]any)
	return l
}

// asList is a YAML sequence of strings; nil when absent.
func asList(v any) []string {
	l := asAnyList(v)
	out := make([]string, 0, len(l))
	for _, x := range l {
		out = append(out, fmt.Sprint(x))
	}
	return out
}
