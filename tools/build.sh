#!/usr/bin/env bash
# Builds the end-to-end tools (kube-apiserver, kubectl, etcd from this Go
# module; helm from the module in helm/) and caches them outside the clone,
# keyed by their versions and the modules' go.sum, so a fresh clone reuses an
# earlier build.
# Prints the folder holding the binaries on stdout; progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"
# shellcheck source=versionflags.sh
. ./versionflags.sh

k8s=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
etcd=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
helm=$(cd helm && go list -m -f '{{.Version}}' helm.sh/helm/v3)
sum=$(cat go.mod go.sum helm/go.mod helm/go.sum build.sh versionflags.sh | sha256sum | cut -c1-12)
cache=${REPLICATOR_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/replicator-tools}
dir="$cache/k8s-$k8s-etcd-$etcd-helm-$helm-$sum"

if [ -x "$dir/kube-apiserver" ] && [ -x "$dir/kubectl" ] && [ -x "$dir/etcd" ] && [ -x "$dir/helm" ]; then
  echo "$dir"
  exit 0
fi

echo "building kube-apiserver, kubectl $k8s, etcd $etcd and helm $helm into $dir (several minutes the first time)" >&2
mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

vflags=$(k8s_version_flags "$k8s")
export CGO_ENABLED=0
go build -trimpath -ldflags "-s -w $vflags" -o "$tmp/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl
go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3
# Helm's default Kubernetes version (helm template, helm lint, a chart's
# kubeVersion) is that of its client-go, as helm's own Makefile sets it;
# without these flags it would be v1.20.0.
hminor=$(cd helm && go list -m -f '{{.Version}}' k8s.io/client-go); hminor=${hminor#v0.}; hminor=${hminor%%.*}
hflags="-X helm.sh/helm/v3/internal/version.version=$helm"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  hflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$hminor"
done
(cd helm && go build -trimpath -ldflags "-s -w $hflags" -o "$tmp/helm" helm.sh/helm/v3/cmd/helm)

rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
echo "$dir"
