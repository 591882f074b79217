// Command image builds the replicator's container image without a Docker
// daemon: one image per platform (linux/amd64, linux/arm64), from scratch,
// written with their index as an OCI image layout on disk. `make image-oci`
// cross-compiles the binaries and runs it; any OCI tool pushes the result
// (crane push, skopeo copy oci:...).
//
// Each image has a single layer: /replicator (root-owned, 0755) and an
// /etc/passwd and /etc/group naming the nonroot user and group 65532, which
// the image runs as. There is no shell and nothing else. Timestamps are
// fixed (SOURCE_DATE_EPOCH, or the Unix epoch), so the same binaries give the
// same digests.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	source = "https://github.com/kubereplicator/replicator"
	user   = "65532:65532"

	passwd = "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nonroot:x:65532:65532:nonroot:/:/sbin/nologin\n"
	group = "root:x:0:\n" +
		"nonroot:x:65532:\n"
)

// platforms are the image's, in the index's order, with the ELF machine
// their binary must be built for.
var platforms = []struct {
	arch    string
	machine elf.Machine
}{
	{"amd64", elf.EM_X86_64},
	{"arm64", elf.EM_AARCH64},
}

// options say what to build: Bins maps an architecture to its binary.
type options struct {
	Out     string
	Version string
	Bins    map[string]string
	Created time.Time
}

// built is what was written for one platform.
type built struct {
	Platform  string
	Digest    v1.Hash
	LayerSize int64 // compressed
}

func main() {
	o := options{Bins: map[string]string{}}
	flag.StringVar(&o.Out, "out", "bin/image", "the OCI layout directory to (re)create")
	flag.StringVar(&o.Version, "version", "", "the version: the image's label and the layout's ref.name")
	for _, p := range platforms {
		flag.Func("bin-"+p.arch, "the static linux/"+p.arch+" replicator binary", func(s string) error {
			o.Bins[p.arch] = s
			return nil
		})
	}
	flag.Parse()
	created, err := sourceDateEpoch()
	if err != nil {
		fatal(err)
	}
	o.Created = created
	res, err := build(o)
	if err != nil {
		fatal(err)
	}
	for _, b := range res {
		fmt.Printf("%s\t%s\tlayer %d bytes (compressed)\n", b.Platform, b.Digest, b.LayerSize)
	}
	fmt.Printf("wrote %s (ref.name %s)\n", o.Out, o.Version)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "image:", err)
	os.Exit(1)
}

// sourceDateEpoch is SOURCE_DATE_EPOCH when set, else the Unix epoch.
func sourceDateEpoch() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH: %w", err)
	}
	return time.Unix(n, 0).UTC(), nil
}

// build writes the layout and returns what it holds, per platform.
func build(o options) ([]built, error) {
	if o.Version == "" {
		return nil, errors.New("-version is required")
	}
	if o.Out == "" {
		return nil, errors.New("-out is required")
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var res []built
	for _, p := range platforms {
		bin := o.Bins[p.arch]
		if bin == "" {
			return nil, fmt.Errorf("-bin-%s is required", p.arch)
		}
		if err := checkBinary(bin, p.machine); err != nil {
			return nil, err
		}
		img, layerSize, err := platformImage(o, bin, p.arch)
		if err != nil {
			return nil, fmt.Errorf("linux/%s: %w", p.arch, err)
		}
		digest, err := img.Digest()
		if err != nil {
			return nil, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add: img,
			Descriptor: v1.Descriptor{
				MediaType: types.OCIManifestSchema1,
				Platform:  &v1.Platform{OS: "linux", Architecture: p.arch},
			},
		})
		res = append(res, built{Platform: "linux/" + p.arch, Digest: digest, LayerSize: layerSize})
	}
	idx = mutate.Annotations(idx, labels(o.Version)).(v1.ImageIndex)

	if err := clearLayout(o.Out); err != nil {
		return nil, err
	}
	lp, err := layout.Write(o.Out, empty.Index)
	if err != nil {
		return nil, err
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": o.Version,
	})); err != nil {
		return nil, err
	}
	return res, nil
}

// clearLayout removes dir if it is absent, empty or an OCI layout, and
// refuses anything else (a mistyped -out must not delete a source tree).
func clearLayout(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
			return fmt.Errorf("%s is not empty and not an OCI layout; not removing it", dir)
		}
	}
	return os.RemoveAll(dir)
}

// checkBinary insists on a static ELF for the platform's machine, so that
// swapped or dynamically linked binaries do not make a broken image.
func checkBinary(path string, machine elf.Machine) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	if f.Machine != machine {
		return fmt.Errorf("%s is built for %s, not %s", path, f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			return fmt.Errorf("%s is dynamically linked; build it with CGO_ENABLED=0", path)
		}
	}
	return nil
}

func labels(version string) map[string]string {
	return map[string]string{
		"org.opencontainers.image.version":  version,
		"org.opencontainers.image.source":   source,
		"org.opencontainers.image.licenses": "Apache-2.0",
		"org.opencontainers.image.title":    "replicator",
	}
}

// platformImage is one platform's image and its layer's compressed size.
func platformImage(o options, bin, arch string) (v1.Image, int64, error) {
	fs, err := rootfs(bin, o.Created)
	if err != nil {
		return nil, 0, err
	}
	layer, err := layerFrom(fs)
	if err != nil {
		return nil, 0, err
	}
	size, err := layer.Size()
	if err != nil {
		return nil, 0, err
	}
	created := v1.Time{Time: o.Created}
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   created,
			CreatedBy: "go run ./cmd/image (the replicator binary, /etc/passwd, /etc/group)",
		},
	})
	if err != nil {
		return nil, 0, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, 0, err
	}
	cf = cf.DeepCopy()
	cf.Created = created
	cf.OS = "linux"
	cf.Architecture = arch
	cf.Config = v1.Config{
		Entrypoint: []string{"/replicator"},
		User:       user,
		Labels:     labels(o.Version),
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, 0, err
	}
	img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
	return img, size, nil
}

// layerFrom is an OCI layer of the tar, gzipped here once, without a name
// or time in the gzip header. The default level: the best saves 0.4% for
// three times the time.
func layerFrom(fs []byte) (v1.Layer, error) {
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(fs); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(gz.Bytes())), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// rootfs is the layer's uncompressed tar: etc/, etc/passwd, etc/group and
// replicator, with fixed times and owners.
func rootfs(bin string, mtime time.Time) ([]byte, error) {
	exe, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	entries := []struct {
		name string
		mode int64
		data []byte
	}{
		{"etc/", 0o755, nil},
		{"etc/group", 0o644, []byte(group)},
		{"etc/passwd", 0o644, []byte(passwd)},
		{"replicator", 0o755, exe},
	}
	for _, e := range entries {
		h := &tar.Header{
			Name:    e.name,
			Mode:    e.mode,
			Size:    int64(len(e.data)),
			ModTime: mtime,
			Uname:   "root",
			Gname:   "root",
		}
		h.Typeflag = tar.TypeReg
		if e.data == nil {
			h.Typeflag = tar.TypeDir
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
