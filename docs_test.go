package main

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// This file keeps the documentation honest: its links resolve, every flag,
// chart value, Event reason and metric is documented, docs/chart-values.md
// is generated from chart/values.yaml, the README stays short, and the
// chart's version is the CHANGELOG's newest.

// markdownFiles are the documents whose links are checked.
func markdownFiles(t *testing.T) []string {
	files := []string{"README.md", "CONTRIBUTING.md", "ARCHITECTURE.md", "CHANGELOG.md", "SECURITY.md"}
	docs, err := filepath.Glob("docs/*.md")
	require.NoError(t, err)
	require.NotEmpty(t, docs)
	return append(files, docs...)
}

func readDoc(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

var (
	fenceRE    = regexp.MustCompile("^\\s*(```|~~~)")
	codeSpanRE = regexp.MustCompile("`+[^`]*`+")
	linkRE     = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	headingRE  = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*$`)
	anchorRE   = regexp.MustCompile(`<a\s+(?:id|name)="([^"]+)"`)
)

// prose returns the lines of a Markdown document with those of fenced code
// blocks blanked, so that line i is the document's line i+1.
func prose(doc string) []string {
	lines := strings.Split(doc, "\n")
	fence := ""
	for i, line := range lines {
		if m := fenceRE.FindStringSubmatch(line); m != nil {
			switch fence {
			case "":
				fence = m[1]
			case m[1]:
				fence = ""
			}
			lines[i] = ""
			continue
		}
		if fence != "" {
			lines[i] = ""
		}
	}
	return lines
}

// slug is GitHub's anchor for a heading: lower case, spaces to '-', every
// other character but letters, digits, '-' and '_' dropped.
func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// anchors returns the anchors a document offers: its headings (a repeated
// heading gets -1, -2, ... as on GitHub) and explicit <a id="..."> tags.
func anchors(doc string) map[string]bool {
	set := map[string]bool{}
	seen := map[string]int{}
	for _, line := range prose(doc) {
		if m := headingRE.FindStringSubmatch(line); m != nil {
			s := slug(m[1])
			if n := seen[s]; n > 0 {
				set[fmt.Sprintf("%s-%d", s, n)] = true
			} else {
				set[s] = true
			}
			seen[s]++
		}
		for _, m := range anchorRE.FindAllStringSubmatch(line, -1) {
			set[m[1]] = true
		}
	}
	return set
}

// TestSlug pins the anchor rule the link check relies on.
func TestSlug(t *testing.T) {
	for heading, want := range map[string]string{
		"Switching from kubernetes-replicator, reflector or kubed": "switching-from-kubernetes-replicator-reflector-or-kubed",
		"Argo CD: ignore `/data` and respect it on sync":           "argo-cd-ignore-data-and-respect-it-on-sync",
		"Pull (`replicate-from`)":                                  "pull-replicate-from",
		"`leaderElection.leaseDuration`":                           "leaderelectionleaseduration",
		"Ask the replicator: replicator explain":                   "ask-the-replicator-replicator-explain",
		"snake_case and UPPER":                                     "snake_case-and-upper",
	} {
		assert.Equal(t, want, slug(heading), heading)
	}
	assert.Equal(t, map[string]bool{"a": true, "a-1": true, "x": true},
		anchors("# A\n```\n# not a heading\n```\n## A\ntext <a id=\"x\"></a>\n"))
}

// TestDocLinksResolve checks every relative link of the documents: the file
// exists and, for an anchor into a Markdown file, the anchor does.
func TestDocLinksResolve(t *testing.T) {
	checked := 0
	for _, file := range markdownFiles(t) {
		doc := readDoc(t, file)
		for n, line := range prose(doc) {
			line = codeSpanRE.ReplaceAllString(line, "")
			for _, m := range linkRE.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				checked++
				path, anchor, _ := strings.Cut(target, "#")
				resolved := file
				if path != "" {
					resolved = filepath.Join(filepath.Dir(file), path)
				}
				if _, err := os.Stat(resolved); err != nil {
					t.Errorf("%s:%d: link %s: %s does not exist", file, n+1, target, resolved)
					continue
				}
				if anchor != "" && strings.HasSuffix(resolved, ".md") && !anchors(readDoc(t, resolved))[anchor] {
					t.Errorf("%s:%d: link %s: %s has no heading or anchor %q", file, n+1, target, resolved, anchor)
				}
			}
		}
	}
	assert.Greater(t, checked, 20, "the link pattern finds the documents' links")
}

