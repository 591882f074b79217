#!/usr/bin/env bash
# Writes tools/compat/<version>/go.mod and go.sum: a module whose only tool is
# k8s.io/kubernetes/cmd/kube-apiserver at <version>, with its staging modules
# pointed at the matching published v0.x versions. Run once per new version
# (needs the Go module proxy); the result is committed.
#   tools/compat/gen.sh v1.37.2
set -euo pipefail
v=${1:?usage: gen.sh v1.MINOR.PATCH}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir="$here/$v"
gomod=$(go mod download -json "k8s.io/kubernetes@$v" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
staging=${v/v1./v0.}
mkdir -p "$dir"
cd "$dir"
{
  echo "module github.com/kubereplicator/replicator/tools/compat/$v"
  echo
  echo "go 1.26.0"
  echo
  echo "// k8s.io/kubernetes refers to its staging modules as v0.0.0 with local replaces;"
  echo "// outside its own tree they must point at the published $staging versions."
  echo "replace ("
  sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\1#p' "$gomod" |
    while read -r m; do echo "	$m => $m $staging"; done
  echo ")"
} > go.mod
go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@$v"
go mod tidy
