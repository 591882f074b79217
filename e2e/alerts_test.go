package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubereplicator/replicator/internal/testsupport"
)

// This file checks the chart's alerts (prometheusRule) and Grafana dashboard
// (grafanaDashboard): every PromQL expression parses with Prometheus's own
// rule format and parser and reads only metrics the binary exposes
// (hack/promcheck, a module of its own so that go.mod does not take on
// Prometheus's dependencies), and every alert links to a section of
// docs/observability.md that shows its expression.

// renderedMonitoring renders the chart with the alerts and the dashboard on
// and returns the PrometheusRule's spec (a Prometheus rule file) and the
// dashboard JSON.
func renderedMonitoring(t *testing.T, set ...string) (rules map[string]any, dashboard string) {
	t.Helper()
	args := []string{"template", "replicator", chartDir, "--namespace", "replicator",
		"--set", "prometheusRule.enabled=true", "--set", "grafanaDashboard.enabled=true"}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out, err := helm(t, args...)
	require.NoError(t, err, out)
	for _, doc := range strings.Split(out, "\n---\n") {
		var obj struct {
			Kind     string                `json:"kind"`
			Metadata struct{ Name string } `json:"metadata"`
			Spec     map[string]any        `json:"spec"`
			Data     map[string]string     `json:"data"`
		}
		require.NoError(t, yaml.Unmarshal([]byte(doc), &obj), doc)
		switch {
		case obj.Kind == "PrometheusRule":
			rules = obj.Spec
		case obj.Kind == "ConfigMap" && obj.Metadata.Name == "replicator-dashboard":
			dashboard = obj.Data["replicator.json"]
		}
	}
	require.NotNil(t, rules, "a PrometheusRule is rendered")
	require.NotEmpty(t, dashboard, "the dashboard ConfigMap is rendered")
	return rules, dashboard
}

// promcheck runs hack/promcheck with args and returns its output and error.
// Its first run compiles much of Prometheus: some 40 s with the standard
// library already in the build cache, two minutes from an empty one; later
// runs only link it.
func promcheck(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("go", append([]string{"run", "."}, args...)...)
	cmd.Dir = "../hack/promcheck"
	cmd.Env = append(os.Environ(), "GOWORK=off")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestAlertsAndDashboardReadExposedMetrics runs the binary as the chart's
// Deployment would, with a source cluster, and makes every series the
// alerts and the dashboard read appear: a placeholder filled and one
// refused (replicator_objects, replicator_problems_total), a Role whose push
// RBAC forbids (replicator_write_errors_total), a copy another writer keeps
// changing back (replicator_fights_total). A counter vector without a child
// exposes nothing, not even its # HELP line, so the scrape lists what exists
// now. promcheck then checks the rendered rules and dashboard against it.
func TestAlertsAndDashboardReadExposedMetrics(t *testing.T) {
	e := newEnv(t)
	release := fmt.Sprintf("e%d", e.id)
	src, app, team, denied := e.ns("src", nil), e.ns("app", nil), e.ns("team", nil), e.ns("denied", nil)
	ns, cfg := e.install(release, "pushFromNamespaces="+src, "pushRBACFromNamespaces="+src)
	// The test cluster is also a source cluster (named self), read as admin.
	p := e.chartReplicator(ns, release, e.kubeconfig(cfg),
		"--cluster-name=here", "--source-cluster=self="+e.adminKubeconfig(), "--source-cluster-namespaces=self="+src)

	e.create(secret(src, "shared", corev1.SecretTypeOpaque, map[string]string{"k": "alerts-ours"}, with(e.allow(app), e.a.ReplicateTo, team)))
	e.create(secret(app, "shared", corev1.SecretTypeOpaque, nil, map[string]string{e.a.ReplicateFrom: src + "/shared"}))
	e.create(secret(denied, "shared", corev1.SecretTypeOpaque, nil, map[string]string{e.a.ReplicateFrom: src + "/shared"}))
	e.objects(roleKind).create(src, "pod-admin", map[string]string{e.a.ReplicateTo: team}, nil,
		map[string]any{"rules": []any{map[string]any{"apiGroups": []any{""}, "resources": []any{"pods"}, "verbs": []any{"*"}}}})
	e.waitData(app, "shared", map[string]string{"k": "alerts-ours"})
	e.waitData(team, "shared", map[string]string{"k": "alerts-ours"})
	e.waitEvent(denied, "shared", "ReplicationDenied")
	e.waitEvent(src, "pod-admin", "WriteFailed")

	var m *testsupport.Metrics
	e.eventually(time.Minute, "every series the alerts need", func() error {
		// Another writer changes the copy back until a fight is named.
		if s, err := e.get(team, "shared"); err == nil && string(s.Data["k"]) != "alerts-theirs" {
			s.Data["k"] = []byte("alerts-theirs")
			_, _ = admin.CoreV1().Secrets(team).Update(e.ctx, s, metav1.UpdateOptions{})
		}
		var err error
		if m, err = testsupport.Scrape("http://" + p.Addr() + "/metrics"); err != nil {
			return err
		}
		var missing []string
		for _, name := range []string{"replicator_fights_total", "replicator_write_errors_total", "replicator_problems_total",
			"replicator_objects", "replicator_source_cluster_up", "workqueue_depth", "workqueue_queue_duration_seconds"} {
			if _, ok := m.Families[name]; !ok {
				missing = append(missing, name)
			}
		}
		if m.Value("replicator_leader", nil) != 1 {
			missing = append(missing, "replicator_leader 1")
		}
		if m.Value("replicator_source_cluster_up", nil) != 1 {
			missing = append(missing, "replicator_source_cluster_up 1")
		}
		if len(missing) > 0 {
			time.Sleep(150 * time.Millisecond) // the other writer's pace, within the poll
			return fmt.Errorf("not yet: %v", missing)
		}
		return nil
	})

	dir := t.TempDir()
	var names []string
	for name, family := range m.Families {
		names = append(names, name+" "+strings.ToLower(family.GetType().String()))
	}
	sort.Strings(names)
	metrics := filepath.Join(dir, "metrics.txt")
	require.NoError(t, os.WriteFile(metrics, []byte("# scraped from the replicator's /metrics\n"+strings.Join(names, "\n")+"\n"), 0o644))
	rules, dashboard := renderedMonitoring(t)
	rulesYAML, err := yaml.Marshal(rules)
	require.NoError(t, err)
	rulesFile, dashboardFile := filepath.Join(dir, "rules.yaml"), filepath.Join(dir, "dashboard.json")
	require.NoError(t, os.WriteFile(rulesFile, rulesYAML, 0o644))
	require.NoError(t, os.WriteFile(dashboardFile, []byte(dashboard), 0o644))

	start := time.Now()
	out, err := promcheck(t, "-rules", rulesFile, "-dashboard", dashboardFile, "-metrics", metrics)
	t.Logf("promcheck took %s:\n%s", time.Since(start).Round(time.Millisecond), out)
	require.NoError(t, err, "promcheck found problems:\n%s\nexposed:\n%s", out, strings.Join(names, "\n"))

	// promcheck does fail: on a metric that is not exposed, a histogram
	// read without _bucket, a parse error and an undefined variable.
	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte(`groups:
  - name: bad
    rules:
      - alert: Unknown
        expr: rate(replicator_no_such_total[5m]) > 0
      - alert: BareHistogram
        expr: histogram_quantile(0.99, rate(workqueue_queue_duration_seconds[5m])) > 1
      - alert: Broken
        expr: sum(rate(replicator_writes_total[5m]) > 0
`), 0o644))
	badDashboard := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(badDashboard, []byte(strings.Replace(dashboard, `job=~\"$job\"`, `job=~\"$jobs\"`, 1)), 0o644))
	out, err = promcheck(t, "-rules", bad, "-dashboard", badDashboard, "-metrics", metrics)
	assert.Error(t, err, out)
	for _, want := range []string{"metric replicator_no_such_total is not exposed", "metric workqueue_queue_duration_seconds is not exposed",
		"could not parse expression", "variable $jobs is not defined"} {
		assert.Contains(t, out, want)
	}
}