// TestEveryDocsPageIsLinked keeps the README's "Where next" list and the
// docs index complete.
func TestEveryDocsPageIsLinked(t *testing.T) {
	readme, index := readDoc(t, "README.md"), readDoc(t, "docs/README.md")
	pages, err := filepath.Glob("docs/*.md")
	require.NoError(t, err)
	for _, page := range pages {
		name := filepath.Base(page)
		if name == "README.md" {
			continue
		}
		assert.Contains(t, readme, "(docs/"+name, "README.md links %s", page)
		assert.Contains(t, index, "("+name, "docs/README.md links %s", page)
	}
}

// TestReadmeIsShort keeps README.md an introduction; the rest is in docs/.
func TestReadmeIsShort(t *testing.T) {
	info, err := os.Stat("README.md")
	require.NoError(t, err)
	assert.Less(t, info.Size(), int64(12*1024), "README.md is an introduction: move details into docs/")
}

// binaryFlags are the flags the binary defines, declared as parseFlags does.
func binaryFlags() *flag.FlagSet {
	fs := flag.NewFlagSet("replicator", flag.ContinueOnError)
	var logLevel string
	(&config{}).define(fs, &logLevel)
	newClusterFlags(fs)
	return fs
}

// TestEveryFlagIsDocumented checks that docs/operations.md has a row for
// every flag, with its default, and no row for a flag that does not exist.
func TestEveryFlagIsDocumented(t *testing.T) {
	ops := readDoc(t, "docs/operations.md")
	rows := map[string]string{}
	for _, m := range regexp.MustCompile("(?m)^\\| `--([a-z0-9-]+)` \\|([^|]*)\\|").FindAllStringSubmatch(ops, -1) {
		rows[m[1]] = strings.TrimSpace(m[2])
	}
	fs := binaryFlags()
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		def, ok := rows[f.Name]
		if !assert.True(t, ok, "docs/operations.md has no row for --%s", f.Name) {
			return
		}
		delete(rows, f.Name)
		if f.DefValue == "" {
			return
		}
		if g, ok := f.Value.(flag.Getter); ok {
			if want, ok := g.Get().(time.Duration); ok {
				m := regexp.MustCompile("`([^`]+)`").FindStringSubmatch(def)
				if assert.NotNil(t, m, "--%s: no default in %q", f.Name, def) {
					got, err := time.ParseDuration(m[1])
					assert.NoError(t, err, "--%s", f.Name)
					assert.Equal(t, want, got, "--%s: documented default", f.Name)
				}
				return
			}
		}
		assert.Contains(t, def, "`"+f.DefValue+"`", "--%s: documented default", f.Name)
	})
	assert.Greater(t, n, 30)
	for name := range rows {
		t.Errorf("docs/operations.md documents --%s, which the binary does not define", name)
	}
}

// declaredReasons returns the Event reasons the replicate package declares
// (constants named Reason...).
func declaredReasons(t *testing.T) []string {
	pkgs, err := filepath.Glob("replicate/*.go")
	require.NoError(t, err)
	var reasons []string
	fset := token.NewFileSet()
	for _, file := range pkgs {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, 0)
		require.NoError(t, err)
		for _, decl := range f.Decls {
			gen, ok := decl.(*ast.GenDecl)
			if !ok || gen.Tok != token.CONST {
				continue
			}
			for _, spec := range gen.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if !strings.HasPrefix(name.Name, "Reason") || i >= len(vs.Values) {
						continue
					}
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						v, err := strconv.Unquote(lit.Value)
						require.NoError(t, err)
						reasons = append(reasons, v)
					}
				}
			}
		}
	}
	return reasons
}

// TestEveryEventReasonIsDocumented checks the Events table of
// docs/troubleshooting.md against the reasons the code declares.
func TestEveryEventReasonIsDocumented(t *testing.T) {
	doc := readDoc(t, "docs/troubleshooting.md")
	reasons := declaredReasons(t)
	require.Contains(t, reasons, "ReplicationDenied")
	require.Contains(t, reasons, "PushDenied")
	for _, r := range reasons {
		assert.Contains(t, doc, "| `"+r+"` |", "docs/troubleshooting.md's Events table has no row for %s", r)
	}
}

// TestEveryMetricIsDocumented checks docs/observability.md against the
// metric names the code registers.
func TestEveryMetricIsDocumented(t *testing.T) {
	doc := readDoc(t, "docs/observability.md")
	var names []string
	for _, file := range []string{"main.go", "replicate/metrics.go", "replicate/state.go"} {
		for _, m := range regexp.MustCompile(`(?:Name:\s*|NewDesc\()"([a-z_]+)"`).FindAllStringSubmatch(readDoc(t, file), -1) {
			names = append(names, m[1])
		}
	}
	require.Contains(t, names, "replicator_leader")
	require.Contains(t, names, "workqueue_depth")
	require.Contains(t, names, "replicator_objects")
	for _, name := range names {
		assert.Contains(t, doc, "`"+name+"`", "docs/observability.md does not describe %s", name)
	}
}

