// Command promcheck checks the chart's alerting rules and Grafana dashboard
// with Prometheus's own rule format and PromQL parser, and checks that every
// metric they read is one the replicator exposes.
//
//	go run . -rules rules.yaml -dashboard replicator.json -metrics names.txt
//
// -rules is a Prometheus rule file: the spec of the chart's PrometheusRule
// ({groups: [...]}). -dashboard is a Grafana dashboard JSON: every
// targets[].expr of its panels and every label_values() or query_result()
// of its template variables is parsed, with Grafana's variables ($job,
// ${datasource}, $__rate_interval, ...) replaced by valid values first.
// -metrics lists the metrics the binary exposes, one a line: a name and,
// optionally, its type (counter, gauge, histogram, summary, untyped), as in
// the scrape's "# TYPE" lines; blank lines and lines starting with # are
// skipped. A histogram's series are its _bucket, _sum and _count; a
// summary's its name, _sum and _count.
//
// It prints every problem and exits 1 if there is any (2 for bad usage).
// It lives in a module of its own so that the replicator's go.mod does not
// take on Prometheus's dependencies.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

func main() {
	var rules, metrics multiFlag
	var dashboards multiFlag
	flag.Var(&rules, "rules", "a Prometheus rule file (repeatable)")
	flag.Var(&dashboards, "dashboard", "a Grafana dashboard JSON file (repeatable)")
	flag.Var(&metrics, "metrics", "a file listing the exposed metrics, one \"name [type]\" a line (repeatable)")
	flag.Parse()
	if len(metrics) == 0 || len(rules)+len(dashboards) == 0 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: promcheck -metrics names.txt [-rules rules.yaml] [-dashboard dashboard.json]")
		os.Exit(2)
	}
	c := &checker{exposed: map[string]bool{}, out: os.Stdout}
	for _, f := range metrics {
		if err := c.loadMetrics(f); err != nil {
			fmt.Fprintln(os.Stderr, "promcheck:", err)
			os.Exit(2)
		}
	}
	for _, f := range rules {
		c.checkRules(f)
	}
	for _, f := range dashboards {
		c.checkDashboard(f)
	}
	fmt.Fprintf(c.out, "promcheck: %d expressions checked against %d exposed series names, %d problems\n", c.exprs, len(c.exposed), c.problems)
	if c.problems > 0 || c.exprs == 0 {
		os.Exit(1)
	}
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

type checker struct {
	// exposed holds the names a selector may use: every counter, gauge and
	// untyped metric, and the series names of histograms and summaries.
	exposed  map[string]bool
	exprs    int
	problems int
	out      io.Writer
}

func (c *checker) problem(format string, args ...any) {
	c.problems++
	fmt.Fprintf(c.out, format+"\n", args...)
}

func (c *checker) loadMetrics(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		name, typ := fields[0], "untyped"
		if len(fields) > 1 {
			typ = strings.ToLower(fields[1])
		}
		if len(fields) > 2 || !model.LegacyValidation.IsValidMetricName(name) {
			return fmt.Errorf("%s:%d: want \"name [type]\", got %q", path, n+1, line)
		}
		switch typ {
		case "counter", "gauge", "untyped", "unknown":
			c.exposed[name] = true
		case "histogram":
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				c.exposed[name+s] = true
			}
		case "summary":
			for _, s := range []string{"", "_sum", "_count"} {
				c.exposed[name+s] = true
			}
		default:
			return fmt.Errorf("%s:%d: unknown type %q", path, n+1, typ)
		}
	}
	if len(c.exposed) == 0 {
		return fmt.Errorf("%s lists no metrics", path)
	}
	return nil
}

var promql = parser.NewParser(parser.Options{})

// checkRules parses a rule file as Prometheus loads one, then checks the
// metric names of each rule's expression.
func (c *checker) checkRules(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		c.problem("%s: %v", path, err)
		return
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	groups, errs := rulefmt.Parse(b, false, model.LegacyValidation, promql, logger)
	for _, err := range errs {
		c.problem("%s: %v", path, err)
	}
	if groups == nil {
		return
	}
	rules := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			rules++
			name := r.Alert + r.Record
			c.checkExpr(fmt.Sprintf("%s: group %s, rule %s", path, g.Name, name), r.Expr)
		}
	}
	if rules == 0 {
		c.problem("%s: no rules", path)
	}
}

// checkExpr parses expr and checks that every selector names an exposed
// metric.
func (c *checker) checkExpr(where, expr string) {
	c.exprs++
	e, err := promql.ParseExpr(expr)
	if err != nil {
		c.problem("%s: %v\n\t%s", where, err, expr)
		return
	}
	for _, name := range c.unknownNames(where, e) {
		c.problem("%s: metric %s is not exposed by the replicator\n\t%s", where, name, expr)
	}
}

// unknownNames returns the metric names of e's selectors that are not
// exposed; a selector without a plain metric name is a problem of its own.
func (c *checker) unknownNames(where string, e parser.Expr) []string {
	var unknown []string
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		var vs *parser.VectorSelector
		switch n := node.(type) {
		case *parser.VectorSelector:
			vs = n
		case *parser.MatrixSelector:
			vs, _ = n.VectorSelector.(*parser.VectorSelector)
		}
		if vs == nil {
			return nil
		}
		name := vs.Name
		if name == "" {
			for _, m := range vs.LabelMatchers {
				if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
					name = m.Value
				}
			}
		}
		if name == "" {
			c.problem("%s: selector %s names no metric (a regular expression on __name__ cannot be checked)", where, vs)
			return nil
		}
		if !c.exposed[name] && !slices.Contains(unknown, name) {
			unknown = append(unknown, name)
		}
		return nil
	})
	return unknown
}

