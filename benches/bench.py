#!/usr/bin/env python3
"""vpc-resolver against Unbound, NSD and dnsmasq on the same names and data, driven by dnsperf.

Run through benches/run.sh (which builds the release binaries first). Everything listens on 127.0.0.1 only;
every process started here is stopped at the end (and dies with this script), the temp dir is removed.

How the peers get the same data: vpc-resolver is started first, every name of every query file is asked of it,
and its answers (records, TTLs, rcodes) become NSD zone files, Unbound local-data and dnsmasq host-record lines.
Then every peer is asked the same names and must agree (rcode and answer RRs); disagreements are reported.
"""

import argparse
import ctypes
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dnslib  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
FWD_ZONE = "fwd.bench.test."
LOCAL_WORKLOADS = ["private", "nxdomain", "nodata", "vpce", "phz"]
# Many distinct names: what a table of prepared answers cannot hide (NXDOMAIN below a private DNS name; forwarded
# answers from the cache).
ALL_WORKLOADS = LOCAL_WORKLOADS + ["nxdomain-many", "forwarded", "mix"]
RECURSIVE_ONLY = {"forwarded", "mix"}  # NSD serves authoritative data only

_procs = []
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def _die_with_parent():
    _libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: no server outlives the benchmark, even on SIGKILL


def start(cmd, log_path, stdout=None):
    log = open(log_path, "ab")
    p = subprocess.Popen(cmd, stdout=stdout or log, stderr=log, stdin=subprocess.DEVNULL,
                         preexec_fn=_die_with_parent)
    _procs.append(p)
    return p


def stop_all():
    for p in _procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.time() + 5
    for p in _procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    _procs.clear()


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