// TestChartVersionIsTheChangelogs checks that the chart's version and
// appVersion are the newest release in CHANGELOG.md.
func TestChartVersionIsTheChangelogs(t *testing.T) {
	var chart struct {
		Version    string `json:"version"`
		AppVersion string `json:"appVersion"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(readDoc(t, "chart/Chart.yaml")), &chart))
	m := regexp.MustCompile(`(?m)^## \[(\d+\.\d+\.\d+[^\]]*)\]`).FindStringSubmatch(readDoc(t, "CHANGELOG.md"))
	require.NotNil(t, m, "CHANGELOG.md has a version heading such as ## [1.2.3] - 2026-01-02")
	assert.Equal(t, m[1], chart.Version, "chart/Chart.yaml version")
	assert.Equal(t, m[1], chart.AppVersion, "chart/Chart.yaml appVersion")
}

// TestChartValuesDoc regenerates docs/chart-values.md from
// chart/values.yaml (and the flags the Deployment template passes) and fails
// when they differ; UPDATE_GOLDEN=1 rewrites it (make manifests does). It
// also checks, with a real YAML parser, that every value is on the page.
func TestChartValuesDoc(t *testing.T) {
	values := readDoc(t, "chart/values.yaml")
	got := chartValuesDoc(t, values, readDoc(t, "chart/templates/deployment.yaml"))
	const path = "docs/chart-values.md"
	if os.Getenv("UPDATE_GOLDEN") != "" {
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want := readDoc(t, path)
	if want != got {
		w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
		i := 0
		for i < len(w) && i < len(g) && w[i] == g[i] {
			i++
		}
		line := func(lines []string) string {
			if i < len(lines) {
				return lines[i]
			}
			return "(end of file)"
		}
		t.Errorf("%s is generated from chart/values.yaml and differs from it at line %d:\n  page:      %s\n  generated: %s\nrun make manifests (or UPDATE_GOLDEN=1 go test -run TestChartValuesDoc .)", path, i+1, line(w), line(g))
	}

	var tree map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(values), &tree))
	var leaves []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		if m, ok := v.(map[string]any); ok && len(m) > 0 {
			for k, child := range m {
				walk(strings.TrimPrefix(prefix+"."+k, "."), child)
			}
			return
		}
		leaves = append(leaves, prefix)
	}
	walk("", tree)
	assert.Contains(t, leaves, "leaderElection.leaseDuration")
	assert.Contains(t, leaves, "securityContext.capabilities.drop")
	for _, leaf := range leaves {
		assert.Contains(t, want, "| `"+leaf+"` |", "%s does not describe the chart value %s", path, leaf)
	}
}

// A chart value as values.yaml writes it.
type chartValue struct {
	path    string
	value   string // as written; empty for a map of further values
	doc     []string
	example []string
	flags   []string
}

// A part of values.yaml under a "# --- title ---" line.
type chartSection struct {
	title  string
	notes  [][]string
	values []*chartValue
}

var (
	valuesHeaderRE  = regexp.MustCompile(`^# -+ (.+?) -+$`)
	valuesKeyRE     = regexp.MustCompile(`^( *)([A-Za-z0-9_]+):(.*)$`)
	valuesCommentRE = regexp.MustCompile(`^\s*#(?: |$)(.*)$`)
)

// parseChartValues reads values.yaml's layout: "# --- title ---" lines
// start sections; the comment lines right above a key describe it; comment
// lines right below a key and followed by a blank line are its example;
// other comment paragraphs are notes of their section.
func parseChartValues(t *testing.T, text string) []*chartSection {
	sections := []*chartSection{{}}
	var comments []string
	var previous, commentsFollow *chartValue
	type level struct {
		indent int
		name   string
	}
	var stack []level
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	flush := func() {
		if len(comments) == 0 {
			return
		}
		if commentsFollow != nil {
			commentsFollow.example = comments
		} else {
			s := sections[len(sections)-1]
			s.notes = append(s.notes, comments)
		}
		comments, commentsFollow = nil, nil
	}
	for i, line := range lines {
		afterKey := previous
		previous = nil
		if m := valuesHeaderRE.FindStringSubmatch(line); m != nil {
			flush()
			sections = append(sections, &chartSection{title: m[1]})
			continue
		}
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if m := valuesCommentRE.FindStringSubmatch(line); m != nil {
			if len(comments) == 0 {
				commentsFollow = afterKey
			}
			comments = append(comments, m[1])
			continue
		}
		m := valuesKeyRE.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("chart/values.yaml line %d: %q: the doc generator reads one key per line (write lists in flow style: [a, b])", i+1, line)
		}
		indent := len(m[1])
		for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		names := []string{}
		for _, l := range stack {
			names = append(names, l.name)
		}
		v := &chartValue{path: strings.Join(append(names, m[2]), "."), value: strings.TrimSpace(m[3]), doc: comments}
		if v.value != "" && v.value[0] != '"' && v.value[0] != '\'' {
			if cut, _, ok := strings.Cut(v.value, " #"); ok {
				v.value = strings.TrimSpace(cut)
			}
		}
		if v.value == "" {
			stack = append(stack, level{indent, m[2]})
		}
		comments, commentsFollow = nil, nil
		if v.value != "" || len(v.doc) > 0 {
			s := sections[len(sections)-1]
			s.values = append(s.values, v)
		}
		previous = v
	}
	flush()
	return sections
}