// Grafana's global variables, with values that parse where Grafana would
// put them: durations in range selectors, numbers elsewhere.
var grafanaGlobals = map[string]string{
	"__rate_interval": "5m",
	"__interval":      "1m",
	"__range":         "1h",
	"__interval_ms":   "60000",
	"__range_ms":      "3600000",
	"__range_s":       "3600",
}

// variableRE matches $name, ${name}, ${name:format} and [[name]].
var variableRE = regexp.MustCompile(`\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)`)

// expand replaces Grafana variables: the globals by their stand-ins,
// the dashboard's own by "x" (they are used inside label matchers' strings),
// and reports any other.
func (c *checker) expand(where, expr string, defined map[string]bool) string {
	return variableRE.ReplaceAllStringFunc(expr, func(v string) string {
		m := variableRE.FindStringSubmatch(v)
		name := m[1] + m[2] + m[3]
		if value, ok := grafanaGlobals[name]; ok {
			return value
		}
		if !defined[name] {
			c.problem("%s: variable $%s is not defined by the dashboard\n\t%s", where, name, expr)
		}
		return "x"
	})
}

var (
	labelValuesRE = regexp.MustCompile(`^\s*label_values\((.*),\s*(\w+)\s*\)\s*$`)
	queryResultRE = regexp.MustCompile(`^\s*query_result\((.*)\)\s*$`)
)

// dashboard is what promcheck reads of a Grafana dashboard.
type dashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Panels []json.RawMessage `json:"panels"`
}

// variable is a dashboard's template variable.
type variable struct {
	Name  string          `json:"name"`
	Type  string          `json:"type"`
	Query json.RawMessage `json:"query"`
}

// panel is a dashboard panel (or row, whose panels are nested).
type panel struct {
	ID         int                   `json:"id"`
	Title      string                `json:"title"`
	Type       string                `json:"type"`
	Datasource *struct{ UID string } `json:"datasource"`
	Targets    []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
	Panels []json.RawMessage `json:"panels"`
}

// checkDashboard checks every query of a Grafana dashboard: the panels'
// targets (rows and nested panels included) and the template variables.
func (c *checker) checkDashboard(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		c.problem("%s: %v", path, err)
		return
	}
	var dash dashboard
	if err := json.Unmarshal(b, &dash); err != nil {
		c.problem("%s: %v", path, err)
		return
	}
	if dash.Title == "" || dash.UID == "" {
		c.problem("%s: the dashboard needs a title and a uid", path)
	}
	defined := map[string]bool{}
	datasource := ""
	for _, v := range dash.Templating.List {
		defined[v.Name] = true
		if v.Type == "datasource" {
			datasource = v.Name
		}
	}
	if datasource == "" {
		c.problem("%s: no datasource template variable", path)
	}
	for _, v := range dash.Templating.List {
		if v.Type == "query" {
			c.checkVariable(fmt.Sprintf("%s: variable %s", path, v.Name), v, defined)
		}
	}
	if c.checkPanels(path, dash.Panels, datasource, defined) == 0 {
		c.problem("%s: no panels", path)
	}
}

// checkVariable checks a query variable's query.
func (c *checker) checkVariable(where string, v variable, defined map[string]bool) {
	var q string
	if json.Unmarshal(v.Query, &q) != nil {
		var obj struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &obj); err != nil {
			c.problem("%s: query: %v", where, err)
			return
		}
		q = obj.Query
	}
	if m := labelValuesRE.FindStringSubmatch(q); m != nil {
		c.checkExpr(where, c.expand(where, m[1], defined))
	} else if m := queryResultRE.FindStringSubmatch(q); m != nil {
		c.checkExpr(where, c.expand(where, m[1], defined))
	} else {
		c.problem("%s: query %q is neither label_values(<selector>, <label>) nor query_result(<expr>)", where, q)
	}
}

// checkPanels checks the panels in raw and those nested in rows, and
// returns how many panels (not rows) it found.
func (c *checker) checkPanels(path string, raw []json.RawMessage, datasource string, defined map[string]bool) int {
	panels := 0
	for _, p := range raw {
		var pn panel
		if err := json.Unmarshal(p, &pn); err != nil {
			c.problem("%s: panel: %v", path, err)
			continue
		}
		panels += c.checkPanels(path, pn.Panels, datasource, defined)
		if pn.Type == "row" {
			continue
		}
		panels++
		where := fmt.Sprintf("%s: panel %d %q", path, pn.ID, pn.Title)
		if len(pn.Targets) == 0 {
			c.problem("%s: no targets", where)
		}
		if ds := pn.Datasource; ds == nil || (ds.UID != "${"+datasource+"}" && ds.UID != "$"+datasource) {
			c.problem("%s: its datasource is not the variable $%s", where, datasource)
		}
		for _, t := range pn.Targets {
			if strings.TrimSpace(t.Expr) == "" {
				c.problem("%s: target %s has no expr", where, t.RefID)
				continue
			}
			c.checkExpr(fmt.Sprintf("%s target %s", where, t.RefID), c.expand(where, t.Expr, defined))
		}
	}
	return panels
}
