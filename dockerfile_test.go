package main

import (
	"bufio"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// No container engine runs here, so the Dockerfile is checked statically and
// its build command is run as written, outside a container.

type stage struct {
	from  string
	lines []string
}

func parseDockerfile(t *testing.T) []stage {
	f, err := os.Open("Dockerfile")
	require.NoError(t, err)
	defer f.Close()
	var stages []stage
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "FROM ") {
			stages = append(stages, stage{from: strings.Fields(line)[1]})
			continue
		}
		require.NotEmpty(t, stages, "instruction before FROM: %s", line)
		stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, line)
	}
	require.NoError(t, sc.Err())
	return stages
}

func TestDockerfileFinalStageIsMinimalAndNonRoot(t *testing.T) {
	stages := parseDockerfile(t)
	require.Len(t, stages, 2, "a build stage and a run stage")
	final := stages[1]
	assert.Regexp(t, `^(scratch|gcr\.io/distroless/static[-\w]*(:[\w.-]+)?)$`, final.from, "distroless static (CA certificates included) or scratch")
	var user, entrypoint string
	for _, l := range final.lines {
		switch {
		case strings.HasPrefix(l, "USER "):
			user = strings.TrimPrefix(l, "USER ")
		case strings.HasPrefix(l, "ENTRYPOINT "):
			entrypoint = strings.TrimPrefix(l, "ENTRYPOINT ")
		case strings.HasPrefix(l, "RUN "):
			t.Errorf("the run stage has no shell: %s", l)
		}
	}
	uid, _, _ := strings.Cut(user, ":")
	n, err := strconv.Atoi(uid)
	require.NoError(t, err, "USER must be numeric so runAsNonRoot can verify it: %q", user)
	assert.NotZero(t, n, "USER must not be root")
	assert.Equal(t, `["/replicator"]`, entrypoint)

	ignore, err := os.ReadFile(".dockerignore")
	require.NoError(t, err)
	for _, p := range []string{".git", ".local", "bin"} {
		assert.Contains(t, strings.Fields(string(ignore)), p, ".dockerignore keeps %s out of the build context", p)
	}
}

func TestDockerfileBuildsAStaticVersionStampedBinary(t *testing.T) {
	build := parseDockerfile(t)[0]
	var cmd string
	for _, l := range build.lines {
		if strings.HasPrefix(l, "RUN ") && strings.Contains(l, "go build") {
			cmd = strings.TrimPrefix(l, "RUN ")
		}
	}
	require.NotEmpty(t, cmd, "the build stage runs go build")
	assert.Contains(t, cmd, "CGO_ENABLED=0")
	assert.Regexp(t, regexp.MustCompile(`-X main\.version=\$\{VERSION\}`), cmd)

	out := t.TempDir()
	cmd = strings.ReplaceAll(cmd, "/out/", out+"/")
	run := exec.Command("sh", "-c", cmd)
	run.Env = append(os.Environ(), "VERSION=v9.9.9-test")
	b, err := run.CombinedOutput()
	require.NoError(t, err, "%s", b)

	bin := filepath.Join(out, "replicator")
	f, err := elf.Open(bin)
	require.NoError(t, err)
	defer f.Close()
	for _, p := range f.Progs {
		assert.NotEqual(t, elf.PT_INTERP, p.Type, "static: no dynamic loader")
		assert.NotEqual(t, elf.PT_DYNAMIC, p.Type, "static: no dynamic section")
	}
	v, err := exec.Command(bin, "--version").Output()
	require.NoError(t, err)
	assert.Equal(t, "replicator v9.9.9-test\n", string(v))
}
