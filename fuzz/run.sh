#!/bin/sh
# Runs the fuzz targets for SECONDS in all (default 120): the request path, the topology loader and `import aws`;
# exits non-zero on a crash, a panic or a hang (an input that takes over 10 s).
# cargo-fuzz needs nightly features (-Z sanitizer); RUSTC_BOOTSTRAP=1 unlocks them on a stable toolchain.
# Needs: cargo install cargo-fuzz --locked
set -eu
seconds="${1:-120}"
cd "$(dirname "$0")"
mkdir -p corpus/request
# Seed the corpus with a few real queries (regenerated each run; the corpus directory is not committed).
python3 - corpus/request <<'PY' 2>/dev/null || true
import os, struct, sys
d = sys.argv[1]
def q(name, qtype, qclass=1, flags=0x0100, opt=None, sel=0):
    p = struct.pack(">HHHHHH", 0x1234, flags, 1, 0, 0, 1 if opt else 0)
    for l in name.split("."):
        if l:
            p += bytes([len(l)]) + l.encode()
    p += b"\0" + struct.pack(">HH", qtype, qclass)
    if opt:
        p += b"\0" + struct.pack(">HHIH", 41, opt[0], opt[1], 0)
    return bytes([sel]) + p
seeds = [
    q("ec2.us-east-1.amazonaws.com", 1), q("example.com", 28, opt=(4096, 0x8000)),
    q("version.bind", 16, 3), q("x", 255), q("x", 1, opt=(1232, 0x10000)), q("a.b", 252),
    q("ip-10-0-1-10.ec2.internal", 1, sel=2), q("10.1.0.10.in-addr.arpa", 12, sel=5),
    q("x", 1, flags=0x2800),
]
for i, s in enumerate(seeds):
    open(os.path.join(d, "seed-%d" % i), "wb").write(s)
PY
# The loaders start from every topology and broken file of the repository, and the AWS fixtures as one input.
mkdir -p corpus/topology corpus/import_aws
for f in ../zones/*.yaml ../zones/scenarios/*.yaml ../tests/broken/*.yaml; do
    [ -f "$f" ] && cp "$f" "corpus/topology/seed-$(basename "$f")"
done
python3 - ../tests/fixtures/aws corpus/import_aws <<'PY' 2>/dev/null || true
import os, sys
src, dst = sys.argv[1], sys.argv[2]
order = ["describe-vpcs.json", "describe-subnets.json", "describe-vpc-endpoints.json",
         "describe-network-interfaces.json", "describe-vpc-attribute-enableDnsSupport.json",
         "list-hosted-zones.json", "get-hosted-zone-Z0123456789ABCDEFGHIJ.json", "Z0123456789ABCDEFGHIJ.json",
         "list-resolver-endpoint-ip-addresses-rslvr-out-0123456789abcdef0.json"]
parts = []
for name in order:
    p = os.path.join(src, name)
    parts.append(open(p, "rb").read() if os.path.exists(p) else b"{}")
open(os.path.join(dst, "seed-fixtures"), "wb").write(b"\0".join(parts))
open(os.path.join(dst, "seed-vpcs-only"), "wb").write(parts[0])
PY
run() {
    target="$1"; secs="$2"; shift 2
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 "$@"
}
# About two fifths of the time for the request path, the rest shared by the two loaders.
run request $((seconds * 2 / 5)) -max_len=4096
run topology $((seconds * 3 / 10)) -max_len=65536
run import_aws $((seconds * 3 / 10)) -max_len=262144
