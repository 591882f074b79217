package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The image is built here as `make image-oci` builds it (static binaries
// cross-compiled for both platforms, then build), and the layout is opened
// and checked as a registry client would see it. No Docker is involved.

const testVersion = "test-1.2.3"

// crossBuild builds the replicator for linux/arch, statically, version
// stamped, as the Makefile does.
func crossBuild(t *testing.T, dir, arch string) string {
	out := filepath.Join(dir, "linux-"+arch, "replicator")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+testVersion, "-o", out, "github.com/kubereplicator/replicator")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build for linux/%s: %s", arch, b)
	return out
}

func TestImageLayout(t *testing.T) {
	dir := t.TempDir()
	bins := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for _, p := range platforms {
		wg.Go(func() {
			bin := crossBuild(t, dir, p.arch)
			mu.Lock()
			bins[p.arch] = bin
			mu.Unlock()
		})
	}
	wg.Wait()
	require.Len(t, bins, 2, "both cross builds")
	t.Logf("cross builds: %s", time.Since(start).Round(time.Second))

	out := filepath.Join(dir, "image")
	start = time.Now()
	res, err := build(options{Out: out, Version: testVersion, Bins: bins, Created: time.Unix(0, 0).UTC()})
	require.NoError(t, err)
	t.Logf("image build: %s", time.Since(start).Round(time.Millisecond))
	for _, b := range res {
		t.Logf("%s: %s, layer %.1f MiB compressed", b.Platform, b.Digest, float64(b.LayerSize)/(1<<20))
	}

	// index.json names one image index, by version, in OCI media types.
	top, err := layout.ImageIndexFromPath(out)
	require.NoError(t, err)
	topManifest, err := top.IndexManifest()
	require.NoError(t, err)
	require.Len(t, topManifest.Manifests, 1)
	desc := topManifest.Manifests[0]
	assert.Equal(t, types.OCIImageIndex, desc.MediaType)
	assert.Equal(t, testVersion, desc.Annotations["org.opencontainers.image.ref.name"])

	idx, err := top.ImageIndex(desc.Digest)
	require.NoError(t, err)
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	assert.Equal(t, types.OCIImageIndex, im.MediaType)
	assert.Equal(t, testVersion, im.Annotations["org.opencontainers.image.version"])

	var got []string
	for _, m := range im.Manifests {
		require.NotNil(t, m.Platform)
		got = append(got, m.Platform.OS+"/"+m.Platform.Architecture)
	}
	assert.ElementsMatch(t, []string{"linux/amd64", "linux/arm64"}, got, "exactly these platforms")

	for _, m := range im.Manifests {
		t.Run(m.Platform.Architecture, func(t *testing.T) {
			assert.Equal(t, types.OCIManifestSchema1, m.MediaType)
			img, err := idx.Image(m.Digest)
			require.NoError(t, err)
			checkImage(t, img, m.Platform.Architecture)
		})
	}

	// The same binary gives the same digest (one platform is enough: the
	// code is the same, and the index is JSON of the digests).
	again, _, err := platformImage(options{Version: testVersion, Created: time.Unix(0, 0).UTC()}, bins["arm64"], "arm64")
	require.NoError(t, err)
	d, err := again.Digest()
	require.NoError(t, err)
	require.Equal(t, "linux/arm64", res[1].Platform)
	assert.Equal(t, res[1].Digest, d, "reproducible")
}

func checkImage(t *testing.T, img v1.Image, arch string) {
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	assert.Equal(t, "linux", cf.OS)
	assert.Equal(t, arch, cf.Architecture)
	assert.Equal(t, []string{"/replicator"}, cf.Config.Entrypoint)
	assert.Empty(t, cf.Config.Cmd)
	assert.Equal(t, "65532:65532", cf.Config.User)
	assert.Equal(t, map[string]string{
		"org.opencontainers.image.version":  testVersion,
		"org.opencontainers.image.source":   "https://github.com/kubereplicator/replicator",
		"org.opencontainers.image.licenses": "Apache-2.0",
		"org.opencontainers.image.title":    "replicator",
	}, cf.Config.Labels)
	assert.True(t, cf.Created.Equal(time.Unix(0, 0)), "fixed creation time, got %s", cf.Created)

	mf, err := img.Manifest()
	require.NoError(t, err)
	assert.Equal(t, types.OCIConfigJSON, mf.Config.MediaType)
	require.Len(t, mf.Layers, 1)
	assert.Equal(t, types.OCILayer, mf.Layers[0].MediaType)

	// The flattened filesystem: these entries and nothing else.
	files := map[string][]byte{}
	var names []string
	tr := tar.NewReader(mutate.Extract(img))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		name := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(h.Name, "./"), "/"), "/")
		names = append(names, name)
		switch name {
		case "etc":
			assert.Equal(t, byte(tar.TypeDir), h.Typeflag)
		case "replicator":
			assert.Equal(t, byte(tar.TypeReg), h.Typeflag)
			assert.Equal(t, int64(0o755), h.Mode&0o7777, "/replicator is 0755")
		default:
			assert.Equal(t, byte(tar.TypeReg), h.Typeflag, "%s", name)
		}
		assert.True(t, h.ModTime.Equal(time.Unix(0, 0)), "%s: fixed time, got %s", name, h.ModTime)
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		files[name] = b
	}
	sort.Strings(names)
	assert.Equal(t, []string{"etc", "etc/group", "etc/passwd", "replicator"}, names, "no shell, nothing else")
	assert.NotContains(t, names, "bin/sh")
	assert.Contains(t, strings.Split(string(files["etc/passwd"]), "\n"), "nonroot:x:65532:65532:nonroot:/:/sbin/nologin")
	assert.Contains(t, strings.Split(string(files["etc/group"]), "\n"), "nonroot:x:65532:")

	// /replicator: a static ELF for the platform.
	exe := files["replicator"]
	f, err := elf.NewFile(bytes.NewReader(exe))
	require.NoError(t, err)
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
	assert.Equal(t, want, f.Machine)
	for _, p := range f.Progs {
		assert.NotEqual(t, elf.PT_INTERP, p.Type, "static: no dynamic loader")
		assert.NotEqual(t, elf.PT_DYNAMIC, p.Type, "static: no dynamic section")
	}

	if arch != "amd64" {
		return
	}
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Logf("not running the amd64 binary on %s/%s", runtime.GOOS, runtime.GOARCH)
		return
	}
	path := filepath.Join(t.TempDir(), "replicator")
	require.NoError(t, os.WriteFile(path, exe, 0o755))
	v, err := exec.Command(path, "--version").Output()
	require.NoError(t, err)
	assert.Equal(t, "replicator "+testVersion+"\n", string(v))
}

func TestBuildRefusesWrongBinaries(t *testing.T) {
	self, err := os.Executable() // this test binary: the host's machine
	require.NoError(t, err)
	dir := t.TempDir()
	_, err = build(options{Out: filepath.Join(dir, "image"), Version: "v", Bins: map[string]string{"amd64": self, "arm64": self}})
	require.Error(t, err, "one of the two is for the wrong machine (or dynamically linked)")

	notLayout := filepath.Join(dir, "src")
	require.NoError(t, os.MkdirAll(notLayout, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(notLayout, "keep.go"), nil, 0o644))
	require.ErrorContains(t, clearLayout(notLayout), "not an OCI layout")
	assert.FileExists(t, filepath.Join(notLayout, "keep.go"))
}
