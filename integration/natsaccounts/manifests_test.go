package natsaccounts

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// TestYAMLParses decodes every document of every YAML file under deploy/.
func TestYAMLParses(t *testing.T) {
	n := 0
	for path := range filesUnder(t, deployDir, ".yml", ".yaml") {
		docs := yamlDocs(t, path)
		if len(docs) == 0 {
			t.Errorf("%s: no YAML document", path)
		}
		if strings.Contains(path, "/k8s/") && !strings.HasSuffix(path, "kustomization.yaml") {
			for _, d := range docs {
				if d["apiVersion"] == nil || d["kind"] == nil || dig(d, "metadata", "name") == nil {
					t.Errorf("%s: a document without apiVersion, kind or metadata.name: %v", path, d)
				}
			}
		}
		n++
	}
	if n < 8 {
		t.Fatalf("only %d YAML files under deploy/", n)
	}
}

// TestEnvMatchesFlags asserts that every PROVISIONER_* name in deploy/ is
// the environment variable of a flag the built binary lists in --help.
func TestEnvMatchesFlags(t *testing.T) {
	out, err := exec.Command(buildProvisioner(t), "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("provisioner --help: %v\n%s", err, out)
	}
	known := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z][a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
		known["PROVISIONER_"+strings.ToUpper(strings.ReplaceAll(m[1], "-", "_"))] = true
	}
	for _, want := range []string{"PROVISIONER_NATS_URL", "PROVISIONER_NATS_REPLICAS", "PROVISIONER_SHUTDOWN_TIMEOUT"} {
		if !known[want] {
			t.Fatalf("--help parsing found no %s: %v", want, known)
		}
	}
	envRef := regexp.MustCompile(`\bPROVISIONER_[A-Z0-9_]*[A-Z0-9]\b`)
	used := 0
	for path := range filesUnder(t, deployDir) {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range envRef.FindAllString(string(raw), -1) {
			used++
			if !known[name] {
				t.Errorf("%s: %s is not the env var of any provisioner flag", path, name)
			}
		}
	}
	if used < 20 {
		t.Fatalf("only %d PROVISIONER_* references under deploy/", used)
	}
}

// TestKubernetesManifests checks the properties the manifests promise.
func TestKubernetesManifests(t *testing.T) {
	byName := map[string]map[string]any{}
	for path := range filesUnder(t, filepath.Join(deployDir, "k8s"), ".yaml") {
		for _, d := range yamlDocs(t, path) {
			if d["kind"] == "Kustomization" {
				continue
			}
			byName[d["kind"].(string)+"/"+dig(d, "metadata", "name").(string)] = d
		}
	}
	cm := byName["ConfigMap/provisioner"]
	if cm == nil {
		t.Fatal("no ConfigMap provisioner")
	}
	shutdown, err := time.ParseDuration(dig(cm, "data", "PROVISIONER_SHUTDOWN_TIMEOUT").(string))
	if err != nil {
		t.Fatal(err)
	}
	if dig(cm, "data", "PROVISIONER_NATS_REPLICAS") != "3" || !strings.HasPrefix(dig(cm, "data", "PROVISIONER_HTTP_ADDR").(string), "0.0.0.0:") {
		t.Errorf("ConfigMap: replicas or http addr wrong: %v", cm["data"])
	}
	secret := byName["Secret/provisioner"]
	for _, k := range []string{"PROVISIONER_NATS_URL", "PROVISIONER_KEYCLOAK_CLIENT_SECRET", "PROVISIONER_MINIO_SECRET_KEY", "PROVISIONER_SECRET_KEY"} {
		if dig(secret, "stringData", k) == nil {
			t.Errorf("Secret lacks %s", k)
		}
		if dig(cm, "data", k) != nil {
			t.Errorf("ConfigMap carries the secret %s", k)
		}
	}
	for role, replicas := range map[string]int{"api": 2, "worker": -1, "projection": 1} {
		d := byName["Deployment/provisioner-"+role]
		if d == nil {
			t.Fatalf("no Deployment provisioner-%s", role)
		}
		if replicas > 0 && dig(d, "spec", "replicas") != replicas {
			t.Errorf("%s: replicas %v, want %d", role, dig(d, "spec", "replicas"), replicas)
		}
		pod := dig(d, "spec", "template", "spec").(map[string]any)
		grace := pod["terminationGracePeriodSeconds"].(int)
		if time.Duration(grace)*time.Second <= shutdown {
			t.Errorf("%s: grace period %ds does not exceed --shutdown-timeout %s", role, grace, shutdown)
		}
		c := pod["containers"].([]any)[0].(map[string]any)
		env := c["env"].([]any)[0].(map[string]any)
		if env["name"] != "PROVISIONER_ROLES" || env["value"] != role {
			t.Errorf("%s: runs roles %v", role, env)
		}
		if dig(c, "resources", "requests", "cpu") == nil || dig(c, "resources", "requests", "memory") == nil {
			t.Errorf("%s: no resource requests", role)
		}
		if dig(c, "readinessProbe", "httpGet", "path") != "/readyz" || dig(c, "livenessProbe", "httpGet", "path") != "/healthz" {
			t.Errorf("%s: probes %v %v", role, c["readinessProbe"], c["livenessProbe"])
		}
	}
	if byName["Service/provisioner-api"] == nil || byName["NetworkPolicy/provisioner"] == nil {
		t.Error("no API Service or NetworkPolicy")
	}
	kust := yamlDocs(t, filepath.Join(deployDir, "k8s", "kustomization.yaml"))[0]
	for _, r := range kust["resources"].([]any) {
		if _, err := os.Stat(filepath.Join(deployDir, "k8s", r.(string))); err != nil {
			t.Errorf("kustomization resource %s: %v", r, err)
		}
	}
}

