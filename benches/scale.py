#!/usr/bin/env python3
"""How vpc-resolver copes with topology size: run through benches/scale.sh.

For each scale (benches/gen_topology.py SCALE): `vpc-resolver check` wall time and peak RSS, `serve` start-up time
to ready (spawn until it answers a query over UDP), RSS once loaded, q/s for the private-answer workload of the
VPC the loopback clients belong to (the last one: the same query file shape as benches/run.sh), reload time (SIGHUP
until the log says "reloaded") and RSS after 1 and after N reloads (--reloads, default 10).
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import dnslib  # noqa: E402
import gen_topology  # noqa: E402


def time_check(binary, topo, runs):
    """Wall time and peak RSS of `vpc-resolver check`. The RSS comes from /usr/bin/time (GNU time): a child forked
    from this Python process would report Python's own RSS as its peak if it is the larger."""
    walls, rss, summary = [], 0, ""
    for _ in range(runs):
        with tempfile.NamedTemporaryFile("r") as rusage:
            t0 = time.perf_counter()
            p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rusage.name, binary, "check", topo],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
            walls.append(time.perf_counter() - t0)
            summary = p.stdout.strip()
            if p.returncode != 0:
                raise RuntimeError("check failed: %s" % summary[-2000:])
            rss = max(rss, int(rusage.read().split()[-1]))
    return min(walls), statistics.median(walls), summary, rss


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--names", required=True)
    ap.add_argument("--scales", default="1,10,100,1000")
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--check-runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="2 s dnsperf runs, 1 check run")
    ap.add_argument("--out", default=None)
    ap.add_argument("--command-line", default="benches/scale.sh")
    ap.add_argument("--reload-timeout", type=float, default=120)
    ap.add_argument("--reloads", type=int, default=10, help="SIGHUP reloads before the last RSS reading (default 10)")
    ap.add_argument("--settle", type=float, default=12, help="seconds after the last reload before the settled RSS")
    ap.add_argument("--keep", default=None, help="also copy the largest generated topology here (for profiling)")
    args = ap.parse_args()
    if args.quick:
        args.duration, args.check_runs = 2, 1
    tmp = tempfile.mkdtemp(prefix="vpcr-scale-")
    signal.signal(signal.SIGTERM, lambda s, f: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        report = run(args, tmp)
    finally:
        bench.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)


def run(args, tmp):
    info = bench.machine_info()
    rows = []
    t_start = time.time()
    for scale in [int(s) for s in args.scales.split(",")]:
        topo = os.path.join(tmp, "scale-%d.yaml" % scale)
        with open(topo, "w") as f:
            gen_topology.generate(scale, f)
        size_mb = os.path.getsize(topo) / 1e6
        if args.keep:
            shutil.copy(topo, args.keep)
        bench.log("scale %d: %.1f MB of YAML" % (scale, size_mb))
        check_min, check_med, summary, check_rss = time_check(args.binary, topo, args.check_runs)
        bench.log("  check %.3f s (median %.3f), %s" % (check_min, check_med, summary))

        zones, wl = bench.read_names(args.names, [topo])
        qfile = os.path.join(tmp, "q-private-%d.txt" % scale)
        bench.write_queries(qfile, wl["private"])
        port = bench.free_port()
        logf = os.path.join(tmp, "serve-%d.log" % scale)
        t0 = time.perf_counter()
        proc = bench.start([args.binary, "serve", topo, "--listen", "127.0.0.1:%d" % port], logf,
                           stdout=subprocess.DEVNULL)
        name, qtype = wl["private"][0]
        while True:
            if proc.poll() is not None:
                raise RuntimeError("serve exited: %s" % open(logf).read()[-2000:])
            try:
                r = dnslib.query(port, name, qtype, timeout=0.2)
                break
            except OSError:
                time.sleep(0.005)
        startup = time.perf_counter() - t0
        assert r.rcode == "NOERROR" and r.answer, "unexpected answer for %s: %s" % (name, r.key())
        rss_loaded = bench.rss_kib(proc.pid, "VmRSS")
        c0 = bench.cpu_seconds(proc.pid)
        res = bench.dnsperf(port, qfile, args.duration)
        cpu_us = (bench.cpu_seconds(proc.pid) - c0) * 1e6 / max(1, res["completed"])
        lat = sorted(res["latencies"])

        def reloads():
            with open(logf) as f:
                return f.read().count("reloaded")

        def reload_once():
            n0 = reloads()
            t0 = time.perf_counter()
            proc.send_signal(signal.SIGHUP)
            while time.perf_counter() - t0 < args.reload_timeout:
                if reloads() != n0:
                    return time.perf_counter() - t0
                time.sleep(0.002)
            return None

        reload_s = reload_once()
        rss_after = bench.rss_kib(proc.pid, "VmRSS")
        for _ in range(args.reloads - 1):
            reload_once()
        rss_after_n = bench.rss_kib(proc.pid, "VmRSS")
        # An allocator that purges in the background returns freed pages over its decay time (jemalloc: 10 s).
        time.sleep(args.settle)
        rss_settled = bench.rss_kib(proc.pid, "VmRSS")
        hwm = bench.rss_kib(proc.pid, "VmHWM")
        proc.terminate()
        proc.wait(timeout=10)
        row = {"scale": scale, "summary": summary, "yaml_mb": size_mb, "check": check_min, "check_med": check_med,
               "check_rss": check_rss, "startup": startup, "rss_loaded": rss_loaded, "qps": res["qps"],
               "cpu_us": cpu_us, "p99": bench.percentile(lat, 99), "lost": res["lost"], "reload": reload_s,
               "rss_after": rss_after, "rss_after_n": rss_after_n, "rss_settled": rss_settled, "hwm": hwm}
        bench.log("  start-up %.3f s, RSS %.1f MiB, %.0f q/s (lost %d), reload %s s, RSS after 1 reload %.1f MiB, "
                  "after %d %.1f MiB (settled %.1f; peak %.1f)"
                  % (startup, rss_loaded / 1024, res["qps"], res["lost"], fmt_s(reload_s), rss_after / 1024,
                     args.reloads, rss_after_n / 1024, rss_settled / 1024, hwm / 1024))
        rows.append(row)
        if args.quick and startup > 60:
            bench.log("  start-up over 60 s: --quick stops here")
            break
    return render(args, info, rows, time.time() - t_start)


