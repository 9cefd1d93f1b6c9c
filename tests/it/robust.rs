//! Operating it like a production DNS server, through real sockets: access control, the 1232-byte UDP cap, rate
//! limiting, protocol corner cases, hostile input, slow and numerous TCP clients, running out of descriptors, dead
//! upstreams, reloads under load, metrics and health endpoints, draining on SIGTERM, and the JSON query log.
//!
//! In-process servers come from the library (`Server::start` on 127.0.0.1:0); where the process itself matters
//! (signals, exit status, descriptors, RSS, CPU time, stderr) the `vpc-resolver` binary is spawned.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use vpc_resolver::server::{
    Answered, Protocol, Responder, RunningServer, Server, ServerConfig, TopologySource,
};
use vpc_resolver::topology;
use vpc_resolver::upstream::ForwarderConfig;

use crate::peers::{Fake, FakeBehaviour};

const CLASS_IN: u16 = 1;
const CLASS_CH: u16 = 3;
const CLASS_HS: u16 = 4;
const CLASS_NONE: u16 = 254;
const EDE_PROHIBITED: u16 = 18;

// ---------------------------------------------------------------------------------------------------------------
// Wire helpers: queries are built byte by byte so tests can send what no library would.

/// A query with RD set; `edns` = (payload, version, DO).
fn query(id: u16, name: &str, qtype: u16, qclass: u16, edns: Option<(u16, u8, bool)>) -> Vec<u8> {
    let mut p = id.to_be_bytes().to_vec();
    p.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())]);
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.push(0);
    p.extend_from_slice(&qtype.to_be_bytes());
    p.extend_from_slice(&qclass.to_be_bytes());
    if let Some((payload, version, dnssec_ok)) = edns {
        p.push(0);
        p.extend_from_slice(&41u16.to_be_bytes());
        p.extend_from_slice(&payload.to_be_bytes());
        p.extend_from_slice(&[0, version, if dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
    }
    p
}

pub(crate) fn a(id: u16, name: &str) -> Vec<u8> {
    query(id, name, 1, CLASS_IN, Some((1232, 0, false)))
}

fn skip_name(p: &[u8], mut pos: usize) -> usize {
    loop {
        let len = p[pos];
        if len & 0xC0 == 0xC0 {
            return pos + 2;
        }
        if len == 0 {
            return pos + 1;
        }
        pos += 1 + usize::from(len);
    }
}

/// What the OPT record of a reply says: (DO bit, extended rcode bits, EDE code).
#[derive(Debug, Default, PartialEq, Eq)]
struct Opt {
    dnssec_ok: bool,
    ext_rcode: u8,
    ede: Option<u16>,
}

/// Walks a reply (which we trust to be well formed: it is ours) and returns its OPT record, if any.
fn opt_of(p: &[u8]) -> Option<Opt> {
    let count = |i: usize| usize::from(u16::from_be_bytes([p[i], p[i + 1]]));
    let mut pos = 12;
    for _ in 0..count(4) {
        pos = skip_name(p, pos) + 4;
    }
    let records = count(6) + count(8) + count(10);
    for _ in 0..records {
        pos = skip_name(p, pos);
        let rtype = u16::from_be_bytes([p[pos], p[pos + 1]]);
        let ttl = &p[pos + 4..pos + 8];
        let rdlen = usize::from(u16::from_be_bytes([p[pos + 8], p[pos + 9]]));
        let rdata = &p[pos + 10..pos + 10 + rdlen];
        if rtype == 41 {
            let mut opt = Opt {
                dnssec_ok: ttl[2] & 0x80 != 0,
                ext_rcode: ttl[0],
                ede: None,
            };
            let mut o = 0;
            while o + 4 <= rdata.len() {
                let code = u16::from_be_bytes([rdata[o], rdata[o + 1]]);
                let len = usize::from(u16::from_be_bytes([rdata[o + 2], rdata[o + 3]]));
                if code == 15 && len >= 2 {
                    opt.ede = Some(u16::from_be_bytes([rdata[o + 4], rdata[o + 5]]));
                }
                o += 4 + len;
            }
            return Some(opt);
        }
        pos += 10 + rdlen;
    }
    None
}

pub(crate) fn rcode(p: &[u8]) -> u8 {
    p[3] & 0x0F
}

fn tc(p: &[u8]) -> bool {
    p[2] & 0x02 != 0
}

pub(crate) fn a_records(p: &[u8]) -> Vec<Ipv4Addr> {
    Message::from_vec(p)
        .expect("reply parses")
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

/// A UDP client socket on `from`.
pub(crate) fn client(from: Ipv4Addr) -> UdpSocket {
    let s = UdpSocket::bind((from, 0)).expect("bind client");
    s.set_read_timeout(Some(Duration::from_secs(4)))
        .expect("timeout");
    s
}

/// Sends `packet` and returns the reply with the same id, or `None` after `wait`.
pub(crate) fn ask_from(
    sock: &UdpSocket,
    server: SocketAddr,
    packet: &[u8],
    wait: Duration,
) -> Option<Vec<u8>> {
    sock.send_to(packet, server).expect("send");
    let deadline = Instant::now() + wait;
    let mut buf = vec![0u8; 65535];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        match sock.recv_from(&mut buf) {
            Ok((n, _)) if n >= 2 && buf[..2] == packet[..2] => return Some(buf[..n].to_vec()),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

pub(crate) fn ask(server: SocketAddr, packet: &[u8]) -> Vec<u8> {
    ask_from(
        &client(Ipv4Addr::LOCALHOST),
        server,
        packet,
        Duration::from_secs(4),
    )
    .expect("an answer over UDP")
}

pub(crate) fn tcp_ask(server: SocketAddr, packet: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(server).expect("tcp connect");
    s.set_read_timeout(Some(Duration::from_secs(4)))
        .expect("timeout");
    let mut framed = (packet.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(packet);
    s.write_all(&framed).expect("tcp write");
    let mut len = [0u8; 2];
    s.read_exact(&mut len).expect("tcp length");
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut reply).expect("tcp reply");
    reply
}

// ---------------------------------------------------------------------------------------------------------------
// Servers.

/// A lab VPC with a private hosted zone; `extra` is appended at the top level (YAML).
pub(crate) fn lab_yaml(upstream: &str, extra: &str) -> String {
    format!(
        r#"version: 1
region: us-east-1
upstream: [{upstream}]
default_view: lab
vpcs:
  - name: lab
    cidr: 10.0.0.0/16
hosted_zones:
  - name: lab.internal
    records:
      - {{ name: db, type: A, values: [10.0.1.100] }}
      - {{ name: db, type: TXT, value: "the database" }}
      - {{ name: db, type: MX, value: "10 mail.lab.internal." }}
      - name: big
        type: A
        values: [{big}]
{extra}"#,
        big = (0..100)
            .map(|i| format!("10.0.9.{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// An in-process server on its own runtime; stopped on Drop.
struct InProcess {
    server: Option<RunningServer>,
    rt: tokio::runtime::Runtime,
}

impl InProcess {
    fn start(yaml: &str, tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        let topo = topology::parse_str(yaml).expect("valid test topology");
        let mut config = ServerConfig {
            source: TopologySource::Given(Box::new(topo)),
            listen: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))],
            udp_sockets: 1,
            ..ServerConfig::default()
        };
        tweak(&mut config);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let server = rt.block_on(Server::start(config)).expect("server starts");
        Self {
            server: Some(server),
            rt,
        }
    }

    fn udp(&self) -> SocketAddr {
        self.server.as_ref().expect("running").udp_addrs()[0]
    }

    fn tcp(&self) -> SocketAddr {
        self.server.as_ref().expect("running").tcp_addrs()[0]
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            self.rt.block_on(s.shutdown(Duration::from_millis(100)));
        }
    }
}

/// The `vpc-resolver serve` binary, killed on Drop; stderr lines are collected.
pub(crate) struct Spawned {
    pub(crate) child: Child,
    pub(crate) udp: SocketAddr,
    pub(crate) tcp: SocketAddr,
    pub(crate) metrics: Option<SocketAddr>,
    stderr: Arc<Mutex<Vec<String>>>,
}

const BIN: &str = env!("CARGO_BIN_EXE_vpc-resolver");

impl Spawned {
    /// `prefix` wraps the binary (e.g. `prlimit --nofile=64:64`).
    pub(crate) fn start(prefix: &[&str], args: &[&str]) -> Self {
        let mut argv: Vec<&str> = prefix.to_vec();
        argv.push(BIN);
        argv.push("serve");
        argv.extend_from_slice(&["--listen", "127.0.0.1:0"]);
        argv.extend_from_slice(args);
        let mut child = Command::new(argv[0])
            .args(&argv[1..])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {argv:?}: {e}"));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        {
            let pipe = child.stderr.take().expect("stderr");
            let lines = stderr.clone();
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    lines.lock().expect("lock").push(line);
                }
            });
        }
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let want_metrics = args.contains(&"--metrics");
        let (mut udp, mut tcp, mut metrics) = (None, None, None);
        let deadline = Instant::now() + Duration::from_secs(20);
        while udp.is_none() || tcp.is_none() || (want_metrics && metrics.is_none()) {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("server did not start: {:?}", stderr.lock()));
            let Ok(line) = rx.recv_timeout(left) else {
                panic!("server did not start: {:?}", stderr.lock());
            };
            if let Some(a) = line.strip_prefix("listening on udp ") {
                udp = a.parse().ok();
            } else if let Some(a) = line.strip_prefix("listening on tcp ") {
                tcp = a.parse().ok();
            } else if let Some(a) = line.strip_prefix("listening on http ") {
                metrics = a.parse().ok();
            }
        }
        Self {
            child,
            udp: udp.expect("udp"),
            tcp: tcp.expect("tcp"),
            metrics,
            stderr,
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
    }

    pub(crate) fn stderr_text(&self) -> String {
        self.stderr.lock().expect("lock").join("\n")
    }

    /// Open descriptors and resident memory (kB) of the process.
    fn fds_and_rss(&self) -> (usize, u64) {
        let fds = std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("proc fd")
            .count();
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("status");
        let rss = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS");
        (fds, rss)
    }

    /// Descriptors and RSS once the descriptor count has held still for half a second and `ok` accepts it
    /// (bounded: after 30 s, whatever it is).
    pub(crate) fn settled(&self, ok: impl Fn(usize) -> bool) -> (usize, u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = self.fds_and_rss();
        let mut still = 0;
        while Instant::now() < deadline {
            thread::sleep(Duration::from_millis(100));
            let now = self.fds_and_rss();
            still = if now.0 == last.0 { still + 1 } else { 0 };
            last = now;
            if still >= 5 && ok(last.0) {
                break;
            }
        }
        last
    }

    /// User + system CPU time, in clock ticks (100 per second on Linux).
    /// CPU ticks the process uses over the next `window`.
    pub(crate) fn cpu_ticks_over(&self, window: Duration) -> u64 {
        let before = self.cpu_ticks();
        thread::sleep(window);
        self.cpu_ticks() - before
    }

    pub(crate) fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("stat");
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let rest = &stat[stat.rfind(')').expect("comm") + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
    }
}

