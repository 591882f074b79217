package main

import (
	"bufio"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// No container engine runs here, so the Dockerfile is checked statically and
// its build command is run as written, outside a container.

type stage struct {
	from     string
	platform string // FROM --platform=...
	lines    []string
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
			var st stage
			for _, f := range strings.Fields(line)[1:] {
				if p, ok := strings.CutPrefix(f, "--platform="); ok {
					st.platform = p
				} else if !strings.HasPrefix(f, "--") && st.from == "" {
					st.from = f
				}
			}
			stages = append(stages, st)
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

// buildCommand is the build stage's go build, without its RUN.
func buildCommand(t *testing.T) string {
	build := parseDockerfile(t)[0]
	var cmd string
	for _, l := range build.lines {
		if strings.HasPrefix(l, "RUN ") && strings.Contains(l, "go build") {
			cmd = strings.TrimPrefix(l, "RUN ")
		}
	}
	require.NotEmpty(t, cmd, "the build stage runs go build")
	return cmd
}

// runBuildCommand runs the build stage's go build as written, with the
// build arguments as environment, and returns the binary.
func runBuildCommand(t *testing.T, cmd string, env ...string) string {
	out := t.TempDir()
	cmd = strings.ReplaceAll(cmd, "/out/", out+"/")
	run := exec.Command("sh", "-c", cmd)
	run.Env = append(os.Environ(), env...)
	b, err := run.CombinedOutput()
	require.NoError(t, err, "%s", b)
	return filepath.Join(out, "replicator")
}

func assertStatic(t *testing.T, f *elf.File) {
	t.Helper()
	for _, p := range f.Progs {
		assert.NotEqual(t, elf.PT_INTERP, p.Type, "static: no dynamic loader")
		assert.NotEqual(t, elf.PT_DYNAMIC, p.Type, "static: no dynamic section")
	}
}

func TestDockerfileBuildsAStaticVersionStampedBinary(t *testing.T) {
	cmd := buildCommand(t)
	assert.Contains(t, cmd, "CGO_ENABLED=0")
	assert.Regexp(t, regexp.MustCompile(`-X main\.version=\$\{VERSION\}`), cmd)

	bin := runBuildCommand(t, cmd, "VERSION=v9.9.9-test", "TARGETOS="+runtime.GOOS, "TARGETARCH="+runtime.GOARCH)
	f, err := elf.Open(bin)
	require.NoError(t, err)
	defer f.Close()
	assertStatic(t, f)
	v, err := exec.Command(bin, "--version").Output()
	require.NoError(t, err)
	assert.Equal(t, "replicator v9.9.9-test\n", string(v))
}

// TestDockerfileBuildsForTargetArch: `docker buildx build --platform
// linux/amd64,linux/arm64` runs the build stage on the builder's platform
// and cross-compiles for each target, which BuildKit names in TARGETOS and
// TARGETARCH.
func TestDockerfileBuildsForTargetArch(t *testing.T) {
	stages := parseDockerfile(t)
	assert.Equal(t, "$BUILDPLATFORM", stages[0].platform, "the build stage runs natively: FROM --platform=$BUILDPLATFORM")
	assert.Empty(t, stages[1].platform, "the run stage is the target's")

	declared := map[string]bool{}
	for _, l := range stages[0].lines {
		if args, ok := strings.CutPrefix(l, "ARG "); ok {
			for _, a := range strings.Fields(args) {
				name, _, _ := strings.Cut(a, "=")
				declared[name] = true
			}
		}
		if strings.HasPrefix(l, "RUN ") && strings.Contains(l, "go build") {
			break
		}
	}
	assert.True(t, declared["TARGETOS"], "ARG TARGETOS in the build stage, before go build")
	assert.True(t, declared["TARGETARCH"], "ARG TARGETARCH in the build stage, before go build")

	cmd := buildCommand(t)
	assert.Regexp(t, `GOOS=\$\{?TARGETOS\}?\s`, cmd)
	assert.Regexp(t, `GOARCH=\$\{?TARGETARCH\}?\s`, cmd)

	// The other of the two platforms than this machine's.
	arch, machine := "arm64", elf.EM_AARCH64
	if runtime.GOARCH == "arm64" {
		arch, machine = "amd64", elf.EM_X86_64
	}
	bin := runBuildCommand(t, cmd, "VERSION=v9.9.9-test", "TARGETOS=linux", "TARGETARCH="+arch)
	f, err := elf.Open(bin)
	require.NoError(t, err)
	defer f.Close()
	assert.Equal(t, machine, f.Machine, "built for linux/%s", arch)
	assertStatic(t, f)
}
