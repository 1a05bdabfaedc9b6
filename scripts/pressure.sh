#!/usr/bin/env bash
# The pressure suite, long scenarios included: hinted handoff of large
# values, bursts of the largest values, slowloris and idle floods (the
# default limits too), unauthenticated RPC floods and forged causal
# contexts, each against real server processes. Prints each scenario's
# figures; docs/RELIABILITY.md records them.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release -p ringstore --test pressure -- --include-ignored --nocapture --test-threads 1 2>&1 |
  grep -E '^test |drained in|PUTs in|idle connections|test result|panicked'
