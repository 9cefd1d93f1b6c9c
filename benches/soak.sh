#!/usr/bin/env bash
# Soak benchmark (not a unit test): sustained load against `vpc-resolver serve` for a while, with a SIGHUP reload
# every few seconds (alternating a valid change and a broken file) and a forward rule to a black hole that takes
# a share of the queries. Reports queries sent, answered, lost, rcodes, reloads, the topology generation, and
# RSS/descriptors at the start and the end; checks that the last valid version serves at the end. The report is
# also written to benches/results/soak-DATE.txt (or --out FILE).
#
#   benches/soak.sh [--minutes N | --seconds N] [--qps N] [--reload-every SECONDS] [--bin PATH] [--out FILE]
#
# Needs dnsperf (Debian package `dnsperf`) and python3. Without --bin it builds the release binary.
# Traffic stays on 127.0.0.1.
set -euo pipefail

minutes=10
seconds=""
qps=2000
reload_every=5
bin=""
out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) minutes="$2"; shift 2 ;;
        --seconds) seconds="$2"; shift 2 ;;
        --qps) qps="$2"; shift 2 ;;
        --reload-every) reload_every="$2"; shift 2 ;;
        --bin) bin="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
command -v dnsperf >/dev/null || { echo "dnsperf not found: apt-get install dnsperf" >&2; exit 2; }
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${out:-$root/benches/results/soak-$(date -u +%F).txt}"
exec > >(tee "$out") 2>&1
if [ -z "$bin" ]; then
    (cd "$root" && cargo build --release --quiet)
    bin="$root/target/release/vpc-resolver"
fi

work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# A black hole: a bound UDP socket that reads and never answers (no ICMP, so every query runs to its deadline).
python3 - "$work/hole.port" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
while True:
    s.recv(4096)
PY
pids+=($!)
for _ in $(seq 50); do [ -s "$work/hole.port" ] && break; sleep 0.1; done
hole="127.0.0.1:$(cat "$work/hole.port")"

topology() { # $1 = version number
    cat <<YAML
version: 1
region: us-east-1
upstream: []
default_view: soak
vpcs:
  - name: soak
    cidr: 10.0.0.0/16
endpoints: [ec2, sts, ssm, logs]
hosted_zones:
  - name: soak.internal
    records:
      - { name: db, type: A, values: [10.0.$1.1, 10.0.$1.2] }
      - { name: www, type: CNAME, value: db.soak.internal. }
resolver:
  rules:
    - { domain: dead.soak, targets: ["$hole"] }
YAML
}
topology 1 > "$work/topology.yaml"

# The query mix: local answers (PHZ, CNAME, endpoints, NXDOMAIN, NODATA) and 1 in 20 to the dead rule, with
# names that change so the forwarder cannot coalesce them all into one.
{
    for i in $(seq 1 10); do
        echo "db.soak.internal A"
        echo "www.soak.internal A"
        echo "ec2.us-east-1.amazonaws.com A"
        echo "sts.us-east-1.amazonaws.com AAAA"
        echo "missing$i.soak.internal A"
        echo "db.soak.internal MX"
        echo "logs.us-east-1.amazonaws.com A"
        echo "ssm.us-east-1.amazonaws.com A"
        echo "db.soak.internal TXT"
        echo "h$i.dead.soak A"
    done
} > "$work/queries.txt"

"$bin" serve "$work/topology.yaml" --listen 127.0.0.1:0 --metrics 127.0.0.1:0 \
    > "$work/server.out" 2> "$work/server.err" &
server=$!
pids+=($server)
for _ in $(seq 100); do grep -q "^listening on http" "$work/server.out" 2>/dev/null && break; sleep 0.1; done
port="$(sed -n 's/^listening on udp 127.0.0.1:\([0-9]*\)$/\1/p' "$work/server.out")"
metrics="$(sed -n 's|^listening on http \(.*\)$|\1|p' "$work/server.out")"
[ -n "$port" ] || { echo "server did not start"; cat "$work/server.err"; exit 1; }

rss() { awk '/^VmRSS/ {print $2}' "/proc/$server/status"; }
fds() { ls "/proc/$server/fd" | wc -l; }
rss_start="$(rss)"; fds_start="$(fds)"
seconds="${seconds:-$((minutes * 60))}"
echo "soak: ${seconds} s at ${qps} qps against 127.0.0.1:$port, reload every ${reload_every}s, black hole $hole"

# Reloads in the background: odd rounds a valid change, even rounds a broken file (rejected, old one serves).
(
    n=0
    end=$((SECONDS + seconds))
    while [ $SECONDS -lt $end ]; do
        sleep "$reload_every"
        n=$((n + 1))
        if [ $((n % 2)) -eq 1 ]; then
            topology $((2 + n % 200)) > "$work/topology.new"
            echo $((2 + n % 200)) > "$work/last_valid"
        else
            printf 'version: 1\nvpcs:\n  - name: soak\n    cidr: 10.0.0.0/33\n' > "$work/topology.new"
        fi
        mv "$work/topology.new" "$work/topology.yaml"
        kill -HUP "$server"
    done
) &
reloader=$!
pids+=($reloader)

# A fixed number of passes over the 100-line input rather than -l: with a time limit dnsperf stops at once and
# counts the queries still in flight (those to the black hole take up to 2.5 s) as lost; this way it waits.
runs=$(( (seconds * qps + 99) / 100 ))
dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -n "$runs" -l $((seconds + 60)) -Q "$qps" -q 500 -t 5 -e -S 60 \
    > "$work/dnsperf.txt" 2>&1 || true
wait "$reloader" 2>/dev/null || true
sleep 3
rss_end="$(rss)"; fds_end="$(fds)"
alive=yes; kill -0 "$server" 2>/dev/null || alive=no

m="$(python3 -c 'import sys,urllib.request; print(urllib.request.urlopen("http://"+sys.argv[1]+"/metrics").read().decode())' "$metrics")"
reloads_ok="$(echo "$m" | sed -n 's/^vpc_resolver_reloads_total{result="ok"} //p')"
reloads_failed="$(echo "$m" | sed -n 's/^vpc_resolver_reloads_total{result="failed"} //p')"
generation="$(echo "$m" | sed -n 's/^vpc_resolver_topology_generation //p')"
want="10.0.$(cat "$work/last_valid" 2>/dev/null || echo 1).1"
serving="$(dig +short +time=2 @127.0.0.1 -p "$port" db.soak.internal A | sort | head -1)"

echo "---- dnsperf"
sed -n '/Statistics:/,$p' "$work/dnsperf.txt"
echo "---- server"
echo "alive at the end: $alive"
echo "reloads ok: $reloads_ok, rejected: $reloads_failed; topology generation at the end: $generation"
echo "db.soak.internal at the end: $serving (the last valid version: $want)"
echo "VmRSS: start ${rss_start} kB, end ${rss_end} kB"
echo "descriptors: start ${fds_start}, end ${fds_end}"
echo "server log lines at ERROR: $(grep -c ERROR "$work/server.err" || true)"
answered="$(echo "$m" | awk '/^vpc_resolver_queries_total/ {n += $2} END {print n}')"
echo "answered by the server (vpc_resolver_queries_total): $answered"
echo "$m" | grep -E '^vpc_resolver_(queries_total|upstream_failures_total|cache_entries)' || true
lost="$(sed -n 's/^ *Queries lost: *\([0-9]*\).*/\1/p' "$work/dnsperf.txt")"
[ "$alive" = yes ] && [ "${lost:-1}" = 0 ] && [ "$serving" = "$want" ]
