package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// docPages are the pages whose commands users copy.
func docPages(t *testing.T) []string {
	pages := []string{"../README.md", "../CONTRIBUTING.md", "../chart/README.md"}
	more, err := filepath.Glob("../docs/*.md")
	require.NoError(t, err)
	var out []string
	for _, p := range append(pages, more...) {
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// helmCommands returns every `helm install`, `helm upgrade` and `helm
// template` command of a Markdown page, from shell blocks (with their
// continuation lines) and from inline code (which may wrap).
func helmCommands(page string) []string {
	var commands []string
	isHelm := regexp.MustCompile(`^helm( --kube-context \S+)? (install|upgrade|template) `)
	for _, block := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(page, -1) {
		joined := strings.ReplaceAll(block[1], "\\\n", " ")
		for _, line := range strings.Split(joined, "\n") {
			line = strings.TrimSpace(line)
			if isHelm.MatchString(line) {
				commands = append(commands, line)
			}
		}
	}
	outside := regexp.MustCompile("(?s)```.*?```").ReplaceAllString(page, "")
	for _, span := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(outside, -1) {
		line := strings.Join(strings.Fields(span[1]), " ")
		if isHelm.MatchString(line) {
			commands = append(commands, line)
		}
	}
	return commands
}

// shellWords splits a command line as bash does (quotes, backslashes).
func shellWords(t *testing.T, line string) []string {
	out, err := exec.Command("bash", "-c", "set -f; set -- "+line+"; printf '%s\\0' \"$@\"").Output()
	require.NoError(t, err, "bash cannot split %q", line)
	words := strings.Split(string(out), "\x00")
	return words[:len(words)-1]
}

// helmTemplateArgs turns an install or upgrade command into `helm template`
// of the clone's chart with the same values, release name and namespace;
// options that only matter against a cluster are dropped.
func helmTemplateArgs(t *testing.T, words []string) []string {
	args := []string{"template"}
	var positional []string
	for i := 1; i < len(words); i++ {
		w := words[i]
		switch {
		case w == "install" || w == "upgrade" || w == "template":
		case w == "--kube-context":
			i++
		case w == "--create-namespace" || w == "--reuse-values" || w == "--install" || w == "--wait" || w == "--atomic":
		case w == "-n" || w == "--namespace" || w == "--set" || w == "--set-string" || w == "--version":
			require.Less(t, i+1, len(words), "%s has no value in %q", w, words)
			args = append(args, w, words[i+1])
			i++
		case strings.HasPrefix(w, "--set=") || strings.HasPrefix(w, "--set-string=") || strings.HasPrefix(w, "--namespace="):
			args = append(args, w)
		case strings.HasPrefix(w, "-"):
			t.Fatalf("the docs use helm option %s, which this test does not know: teach it", w)
		default:
			positional = append(positional, w)
		}
	}
	require.Len(t, positional, 2, "a release name and a chart in %q", words)
	require.Equal(t, "./chart", positional[1], "the docs install the clone's chart")
	return append(args, positional[0], "../chart")
}

// TestEveryHelmCommandInTheDocsWorks renders the chart with each helm
// command the docs show, as the shell would pass it: Helm's own parser
// reads the --set values and the chart's schema checks them.
func TestEveryHelmCommandInTheDocsWorks(t *testing.T) {
	needTools(t)
	helm := filepath.Join(os.Getenv("REPLICATOR_TOOLS_BIN"), "helm")
	found := 0
	for _, path := range docPages(t) {
		page, err := os.ReadFile(path)
		require.NoError(t, err)
		for _, line := range helmCommands(string(page)) {
			found++
			t.Run(filepath.Base(path)+": "+line, func(t *testing.T) {
				args := helmTemplateArgs(t, shellWords(t, line))
				var stderr bytes.Buffer
				cmd := exec.Command(helm, args...)
				cmd.Stderr = &stderr
				out, err := cmd.Output()
				require.NoError(t, err, "helm %s:\n%s", strings.Join(args, " "), stderr.String())
				assert.Contains(t, string(out), "kind: Deployment")
			})
		}
	}
	assert.GreaterOrEqual(t, found, 8, "the docs' helm commands were found")
}

func TestHelmCommandsAreFound(t *testing.T) {
	page := "Run `helm upgrade replicator ./chart -n\n   replicator --set a=b`.\n\n```sh\nhelm --kube-context x upgrade --install r ./chart \\\n  --set 'c=d\\,e'\nkubectl get pods\n```\n"
	assert.Equal(t, []string{
		"helm --kube-context x upgrade --install r ./chart    --set 'c=d\\,e'",
		"helm upgrade replicator ./chart -n replicator --set a=b",
	}, helmCommands(page))
}

// TestTheImageTagInTheDocsIsTheOneTheChartPulls: the docs push the image
// under the tag that the chart's image.tag default (its appVersion) pulls.
func TestTheImageTagInTheDocsIsTheOneTheChartPulls(t *testing.T) {
	raw, err := os.ReadFile("../chart/Chart.yaml")
	require.NoError(t, err)
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &chart))
	tags := 0
	for _, path := range docPages(t) {
		page, err := os.ReadFile(path)
		require.NoError(t, err)
		for _, m := range regexp.MustCompile(`registry\.example\.com/replicator:([^\s"'`+"`"+`]+)`).FindAllStringSubmatch(string(page), -1) {
			tags++
			assert.Equal(t, chart.AppVersion, m[1], "%s pushes a tag the chart does not pull", path)
		}
	}
	assert.Positive(t, tags)
}
