//! Real DNS servers on loopback for the integration tests (dnsmasq, unbound), a black hole and a small
//! scriptable fake server. Each is killed / closed on Drop. A missing binary is a panic naming the Debian
//! package to install: a test must never pass because its peer could not run.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

/// Where Debian installs daemons; `PATH` of an unprivileged user often lacks the sbin directories.
const SBIN: &[&str] = &["/usr/sbin", "/sbin", "/usr/local/sbin"];

fn find_binary(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SBIN.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` not found in PATH or sbin: install the Debian package `{package}` \
                 (apt-get install {package}); these tests need a real {name} peer"
            )
        })
}

/// A fresh directory for a peer's config and log, removed on Drop of the peer.
pub(crate) fn temp_dir(kind: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "vpc-resolver-it-{kind}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// A port free for both UDP and TCP on `ip` right now (a small race with other processes is accepted;
/// callers retry).
fn free_port(ip: IpAddr) -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind((ip, 0)).expect("bind probe UDP socket");
        let port = udp.local_addr().expect("local addr").port();
        if TcpListener::bind((ip, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on {ip}");
}

/// `version.bind CH TXT`: answered locally by both dnsmasq and unbound, never forwarded.
fn probe_query(id: u16) -> Vec<u8> {
    let mut q = Query::query(
        Name::from_ascii("version.bind.").expect("name"),
        RecordType::TXT,
    );
    q.set_query_class(DNSClass::CH);
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(q);
    m.to_vec().expect("encode probe")
}

/// Waits (bounded) until `addr` answers a DNS query over UDP; false if the child exited or time ran out.
fn wait_ready(addr: SocketAddr, child: &mut Child) -> bool {
    let sock = UdpSocket::bind((addr.ip(), 0)).expect("bind probe");
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let start = Instant::now();
    let mut buf = [0u8; 1500];
    let mut id = 7u16;
    while start.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        id = id.wrapping_add(1);
        let _ = sock.send_to(&probe_query(id), addr);
        // Any of our probes counts: a slow start answers an earlier probe after the next one was sent.
        if let Ok((n, from)) = sock.recv_from(&mut buf)
            && from == addr
            && n >= 2
            && (7..=id).contains(&u16::from_be_bytes([buf[0], buf[1]]))
        {
            return true;
        }
    }
    false
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A child process killed and reaped on Drop, with its temp directory.
struct Process {
    child: Child,
    dir: PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// dnsmasq listening on one loopback address and a free port.
pub(crate) struct Dnsmasq {
    process: Option<Process>,
    addr: SocketAddr,
}

impl Dnsmasq {
    /// Starts dnsmasq with no config file, no resolv.conf, no hosts file, plus `extra_args`
    /// (`--address=/name/ip`, `--txt-record=…`, `--server=…`, `--local-ttl=…`), and waits until it answers.
    pub(crate) fn start(listen: IpAddr, extra_args: &[&str]) -> Self {
        let bin = find_binary("dnsmasq", "dnsmasq-base");
        let mut last_log = String::new();
        for _ in 0..5 {
            let dir = temp_dir("dnsmasq");
            let port = free_port(listen);
            let log = dir.join("log");
            let child = Command::new(&bin)
                .arg("--no-daemon")
                // Config from stdin, which is empty: no system config file.
                .arg("--conf-file=-")
                .arg("--no-resolv")
                .arg("--no-hosts")
                .arg("--bind-interfaces")
                .arg(format!("--listen-address={listen}"))
                .arg(format!("--port={port}"))
                .arg("--pid-file")
                .args(extra_args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("log file"))
                .spawn()
                .expect("spawn dnsmasq");
            let mut process = Process { child, dir };
            let addr = SocketAddr::new(listen, port);
            if wait_ready(addr, &mut process.child) {
                return Self {
                    process: Some(process),
                    addr,
                };
            }
            last_log = read_log(&log);
        }
        panic!("dnsmasq did not start; last log:\n{last_log}");
    }

    /// Where it listens (UDP and TCP).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Kills it now (the address then refuses: ICMP port unreachable).
    pub(crate) fn kill(&mut self) {
        self.process = None;
    }
}

/// unbound with a throw-away config on 127.0.0.1 and a free port.
pub(crate) struct Unbound {
    process: Process,
    addr: SocketAddr,
}

impl Unbound {
    /// Starts unbound; `config_extra` is appended inside the `server:` clause first, so it may hold
    /// `local-zone:`/`local-data:` lines and then further clauses (`forward-zone:`). Root hints point at
    /// 127.0.0.1, which unbound never queries (do-not-query-localhost), so nothing leaves the host.
    pub(crate) fn start(config_extra: &str) -> Self {
        let bin = find_binary("unbound", "unbound");
        let listen: IpAddr = [127, 0, 0, 1].into();
        let mut last_log = String::new();
        for _ in 0..5 {
            let dir = temp_dir("unbound");
            let port = free_port(listen);
            let log = dir.join("log");
            let hints = dir.join("root.hints");
            std::fs::write(
                &hints,
                ". 3600000 NS a.root.test.\na.root.test. 3600000 A 127.0.0.1\n",
            )
            .expect("write hints");
            let conf = dir.join("unbound.conf");
            let text = format!(
                // remote-control first, so the user's text may end with further clauses.
                "remote-control:\n\
                 \x20 control-enable: no\n\
                 server:\n\
                 \x20 interface: {listen}\n\
                 \x20 port: {port}\n\
                 \x20 do-daemonize: no\n\
                 \x20 chroot: \"\"\n\
                 \x20 username: \"\"\n\
                 \x20 directory: \"{dir}\"\n\
                 \x20 pidfile: \"\"\n\
                 \x20 use-syslog: no\n\
                 \x20 logfile: \"{log}\"\n\
                 \x20 verbosity: 1\n\
                 \x20 do-ip6: no\n\
                 \x20 so-reuseport: no\n\
                 \x20 module-config: \"iterator\"\n\
                 \x20 root-hints: \"{hints}\"\n\
                 {config_extra}\n",
                dir = dir.display(),
                log = log.display(),
                hints = hints.display(),
            );
            std::fs::write(&conf, text).expect("write unbound.conf");
            let child = Command::new(&bin)
                .arg("-d")
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn unbound");
            let mut process = Process { child, dir };
            let addr = SocketAddr::new(listen, port);
            if wait_ready(addr, &mut process.child) {
                return Self { process, addr };
            }
            last_log = read_log(&log);
        }
        panic!("unbound did not start; last log:\n{last_log}");
    }

    /// Where it listens (UDP and TCP).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id (to tell test failures apart in logs).
    pub(crate) fn pid(&self) -> u32 {
        self.process.child.id()
    }
}

/// A UDP socket and a TCP listener on the same port that never answer (TCP connects complete in the
/// kernel's backlog but nothing is ever read or written).
pub(crate) struct BlackHole {
    _udp: UdpSocket,
    _tcp: TcpListener,
    addr: SocketAddr,
}

impl BlackHole {
    /// On 127.0.0.1.
    pub(crate) fn start() -> Self {
        Self::on([127, 0, 0, 1].into())
    }

    /// On `ip`.
    pub(crate) fn on(ip: IpAddr) -> Self {
        for _ in 0..50 {
            let udp = UdpSocket::bind((ip, 0)).expect("bind black hole");
            let addr = udp.local_addr().expect("addr");
            if let Ok(tcp) = TcpListener::bind(addr) {
                return Self {
                    _udp: udp,
                    _tcp: tcp,
                    addr,
                };
            }
        }
        panic!("no free port for a black hole on {ip}");
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// How [`Fake`] answers.
#[derive(Debug, Clone)]
pub(crate) struct FakeBehaviour {
    /// Wait this long before each UDP answer (answers are sent in order, one at a time).
    pub(crate) delay: Duration,
    /// Answer UDP with TC set and no records, so the client must retry over TCP.
    pub(crate) truncate_udp: bool,
    /// TTL of the A record answered.
    pub(crate) ttl: u32,
    /// Address answered for every A query.
    pub(crate) answer: [u8; 4],
    /// Before each real UDP answer, send two forged ones (wrong id, wrong question) answering 198.51.100.66.
    pub(crate) forge_first: bool,
}

impl Default for FakeBehaviour {
    fn default() -> Self {
        Self {
            delay: Duration::ZERO,
            truncate_udp: false,
            ttl: 300,
            answer: [192, 0, 2, 1],
            forge_first: false,
        }
    }
}

/// A tiny authoritative-looking server on 127.0.0.1 that counts the packets it gets (UDP and TCP) and
/// answers every query with one A record. Threads stop on Drop.
pub(crate) struct Fake {
    addr: SocketAddr,
    udp_queries: Arc<AtomicUsize>,
    tcp_queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

fn fake_answer(query: &[u8], b: &FakeBehaviour, truncate: bool) -> Option<Vec<u8>> {
    let q = Message::from_vec(query).ok()?;
    let mut m = Message::response(q.id, OpCode::Query);
    m.metadata.recursion_desired = q.recursion_desired;
    m.metadata.recursion_available = true;
    m.add_queries(q.queries.iter().cloned());
    if truncate {
        m.metadata.truncation = true;
    } else if let Some(question) = q.queries.first()
        && question.query_type() == RecordType::A
    {
        m.add_answer(Record::from_rdata(
            question.name().clone(),
            b.ttl,
            RData::A(A::from(std::net::Ipv4Addr::from(b.answer))),
        ));
    }
    m.to_vec().ok()
}

impl Fake {
    pub(crate) fn start(behaviour: FakeBehaviour) -> Self {
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").expect("bind fake");
            if let Ok(tcp) = TcpListener::bind(udp.local_addr().expect("addr")) {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().expect("addr");
        let udp_queries = Arc::new(AtomicUsize::new(0));
        let tcp_queries = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        udp.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        tcp.set_nonblocking(true).expect("nonblocking");
        {
            let (b, count, stop) = (behaviour.clone(), udp_queries.clone(), stop.clone());
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = udp.recv_from(&mut buf) else {
                        continue;
                    };
                    count.fetch_add(1, Ordering::SeqCst);
                    thread::sleep(b.delay);
                    if b.forge_first {
                        for forged in forgeries(&buf[..n]) {
                            let _ = udp.send_to(&forged, from);
                        }
                    }
                    if let Some(reply) = fake_answer(&buf[..n], &b, b.truncate_udp) {
                        let _ = udp.send_to(&reply, from);
                    }
                }
            });
        }
        {
            let (b, count, stop) = (behaviour, tcp_queries.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match tcp.accept() {
                        Ok((stream, _)) => {
                            count.fetch_add(1, Ordering::SeqCst);
                            let _ = serve_tcp(stream, &b);
                        }
                        Err(_) => thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
        }
        Self {
            addr,
            udp_queries,
            tcp_queries,
            stop,
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// UDP packets received so far.
    pub(crate) fn udp_queries(&self) -> usize {
        self.udp_queries.load(Ordering::SeqCst)
    }

    /// TCP connections received so far.
    pub(crate) fn tcp_queries(&self) -> usize {
        self.tcp_queries.load(Ordering::SeqCst)
    }
}

/// Responses an off-path attacker might race in: the right question with a wrong id, and the right id with
/// another question.
fn forgeries(query: &[u8]) -> Vec<Vec<u8>> {
    let Ok(q) = Message::from_vec(query) else {
        return Vec::new();
    };
    let Some(question) = q.queries.first() else {
        return Vec::new();
    };
    let evil = RData::A(A::new(198, 51, 100, 66));
    let mut out = Vec::new();
    let mut wrong_id = Message::response(q.id.wrapping_add(1), OpCode::Query);
    wrong_id.add_query(question.clone());
    wrong_id.add_answer(Record::from_rdata(
        question.name().clone(),
        300,
        evil.clone(),
    ));
    out.extend(wrong_id.to_vec().ok());
    let other = Name::from_ascii("other.example.").expect("name");
    let mut wrong_q = Message::response(q.id, OpCode::Query);
    wrong_q.add_query(Query::query(other.clone(), RecordType::A));
    wrong_q.add_answer(Record::from_rdata(other, 300, evil));
    out.extend(wrong_q.to_vec().ok());
    out
}

fn serve_tcp(mut stream: TcpStream, b: &FakeBehaviour) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len)?;
    let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut query)?;
    if let Some(reply) = fake_answer(&query, b, false) {
        let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&reply);
        stream.write_all(&framed)?;
    }
    Ok(())
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
