#!/usr/bin/env python3
"""Hostile storm (not a unit test): 10^6 malformed and abusive UDP packets at `vpc-resolver serve`, with a good
question every few thousand packets, then checks the server is alive, answers, and kept its memory and descriptors.

    benches/storm.py [--packets N] [--bin PATH] [--out FILE]

Packet kinds (deterministic, seeded): random bytes of every length up to 600; a valid header with lying counts;
compression pointer loops and forward pointers; labels running past the end; names over 255 bytes; responses
(QR set) that must be dropped; unknown opcodes and classes; EDNS with bad versions, options and repeated OPT
records; AXFR/IXFR/ANY over UDP. Everything is sent to 127.0.0.1. Writes a Markdown report (default
benches/results/storm-DATE.md). Standard library only.
"""

import argparse
import datetime
import os
import random
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TOPOLOGY = """version: 1
region: us-east-1
upstream: []
default_view: storm
vpcs:
  - name: storm
    cidr: 10.0.0.0/16
endpoints: [ec2, sts]
hosted_zones:
  - name: storm.internal
    records:
      - { name: db, type: A, values: [10.0.1.100] }
      - { name: www, type: CNAME, value: db.storm.internal. }
"""


def name(labels):
    out = b""
    for l in labels:
        out += bytes([len(l)]) + l
    return out + b"\0"


def query(qid, qname=b"db.storm.internal", qtype=1, qclass=1, flags=0x0100, opt=None):
    p = struct.pack(">HHHHHH", qid, flags, 1, 0, 0, 1 if opt is not None else 0)
    p += name(qname.split(b".")) + struct.pack(">HH", qtype, qclass)
    if opt is not None:
        p += opt
    return p


def opt_rr(payload=1232, ext=0, version=0, flags=0, options=b""):
    return b"\0" + struct.pack(">HHBBHH", 41, payload, ext, version, flags, len(options)) + options


def hostile(rng):
    """One hostile packet."""
    k = rng.randrange(12)
    qid = rng.randrange(65536)
    if k == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(601)))
    if k == 1:  # lying counts
        return struct.pack(">HHHHHH", qid, 0x0100, *(rng.randrange(65536) for _ in range(4))) + b"\x03abc\0\0\1\0\1"
    if k == 2:  # pointer loop at the question
        return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\0\1\0\1"
    if k == 3:  # forward pointer and a pointer past the end
        return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + b"\x01a\xc0\x20\0\1\0\1" + b"\xc3\xff"
    if k == 4:  # label past the end
        return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + b"\x3fabc"
    if k == 5:  # name over 255 bytes
        return query(qid, b".".join([b"a" * 63] * 5))
    if k == 6:  # a response: must be dropped
        return query(qid, flags=0x8180)
    if k == 7:  # unknown opcode / class
        return query(qid, flags=(rng.choice([3, 6, 9, 15]) << 11) | 0x0100, qclass=rng.choice([0, 2, 254, 65535]))
    if k == 8:  # bad EDNS version, odd options
        opts = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        return query(qid, opt=opt_rr(version=rng.randrange(1, 256), options=opts))
    if k == 9:  # two OPT records, EDNS payload below 512
        p = query(qid, opt=opt_rr(payload=rng.randrange(512)) + opt_rr())
        return p[:10] + b"\0\x02" + p[12:]
    if k == 10:  # zone transfers and ANY over UDP
        return query(qid, qtype=rng.choice([252, 251, 255]))
    # a valid query truncated at a random byte
    p = query(qid, b"www.storm.internal", opt=opt_rr())
    return p[: rng.randrange(len(p))]


def proc_stats(pid):
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    ticks = int(rest[11]) + int(rest[12])
    return rss, fds, ticks