def wait_ready(port, name, qtype="A", timeout=20.0, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("server exited with %s" % proc.returncode)
        try:
            dnslib.query(port, name, qtype, timeout=0.3)
            dnslib.query(port, name, qtype, tcp=True, timeout=0.3)
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server on port %d not ready after %.0f s" % (port, timeout))


# ---- process statistics ---------------------------------------------------------------------------------------

def _children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(pid):
    kids, out, todo = _children_map(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def udp_drops(port):
    """Datagrams the kernel dropped at the server's UDP sockets on `port` (receive buffer full), summed over them:
    /proc/net/udp's last field. A lost query the server's sockets did not drop was lost at the client's socket."""
    total = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                total += int(fields[-1])
    return total


def cpu_seconds(pid):
    """utime+stime of the process and its live descendants, plus the reaped children's cutime+cstime (dnsmasq forks
    one child per TCP connection; NSD runs several server processes)."""
    ticks = 0
    for p in tree(pid):
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return ticks / CLK_TCK


def rss_kib(pid, field="VmHWM"):
    """Sum over the process tree (NSD: main + server processes + xfrd; shared pages counted once per process)."""
    total = 0
    for p in tree(pid):
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith(field + ":"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


# ---- dnsperf ----------------------------------------------------------------------------------------------------

def dnsperf(port, datafile, duration, mode="udp", qps=None, clients=4, outstanding=100):
    """One dnsperf run with -v (one line per answer, with its latency) so percentiles can be computed."""
    cmd = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", datafile, "-l", str(duration), "-m", mode,
           "-c", str(clients), "-q", str(outstanding), "-t", "2", "-v"]
    if qps:
        cmd += ["-Q", str(int(qps))]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    res = {"latencies": [], "sent": 0, "completed": 0, "lost": 0, "qps": 0.0, "avg_latency": 0.0, "resp_size": 0}
    for line in p.stdout.splitlines():
        if line.startswith("> "):
            # "> NOERROR name TYPE 0.000123"
            try:
                res["latencies"].append(float(line.rsplit(None, 1)[1]))
            except (ValueError, IndexError):
                pass
            continue
        s = line.strip()
        if s.startswith("Queries sent:"):
            res["sent"] = int(s.split()[2])
        elif s.startswith("Queries completed:"):
            res["completed"] = int(s.split()[2])
        elif s.startswith("Queries lost:"):
            res["lost"] = int(s.split()[2])
        elif s.startswith("Queries per second:"):
            res["qps"] = float(s.split()[3])
        elif s.startswith("Average Latency (s):"):
            res["avg_latency"] = float(s.split()[3])
        elif s.startswith("Average packet size:"):
            res["resp_size"] = int(s.rsplit(None, 1)[1])
    if p.returncode != 0 or res["sent"] == 0:
        last = (p.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError("dnsperf failed (%s): %s" % (p.returncode, last[-300:]))
    return res


def percentile(sorted_values, pct):
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, int(round(pct / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def dig_size(port, name, qtype, tcp=False):
    cmd = ["dig", "@127.0.0.1", "-p", str(port), name, qtype, "+stats", "+noedns", "+tries=1", "+time=2"]
    if tcp:
        cmd.append("+tcp")
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=False).stdout
    for line in out.splitlines():
        if "MSG SIZE" in line:
            return int(line.rsplit(None, 1)[1])
    return None


# ---- peer configuration -----------------------------------------------------------------------------------------

def zone_of(name, zones):
    best = None
    for z in zones:
        if (name == z or name.endswith("." + z)) and (best is None or len(z) > len(best)):
            best = z
    return best


def soa(zone):
    return "%s 900 IN SOA ns1.%s hostmaster.%s 1 7200 900 1209600 86400" % (zone, zone, zone)


def collect_records(port, queries):
    """vpc-resolver's answers -> {owner: {(type, rdata): ttl}} and its reply per query."""
    records, replies = {}, {}
    for name, qtype in queries:
        r = dnslib.query(port, name, qtype)
        replies[(name, qtype)] = r
        for owner, rtype, ttl, data in r.answer:
            records.setdefault(owner, {})[(rtype, data)] = ttl
    return records, replies


def write_unbound_upstream(d, port, n):
    lines = ["server:", "  interface: 127.0.0.1", "  port: %d" % port, "  do-daemonize: no", '  username: ""',
             '  chroot: ""', '  directory: "%s"' % d, '  pidfile: ""', "  use-syslog: no", "  verbosity: 0",
             "  num-threads: 1", "  do-ip6: no", '  module-config: "iterator"', "  access-control: 127.0.0.0/8 allow",
             '  local-zone: "%s" static' % FWD_ZONE,
             '  local-data: "%s 3600 IN SOA ns1.%s hostmaster.%s 1 7200 900 1209600 86400"' % ((FWD_ZONE,) * 3)]
    for i in range(n):
        lines.append('  local-data: "h%d.%s 3600 IN A 198.18.%d.%d"' % (i, FWD_ZONE, i // 250, i % 250 + 1))
    lines += ["remote-control:", "  control-enable: no"]
    path = os.path.join(d, "upstream.conf")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def write_unbound(d, port, upstream_port, zones, records, threads):
    lines = ["server:", "  interface: 127.0.0.1", "  port: %d" % port, "  do-daemonize: no", '  username: ""',
             '  chroot: ""', '  directory: "%s"' % d, '  pidfile: ""', "  use-syslog: no", "  verbosity: 0",
             "  num-threads: %d" % threads, "  so-reuseport: yes", "  do-ip6: no", '  module-config: "iterator"',
             "  access-control: 127.0.0.0/8 allow", "  do-not-query-localhost: no", "  incoming-num-tcp: 100",
             "  msg-cache-size: 64m", "  rrset-cache-size: 128m",
             # Unbound serves RFC 6761 names (test.) itself by default; the forwarded zone lives under test.
             '  local-zone: "test." nodefault']
    for z in sorted(zones):
        lines.append('  local-zone: "%s" static' % z)
        lines.append('  local-data: "%s"' % soa(z))
    for owner in sorted(records):
        for (rtype, data), ttl in sorted(records[owner].items()):
            lines.append("  local-data: '%s %d IN %s %s'" % (owner, ttl, rtype, data))
    lines += ["forward-zone:", '  name: "."', "  forward-addr: 127.0.0.1@%d" % upstream_port,
              "remote-control:", "  control-enable: no"]
    path = os.path.join(d, "unbound.conf")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def write_nsd(d, port, zones, records, threads):
    nd = os.path.join(d, "nsd")
    os.makedirs(nd, exist_ok=True)
    conf = ["server:", "  ip-address: 127.0.0.1", "  port: %d" % port, "  server-count: %d" % threads,
            '  username: ""', '  chroot: ""', '  zonesdir: "%s"' % nd, '  database: ""',
            '  pidfile: "%s/nsd.pid"' % nd, '  logfile: "%s/nsd.log"' % nd, '  xfrdfile: "%s/xfrd.state"' % nd,
            '  zonelistfile: "%s/zone.list"' % nd, "  verbosity: 0", "  tcp-count: 200", "  do-ip6: no",
            # Response rate limiting (on in Debian's build) would drop most of a benchmark's queries.
            "  rrl-ratelimit: 0", "  rrl-whitelist-ratelimit: 0",
            "remote-control:", "  control-enable: no"]
    by_zone = {z: [] for z in zones}
    for owner in records:
        z = zone_of(owner, zones)
        if z is None:
            continue
        for (rtype, data), ttl in sorted(records[owner].items()):
            by_zone[z].append("%s %d IN %s %s" % (owner, ttl, rtype, data))
    for i, z in enumerate(sorted(zones)):
        fn = "z%d.zone" % i
        with open(os.path.join(nd, fn), "w") as f:
            f.write("$ORIGIN %s\n%s\n%s 900 IN NS ns1.%s\n" % (z, soa(z), z, z))
            f.write("\n".join(sorted(by_zone[z])) + "\n")
        conf += ["zone:", '  name: "%s"' % z, '  zonefile: "%s"' % fn]
    path = os.path.join(nd, "nsd.conf")
    with open(path, "w") as f:
        f.write("\n".join(conf) + "\n")
    return path


def write_dnsmasq(d, port, upstream_port, zones, records):
    """dnsmasq has one TTL for all local data (local-ttl) and no SOA in its local negative answers."""
    ttls = [t for recs in records.values() for t in recs.values()]
    local_ttl = statistics.mode(ttls) if ttls else 60
    lines = ["no-resolv", "no-hosts", "no-poll", "listen-address=127.0.0.1", "bind-interfaces", "port=%d" % port,
             "user=root", "pid-file=", "cache-size=10000", "dns-forward-max=1000", "local-ttl=%d" % local_ttl,
             "server=127.0.0.1#%d" % upstream_port]
    for z in sorted(zones):
        lines.append("local=/%s/" % z.rstrip("."))
    skipped = []
    for owner in sorted(records):
        o = owner.rstrip(".")
        for (rtype, data), _ttl in sorted(records[owner].items()):
            if rtype in ("A", "AAAA"):
                lines.append("host-record=%s,%s" % (o, data))
            elif rtype == "CNAME":
                lines.append("cname=%s,%s" % (o, data.rstrip(".")))
            elif rtype == "TXT":
                lines.append("txt-record=%s,%s" % (o, data.replace('" "', '","')))
            elif rtype == "MX":
                pref, host = data.split()
                lines.append("mx-host=%s,%s,%s" % (o, host.rstrip("."), pref))
            else:
                skipped.append((owner, rtype))
    path = os.path.join(d, "dnsmasq.conf")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path, skipped, local_ttl


# ---- the benchmark ----------------------------------------------------------------------------------------------

def read_names(exe, topology):
    out = subprocess.run([exe] + topology, stdout=subprocess.PIPE, text=True, check=True).stdout
    zones, wl = set(), {w: [] for w in LOCAL_WORKLOADS}
    for line in out.splitlines():
        parts = line.split("\t")
        if parts[0] == "zone":
            zones.add(parts[1])
        else:
            wl[parts[0]].append((parts[1], parts[2]))
    return zones, wl


def write_queries(path, queries):
    with open(path, "w") as f:
        for name, qtype in queries:
            f.write("%s %s\n" % (name, qtype))


def machine_info():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = f.readline().split()[1]

    def version(cmd):
        try:
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
            return r.stdout.strip().splitlines()[0] if r.stdout.strip() else "?"
        except OSError:
            return "?"

    return {
        "nproc": os.cpu_count(), "model": model, "mem_gib": int(mem) // 1048576, "kernel": platform.release(),
        "loadavg": open("/proc/loadavg").read().split()[:3],
        "unbound": version(["unbound", "-V"]).replace("Version ", ""),
        "nsd": version(["nsd", "-v"]), "dnsmasq": version(["dnsmasq", "--version"]),
        "dnsperf": [l for l in subprocess.run(["dnsperf", "-h"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                text=True, check=False).stdout.splitlines() if "Version" in l][:1],
    }


def fmt_ratio(a, b):
    return "%.2f" % (a / b) if b else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True, help="the release vpc-resolver")
    ap.add_argument("--names", required=True, help="the release bench_names example")
    ap.add_argument("--topology", nargs="*", default=[], help="topology files (default: the embedded one)")
    ap.add_argument("--duration", type=float, default=10, help="seconds per dnsperf run (default 10)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds A B C D A B C D ... (default 3)")
    ap.add_argument("--quick", action="store_true", help="smoke test: 2 s runs, 1 round")
    ap.add_argument("--workloads", default=",".join(ALL_WORKLOADS))
    ap.add_argument("--transports", default="udp,tcp")
    ap.add_argument("--forwarded-names", type=int, default=2000, help="distinct forwarded names (default 2000)")
    ap.add_argument("--nxdomain-names", type=int, default=1000,
                    help="distinct NXDOMAIN names under one private DNS name for nxdomain-many (default 1000)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="Unbound num-threads and NSD server-count (default: nproc; vpc-resolver uses one worker "
                         "per core, dnsmasq is single-threaded)")
    ap.add_argument("--outstanding", type=int, default=100, help="dnsperf -q, queries outstanding (default 100)")
    ap.add_argument("--no-half", action="store_true", help="skip the p99-at-half-saturation runs")
    ap.add_argument("--out", default=None, help="also write the Markdown report here")
    ap.add_argument("--command-line", default=None, help="the command to print in the report")
    args = ap.parse_args()
    if args.quick:
        args.duration, args.rounds = 2, 1
    workloads = [w for w in args.workloads.split(",") if w]
    transports = [t for t in args.transports.split(",") if t]
    for w in workloads:
        if w not in ALL_WORKLOADS:
            sys.exit("unknown workload %s (know %s)" % (w, ", ".join(ALL_WORKLOADS)))

    tmp = tempfile.mkdtemp(prefix="vpcr-bench-")

    def on_signal(signum, _frame):
        raise KeyboardInterrupt("signal %d" % signum)

    signal.signal(signal.SIGTERM, on_signal)
    try:
        report = run(args, workloads, transports, tmp)
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)
        print("written to %s" % args.out, file=sys.stderr)


def log(msg):
    print("[bench] " + msg, file=sys.stderr, flush=True)


def run(args, workloads, transports, tmp):
    t_start = time.time()
    info = machine_info()
    zones, wl = read_names(args.names, args.topology)
    fwd = [("h%d.%s" % (i, FWD_ZONE), "A") for i in range(args.forwarded_names)]
    wl["forwarded"] = fwd
    # nx-bench.ZONE is the single NXDOMAIN name of each private DNS zone; nxdomain-many asks 1,000 names under one.
    nx_zone = wl["nxdomain"][0][0].split(".", 1)[1] if wl["nxdomain"] else None
    wl["nxdomain-many"] = [("nx%d.%s" % (i, nx_zone), "A") for i in range(args.nxdomain_names)] if nx_zone else []
    local_all = [q for w in LOCAL_WORKLOADS for q in wl[w]]
    mix = []
    for i in range(max(len(fwd), len(local_all))):
        mix.append(local_all[i % len(local_all)])
        mix.append(fwd[i % len(fwd)])
    wl["mix"] = mix

    ports = {s: free_port() for s in ("upstream", "vpc-resolver", "unbound", "nsd", "dnsmasq")}
    up_conf = write_unbound_upstream(tmp, ports["upstream"], args.forwarded_names)
    up = start(["unbound", "-d", "-c", up_conf], os.path.join(tmp, "upstream.log"))
    wait_ready(ports["upstream"], fwd[0][0], proc=up)

    log("starting vpc-resolver")
    vr_cmd = [args.binary, "serve"] + args.topology + ["--listen", "127.0.0.1:%d" % ports["vpc-resolver"],
                                                       "--upstream", "127.0.0.1:%d" % ports["upstream"]]
    vr = start(vr_cmd, os.path.join(tmp, "vpc-resolver.log"))
    wait_ready(ports["vpc-resolver"], local_all[0][0], proc=vr)

    # vpc-resolver's answers are the data every peer is given.
    records, expected = collect_records(ports["vpc-resolver"], local_all + wl["nxdomain-many"] + fwd)
    local_records = {o: r for o, r in records.items() if not o.endswith("." + FWD_ZONE)}
    ub = start(["unbound", "-d", "-c", write_unbound(tmp, ports["unbound"], ports["upstream"], zones, local_records,
                                                      args.threads)], os.path.join(tmp, "unbound.log"))
    nsd = start(["nsd", "-d", "-c", write_nsd(tmp, ports["nsd"], zones, local_records, args.threads)],
                os.path.join(tmp, "nsd.log"))
    dm_conf, dm_skipped, dm_ttl = write_dnsmasq(tmp, ports["dnsmasq"], ports["upstream"], zones, local_records)
    dm = start(["dnsmasq", "-k", "-C", dm_conf], os.path.join(tmp, "dnsmasq.log"))
    procs = {"vpc-resolver": vr, "unbound": ub, "nsd": nsd, "dnsmasq": dm}
    for s in ("unbound", "nsd", "dnsmasq"):
        wait_ready(ports[s], local_all[0][0], proc=procs[s])

    # Every peer must give the same answers (this also warms the caches with the forwarded names, over both
    # transports, since dnsmasq's TCP children answer from a copy of the cache taken at fork).
    mismatches = {}
    for s in ("vpc-resolver", "unbound", "nsd", "dnsmasq"):
        for w in workloads:
            if w == "mix" or (s == "nsd" and w in RECURSIVE_ONLY):
                continue
            bad = []
            for name, qtype in wl[w]:
                for tcp in (False, True) if w == "forwarded" or s != "vpc-resolver" else (False,):
                    got = dnslib.query(ports[s], name, qtype, tcp=tcp)
                    if got.key() != expected[(name, qtype)].key():
                        bad.append("%s %s: %s, expected %s" % (name, qtype, got.key(), expected[(name, qtype)].key()))
            if bad:
                mismatches[(s, w)] = bad
                log("%s disagrees with vpc-resolver on %d %s queries, e.g. %s" % (s, len(bad), w, bad[0]))

    qfiles = {}
    for w in workloads:
        qfiles[w] = os.path.join(tmp, "q-%s.txt" % w)
        write_queries(qfiles[w], wl[w])

    results = {}  # (workload, transport, server) -> dict
    failed = []  # peer rounds dnsperf could not complete
    for w in workloads:
        servers = [s for s in procs if not (s == "nsd" and w in RECURSIVE_ONLY)]
        for t in transports:
            for r in range(args.rounds):
                for s in servers:
                    pid = procs[s].pid
                    c0, d0 = cpu_seconds(pid), udp_drops(ports[s])
                    try:
                        res = dnsperf(ports[s], qfiles[w], args.duration, mode=t, outstanding=args.outstanding)
                    except RuntimeError as e:
                        if s == "vpc-resolver":
                            raise
                        # A peer that dnsperf cannot drive (dnsmasq over TCP at this load) loses the round only.
                        failed.append("%s %s round %d %s: %s" % (w, t, r + 1, s, e))
                        log(failed[-1])
                        continue
                    cpu, dropped = cpu_seconds(pid) - c0, udp_drops(ports[s]) - d0
                    acc = results.setdefault((w, t, s), {"qps": [], "cpu": 0.0, "completed": 0, "lost": 0, "dropped": 0,
                                                         "lat": [], "lat_sum": 0.0, "resp_size": 0})
                    acc["qps"].append(res["qps"])
                    acc["cpu"] += cpu
                    acc["completed"] += res["completed"]
                    acc["lost"] += res["lost"]
                    acc["dropped"] += dropped
                    acc["lat"].extend(res["latencies"])
                    acc["lat_sum"] += res["avg_latency"] * res["completed"]
                    acc["resp_size"] = res["resp_size"]
                    acc["hwm"] = rss_kib(pid)
                    log("%-9s %s round %d %-12s %9.0f q/s  cpu %.1f s  lost %d (server dropped %d)" %
                        (w, t, r + 1, s, res["qps"], cpu, res["lost"], dropped))
            for s in [s for s in servers if (w, t, s) in results]:
                sample = wl[w][0]
                results[(w, t, s)]["size"] = dig_size(ports[s], sample[0], sample[1], tcp=(t == "tcp"))
                results[(w, t, s)]["sample"] = sample

    half = {}
    if not args.no_half:
        for w in [w for w in ("private", "forwarded") if w in workloads]:
            if (w, "udp", "vpc-resolver") not in results:
                continue
            servers = [s for s in procs if (w, "udp", s) in results]
            maxes = {s: statistics.median(results[(w, "udp", s)]["qps"]) for s in servers}
            common = min(maxes.values()) / 2
            for s in servers:
                for label, rate in (("own", maxes[s] / 2), ("common", common)):
                    res = dnsperf(ports[s], qfiles[w], args.duration, mode="udp", qps=rate)
                    lat = sorted(res["latencies"])
                    half[(w, s, label)] = {"rate": rate, "qps": res["qps"], "p50": percentile(lat, 50),
                                           "p99": percentile(lat, 99), "p999": percentile(lat, 99.9),
                                           "lost": res["lost"]}
                    log("half-saturation %s %s %s at %.0f q/s: p99 %.3f ms" %
                        (w, s, label, rate, half[(w, s, label)]["p99"] * 1e3))

    info["failed"] = failed
    elapsed = time.time() - t_start
    return render(args, info, workloads, transports, results, half, mismatches, dm_skipped, dm_ttl, zones, wl,
                  elapsed)


def render(args, info, workloads, transports, results, half, mismatches, dm_skipped, dm_ttl, zones, wl, elapsed):
    out = []
    cmd = args.command_line or "benches/run.sh"
    out.append("# vpc-resolver vs Unbound, NSD, dnsmasq\n")
    out.append("Command: `%s` (%d round(s) of %g s per server, workload and transport, interleaved; took %.0f s)\n"
               % (cmd, args.rounds, args.duration, elapsed))
    out.append("Machine: %d CPUs (%s), %d GiB, Linux %s, load average at start %s. Peers: Unbound %s, %s, %s; "
               "%s. Unbound num-threads and NSD server-count: %d; dnsmasq is single-threaded; vpc-resolver runs one "
               "tokio worker per CPU. dnsperf runs on the same machine with 4 clients, %d queries outstanding.\n"
               % (info["nproc"], info["model"], info["mem_gib"], info["kernel"], " ".join(info["loadavg"]),
                  info["unbound"], info["nsd"], info["dnsmasq"], " ".join(info["dnsperf"]).strip(), args.threads,
                  args.outstanding))
    out.append("Workloads (names from the view of the loopback clients; %s): %s.\n" % (
        "topology " + " ".join(args.topology) if args.topology else "the embedded default topology",
        "; ".join("%s %d queries" % (w, len(wl[w])) for w in workloads)))
    out.append("")
    out.append("q/s: median of the rounds (min-max). CPU: server user+system time over the runs (from /proc/PID/stat, "
               "with children) / answered queries. Latency avg: dnsperf's; p99: from dnsperf -v per-answer latencies "
               "(all rounds pooled; -v costs the client the same for every server). Lost: dnsperf's count (in brackets: "
               "those the server's UDP sockets dropped, from /proc/net/udp; the rest overflowed dnsperf's sockets). RSS: VmHWM after the runs "
               "(peak since start; NSD summed over its processes). Size: `dig +noedns +stats` MSG SIZE for the "
               "first query of the workload (resp avg: dnsperf's average response size). Ratio: vpc-resolver / best "
               "peer (q/s: >1 is better; CPU and p99: <1 is better).\n")
    out.append("| workload | proto | server | q/s | CPU us/q | avg ms | p99 ms | lost (server) | RSS MiB | size (resp avg) |")
    out.append("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    summary = []
    for w in workloads:
        for t in transports:
            rows = {s: results[(w, t, s)] for s in ("vpc-resolver", "unbound", "nsd", "dnsmasq")
                    if (w, t, s) in results}
            stats = {}
            for s, a in rows.items():
                lat = sorted(a["lat"])
                qps = statistics.median(a["qps"])
                cpu_us = a["cpu"] * 1e6 / a["completed"] if a["completed"] else float("nan")
                p99 = percentile(lat, 99) * 1e3
                avg = a["lat_sum"] / a["completed"] * 1e3 if a["completed"] else float("nan")
                stats[s] = (qps, cpu_us, p99)
                out.append("| %s | %s | %s | %.0f (%.0f-%.0f) | %.1f | %.3f | %.3f | %d (%d) | %.1f | %s (%d) |" % (
                    w, t, s, qps, min(a["qps"]), max(a["qps"]), cpu_us, avg, p99, a["lost"], a["dropped"],
                    a["hwm"] / 1024,
                    a.get("size"), a["resp_size"]))
            peers = [s for s in stats if s != "vpc-resolver"]
            if "vpc-resolver" in stats and peers:
                vq, vc, vp = stats["vpc-resolver"]
                bq = max(peers, key=lambda s: stats[s][0])
                bc = min(peers, key=lambda s: stats[s][1])
                bp = min(peers, key=lambda s: stats[s][2])
                summary.append("| %s | %s | %s (%s) | %s (%s) | %s (%s) |" % (
                    w, t, fmt_ratio(vq, stats[bq][0]), bq, fmt_ratio(vc, stats[bc][1]), bc,
                    fmt_ratio(vp, stats[bp][2]), bp))
    out.append("")
    out.append("Ratios, vpc-resolver / best peer (the peer in brackets):\n")
    out.append("| workload | proto | q/s | CPU us/q | p99 |")
    out.append("|---|---|---:|---:|---:|")
    out += summary
    if half:
        out.append("")
        out.append("Latency at half saturation (UDP, dnsperf -Q): `own` = half of that server's own median max q/s "
                   "above; `common` = half of the slowest server's, the same rate for all.\n")
        out.append("| workload | server | rate | q/s | p50 ms | p99 ms | p99.9 ms | lost |")
        out.append("|---|---|---|---:|---:|---:|---:|---:|")
        for (w, s, label), h in half.items():
            out.append("| %s | %s | %s %.0f | %.0f | %.3f | %.3f | %.3f | %d |" % (
                w, s, label, h["rate"], h["qps"], h["p50"] * 1e3, h["p99"] * 1e3, h["p999"] * 1e3, h["lost"]))
    out.append("")
    out.append("Notes:\n")
    out.append("- NSD is authoritative only: it has no forwarded or mix rows.")
    out.append("- dnsmasq has one TTL for all local data (local-ttl=%d here, the most common TTL of vpc-resolver's "
               "answers) and sends no SOA with its local NXDOMAIN/NODATA answers, so its negative answers are "
               "smaller and not cacheable by a downstream resolver's negative cache." % dm_ttl)
    if any(s == "dnsmasq" and t == "tcp" and a["lost"] for (_w, t, s), a in results.items()):
        out.append("- dnsmasq over TCP: it forks a child per connection and dnsperf's pipelined TCP queries get lost "
                   "or stall; its TCP rows show that model, not how fast it answers.")
    out.append("- NSD and Unbound get a synthetic SOA per zone (vpc-resolver's own SOA differs), so negative answer "
               "sizes differ slightly.")
    out.append("- Wildcard private DNS names (e.g. `*.execute-api...`) are not in the query files: the peers express "
               "wildcards differently (dnsmasq can't give a wildcard several A records).")
    for f in info.get("failed", []):
        out.append("- dnsperf could not complete a round (left out of the medians): %s" % f)
    if dm_skipped:
        out.append("- dnsmasq can't express these records: %s" % ", ".join("%s %s" % x for x in dm_skipped[:10]))
    if mismatches:
        for (s, w), bad in mismatches.items():
            out.append("- %s gives %d answers (UDP and TCP counted apart) to %s queries that differ from "
                       "vpc-resolver's, e.g. `%s`" % (s, len(bad), w, bad[0]))
    else:
        out.append("- Every peer gave the same rcode and answer RRs as vpc-resolver for every query (UDP and TCP) "
                   "before the runs.")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