// TestCompose checks the compose file's services, the realm import and
// the Dockerfile it builds.
func TestCompose(t *testing.T) {
	c := yamlDocs(t, filepath.Join(deployDir, "docker-compose.yml"))[0]
	services := c["services"].(map[string]any)
	for _, s := range []string{"nats", "minio", "keycloak", "provisioner"} {
		if services[s] == nil {
			t.Fatalf("service %s missing", s)
		}
	}
	kc := services["keycloak"].(map[string]any)
	if !strings.HasPrefix(kc["image"].(string), "quay.io/keycloak/keycloak:26.") {
		t.Errorf("keycloak image %v", kc["image"])
	}
	if cmd := kc["command"].([]any); cmd[0] != "start-dev" || !slices.Contains(cmd, any("--import-realm")) {
		t.Errorf("keycloak command %v", cmd)
	}
	mounted := false
	for _, v := range kc["volumes"].([]any) {
		parts := strings.Split(v.(string), ":")
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
	nats := services["nats"].(map[string]any)
	for k := range nats["environment"].(map[string]any) {
		if !strings.HasPrefix(k, "NATS_") {
			t.Errorf("nats env %s", k)
		}
	}
	for _, svc := range services {
		for _, p := range svc.(map[string]any)["ports"].([]any) {
			if !strings.HasPrefix(p.(string), "127.0.0.1:") {
				t.Errorf("port %s is published beyond loopback", p)
			}
		}
	}
	build := dig(services["provisioner"].(map[string]any), "build").(map[string]any)
	docker, err := os.ReadFile(filepath.Join(deployDir, build["context"].(string), build["dockerfile"].(string)))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"FROM golang:1.26 ", "./cmd/provisioner", "CGO_ENABLED=0", "FROM gcr.io/distroless/static", "USER nonroot"} {
		if !bytes.Contains(docker, []byte(want)) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}

// filesUnder yields the files under dir with one of the extensions (any
// file when none is given).
func filesUnder(t *testing.T, dir string, exts ...string) func(func(string) bool) {
	t.Helper()
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if len(exts) == 0 || slices.Contains(exts, filepath.Ext(p)) {
			paths = append(paths, filepath.ToSlash(p))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return slices.Values(paths)
}

func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var docs []map[string]any
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
}

// dig walks nested maps; nil when a key is missing.
func dig(m any, keys ...string) any {
	for _, k := range keys {
		mm, ok := m.(map[string]any)
		if !ok {
			return nil
		}
		m = mm[k]
	}
	return m
}
