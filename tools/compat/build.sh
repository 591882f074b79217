#!/usr/bin/env bash
# Builds (or finds in the cache) kube-apiserver at the given version from
# tools/compat/<version>/go.mod, and prints a folder that holds it beside the
# etcd, kubectl and helm of tools/build.sh: what REPLICATOR_TOOLS_BIN wants.
# For the version of tools/go.mod it prints tools/build.sh's folder.
# Progress goes to stderr.
#   tools/compat/build.sh v1.34.4
set -euo pipefail
v=${1:?usage: build.sh v1.MINOR.PATCH}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../versionflags.sh
. "$here/../versionflags.sh"
base=$("$here/../build.sh")
# The version of tools/go.mod is the one everything else is tested on.
if [ "$v" = "$(cd "$here/.." && go list -m -f '{{.Version}}' k8s.io/kubernetes)" ]; then
  echo "$base"
  exit 0
fi
[ -f "$here/$v/go.mod" ] || { echo "no module for $v: run tools/compat/gen.sh $v" >&2; exit 1; }
sum=$(cat "$here/$v/go.mod" "$here/$v/go.sum" "$here/build.sh" "$here/../versionflags.sh" | sha256sum | cut -c1-12)
cache=${REPLICATOR_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/replicator-tools}
dir="$cache/compat-k8s-$v-$sum"

if [ ! -x "$dir/kube-apiserver" ]; then
  echo "building kube-apiserver $v into $dir (several minutes the first time)" >&2
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/.build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  vflags=$(k8s_version_flags "$v")
  (cd "$here/$v" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $vflags" -o "$tmp/" k8s.io/kubernetes/cmd/kube-apiserver)
  rm -rf "$dir"
  mv "$tmp" "$dir"
  trap - EXIT
fi
for tool in etcd kubectl helm; do ln -sfn "$base/$tool" "$dir/$tool"; done
echo "$dir"