def ask(sock, addr, qid):
    sock.sendto(query(qid, opt=opt_rr()), addr)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data, _ = sock.recvfrom(4096)
        except (socket.timeout, BlockingIOError):
            return None
        if data[:2] == struct.pack(">H", qid):
            return time.monotonic()
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--bin", default="")
    ap.add_argument("--out", default="")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    binary = args.bin
    if not binary:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
        binary = os.path.join(ROOT, "target/release/vpc-resolver")
    work = tempfile.mkdtemp()
    topo = os.path.join(work, "storm.yaml")
    with open(topo, "w") as f:
        f.write(TOPOLOGY)
    err = open(os.path.join(work, "server.err"), "w")
    srv = subprocess.Popen(
        [binary, "serve", topo, "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=err, text=True,
    )
    udp = http = None
    while udp is None or http is None:
        line = srv.stdout.readline()
        if not line:
            sys.exit("server did not start")
        if m := re.match(r"listening on udp (\S+):(\d+)", line):
            udp = (m.group(1), int(m.group(2)))
        if m := re.match(r"listening on http (\S+)", line):
            http = m.group(1)
    rng = random.Random(args.seed)
    variants = [hostile(rng) for _ in range(8192)]
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    assert ask(probe, udp, 1), "no answer before the storm"
    rss0, fds0, ticks0 = proc_stats(srv.pid)
    senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(4)]
    for s in senders:
        s.setblocking(False)
    probes = answered = 0
    sent = dropped_locally = 0
    started = time.monotonic()
    every = max(1, args.packets // 200)
    for i in range(args.packets):
        p = variants[i % len(variants)]
        try:
            senders[i & 3].sendto(p, udp)
            sent += 1
        except BlockingIOError:
            dropped_locally += 1
        if i % every == every - 1:
            probes += 1
            answered += ask(probe, udp, 2 + probes % 60000) is not None
            for s in senders:  # drain the replies so our own buffers do not fill
                try:
                    while s.recv(65535):
                        pass
                except BlockingIOError:
                    pass
    elapsed = time.monotonic() - started
    after_ok = ask(probe, udp, 65000) is not None
    rss1, fds1, ticks1 = proc_stats(srv.pid)
    alive = srv.poll() is None
    metrics = urllib.request.urlopen(f"http://{http}/metrics", timeout=5).read().decode()
    srv.terminate()
    srv.wait(timeout=10)
    rcodes = {}
    for m in re.finditer(r'^vpc_resolver_queries_total\{[^}]*rcode="(\w+)"[^}]*\} (\d+)', metrics, re.M):
        rcodes[m.group(1)] = rcodes.get(m.group(1), 0) + int(m.group(2))
    date = datetime.date.today().isoformat()
    out = args.out or os.path.join(ROOT, "benches", "results", f"storm-{date}.md")
    load = open("/proc/loadavg").read().split()[:3]
    report = f"""# Hostile storm: {args.packets:,} packets

    benches/storm.py --packets {args.packets} {'--bin ' + args.bin if args.bin else ''}

Machine: {os.cpu_count()} CPUs, load average {' '.join(load)} at the end. Binary: `{os.path.relpath(binary, ROOT)}`.

| | |
| --- | --- |
| hostile packets sent | {sent:,} in {elapsed:.1f} s ({sent / elapsed:,.0f}/s; {dropped_locally:,} not sent: our socket buffer was full) |
| good questions during the storm | {probes}, answered {answered} ({100 * answered / max(1, probes):.1f} %) |
| good question after the storm | {'answered' if after_ok else 'NOT answered'} |
| server alive at the end | {'yes' if alive else 'NO'} |
| VmRSS | {rss0:,} kB before, {rss1:,} kB after |
| descriptors | {fds0} before, {fds1} after |
| server CPU during the storm | {(ticks1 - ticks0) / 100:.1f} s |
| replies by rcode (`vpc_resolver_queries_total`) | {', '.join(f'{k} {v:,}' for k, v in sorted(rcodes.items()))} |

Packets that are not answered (responses, unparseable headers) are dropped by design; a lost good question
means the receive buffer overflowed under the storm (the kernel drops, not the server).
"""
    with open(out, "w") as f:
        f.write(report)
    print(report)
    ok = alive and after_ok and fds1 <= fds0 + 2
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
