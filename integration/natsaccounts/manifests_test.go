package natsaccounts

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
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
	known := map[string]bool{}
	for flag := range helpFlags(t) {
		known["PROVISIONER_"+strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))] = true
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
	_, httpPort, err := net.SplitHostPort(dig(cm, "data", "PROVISIONER_HTTP_ADDR").(string))
	if err != nil {
		t.Fatal(err)
	}
	for role, replicas := range map[string]int{"api": 2, "worker": 3, "projection": 2} {
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
		if port := dig(asAnyList(c["ports"])[0], "containerPort"); fmt.Sprint(port) != httpPort {
			t.Errorf("%s: containerPort %v, --http-addr's is %s", role, port, httpPort)
		}
		if c["image"] != "provisioner" {
			t.Errorf("%s: image %v, not the one kustomization pins", role, c["image"])
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
	for _, img := range asAnyList(kust["images"]) {
		if tag := fmt.Sprint(dig(img, "newTag")); tag == "latest" || tag == "<nil>" {
			t.Errorf("kustomization: image %v is not pinned", dig(img, "name"))
		}
	}
	for _, r := range kust["resources"].([]any) {
		if _, err := os.Stat(filepath.Join(deployDir, "k8s", r.(string))); err != nil {
			t.Errorf("kustomization resource %s: %v", r, err)
		}
	}
}

// helpFlags are the long flags (without "--") the built binary lists in
// --help.
func helpFlags(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command(buildProvisioner(t), "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("provisioner --help: %v\n%s", err, out)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z][a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	return flags
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