// TestAlertsAreDocumented checks each alert of the chart: a severity, a
// summary and a description, a runbook_url into docs/observability.md
// whose anchor is the alert's section there, and that section showing the
// expression as rendered for the release replicator in the namespace
// replicator with default values.
func TestAlertsAreDocumented(t *testing.T) {
	needTools(t)
	rules, _ := renderedMonitoring(t)
	doc, err := os.ReadFile("../docs/observability.md")
	require.NoError(t, err)
	b, err := yaml.Marshal(rules)
	require.NoError(t, err)
	var spec struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `json:"alert"`
				Expr        string            `json:"expr"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	}
	require.NoError(t, yaml.Unmarshal(b, &spec))
	const base = "https://github.com/kubereplicator/replicator/blob/main/docs/observability.md"
	alerts := 0
	for _, g := range spec.Groups {
		for _, r := range g.Rules {
			alerts++
			assert.Contains(t, []string{"critical", "warning", "info"}, r.Labels["severity"], r.Alert)
			assert.NotEmpty(t, r.Annotations["summary"], r.Alert)
			assert.NotEmpty(t, r.Annotations["description"], r.Alert)
			assert.Equal(t, base+"#"+strings.ToLower(r.Alert), r.Annotations["runbook_url"], r.Alert)
			section := regexp.MustCompile(`(?s)\n### ` + r.Alert + `\n(.*?)(\n##|$)`).FindStringSubmatch(string(doc))
			if assert.NotNil(t, section, "docs/observability.md has no section ### %s", r.Alert) {
				assert.Contains(t, section[1], "```promql\n"+r.Expr+"\n```", "docs/observability.md's section %s shows the expression as rendered", r.Alert)
			}
		}
	}
	assert.GreaterOrEqual(t, alerts, 9)

	// A selector of one's own replaces the ServiceMonitor's labels.
	rules, _ = renderedMonitoring(t, `prometheusRule.selector=job="replicator"`)
	b, err = yaml.Marshal(rules)
	require.NoError(t, err)
	assert.Contains(t, string(b), `replicator_leader{job="replicator"}`)
	assert.NotContains(t, string(b), `replicator-metrics`)
}
