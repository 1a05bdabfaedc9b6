# A throwaway dev cluster for the benchmark scripts (sourced, not run).

# Start `BIN dev` (3 nodes) on base port PORT in a fresh temporary
# directory; sets `work` (the directory) and `dev` (the process), both
# removed on exit, and waits for its cluster.json.
start_dev() {
  work=$(mktemp -d) dev=
  trap '[ -n "$dev" ] && kill "$dev" 2>/dev/null; rm -rf "$work"; true' EXIT
  "$1" dev --nodes 3 --base-port "$2" --data-dir "$work/dev" >"$work/dev.log" 2>&1 & dev=$!
  for _ in $(seq 300); do [ -f "$work/dev/cluster.json" ] && break; sleep 0.1; done
  [ -f "$work/dev/cluster.json" ] || { echo "the cluster did not start"; cat "$work/dev.log"; exit 1; }
}
