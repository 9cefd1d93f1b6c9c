"""`Server`: one `vpc-resolver serve` process on 127.0.0.1, started on a port it picks itself."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rdatatype

Topology = Union[None, str, "os.PathLike[str]", dict]

START_TIMEOUT = 60.0
QUERY_TIMEOUT = 5.0
RELOAD_TIMEOUT = 30.0


class ServerError(RuntimeError):
    """The server could not start, rejected a topology, or died. The message carries its own output."""


def binary() -> str:
    """The `vpc-resolver` executable: $VPC_RESOLVER_BIN, else the script installed next to this Python, else PATH."""
    env = os.environ.get("VPC_RESOLVER_BIN")
    if env:
        if not os.access(env, os.X_OK):
            raise ServerError(f"VPC_RESOLVER_BIN={env} is not an executable file")
        return env
    here = Path(sys.executable).parent / "vpc-resolver"
    if os.access(here, os.X_OK):
        return str(here)
    found = shutil.which("vpc-resolver")
    if found:
        return found
    raise ServerError(
        "the vpc-resolver binary was not found next to "
        f"{sys.executable} or on PATH; install the package (pip install .) or set VPC_RESOLVER_BIN"
    )


def _topology_text(topology: Topology) -> tuple[Optional[str], Optional[Path]]:
    """(YAML text, original path) for a topology given as text, a path or a dict; (None, None) for the default."""
    if topology is None:
        return None, None
    if isinstance(topology, dict):
        # JSON is YAML: no YAML library needed.
        return json.dumps(topology, indent=2), None
    if isinstance(topology, os.PathLike):
        path = Path(topology)
        return path.read_text(), path
    if isinstance(topology, str):
        if "\n" not in topology and os.path.isfile(topology):
            path = Path(topology)
            return path.read_text(), path
        if "\n" not in topology and topology.endswith((".yaml", ".yml", ".json")):
            raise FileNotFoundError(f"topology file {topology} does not exist")
        return topology, None
    raise TypeError(f"topology must be None, YAML text, a path or a dict, not {type(topology).__name__}")


class Server:
    """A running `vpc-resolver serve` on 127.0.0.1; started by the constructor, stopped by `stop()` or `with`."""

    def __init__(
        self,
        topology: Topology = None,
        default_view: Optional[str] = None,
        upstream: Optional[Sequence[str]] = None,
        args: Iterable[str] = (),
    ):
        self.host = "127.0.0.1"
        self.port: int = 0
        self.tcp_port: int = 0
        self.default_view = default_view
        self.upstream = list(upstream) if isinstance(upstream, (list, tuple)) else ([upstream] if upstream else [])
        self.args = list(args)
        self._bin = binary()
        self._dir = Path(tempfile.mkdtemp(prefix="vpc-resolver-"))
        self._proc: Optional[subprocess.Popen] = None
        self._file: Optional[Path] = None
        self._metrics: Optional[str] = None
        self._lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self._log = self._dir / "serve.log"
        self._cleanup = weakref.finalize(self, Server._finalize, None, str(self._dir))
        text, original = _topology_text(topology)
        if text is not None:
            self._file = self._dir / "topology.yaml"
            self._file.write_text(text)
            self._check(self._file, original)
        self._start_free()

    # ---- lifecycle ----

    @staticmethod
    def _finalize(proc: Optional[subprocess.Popen], directory: str) -> None:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(directory, ignore_errors=True)

    def _check(self, file: Path, original: Optional[Path] = None) -> None:
        """Runs `vpc-resolver check`; raises with its output (naming the caller's file when there is one)."""
        target = original if original is not None else file
        run = subprocess.run([self._bin, "check", str(target)], capture_output=True, text=True)
        if run.returncode != 0:
            raise ServerError(f"invalid topology ({target}):\n{run.stdout}{run.stderr}".rstrip())

    def _command(self, port: int) -> list:
        cmd = [self._bin, "serve"]
        if self._file is not None:
            cmd.append(str(self._file))
        cmd += ["--listen", f"{self.host}:{port}", "--metrics", f"{self.host}:0"]
        if self.default_view:
            cmd += ["--default-view", self.default_view]
        for u in self.upstream:
            cmd += ["--upstream", u]
        return cmd + self.args

    def _start_free(self) -> None:
        # The server binds TCP on the port UDP got; when another process holds that TCP port it takes another one.
        # One port for both is what callers expect, so that rare case starts again (a new UDP port).
        for _ in range(5):
            self._start(port=0)
            if self.tcp_port == self.port:
                return
            self.stop()
        raise ServerError(f"UDP port {self.port} and TCP port {self.tcp_port} differed in 5 starts")

    def _start(self, port: int) -> None:
        self._lines = queue.Queue()
        log = open(self._log, "ab")
        try:
            proc = subprocess.Popen(
                self._command(port),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                start_new_session=True,
            )
        finally:
            log.close()
        self._proc = proc
        self._cleanup.detach()
        self._cleanup = weakref.finalize(self, Server._finalize, proc, str(self._dir))
        self._reader = threading.Thread(target=self._read_stdout, args=(proc, self._lines), daemon=True)
        self._reader.start()
        udp = tcp = None
        metrics = None
        deadline = time.monotonic() + START_TIMEOUT
        while udp is None or tcp is None or metrics is None:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise ServerError(f"vpc-resolver serve did not report its addresses within {START_TIMEOUT:.0f} s")
            if line is None:
                code = proc.wait()
                raise ServerError(f"vpc-resolver serve exited with code {code}:\n{self._stderr()}".rstrip())
            m = re.match(r"listening on (udp|tcp) (\S+):(\d+)$", line)
            if m:
                if m.group(1) == "udp":
                    udp = int(m.group(3))
                else:
                    tcp = int(m.group(3))
                continue
            # `listening on http ADDR`, or `metrics on http://ADDR/metrics` from servers before it.
            m = re.match(r"(?:listening on http |metrics on http://)([^/\s]+)", line)
            if m:
                metrics = m.group(1)
        self.port = udp
        self.tcp_port = tcp
        self._metrics = metrics

    @staticmethod
    def _read_stdout(proc: subprocess.Popen, lines: "queue.Queue[Optional[str]]") -> None:
        # Keeps draining stdout so the server never blocks on a full pipe.
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                lines.put(line.rstrip("\n"))
        lines.put(None)

    def _stderr(self, tail: int = 60) -> str:
        try:
            text = self._log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-tail:])

    def _alive(self) -> None:
        """Raises ServerError when the process is gone (it died, or `stop()` was called)."""
        if self._proc is None:
            raise ServerError("the server is stopped")
        code = self._proc.poll()
        if code is not None:
            raise ServerError(f"vpc-resolver serve died (exit code {code}); its last output:\n{self._stderr()}".rstrip())

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> Optional[int]:
        return self._proc.pid if self._proc is not None else None

    @property
    def topology_path(self) -> Optional[Path]:
        """The file being served (a copy), or None for the embedded default."""
        return self._file

    def stop(self) -> None:
        """SIGTERM (the server drains queries in flight), then SIGKILL after 10 s. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None:
            # The reader closes stdout at end of file, which comes once the process is gone.
            self._reader.join(timeout=5)

    def close(self) -> None:
        """Stops the server and removes its temporary files."""
        self.stop()
        self._cleanup()

    def __enter__(self) -> "Server":
        self._alive()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<vpc_resolver.Server {self.host}:{self.port} {state}>"

    # ---- queries ----

    def query(self, name: str, rdtype: Union[str, int] = "A", source: Optional[str] = None, tcp: bool = False):
        """One query over UDP (or TCP); `source` is the local address to send from (e.g. 127.0.0.11).

        Returns the dns.message.Message as received (a truncated UDP answer stays truncated)."""
        self._alive()
        q = dns.message.make_query(name, rdtype)
        try:
            if tcp:
                return dns.query.tcp(q, self.host, port=self.tcp_port, timeout=QUERY_TIMEOUT, source=source)
            return dns.query.udp(q, self.host, port=self.port, timeout=QUERY_TIMEOUT, source=source)
        except (dns.exception.Timeout, ConnectionError, OSError):
            self._alive()
            raise

    def addresses(self, name: str, rdtype: Union[str, int] = "A", source: Optional[str] = None) -> list:
        """The A and AAAA addresses in the answer section, as strings, sorted; a truncated answer is asked again
        over TCP. Empty for NXDOMAIN, NODATA and errors."""
        m = self.query(name, rdtype, source=source)
        if m.flags & dns.flags.TC:
            m = self.query(name, rdtype, source=source, tcp=True)
        out = []
        for rrset in m.answer:
            if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                out.extend(r.address for r in rrset)
        return sorted(out)

    def explain(self, name: str, rdtype: Union[str, int] = "A", source: str = "10.0.1.25", to: Optional[str] = None) -> dict:
        """`vpc-resolver explain --json` for a client at `source` (asking on `to`), on the topology being served."""
        self._alive()
        if isinstance(rdtype, int):
            rdtype = dns.rdatatype.to_text(rdtype)
        cmd = [self._bin, "explain", name, str(rdtype)]
        if self._file is not None:
            cmd.append(str(self._file))
        cmd += ["--from", source, "--json"]
        if to is not None:
            cmd += ["--to", to]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode != 0:
            raise ServerError(f"vpc-resolver explain failed (exit {run.returncode}):\n{run.stderr}{run.stdout}".rstrip())
        return json.loads(run.stdout)

    # ---- reloads ----

    def _http(self, path: str) -> Optional[str]:
        if self._metrics is None:
            return None
        try:
            with urllib.request.urlopen(f"http://{self._metrics}{path}", timeout=5) as r:
                return r.read().decode()
        except urllib.error.HTTPError as e:
            return e.read().decode(errors="replace")
        except OSError:
            return None

    def _reload_state(self) -> tuple:
        """(generation or None, reloads ok, reloads failed). The generation is /readyz's `generation N`; servers
        without it are followed by the reload counters of /metrics."""
        ready = self._http("/readyz") or ""
        m = re.search(r"generation (\d+)", ready)
        generation = int(m.group(1)) if m else None
        metrics = self._http("/metrics") or ""

        def counter(result: str) -> int:
            c = re.search(r'vpc_resolver_reloads_total\{result="%s"\} (\d+)' % result, metrics)
            return int(c.group(1)) if c else 0

        return generation, counter("ok"), counter("failed")

    def set_topology(self, topology: Topology) -> None:
        """Swaps the topology while serving (same address); returns once the new one answers.

        The new topology is checked first: a bad one raises with `check`'s output and the old one keeps serving."""
        self._alive()
        text, original = _topology_text(topology)
        if text is None:
            raise ValueError("set_topology needs a topology (YAML text, a path or a dict)")
        staged = self._dir / "staged.yaml"
        staged.write_text(text)
        self._check(staged, original)
        if self._file is None:
            # The embedded default has no file to replace: restart on the same port with the new file.
            self._file = self._dir / "topology.yaml"
            os.replace(staged, self._file)
            port = self.port
            self.stop()
            self._start(port=port)
            return
        before = self._reload_state()
        os.replace(staged, self._file)  # atomic: the server never reads half a file
        assert self._proc is not None
        self._proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + RELOAD_TIMEOUT
        while time.monotonic() < deadline:
            self._alive()
            now = self._reload_state()
            if now[2] > before[2]:
                raise ServerError(f"the server rejected the new topology:\n{self._stderr(20)}")
            if before[0] is not None and now[0] is not None:
                if now[0] > before[0]:
                    return
            elif now[1] > before[1]:
                return
            time.sleep(0.02)
        raise ServerError(f"the new topology was not serving within {RELOAD_TIMEOUT:.0f} s:\n{self._stderr(20)}")
