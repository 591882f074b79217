#!/usr/bin/env bash
# make run: start a local control plane (etcd + kube-apiserver, data in
# .local/, or in REPLICATOR_LOCAL_DIR if set; kept between runs), print the
# KUBECONFIG line to use it, and run the replicator against it. A real
# cluster only when the user names one: `make run KUBECONFIG=path` passes it
# here as REPLICATOR_RUN_KUBECONFIG. $KUBECONFIG from the environment and
# ~/.kube/config are never used by themselves: they may well point at
# production. Arguments are passed to the replicator. Ctrl-C stops
# everything.
set -euo pipefail
cd "$(dirname "$0")/.."

kubeconfig="${REPLICATOR_RUN_KUBECONFIG:-}"
kubeconfig="${kubeconfig/#\~/$HOME}"

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

if [ -n "${REPLICATOR_RUN_KUBECONFIG:-}" ]; then
  [ -f "$kubeconfig" ] || { echo "make run: KUBECONFIG=$kubeconfig: no such file" >&2; exit 2; }
  echo "make run: the cluster you named ($kubeconfig, its current context) gets the replicator's writes."
  echo "  With the binary's defaults every namespace may push Secrets, ConfigMaps and ServiceAccounts."
  echo "  If a replicator is installed there, this one is a second writer: stop it, or pass ARGS=--dry-run."
fi
echo "replicator running against $kubeconfig (Ctrl-C stops it)"
bin/replicator --kubeconfig "$kubeconfig" "$@" &
pids+=($!)
wait "${pids[-1]}"