// deploymentFlags maps chart values to the flags the Deployment template
// passes them as: a value on the flag's line, or the value of a
// {{ with }} or {{ if }} on the line before a flag written without a
// template of its own (or with {{ . }}).
func deploymentFlags(tpl string) map[string][]string {
	flagRE := regexp.MustCompile(`--([a-z][a-z0-9-]*)`)
	valueRE := regexp.MustCompile(`\.Values\.([A-Za-z0-9_.]+)`)
	guardRE := regexp.MustCompile(`\{\{-?\s*(?:with|if)\s+\.Values\.([A-Za-z0-9_.]+)\s*-?\}\}`)
	flags := map[string][]string{}
	lines := strings.Split(tpl, "\n")
	for i, line := range lines {
		f := flagRE.FindStringSubmatch(line)
		if f == nil || !strings.HasPrefix(strings.TrimSpace(line), "- ") {
			continue
		}
		paths := valueRE.FindAllStringSubmatch(line, -1)
		if len(paths) == 0 && i > 0 && (!strings.Contains(line, "{{") || strings.Contains(line, "{{ . }}")) {
			if g := guardRE.FindStringSubmatch(lines[i-1]); g != nil {
				paths = [][]string{g}
			}
		}
		for _, p := range paths {
			if !slices.Contains(flags[p[1]], f[1]) {
				flags[p[1]] = append(flags[p[1]], f[1])
			}
		}
	}
	return flags
}

// cell makes comment text safe in a Markdown table cell.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;", "*", `\*`).Replace(s)
}

// chartValuesDoc renders docs/chart-values.md.
func chartValuesDoc(t *testing.T, values, deployment string) string {
	flags := deploymentFlags(deployment)
	var b strings.Builder
	b.WriteString(`<!-- Generated from chart/values.yaml by TestChartValuesDoc (docs_test.go). Do not edit: change the comments in chart/values.yaml and run make manifests. -->

# Chart values

This page lists every value of the Helm chart (` + "`chart/values.yaml`" + `):
its key path, its default, the flag of the binary it sets (the flags are
described in [operations.md](operations.md#flags)), and what it does. It is
generated from the comments in ` + "`chart/values.yaml`" + `, which ` + "`helm show values`" + `
prints too; a test fails when the two disagree. Nested values are written
with dots, as ` + "`--set`" + ` takes them: ` + "`--set leaderElection.leaseDuration=30s`" + `.
`)
	paragraph := func(lines []string) {
		b.WriteString("\n" + strings.Join(lines, " ") + "\n")
	}
	for _, s := range parseChartValues(t, values) {
		if s.title != "" {
			b.WriteString("\n## " + strings.ToUpper(s.title[:1]) + s.title[1:] + "\n")
		}
		for _, note := range s.notes {
			paragraph(note)
		}
		if len(s.values) == 0 {
			continue
		}
		b.WriteString("\n| value | default | flag | what |\n|---|---|---|---|\n")
		var examples []*chartValue
		for _, v := range s.values {
			def := ""
			if v.value != "" {
				def = "`" + v.value + "`"
			}
			var fl []string
			for _, f := range flags[v.path] {
				fl = append(fl, "`--"+f+"`")
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", v.path, def, strings.Join(fl, ", "), cell(strings.Join(v.doc, " ")))
			if len(v.example) > 0 {
				examples = append(examples, v)
			}
		}
		for _, v := range examples {
			fmt.Fprintf(&b, "\nAn example of `%s`:\n\n```yaml\n", v.path)
			indent := ""
			if !strings.Contains(v.path, ".") {
				b.WriteString(v.path + ":\n")
				indent = "  "
			}
			for _, line := range v.example {
				b.WriteString(indent + line + "\n")
			}
			b.WriteString("```\n")
		}
	}
	return b.String()
}
