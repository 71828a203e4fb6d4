package natsaccounts

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var dashboardPath = filepath.Join(deployDir, "grafana", "provisioner-dashboard.json")

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	Title  string `json:"title"`
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// TestDashboardParses checks the dashboard is valid JSON with a query in
// every panel, and that it shows the series issue 22 asks for.
func TestDashboardParses(t *testing.T) {
	names := dashboardMetrics(t)
	for _, want := range []string{"workspace_projection_lag_events", "workspace_worker_sagas_in_flight",
		"workspace_worker_retries_total", "workspace_worker_consumer_pending"} {
		if !slices.Contains(names, want) {
			t.Errorf("the dashboard does not query %s", want)
		}
	}
}

// dashboardMetrics parses the dashboard and returns the provisioner's
// metric names its panels query.
func dashboardMetrics(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	if d.Title == "" || len(d.Panels) < 8 {
		t.Fatalf("%s: title %q, %d panels", dashboardPath, d.Title, len(d.Panels))
	}
	var names []string
	metric := regexp.MustCompile(`\bworkspace_[a-z0-9_]+`)
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, n := range metric.FindAllString(tg.Expr, -1) {
				if !slices.Contains(names, n) {
					names = append(names, n)
				}
			}
		}
	}
	return names
}

// checkDashboardAgainst asserts that every metric the dashboard queries
// is a series the running process at base serves on /metrics, and
// returns that exposition for further checks.
func checkDashboardAgainst(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if name, _, ok := strings.Cut(line, "{"); ok && !strings.HasPrefix(line, "#") {
			served[name] = true
		} else if name, _, ok := strings.Cut(line, " "); ok && !strings.HasPrefix(line, "#") {
			served[name] = true
		}
	}
	for _, n := range dashboardMetrics(t) {
		if !served[n] {
			t.Errorf("the dashboard queries %s, which /metrics does not serve", n)
		}
	}
	return string(body)
}
