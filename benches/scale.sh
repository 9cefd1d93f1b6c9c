#!/usr/bin/env bash
# vpc-resolver at topology scales 1x, 10x, 100x, 1000x (benches/gen_topology.py): check time, start-up time,
# RSS, q/s of the private-answer workload, SIGHUP reload time.
#
#   benches/scale.sh [--quick] [--scales 1,10,100,1000] [--duration S] [--check-runs N] [--out FILE]
#                    [--keep FILE]   (keep the largest topology, e.g. to profile `vpc-resolver check FILE`)
#
# Prints a Markdown report and writes it to benches/results/scale-latest.md (or --out).
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in dnsperf python3 cargo /usr/bin/time; do
    command -v "$tool" >/dev/null 2>&1 || { echo "scale.sh: missing $tool (apt-get install dnsperf time)" >&2; exit 2; }
done
cargo build --release --quiet --bin vpc-resolver --example bench_names
target="${CARGO_TARGET_DIR:-target}/release"

out=benches/results/scale-latest.md
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    [ "${args[$i]}" = "--out" ] && out="${args[$((i + 1))]}"
done

pid=
cleanup() { [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=; }
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM
python3 benches/scale.py --binary "$target/vpc-resolver" --names "$target/examples/bench_names" \
    --command-line "benches/scale.sh $*" --out "$out" "$@" &
pid=$!
wait "$pid"
status=$?
pid=
exit $status