impl Spawned {
    /// The topology generation serving, from /readyz (`ready generation N`).
    pub(crate) fn generation(&self) -> u64 {
        let (status, body) = http_get(self.metrics.expect("started with --metrics"), "/readyz");
        assert_eq!(status, 200, "/readyz: {body}");
        body.trim()
            .strip_prefix("ready generation ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("/readyz body {body:?}"))
    }

    /// Waits (bounded) until generation `n` or a later one serves; returns the generation serving.
    pub(crate) fn wait_generation(&self, n: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let g = self.generation();
            if g >= n {
                return g;
            }
            assert!(
                Instant::now() < deadline,
                "generation {n} did not serve (still {g}):\n{}",
                self.stderr_text()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits (bounded) until `/metrics` shows `prefix` at `at_least` or more.
    pub(crate) fn wait_metric(&self, prefix: &str, at_least: f64) {
        let m = self.metrics.expect("started with --metrics");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, body) = http_get(m, "/metrics");
            if metric(&body, prefix) >= at_least {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{prefix} never reached {at_least}:\n{body}"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn temp_dir(kind: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "vpc-resolver-robust-{kind}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Replaces `path` atomically (write + rename), as a ConfigMap update or an editor does.
pub(crate) fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

pub(crate) fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect metrics");
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    // One write: the request as a real client sends it.
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .expect("write");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

/// A UDP target that never answers and counts the packets it gets.
struct CountingHole {
    addr: SocketAddr,
    packets: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl CountingHole {
    fn start() -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind hole");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let addr = sock.local_addr().expect("addr");
        let packets = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (packets.clone(), stop.clone());
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !s.load(Ordering::Relaxed) {
                if sock.recv_from(&mut buf).is_ok() {
                    p.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Self {
            addr,
            packets,
            stop,
        }
    }

    fn packets(&self) -> usize {
        self.packets.load(Ordering::SeqCst)
    }
}

impl Drop for CountingHole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A deterministic PRNG (xorshift64*), so a failing storm can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// These tests measure time, CPU and memory, or load the machine: one at a time, so they neither disturb each
/// other nor measure each other.
static SERIAL: Mutex<()> = Mutex::new(());

/// How much slower than the unloaded median a median under attack may be. The attacks here would otherwise cost
/// orders of magnitude (a starved socket waits for a timeout); a factor leaves room for a busy machine.
pub(crate) const SLOWDOWN: u32 = 20;

/// The median of 21 timings of `f` (given the round number).
pub(crate) fn median_time(mut f: impl FnMut(u16)) -> Duration {
    let mut times: Vec<Duration> = (0..21u16)
        .map(|i| {
            let started = Instant::now();
            f(i);
            started.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

pub(crate) fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------------------------------------------
// Access control.

#[test]
fn source_outside_the_allow_list_is_refused() {
    let _serial = serial();
    // `allow` written: loopback is no longer implicit, so 127.0.0.9 is a stranger while 127.0.0.1 is not.
    let srv = InProcess::start(&lab_yaml("", "allow: [127.0.0.1/32]\n"), |_| {});
    let good = ask_from(
        &client(Ipv4Addr::LOCALHOST),
        srv.udp(),
        &a(1, "example.com"),
        Duration::from_secs(4),
    )
    .expect("answer");
    assert_ne!(rcode(&good), ResponseCode::Refused.low(), "allowed source");
    let stranger = client(Ipv4Addr::new(127, 0, 0, 9));
    let reply = ask_from(
        &stranger,
        srv.udp(),
        &a(2, "db.lab.internal"),
        Duration::from_secs(4),
    )
    .expect("a REFUSED answer");
    assert_eq!(rcode(&reply), ResponseCode::Refused.low());
    assert_eq!(opt_of(&reply).and_then(|o| o.ede), Some(EDE_PROHIBITED));
    assert!(a_records(&reply).is_empty());
    drop(srv);

    // Without `allow`, all of loopback is admitted.
    let srv = InProcess::start(&lab_yaml("", ""), |_| {});
    let reply = ask_from(
        &stranger,
        srv.udp(),
        &a(3, "example.com"),
        Duration::from_secs(4),
    )
    .expect("answer");
    assert_ne!(rcode(&reply), ResponseCode::Refused.low());
}

#[test]
fn ipv4_mapped_sources_are_treated_as_ipv4() {
    let _serial = serial();
    let topo = topology::parse_str(&lab_yaml("", "allow: [127.0.0.1/32]\n")).expect("topology");
    let r = Responder::new(topo, &ServerConfig::default()).expect("responder");
    let mapped = |v4: Ipv4Addr| SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), 5353);
    let q = a(7, "db.lab.internal");
    // A VPC address, mapped: admitted, and it sees the VPC's private hosted zone.
    let Answered::Reply(reply) =
        r.answer(&q, mapped(Ipv4Addr::new(10, 0, 1, 5)), None, Protocol::Udp)
    else {
        panic!("a local answer");
    };
    assert_eq!(a_records(&reply), [Ipv4Addr::new(10, 0, 1, 100)]);
    // A stranger, mapped: refused like its IPv4 self.
    for src in [
        mapped(Ipv4Addr::new(192, 0, 2, 1)),
        SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 5353)),
        mapped(Ipv4Addr::new(127, 0, 0, 9)),
    ] {
        let Answered::Reply(reply) = r.answer(&q, src, None, Protocol::Udp) else {
            panic!("a REFUSED reply");
        };
        assert_eq!(rcode(&reply), ResponseCode::Refused.low(), "{src}");
    }
    // ::1 is not in the explicit list either.
    let Answered::Reply(reply) = r.answer(
        &q,
        SocketAddr::from((Ipv6Addr::LOCALHOST, 1)),
        None,
        Protocol::Udp,
    ) else {
        panic!("a reply");
    };
    assert_eq!(rcode(&reply), ResponseCode::Refused.low());
}

// ---------------------------------------------------------------------------------------------------------------
// Sizes, rate limiting, protocol rules.

#[test]
fn udp_replies_never_exceed_1232_bytes_and_tcp_has_it_all() {
    let _serial = serial();
    let srv = InProcess::start(&lab_yaml("", ""), |_| {});
    for payload in [512, 1232, 1400, 4096, 65535] {
        let reply = ask(
            srv.udp(),
            &query(
                9,
                "big.lab.internal",
                1,
                CLASS_IN,
                Some((payload, 0, false)),
            ),
        );
        assert!(
            reply.len() <= 1232,
            "offer {payload}: {} bytes",
            reply.len()
        );
        assert!(tc(&reply), "offer {payload}: TC set");
        assert!(
            a_records(&reply).is_empty(),
            "a truncated reply carries no partial RRset"
        );
    }
    let reply = ask(srv.udp(), &query(10, "big.lab.internal", 1, CLASS_IN, None));
    assert!(reply.len() <= 512 && tc(&reply), "no EDNS: 512");
    let full = tcp_ask(
        srv.tcp(),
        &query(11, "big.lab.internal", 1, CLASS_IN, Some((65535, 0, false))),
    );
    assert!(!tc(&full));
    assert_eq!(a_records(&full).len(), 100);
    assert!(full.len() > 1232);
}

/// Sends `n` queries from `sock` as a burst, then collects replies for a while: (full answers, truncated).
fn burst(sock: &UdpSocket, server: SocketAddr, n: u16) -> (usize, usize) {
    for id in 0..n {
        sock.send_to(&a(1000 + id, "db.lab.internal"), server)
            .expect("send");
    }
    let (mut full, mut truncated) = (0, 0);
    sock.set_read_timeout(Some(Duration::from_millis(400)))
        .expect("timeout");
    let mut buf = [0u8; 2048];
    while let Ok((len, _)) = sock.recv_from(&mut buf) {
        let r = &buf[..len];
        if tc(r) {
            assert!(a_records(r).is_empty(), "a slipped reply is empty");
            truncated += 1;
        } else {
            assert_eq!(a_records(r), [Ipv4Addr::new(10, 0, 1, 100)]);
            full += 1;
        }
    }
    (full, truncated)
}

#[test]
fn rate_limiting_per_network_with_slip() {
    let _serial = serial();
    let yaml = lab_yaml(
        "",
        "rate_limit: { responses_per_second: 5, slip: 2, exempt: [127.0.3.0/24] }\n",
    );
    let srv = InProcess::start(&yaml, |c| {
        c.metrics = Some("127.0.0.1:0".parse().expect("addr"))
    });
    let limited = client(Ipv4Addr::new(127, 0, 1, 1));
    let (full, truncated) = burst(&limited, srv.udp(), 40);
    // 5 per second; the burst may straddle one second boundary.
    assert!((5..=10).contains(&full), "full answers {full}");
    // Of the rest, every 2nd slips (TC) and the others are dropped.
    let limited_count = 40 - full;
    assert!(
        truncated.abs_diff(limited_count / 2) <= 2,
        "{truncated} truncated of {limited_count} limited"
    );
    // A client in another /24 has its own budget; the same /24 shares it.
    let (full_other, _) = burst(&client(Ipv4Addr::new(127, 0, 2, 1)), srv.udp(), 3);
    assert_eq!(full_other, 3);
    // An exempt network is never limited.
    let (full_exempt, truncated_exempt) =
        burst(&client(Ipv4Addr::new(127, 0, 3, 1)), srv.udp(), 40);
    assert_eq!((full_exempt, truncated_exempt), (40, 0));
    // The slipped client can still get its answer over TCP: TCP is never limited.
    let reply = tcp_ask(srv.tcp(), &a(77, "db.lab.internal"));
    assert_eq!(a_records(&reply), [Ipv4Addr::new(10, 0, 1, 100)]);
    let metrics_addr = srv
        .server
        .as_ref()
        .and_then(|s| s.metrics_addr())
        .expect("metrics");
    let (_, body) = http_get(metrics_addr, "/metrics");
    let count = |action: &str| -> usize {
        body.lines()
            .find_map(|l| {
                l.strip_prefix(&format!(
                    "vpc_resolver_rate_limited_total{{action=\"{action}\"}} "
                ))
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("rate_limited_total {action} in {body}"))
    };
    assert_eq!(count("slip"), truncated);
    assert_eq!(count("drop"), limited_count - truncated);
}

#[test]
fn loopback_is_not_rate_limited_by_default() {
    let _serial = serial();
    let yaml = lab_yaml("", "rate_limit: { responses_per_second: 2 }\n");
    let srv = InProcess::start(&yaml, |_| {});
    assert_eq!(
        burst(&client(Ipv4Addr::new(127, 0, 1, 1)), srv.udp(), 30),
        (30, 0)
    );
}

#[test]
fn protocol_corner_cases() {
    let _serial = serial();
    let fake = Fake::start(FakeBehaviour::default());
    let srv = InProcess::start(&lab_yaml(&format!("\"{}\"", fake.addr()), ""), |_| {});
    let udp = srv.udp();

    // ANY (RFC 8482): one RRset of the name, not all three.
    let reply = ask(udp, &query(1, "db.lab.internal", 255, CLASS_IN, None));
    let m = Message::from_vec(&reply).expect("parse");
    let types: HashSet<RecordType> = m.answers.iter().map(|r| r.record_type()).collect();
    assert_eq!(types.len(), 1, "{types:?}");
    assert_eq!(m.answers.len(), 1);
    // ANY for a forwarded name is answered locally with HINFO "RFC8482", never fetched.
    let reply = ask(udp, &query(2, "www.example.com", 255, CLASS_IN, None));
    let m = Message::from_vec(&reply).expect("parse");
    assert!(matches!(&m.answers[..], [r] if r.record_type() == RecordType::HINFO));

    // EDNS version 1: BADVERS (16 = extended rcode 1, low bits 0) with our OPT at version 0.
    let reply = ask(
        udp,
        &query(3, "db.lab.internal", 1, CLASS_IN, Some((1232, 1, false))),
    );
    assert_eq!(rcode(&reply), 0);
    assert_eq!(opt_of(&reply).map(|o| o.ext_rcode), Some(1));
    assert!(a_records(&reply).is_empty());

    // Unknown opcodes: NOTIMP, header only, nothing but QR, opcode and RD echoed.
    for opcode in [5u8, 15, 3] {
        let mut q = a(4, "db.lab.internal");
        q[2] = opcode << 3 | 0x04 | 0x02 | 0x01; // AA, TC, RD
        q[3] = 0x40 | 0x20 | 0x10; // Z, AD, CD
        let reply = ask(udp, &q);
        assert_eq!(reply.len(), 12, "header only");
        assert_eq!(
            reply[2],
            0x80 | opcode << 3 | 0x01,
            "opcode {opcode}: flags"
        );
        assert_eq!(
            reply[3],
            ResponseCode::NotImp.low(),
            "opcode {opcode}: no RA/Z/AD/CD"
        );
    }

    // CHAOS: version.bind and id.server locally; anything else refused; nothing forwarded.
    for name in ["version.bind", "id.server", "VERSION.BIND"] {
        let reply = ask(udp, &query(5, name, 16, CLASS_CH, None));
        let m = Message::from_vec(&reply).expect("parse");
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
        assert!(
            matches!(&m.answers[..], [r] if matches!(&r.data, RData::TXT(_))),
            "{name}"
        );
    }
    for (name, qtype) in [
        ("www.example.com", 1),
        ("authors.bind", 16),
        ("version.bind", 1),
    ] {
        let reply = ask(udp, &query(6, name, qtype, CLASS_CH, None));
        assert_eq!(rcode(&reply), ResponseCode::Refused.low(), "CH {name}");
    }
    // Other classes: refused.
    for class in [CLASS_HS, CLASS_NONE] {
        let reply = ask(
            udp,
            &query(7, "www.example.com", 1, class, Some((1232, 0, false))),
        );
        assert_eq!(rcode(&reply), ResponseCode::Refused.low(), "class {class}");
    }
    // AXFR: refused.
    let reply = tcp_ask(srv.tcp(), &query(8, "lab.internal", 252, CLASS_IN, None));
    assert_eq!(rcode(&reply), ResponseCode::Refused.low());
    assert_eq!(
        fake.udp_queries() + fake.tcp_queries(),
        0,
        "nothing above was forwarded"
    );

    // The DO bit is copied (RFC 3225), locally and when forwarded.
    for name in ["db.lab.internal", "www.example.com"] {
        for dnssec_ok in [true, false] {
            let reply = ask(
                udp,
                &query(9, name, 1, CLASS_IN, Some((1232, 0, dnssec_ok))),
            );
            assert_eq!(rcode(&reply), 0, "{name}");
            assert_eq!(
                opt_of(&reply).map(|o| o.dnssec_ok),
                Some(dnssec_ok),
                "{name} DO={dnssec_ok}"
            );
        }
    }
    assert!(fake.udp_queries() >= 1, "the forwarded name was forwarded");
}

// ---------------------------------------------------------------------------------------------------------------
// Hostile input.

/// Packets crafted to break parsers, each with what is acceptable: FORMERR, or nothing.
fn crafted() -> Vec<(&'static str, Vec<u8>)> {
    let header = |qd: u16, an: u16| {
        let mut p = vec![0xAB, 0xCD, 0x01, 0x00];
        p.extend_from_slice(&qd.to_be_bytes());
        p.extend_from_slice(&an.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 0]);
        p
    };
    let mut v = vec![
        ("empty", Vec::new()),
        ("1 byte", vec![0xAB]),
        ("truncated header", vec![0xAB, 0xCD, 0x01, 0x00, 0, 1, 0]),
        ("header, no question", header(1, 0)),
    ];
    let mut p = header(1, 0);
    p.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
    v.push(("pointer to itself", p));
    let mut p = header(1, 0);
    p.extend_from_slice(&[1, b'a', 0xC0, 14, 0, 1, 0, 1]);
    v.push(("pointer loop", p));
    let mut p = header(1, 0);
    p.extend_from_slice(&[0xC0, 200, 0, 1, 0, 1]);
    v.push(("pointer past the end", p));
    let mut p = header(1, 0);
    p.push(64);
    p.extend_from_slice(&[b'a'; 64]);
    p.extend_from_slice(&[0, 0, 1, 0, 1]);
    v.push(("label of 64", p));
    let mut p = header(1, 0);
    for _ in 0..5 {
        p.push(63);
        p.extend_from_slice(&[b'a'; 63]);
    }
    p.extend_from_slice(&[0, 0, 1, 0, 1]);
    v.push(("name of 321", p));
    let mut p = header(1, 0);
    p.extend_from_slice(&[0x80, b'a', 0, 0, 1, 0, 1]);
    v.push(("reserved label type", p));
    let mut p = header(0, 0);
    v.push(("qdcount 0", p.clone()));
    p = header(2, 0);
    for _ in 0..2 {
        p.extend_from_slice(&[1, b'a', 0, 0, 1, 0, 1]);
    }
    v.push(("qdcount 2", p));
    let mut p = header(1, 3);
    p.extend_from_slice(&[1, b'a', 0, 0, 1, 0, 1]);
    v.push(("answers claimed, absent", p));
    let mut p = a(0xABCD, "example.com");
    p.truncate(p.len() - 5);
    v.push(("OPT cut short", p));
    let mut p = a(0xABCD, "example.com");
    let n = p.len();
    p[n - 2..].copy_from_slice(&[0, 40]);
    v.push(("OPT rdlength past the end", p));
    let mut p = query(0xABCD, "example.com", 1, CLASS_IN, Some((1232, 0, false)));
    p[11] = 2;
    let opt = p[p.len() - 11..].to_vec();
    p.extend_from_slice(&opt);
    v.push(("two OPT records", p));
    v.push(("garbage", (0..300u32).map(|i| (i * 7 + 3) as u8).collect()));
    let mut p = header(1, 0);
    p.resize(65000, 0xFF);
    v.push(("oversized garbage", p));
    v
}

#[test]
fn packet_storm_then_a_good_query_is_answered() {
    let _serial = serial();
    let srv = InProcess::start(&lab_yaml("", ""), |_| {});
    let sock = client(Ipv4Addr::LOCALHOST);
    // Crafted ones, one at a time: FORMERR (header only, id echoed) or nothing.
    for (what, packet) in crafted() {
        sock.send_to(&packet, srv.udp()).expect("send");
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut buf = [0u8; 2048];
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let r = &buf[..n];
            assert!(n >= 12 && r[2] & 0x80 != 0, "{what}: a response");
            // NOTIMP when the garbage happens to carry another opcode.
            assert!(
                [ResponseCode::FormErr.low(), ResponseCode::NotImp.low()].contains(&rcode(r)),
                "{what}: FORMERR"
            );
            assert_eq!(&r[..2], &packet[..2], "{what}: id echoed");
        }
    }
    // 20,000 random and mutated datagrams from a fixed seed.
    let mut rng = Rng(0x0005_EED0_FD05);
    let seeds: Vec<Vec<u8>> = [
        a(1, "db.lab.internal"),
        query(2, "big.lab.internal", 255, CLASS_IN, Some((65535, 0, true))),
        query(3, "version.bind", 16, CLASS_CH, None),
        query(4, "10.1.0.10.in-addr.arpa", 12, CLASS_IN, None),
    ]
    .into_iter()
    .chain(
        crafted()
            .into_iter()
            .map(|(_, p)| p)
            .filter(|p| p.len() < 1000),
    )
    .collect();
    let mut buf = vec![0u8; 65535];
    sock.set_nonblocking(true).expect("nonblocking");
    let mut replies = 0;
    for i in 0..20_000 {
        let packet: Vec<u8> = match rng.below(3) {
            0 => (0..rng.below(600)).map(|_| rng.next() as u8).collect(),
            _ => {
                let mut p = seeds[rng.below(seeds.len())].clone();
                for _ in 0..=rng.below(4) {
                    if p.is_empty() {
                        break;
                    }
                    match rng.below(3) {
                        0 => {
                            let at = rng.below(p.len());
                            p[at] = rng.next() as u8;
                        }
                        1 => p.truncate(rng.below(p.len())),
                        _ => p.insert(rng.below(p.len()), rng.next() as u8),
                    }
                }
                p
            }
        };
        let _ = sock.send_to(&packet, srv.udp());
        // Drain as we go, so the socket buffers never decide the outcome.
        if i % 64 == 0 {
            thread::sleep(Duration::from_millis(1));
        }
        while let Ok((n, _)) = sock.recv_from(&mut buf) {
            let r = &buf[..n];
            assert!(n >= 12 && r[2] & 0x80 != 0, "every reply is a response");
            assert!(n <= 1232, "every UDP reply fits 1232 bytes");
            replies += 1;
        }
    }
    sock.set_nonblocking(false).expect("blocking");
    assert!(
        replies > 1000,
        "most well-formed mutations were answered ({replies})"
    );
    let reply = ask_from(
        &sock,
        srv.udp(),
        &a(0x7777, "db.lab.internal"),
        Duration::from_secs(4),
    )
    .expect("still answering");
    assert_eq!(a_records(&reply), [Ipv4Addr::new(10, 0, 1, 100)]);
}

#[test]
fn malformed_tcp_messages_are_survived() {
    let _serial = serial();
    let srv = InProcess::start(&lab_yaml("", ""), |_| {});
    let send = |bytes: &[u8]| -> Vec<u8> {
        let mut s = TcpStream::connect(srv.tcp()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let _ = s.write_all(bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    };
    for (what, packet) in crafted().into_iter().filter(|(_, p)| p.len() < 60000) {
        let mut framed = (packet.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&packet);
        let out = send(&framed);
        if !out.is_empty() {
            assert!(out.len() >= 14, "{what}: a framed reply");
            assert!(
                [ResponseCode::FormErr.low(), ResponseCode::NotImp.low()]
                    .contains(&rcode(&out[2..])),
                "{what}"
            );
        }
    }
    // Lengths that lie: longer than what follows, zero, a lone byte.
    for bytes in [&[0xFF, 0xFF, 1, 2, 3][..], &[0, 0], &[0x00], &[0, 5, 0xAB]] {
        let _ = send(bytes);
    }
    let reply = tcp_ask(srv.tcp(), &a(5, "db.lab.internal"));
    assert_eq!(a_records(&reply), [Ipv4Addr::new(10, 0, 1, 100)]);
}

/// A private zone with a chain of `n` CNAMEs: c0 -> c1 -> ... -> c{n} (an A record).
fn cname_chain(n: usize) -> String {
    let mut zone = String::from("  - name: chain.internal\n    records:\n");
    for i in 0..n {
        zone.push_str(&format!(
            "      - {{ name: c{i}, type: CNAME, value: c{}.chain.internal. }}\n",
            i + 1
        ));
    }
    zone.push_str(&format!(
        "      - {{ name: c{n}, type: A, values: [10.0.8.8] }}\n"
    ));
    zone
}

#[test]
fn cname_chain_too_long_is_servfail_and_one_within_bounds_answers() {
    let _serial = serial();
    let long = lab_yaml("", "").replace(
        "hosted_zones:\n",
        &format!("hosted_zones:\n{}", cname_chain(12)),
    );
    let srv = InProcess::start(&long, |_| {});
    // From c4 the chain has 8 CNAMEs: within bounds, the whole chain and the address.
    let ok = Message::from_vec(&ask(srv.udp(), &a(1, "c4.chain.internal"))).expect("parses");
    assert_eq!(ok.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        a_records(&ok.to_vec().expect("encode")),
        [Ipv4Addr::new(10, 0, 8, 8)]
    );
    // From c0, 12 CNAMEs: SERVFAIL, over UDP and TCP.
    let udp = ask(srv.udp(), &a(2, "c0.chain.internal"));
    assert_eq!(rcode(&udp), ResponseCode::ServFail.low(), "UDP");
    let tcp = tcp_ask(srv.tcp(), &a(3, "c0.chain.internal"));
    assert_eq!(rcode(&tcp), ResponseCode::ServFail.low(), "TCP");
    assert!(a_records(&udp).is_empty());
}

#[test]
fn slowloris_does_not_starve_udp_or_new_tcp_clients() {
    let _serial = serial();
    // 600 connections that each send one byte and stall, against the default bound of 512.
    let srv = InProcess::start(&lab_yaml("", ""), |c| {
        assert_eq!(c.max_tcp_connections, 512)
    });
    let unloaded_udp = median_time(|i| {
        let reply = ask(srv.udp(), &a(i, "db.lab.internal"));
        assert_eq!(a_records(&reply), [Ipv4Addr::new(10, 0, 1, 100)]);
    });
    let unloaded_tcp = median_time(|i| {
        let reply = tcp_ask(srv.tcp(), &a(i, "db.lab.internal"));
        assert_eq!(a_records(&reply), [Ipv4Addr::new(10, 0, 1, 100)]);
    });
    let mut slow = Vec::new();
    for _ in 0..600 {
        match TcpStream::connect_timeout(&srv.tcp(), Duration::from_secs(2)) {
            Ok(mut s) => {
                let _ = s.write_all(&[0]);
                slow.push(s);
            }
            Err(e) => panic!("connect {}: {e}", slow.len()),
        }
    }
    let udp_time = median_time(|i| {
        let reply = ask(srv.udp(), &a(i, "db.lab.internal"));
        assert_eq!(a_records(&reply), [Ipv4Addr::new(10, 0, 1, 100)]);
    });
    // Past the bound, a fresh connection waits for the oldest idle one to be reclaimed: slower, but answered.
    let tcp_time = median_time(|i| {
        let reply = tcp_ask(srv.tcp(), &a(i, "db.lab.internal"));
        assert_eq!(a_records(&reply), [Ipv4Addr::new(10, 0, 1, 100)]);
    });
    eprintln!(
        "medians: udp {unloaded_udp:?} -> {udp_time:?}, tcp {unloaded_tcp:?} -> {tcp_time:?} with 600 stalled"
    );
    assert!(
        udp_time <= unloaded_udp * SLOWDOWN,
        "UDP median {udp_time:?}, unloaded {unloaded_udp:?}"
    );
    assert!(
        tcp_time <= unloaded_tcp * SLOWDOWN,
        "fresh TCP median {tcp_time:?}, unloaded {unloaded_tcp:?}"
    );
    drop(slow);
}

#[test]
fn idle_tcp_connections_are_closed() {
    let _serial = serial();
    let srv = InProcess::start(&lab_yaml("", ""), |c| {
        c.tcp_idle = Duration::from_millis(300)
    });
    let mut s = TcpStream::connect(srv.tcp()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    // One query, answered; then silence.
    let q = a(1, "db.lab.internal");
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    s.write_all(&framed).expect("write");
    let mut len = [0u8; 2];
    s.read_exact(&mut len).expect("reply");
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut reply).expect("reply");
    let started = Instant::now();
    let mut rest = [0u8; 16];
    let n = s.read(&mut rest).expect("EOF, not a timeout");
    assert_eq!(n, 0, "closed by the server");
    let waited = started.elapsed();
    // The timer starts when the server sends the reply, a little before we read it: allow a fifth early.
    let idle = Duration::from_millis(300);
    assert!(
        waited >= idle * 4 / 5 && waited < idle * 10,
        "closed after {waited:?} with an idle timeout of {idle:?}"
    );
}

#[test]
fn running_out_of_descriptors_backs_off_instead_of_spinning() {
    let _serial = serial();
    if Command::new("prlimit").arg("--version").output().is_err() {
        return crate::prereq::missing("prlimit", "apt-get install util-linux");
    }
    let dir = temp_dir("nofile");
    let file = dir.join("lab.yaml");
    std::fs::write(&file, lab_yaml("", "")).expect("write");
    let srv = Spawned::start(
        &["prlimit", "--nofile=64:64"],
        &[file.to_str().expect("utf-8")],
    );
    let window = Duration::from_secs(2);
    let baseline = srv.cpu_ticks_over(window);
    // Far more connections than the server has descriptors; they queue in the backlog.
    let mut conns = Vec::new();
    for _ in 0..300 {
        if let Ok(s) = TcpStream::connect_timeout(&srv.tcp, Duration::from_millis(500)) {
            conns.push(s);
        }
    }
    assert!(conns.len() >= 100, "only {} connections", conns.len());
    let used = srv.cpu_ticks_over(window);
    // A server spinning on accept would burn the whole window (200 ticks of one core in 2 s); backing off costs a
    // little more than idling.
    let spin = window.as_secs_f64() * 100.0;
    eprintln!("cpu ticks over {window:?}: idle {baseline}, out of descriptors {used}");
    assert!(
        (used as f64) < baseline as f64 + spin / 4.0,
        "{used} ticks out of descriptors vs {baseline} idle over {window:?}"
    );
    assert!(
        srv.stderr_text().contains("tcp accept failed"),
        "accept errors are logged"
    );
    let reply = ask(srv.udp, &a(1, "db.lab.internal"));
    assert_eq!(a_records(&reply), [Ipv4Addr::new(10, 0, 1, 100)]);
    drop(conns);
}

// ---------------------------------------------------------------------------------------------------------------
// Dead upstreams.

#[test]
fn dead_upstream_servfails_in_time_with_few_packets_then_fast() {
    let _serial = serial();
    let hole = CountingHole::start();
    let srv = InProcess::start(&lab_yaml(&format!("\"{}\"", hole.addr), ""), |_| {});
    let started = Instant::now();
    let reply = ask(srv.udp(), &a(1, "one.example.com"));
    let took = started.elapsed();
    assert_eq!(rcode(&reply), ResponseCode::ServFail.low());
    assert!(
        opt_of(&reply).and_then(|o| o.ede).is_some(),
        "SERVFAIL carries an EDE"
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    while hole.packets() == 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    assert!(
        (1..=3).contains(&hole.packets()),
        "{} packets for one query",
        hole.packets()
    );
    // Held down: the next queries fail in milliseconds and send nothing more.
    let before = hole.packets();
    for i in 0..5 {
        let started = Instant::now();
        let reply = ask(srv.udp(), &a(2 + i, &format!("n{i}.example.com")));
        assert_eq!(rcode(&reply), ResponseCode::ServFail.low());
        assert!(
            started.elapsed() * 4 < took,
            "held down: {:?}, the first (timed out) {took:?}",
            started.elapsed()
        );
    }
    assert_eq!(hole.packets(), before, "nothing sent to a held-down target");
}

#[test]
fn forwarded_queries_beyond_the_pending_limit_get_servfail_at_once() {
    let _serial = serial();
    let hole = CountingHole::start();
    let srv = InProcess::start(&lab_yaml(&format!("\"{}\"", hole.addr), ""), |c| {
        c.max_pending_forwards = 2;
    });
    let waiting = client(Ipv4Addr::LOCALHOST);
    for i in 0..2u16 {
        waiting
            .send_to(&a(i, &format!("wait{i}.example.com")), srv.udp())
            .expect("send");
    }
    // Both are pending once both have reached the silent target.
    let deadline = Instant::now() + Duration::from_secs(2);
    while hole.packets() < 2 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    assert!(hole.packets() >= 2, "the first two were forwarded");
    let reply = ask(srv.udp(), &a(9, "third.example.com"));
    assert_eq!(rcode(&reply), ResponseCode::ServFail.low());
    assert_eq!(
        opt_of(&reply).and_then(|o| o.ede),
        Some(0),
        "EDE Other (busy)"
    );
    // Turned away without waiting: the two pending ones have no answer yet.
    waiting.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 512];
    assert!(
        waiting.recv_from(&mut buf).is_err(),
        "pending queries answered before the busy one"
    );
    waiting.set_nonblocking(false).expect("blocking");
    for _ in 0..2 {
        let (n, _) = waiting
            .recv_from(&mut buf)
            .expect("pending ones end at their deadline");
        assert_eq!(rcode(&buf[..n]), ResponseCode::ServFail.low());
        assert_eq!(
            opt_of(&buf[..n]).and_then(|o| o.ede),
            Some(22),
            "no reachable authority"
        );
    }
    // Slots are given back: the next forward passes the gate and meets the held-down target.
    let reply = ask(srv.udp(), &a(10, "fourth.example.com"));
    assert_eq!(
        opt_of(&reply).and_then(|o| o.ede),
        Some(22),
        "past the pending limit again"
    );
    assert_eq!(
        a_records(&ask(srv.udp(), &a(11, "db.lab.internal"))),
        [Ipv4Addr::new(10, 0, 1, 100)]
    );
}

#[test]
fn local_answers_stay_fast_while_upstreams_are_dead() {
    let _serial = serial();
    let hole = CountingHole::start();
    let srv = InProcess::start(&lab_yaml(&format!("\"{}\"", hole.addr), ""), |_| {});
    let flood = client(Ipv4Addr::LOCALHOST);
    let local = client(Ipv4Addr::LOCALHOST);
    // One round: a burst of 100 queries, then the local question behind it. The baseline burst is answered
    // locally (NXDOMAIN); the measured one needs the dead upstream. Local answers must not wait for it: waiting
    // would cost at least one attempt timeout, where handling the 100 forwards queued ahead costs milliseconds
    // (a ratio to the local burst is not the property: a forward costs more to hand off than an NXDOMAIN to
    // answer, the more so on a loaded machine).
    let round = |id: u16, burst: &dyn Fn(u16) -> String| {
        for i in 0..100u16 {
            let _ = flood.send_to(&a(i, &burst(i)), srv.udp());
        }
        let started = Instant::now();
        let reply = ask_from(
            &local,
            srv.udp(),
            &a(id, "db.lab.internal"),
            Duration::from_secs(2),
        )
        .expect("local answer");
        assert_eq!(a_records(&reply), [Ipv4Addr::new(10, 0, 1, 100)]);
        started.elapsed()
    };
    let median = |rounds: &dyn Fn(u16) -> Duration| {
        let mut t: Vec<Duration> = (0..21u16).map(rounds).collect();
        t.sort();
        t[t.len() / 2]
    };
    let unloaded = median(&|r| round(50000 + r, &|i| format!("r{r}-{i}.lab.internal")));
    let during = median(&|r| round(60000 + r, &|i| format!("r{r}-{i}.example.com")));
    eprintln!(
        "local answer medians behind a burst: local burst {unloaded:?}, dead-upstream burst {during:?}"
    );
    let attempt = ForwarderConfig::default().attempt_timeout;
    assert!(
        during * 8 < attempt,
        "median local answer {during:?} behind forwards to a dead upstream ({unloaded:?} behind local ones): \
         it waits for the upstream (attempt timeout {attempt:?})"
    );
}

#[test]
fn memory_and_sockets_stay_flat_under_a_flood_to_a_dead_target() {
    let _serial = serial();
    let hole = CountingHole::start();
    let dir = temp_dir("flood");
    let file = dir.join("lab.yaml");
    std::fs::write(&file, lab_yaml(&format!("\"{}\"", hole.addr), "")).expect("write");
    let srv = Spawned::start(&[], &[file.to_str().expect("utf-8")]);
    let flood = client(Ipv4Addr::LOCALHOST);
    let send_round = |round: u32| {
        for i in 0..5_000u32 {
            let _ = flood.send_to(&a(i as u16, &format!("u{round}x{i}.example.com")), srv.udp);
            if i % 500 == 0 {
                thread::sleep(Duration::from_millis(5));
            }
        }
    };
    // Warm up (runtime threads, buffers), then measure across a 20,000-name flood.
    send_round(0);
    let (fds0, rss0) = srv.settled(|_| true);
    for round in 1..=4 {
        send_round(round);
    }
    // Forwards to the dead target end at their deadline; on a busy machine that takes a while after the flood.
    let (fds1, peak) = srv.settled(|fds| fds <= fds0 + 4);
    assert!(fds1 <= fds0 + 4, "descriptors grew from {fds0} to {fds1}");
    // 20,000 distinct names leave bounded per-name state behind (the remembered forward routes, capped); a leak
    // of the flood's packets or tasks would stay well above this. The allocator returns freed pages over about
    // ten seconds (jemalloc's decay), so memory is read until it is back under the bound, or 30 s have passed.
    let bound = rss0 + 16 * 1024;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut rss1 = srv.fds_and_rss().1;
    while rss1 >= bound && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(200));
        rss1 = srv.fds_and_rss().1;
    }
    eprintln!("fds {fds0} -> {fds1}, VmRSS {rss0} kB -> {peak} kB after the flood -> {rss1} kB");
    assert!(
        rss1 < bound,
        "VmRSS grew from {rss0} kB to {rss1} kB and stayed"
    );
    let reply = ask(srv.udp, &a(1, "db.lab.internal"));
    assert_eq!(a_records(&reply), [Ipv4Addr::new(10, 0, 1, 100)]);
}

#[test]
fn serves_stale_when_the_upstream_dies() {
    let _serial = serial();
    let fake = Fake::start(FakeBehaviour {
        ttl: 1,
        answer: [192, 0, 2, 44],
        ..FakeBehaviour::default()
    });
    let srv = InProcess::start(&lab_yaml(&format!("\"{}\"", fake.addr()), ""), |_| {});
    let reply = ask(srv.udp(), &a(1, "stale.example.com"));
    assert_eq!(a_records(&reply), [Ipv4Addr::new(192, 0, 2, 44)]);
    drop(fake);
    thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    let reply = ask(srv.udp(), &a(2, "stale.example.com"));
    assert_eq!(rcode(&reply), 0);
    assert_eq!(
        a_records(&reply),
        [Ipv4Addr::new(192, 0, 2, 44)],
        "the expired answer, served stale"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

// ---------------------------------------------------------------------------------------------------------------
// Reloads, metrics, health, draining, logs.

/// Version `n` answers `pair.internal` with 10.0.n.1 and 10.0.n.2 (one change touching two values).
pub(crate) fn versioned(n: u8) -> String {
    lab_yaml(
        "",
        &format!(
            "  - name: pair.internal\n    records:\n      - {{ name: \"@\", type: A, values: [10.0.{n}.1, 10.0.{n}.2] }}\n"
        ),
    )
}

#[test]
fn reload_under_load_loses_nothing_and_never_mixes() {
    let _serial = serial();
    let dir = temp_dir("reload");
    let file = dir.join("topology.yaml");
    std::fs::write(&file, versioned(1)).expect("write");
    let broken = "version: 1\nvpcs:\n  - name: lab\n    cidr: 10.0.0.0/33\nhosted_zones:\n  - name: x..internal\n";
    let broken_file = dir.join("broken.yaml");
    std::fs::write(&broken_file, broken).expect("write");
    let check = Command::new(BIN)
        .arg("check")
        .arg(&broken_file)
        .output()
        .expect("check");
    let expected_errors: Vec<String> = String::from_utf8_lossy(&check.stdout)
        .lines()
        .map(|l| {
            l.replace(
                broken_file.to_str().expect("utf-8"),
                file.to_str().expect("utf-8"),
            )
        })
        .collect();
    assert!(
        !expected_errors.is_empty(),
        "the broken topology has errors"
    );

    let srv = Spawned::start(
        &[],
        &[file.to_str().expect("utf-8"), "--metrics", "127.0.0.1:0"],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let server = srv.udp;
    let load = {
        let stop = stop.clone();
        thread::spawn(move || {
            let sock = client(Ipv4Addr::LOCALHOST);
            let (mut sent, mut lost, mut versions) = (0u32, 0u32, HashSet::new());
            let deadline = Instant::now() + Duration::from_secs(30);
            // Until the reloads are over (not a fixed count: a fast server would finish it before they begin).
            while Instant::now() < deadline && !(stop.load(Ordering::Relaxed) && sent > 2000) {
                let id = (sent % 65536) as u16;
                sent += 1;
                let Some(reply) = ask_from(
                    &sock,
                    server,
                    &a(id, "pair.internal"),
                    Duration::from_secs(2),
                ) else {
                    lost += 1;
                    continue;
                };
                let ips = a_records(&reply);
                assert_eq!(ips.len(), 2, "both values, from one topology: {ips:?}");
                let v = ips[0].octets()[2];
                assert!(
                    ips.iter().all(|ip| ip.octets()[2] == v),
                    "mixed answer {ips:?}"
                );
                versions.insert(v);
            }
            (sent, lost, versions)
        })
    };
    // Each reload is waited for (its generation serves, or the failure is counted) before the next, so every
    // SIGHUP is its own load and exactly five are rejected.
    let mut failed = 0.0;
    for round in 0..10u8 {
        if round % 2 == 0 {
            let version = 2 + round / 2;
            write_atomically(&file, &versioned(version));
            let before = srv.generation();
            srv.signal("-HUP");
            srv.wait_generation(before + 1);
            let now = ask(srv.udp, &a(u16::from(round), "pair.internal"));
            assert_eq!(a_records(&now)[0].octets()[2], version);
        } else {
            write_atomically(&file, broken);
            srv.signal("-HUP");
            failed += 1.0;
            srv.wait_metric("vpc_resolver_reloads_total{result=\"failed\"}", failed);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (sent, lost, versions) = load.join().expect("load thread");
    eprintln!("reload under load: {sent} sent, {lost} lost, versions seen {versions:?}");
    assert_eq!(lost, 0, "every query answered");
    assert!(
        versions.len() >= 3,
        "answers changed with the reloads: {versions:?}"
    );
    // The last write was broken: the last valid version (6) still serves.
    let reply = ask(srv.udp, &a(1, "pair.internal"));
    assert_eq!(a_records(&reply)[0].octets()[2], 6);
    let stderr = srv.stderr_text();
    for e in &expected_errors {
        assert!(stderr.contains(e.as_str()), "stderr lacks `{e}`:\n{stderr}");
    }
    assert_eq!(stderr.matches("reload rejected").count(), 5, "{stderr}");
}

#[test]
fn watch_notices_a_symlink_swap() {
    let _serial = serial();
    // A ConfigMap volume updates by re-pointing a symlink (..data -> ..2024_x); the watched path stays the same.
    let dir = temp_dir("watch");
    std::fs::create_dir_all(dir.join("v1")).expect("dir");
    std::fs::create_dir_all(dir.join("v2")).expect("dir");
    std::fs::write(dir.join("v1/topology.yaml"), versioned(1)).expect("write");
    std::fs::write(dir.join("v2/topology.yaml"), versioned(2)).expect("write");
    std::os::unix::fs::symlink("v1", dir.join("..data")).expect("symlink");
    std::os::unix::fs::symlink("..data/topology.yaml", dir.join("topology.yaml")).expect("symlink");
    let path = dir.join("topology.yaml");
    let srv = Spawned::start(&[], &[path.to_str().expect("utf-8"), "--watch"]);
    assert_eq!(
        a_records(&ask(srv.udp, &a(1, "pair.internal")))[0].octets()[2],
        1
    );
    // No pause before the swap: the watcher compares inode, length and content, not modification times.
    std::os::unix::fs::symlink("v2", dir.join("..data_tmp")).expect("symlink");
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("swap");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let v = a_records(&ask(srv.udp, &a(2, "pair.internal")))[0].octets()[2];
        if v == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the swap was not noticed");
        thread::sleep(Duration::from_millis(100));
    }
}

pub(crate) fn metric(body: &str, prefix: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn metrics_health_readiness_and_draining_on_sigterm() {
    let _serial = serial();
    let slow = Fake::start(FakeBehaviour {
        delay: Duration::from_millis(1500),
        answer: [192, 0, 2, 9],
        ..FakeBehaviour::default()
    });
    // The fake answers one query at a time, so the query in flight at SIGTERM gets a fake of its own.
    let slow_inflight = Fake::start(FakeBehaviour {
        delay: Duration::from_millis(1500),
        answer: [192, 0, 2, 9],
        ..FakeBehaviour::default()
    });
    let hole = CountingHole::start();
    let dir = temp_dir("metrics");
    let file = dir.join("lab.yaml");
    let yaml = lab_yaml(
        &format!("\"{}\"", slow.addr()),
        &format!(
            "resolver:\n  rules:\n    - {{ domain: dead.example, targets: [\"{}\"] }}\n    - {{ domain: inflight.example, targets: [\"{}\"] }}\nrate_limit: {{ responses_per_second: 1000 }}\nallow: [127.0.0.1/32]\n",
            hole.addr,
            slow_inflight.addr()
        ),
    );
    std::fs::write(&file, yaml).expect("write");
    let srv = Spawned::start(
        &[],
        &[file.to_str().expect("utf-8"), "--metrics", "127.0.0.1:0"],
    );
    let m = srv.metrics.expect("metrics address");
    assert_eq!(http_get(m, "/healthz").0, 200);
    assert_eq!(http_get(m, "/readyz").0, 200);
    assert_eq!(http_get(m, "/nope").0, 404);
    // A request line that arrives in pieces is still read whole.
    let mut s = TcpStream::connect(m).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    for piece in ["GET ", "/hea", "lthz HTTP/1.0\r\n", "\r\n"] {
        s.write_all(piece.as_bytes()).expect("write");
        thread::sleep(Duration::from_millis(50));
    }
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    assert!(text.starts_with("HTTP/1.0 200"), "{text}");

    ask(srv.udp, &a(1, "db.lab.internal"));
    tcp_ask(srv.tcp, &a(2, "db.lab.internal"));
    ask(srv.udp, &a(3, "nothing.lab.internal"));
    ask(srv.udp, &a(4, "x.dead.example"));
    ask(srv.udp, &a(5, "www.example.com"));
    let refused = ask_from(
        &client(Ipv4Addr::new(127, 0, 0, 9)),
        srv.udp,
        &a(6, "db.lab.internal"),
        Duration::from_secs(4),
    )
    .expect("refused");
    assert_eq!(rcode(&refused), ResponseCode::Refused.low());
    srv.signal("-HUP");
    srv.wait_generation(2);
    let (status, body) = http_get(m, "/metrics");
    assert_eq!(status, 200);
    for (prefix, at_least) in [
        (
            "vpc_resolver_queries_total{kind=\"phz\",rcode=\"NOERROR\",proto=\"udp\"}",
            1.0,
        ),
        (
            "vpc_resolver_queries_total{kind=\"phz\",rcode=\"NOERROR\",proto=\"tcp\"}",
            1.0,
        ),
        (
            "vpc_resolver_queries_total{kind=\"phz\",rcode=\"NXDOMAIN\"",
            1.0,
        ),
        (
            "vpc_resolver_queries_total{kind=\"rule\",rcode=\"SERVFAIL\"",
            1.0,
        ),
        (
            "vpc_resolver_queries_total{kind=\"upstream\",rcode=\"NOERROR\"",
            1.0,
        ),
        ("vpc_resolver_view_queries_total{view=", 5.0),
        (
            "vpc_resolver_query_duration_seconds_bucket{le=\"+Inf\"}",
            5.0,
        ),
        ("vpc_resolver_query_duration_seconds_count", 5.0),
        (
            &format!(
                "vpc_resolver_upstream_failures_total{{target=\"{}\"}}",
                hole.addr
            ),
            1.0,
        ),
        (
            &format!(
                "vpc_resolver_upstream_queries_total{{target=\"{}\"}}",
                slow.addr()
            ),
            1.0,
        ),
        ("vpc_resolver_cache_entries", 1.0),
        ("vpc_resolver_reloads_total{result=\"ok\"}", 1.0),
        ("vpc_resolver_refused_total{reason=\"acl\"}", 1.0),
    ] {
        assert!(
            metric(&body, prefix) >= at_least,
            "{prefix} >= {at_least} in\n{body}"
        );
    }
    assert!(body.contains("vpc_resolver_reloads_total{result=\"failed\"} 0"));
    assert!(body.contains("vpc_resolver_rate_limited_total{action=\"drop\"} 0"));

    // A forwarded query in flight (the upstream takes 1.5 s), then SIGTERM: not ready, the answer still
    // arrives, and the process exits 0.
    let upstream_queries = format!(
        "vpc_resolver_upstream_queries_total{{target=\"{}\"}}",
        slow_inflight.addr()
    );
    let sent_before = metric(&body, &upstream_queries);
    let sock = client(Ipv4Addr::LOCALHOST);
    sock.send_to(&a(9, "x.inflight.example"), srv.udp)
        .expect("send");
    srv.wait_metric(&upstream_queries, sent_before + 1.0);
    srv.signal("-TERM");
    let deadline = Instant::now() + Duration::from_secs(1);
    while http_get(m, "/readyz").0 != 503 {
        assert!(Instant::now() < deadline, "not ready while draining");
        thread::sleep(Duration::from_millis(10));
    }
    let mut buf = [0u8; 1500];
    let (n, _) = sock
        .recv_from(&mut buf)
        .expect("the in-flight answer arrives");
    assert_eq!(
        a_records(&buf[..n]),
        [Ipv4Addr::new(192, 0, 2, 9)],
        "rcode {}:\n{}",
        rcode(&buf[..n]),
        srv.stderr_text()
    );
    let mut srv = srv;
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = srv.child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn json_query_log_has_the_fields() {
    let _serial = serial();
    let srv = Spawned::start(&[], &["--log-format", "json"]);
    ask(srv.udp, &a(1, "db.lab.internal"));
    ask(srv.udp, &a(2, "ec2.us-east-1.amazonaws.com"));
    // The log line is written before the reply is sent, but read from the pipe by another thread: poll for it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (lines, events) = loop {
        let lines = srv.stderr.lock().expect("lock").clone();
        let events: Vec<serde_json::Value> = lines
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["target"] == "vpc_resolver::query")
            .collect();
        if events.len() >= 2 || Instant::now() > deadline {
            break (lines, events);
        }
        thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(events.len(), 2, "{lines:#?}");
    let ec2 = events
        .iter()
        .find(|e| {
            e["qname"].as_str().map(|n| n.trim_end_matches('.'))
                == Some("ec2.us-east-1.amazonaws.com")
        })
        .expect("the ec2 query is logged");
    assert_eq!(ec2["client"], "127.0.0.1");
    assert!(
        ec2["view"].as_str().is_some_and(|v| v.starts_with("vpc-")),
        "the lab VPC's view: {ec2}"
    );
    assert_eq!(ec2["qtype"], "A");
    assert_eq!(
        ec2["rcode"], "NOERROR",
        "rcode mnemonics, as dig prints them"
    );
    assert!(
        ec2["decided_by"]
            .as_str()
            .is_some_and(|d| d.starts_with("endpoint")),
        "{ec2}"
    );
    assert!(ec2["micros"].as_u64().is_some(), "{ec2}");
    let db = events
        .iter()
        .find(|e| e["qname"].as_str().map(|n| n.trim_end_matches('.')) == Some("db.lab.internal"))
        .expect("logged");
    assert!(
        db["decided_by"]
            .as_str()
            .is_some_and(|d| d.starts_with("phz")),
        "{db}"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// The Kubernetes example.

fn k8s_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/kubernetes")
        .join(name)
}

#[test]
fn kubernetes_manifests_validate_against_the_schemas() {
    let files = [
        "configmap.yaml",
        "deployment.yaml",
        "service.yaml",
        "pdb.yaml",
    ]
    .map(k8s_file);
    let out = Command::new("kubernetes-validate")
        .arg("--strict")
        .args(&files)
        .output()
        .unwrap_or_else(|e| {
            panic!("kubernetes-validate: {e}; install it with `pip install kubernetes-validate`")
        });
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches(" passed for resource ").count(), 4, "{text}");
}

#[test]
fn kubernetes_example_topology_and_arguments_serve() {
    let _serial = serial();
    // The topology the ConfigMap carries, as the pod sees it.
    let cm: serde_json::Value =
        serde_norway::from_str(&std::fs::read_to_string(k8s_file("configmap.yaml")).expect("read"))
            .expect("configmap YAML");
    let topo = cm["data"]["topology.yaml"]
        .as_str()
        .expect("data.topology.yaml");
    topology::parse_str(topo).unwrap_or_else(|d| panic!("the example topology is invalid: {d:?}"));
    let dir = temp_dir("k8s");
    let file = dir.join("topology.yaml");
    std::fs::write(&file, topo).expect("write");
    // The container's arguments, with the ports moved to free loopback ones.
    let deploy: serde_json::Value = serde_norway::from_str(
        &std::fs::read_to_string(k8s_file("deployment.yaml")).expect("read"),
    )
    .expect("deployment YAML");
    let args: Vec<String> = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_string())
        .collect();
    // Appended to the image's ENTRYPOINT (`vpc-resolver serve --listen ...`): no subcommand of their own.
    assert_eq!(args[0], "/etc/vpc-resolver/topology.yaml");
    assert!(args.iter().any(|a| a == "--watch"));
    let args: Vec<String> = args
        .iter()
        .map(|a| match a.as_str() {
            "/etc/vpc-resolver/topology.yaml" => file.to_str().expect("utf-8").to_string(),
            "0.0.0.0:53" | "0.0.0.0:9153" => "127.0.0.1:0".to_string(),
            other => other.to_string(),
        })
        .collect();
    // `Spawned` adds its own --listen first; drop the manifest's.
    let mut rest: Vec<&str> = Vec::new();
    let mut it = args.iter().map(String::as_str);
    while let Some(a) = it.next() {
        if a == "--listen" {
            it.next();
        } else {
            rest.push(a);
        }
    }
    let srv = Spawned::start(&[], &rest);
    let m = srv.metrics.expect("metrics");
    assert_eq!(http_get(m, "/readyz").0, 200);
    // The probes run the image's own binary against the server; the address moves to the spawned one.
    for probe in ["readinessProbe", "livenessProbe"] {
        let argv: Vec<String> = deploy["spec"]["template"]["spec"]["containers"][0][probe]["exec"]
            ["command"]
            .as_array()
            .expect("an exec probe")
            .iter()
            .map(|a| a.as_str().expect("string arg").to_string())
            .collect();
        assert_eq!(
            argv[..2],
            ["/usr/local/bin/vpc-resolver", "probe"],
            "{probe}"
        );
        let tcp = argv.iter().any(|a| a == "--tcp");
        let server = if tcp { srv.tcp } else { srv.udp }.to_string();
        let rest = argv[2..].iter().map(|a| match a.as_str() {
            "127.0.0.1:53" => server.as_str(),
            other => other,
        });
        let out = Command::new(BIN)
            .arg("probe")
            .args(rest)
            .output()
            .expect("run probe");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{probe}: {text}");
        assert!(text.starts_with("ok: "), "{probe}: {text}");
    }
    let reply = ask(srv.udp, &a(1, "db.lab.internal"));
    assert_eq!(a_records(&reply), [Ipv4Addr::new(10, 0, 1, 100)]);
}