def fmt_s(seconds, limit=None):
    return "%.3f" % seconds if seconds is not None else "> %g (no \"reloaded\")" % (limit or 0)


def render(args, info, rows, elapsed):
    out = ["# vpc-resolver at scale\n",
           "Command: `%s` (took %.0f s)\n" % (args.command_line, elapsed),
           "Machine: %d CPUs (%s), %d GiB, Linux %s, load average at start %s.\n"
           % (info["nproc"], info["model"], info["mem_gib"], info["kernel"], " ".join(info["loadavg"])),
           "Topologies from `benches/gen_topology.py SCALE`: SCALE VPCs, 10 interface endpoints each (3 AZs), "
           "1 PHZ with 100 records each, 1 forward rule each, SCALE/2 client networks. check: best of %d runs (median "
           "in brackets), peak RSS from GNU time (%%M). start-up: spawn of `serve` until it answers a UDP query. RSS: VmRSS once ready, and "
           "after the reload (VmHWM = peak). q/s: dnsperf %g s, UDP, private-answer names of the loopback clients' VPC (the last), 4 "
           "clients, 100 outstanding; CPU per answered query from /proc/PID/stat. reload: SIGHUP until the log "
           "says \"reloaded\"; RSS after 1 and after %d reloads (settled: %g s after the last).\n"
           % (args.check_runs, args.duration, args.reloads, args.settle),
           "| scale | vpcs, endpoints | YAML MB | check s | check RSS MiB | start-up s | RSS MiB | q/s | CPU us/q | p99 ms "
           "| lost | reload s | RSS after 1 reload MiB | after %d (settled) | peak MiB |" % args.reloads,
           "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    base_qps = rows[0]["qps"] if rows else 0
    for r in rows:
        out.append("| %dx | %s | %.1f | %.3f (%.3f) | %.1f | %.3f | %.1f | %.0f (%.0f%%) | %.1f | %.3f | %d | %s "
                   "| %.1f | %.1f (%.1f) | %.1f |" % (
                       r["scale"], ", ".join(r["summary"].replace("ok: ", "").split(", ")[:2]), r["yaml_mb"],
                       r["check"], r["check_med"], r["check_rss"] / 1024, r["startup"], r["rss_loaded"] / 1024,
                       r["qps"], 100 * r["qps"] / base_qps if base_qps else 0, r["cpu_us"], r["p99"] * 1e3,
                       r["lost"], fmt_s(r["reload"], args.reload_timeout), r["rss_after"] / 1024, r["rss_after_n"] / 1024,
                       r["rss_settled"] / 1024, r["hwm"] / 1024))
    out.append("")
    out.append("Targets: 10,000 endpoints `check` < 1 s, serving RSS < 200 MB, RSS after %d reloads < 300 MB, q/s "
               "within 10%% of the 1-VPC topology (the percentage in brackets is q/s relative to the first row)."
               % args.reloads)
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
