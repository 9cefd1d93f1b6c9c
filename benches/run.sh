#!/usr/bin/env bash
# vpc-resolver against Unbound, NSD and dnsmasq on the same names and data, driven by dnsperf.
#
#   benches/run.sh [--quick] [--duration S] [--rounds N] [--workloads private,nxdomain,...] [--transports udp,tcp]
#                  [--topology FILE...] [--no-half] [--out FILE]
#
# Builds vpc-resolver in release, starts it and the peers on 127.0.0.1 (free ports), gives the peers vpc-resolver's
# answers as their data, checks they all agree, then runs dnsperf against each in turn. Prints a Markdown report and
# writes it to benches/results/latest.md (or --out). `--quick`: 2 s runs, 1 round, a smoke test.
# Needs (Debian): apt-get install unbound nsd dnsmasq dnsperf bind9-dnsutils python3
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for tool in unbound nsd dnsmasq dnsperf dig python3 cargo; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "run.sh: missing ${missing[*]} (apt-get install unbound nsd dnsmasq dnsperf bind9-dnsutils)" >&2
    exit 2
fi
export PATH="$PATH:/usr/sbin"
# The Debian packages start their own daemons on port 53; the benchmark starts its own copies on free ports and
# does not need or touch those.

cargo build --release --quiet --bin vpc-resolver --example bench_names
target="${CARGO_TARGET_DIR:-target}/release"

out=benches/results/latest.md
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    [ "${args[$i]}" = "--out" ] && out="${args[$((i + 1))]}"
done

pid=
cleanup() { [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=; }
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM
python3 benches/bench.py --binary "$target/vpc-resolver" --names "$target/examples/bench_names" \
    --command-line "benches/run.sh $*" --out "$out" "$@" &
pid=$!
wait "$pid"
status=$?
pid=
exit $status
