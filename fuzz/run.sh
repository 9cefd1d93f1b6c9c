#!/bin/sh
# Runs the request-path fuzz target for SECONDS (default 60); exits non-zero on a crash.
# cargo-fuzz needs nightly features (-Z sanitizer); RUSTC_BOOTSTRAP=1 unlocks them on a stable toolchain.
# Needs: cargo install cargo-fuzz --locked
set -eu
seconds="${1:-60}"
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
RUSTC_BOOTSTRAP=1 cargo fuzz run request corpus/request -- \
    -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=2048
