"""Just enough DNS (standard library only) for the benchmarks: send one query over UDP or TCP, parse the reply.

Used to read vpc-resolver's answers (to give the peers the same data), to check every peer answers the same, and to
warm caches. Not used for load: dnsperf does that.
"""

import random
import socket
import struct

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28, "SRV": 33}
TYPE_NAMES = {v: k for k, v in TYPES.items()}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def build_query(name, qtype, qid=None):
    qid = random.randrange(65536) if qid is None else qid
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)  # RD set, as dnsperf and stub resolvers send
    return header + encode_name(name) + struct.pack("!HH", TYPES[qtype], 1)


def read_name(msg, off):
    labels, jumped, end = [], False, off
    for _ in range(128):
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if not jumped:
                end = off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
            jumped = True
            continue
        if n == 0:
            if not jumped:
                end = off + 1
            break
        labels.append(msg[off + 1 : off + 1 + n].decode("ascii", "replace").lower())
        off += 1 + n
    return ".".join(labels) + ".", end


def rdata_text(msg, rtype, off, rdlen):
    data = msg[off : off + rdlen]
    if rtype == 1:
        return socket.inet_ntop(socket.AF_INET, data)
    if rtype == 28:
        return socket.inet_ntop(socket.AF_INET6, data)
    if rtype in (2, 5, 12):
        return read_name(msg, off)[0]
    if rtype == 15:
        return "%d %s" % (struct.unpack("!H", data[:2])[0], read_name(msg, off + 2)[0])
    if rtype == 16:
        parts, i = [], 0
        while i < len(data):
            n = data[i]
            parts.append('"%s"' % data[i + 1 : i + 1 + n].decode("ascii", "replace").replace('"', '\\"'))
            i += 1 + n
        return " ".join(parts)
    if rtype == 33:
        prio, weight, port = struct.unpack("!HHH", data[:6])
        return "%d %d %d %s" % (prio, weight, port, read_name(msg, off + 6)[0])
    if rtype == 6:
        mname, o = read_name(msg, off)
        rname, o = read_name(msg, o)
        return "%s %s %d %d %d %d %d" % ((mname, rname) + struct.unpack("!IIIII", msg[o : o + 20]))
    return "\\# %d %s" % (rdlen, data.hex())


class Reply:
    def __init__(self, msg):
        self.size = len(msg)
        _qid, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", msg[:12])
        self.rcode = RCODES.get(flags & 0xF, str(flags & 0xF))
        self.tc = bool(flags & 0x0200)
        off = 12
        for _ in range(qd):
            off = read_name(msg, off)[1] + 4
        self.answer, self.authority = [], []
        for section, count in ((self.answer, an), (self.authority, ns)):
            for _ in range(count):
                owner, off = read_name(msg, off)
                rtype, _cls, ttl, rdlen = struct.unpack("!HHIH", msg[off : off + 10])
                off += 10
                section.append((owner, TYPE_NAMES.get(rtype, "TYPE%d" % rtype), ttl, rdata_text(msg, rtype, off, rdlen)))
                off += rdlen

    def key(self):
        """What two servers must agree on: the rcode and the answer RRs (TTL and order aside)."""
        return (self.rcode, tuple(sorted((o, t, d) for o, t, _ttl, d in self.answer)))


def query(port, name, qtype, tcp=False, host="127.0.0.1", timeout=2.0):
    q = build_query(name, qtype)
    if tcp:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(struct.pack("!H", len(q)) + q)
            buf = b""
            while len(buf) < 2 or len(buf) < 2 + struct.unpack("!H", buf[:2])[0]:
                chunk = s.recv(65535)
                if not chunk:
                    raise OSError("connection closed")
                buf += chunk
            return Reply(buf[2:])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(q, (host, port))
        while True:
            msg, _ = s.recvfrom(65535)
            if msg[:2] == q[:2]:
                return Reply(msg)
