#!/usr/bin/env bash
# make run: start the replicator against the current kubeconfig; with none,
# start a local control plane (etcd + kube-apiserver, data in .local/, or in
# REPLICATOR_LOCAL_DIR if set; kept between runs) first and print the
# KUBECONFIG line to use it. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

kubeconfig="${KUBECONFIG:-}"; kubeconfig="${kubeconfig%%:*}"
[ -z "$kubeconfig" ] && [ -f "$HOME/.kube/config" ] && kubeconfig="$HOME/.kube/config"

pids=()
cleanup() {
  trap - INT TERM EXIT
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup INT TERM EXIT

if [ -z "$kubeconfig" ]; then
  : "${REPLICATOR_TOOLS_BIN:?set by make run}"
  localdir="${REPLICATOR_LOCAL_DIR:-.local}"
  mkdir -p "$localdir"
  ready="$localdir/controlplane.ready"
  rm -f "$ready"
  go build -o bin/controlplane ./cmd/controlplane
  bin/controlplane -bin-dir "$REPLICATOR_TOOLS_BIN" -dir "$localdir/controlplane" -ready-file "$ready" >"$localdir/controlplane.out" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 600); do
    [ -s "$ready" ] && break
    kill -0 "${pids[0]}" 2>/dev/null || { cat "$localdir/controlplane.out"; exit 1; }
    sleep 0.1
  done
  [ -s "$ready" ] || { echo "control plane did not become ready" >&2; cat "$localdir/controlplane.out"; exit 1; }
  kubeconfig="$(cat "$ready")"
  echo
  echo "A local control plane is running. In another shell:"
  echo "  export KUBECONFIG=$kubeconfig"
  echo "  export PATH=$REPLICATOR_TOOLS_BIN:\$PATH   # kubectl v1.36"
  echo
fi

echo "replicator running against $kubeconfig (Ctrl-C stops it)"
bin/replicator --kubeconfig "$kubeconfig" "$@" &
pids+=($!)
wait "${pids[-1]}"
