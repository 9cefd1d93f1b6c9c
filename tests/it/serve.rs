//! The real binary through real sockets: `vpc-resolver serve` started as a child process, queried with dig (UDP and
//! TCP), hickory's resolver, dnspython and raw sockets. Covers the wire behaviour (flags, case echo, truncation,
//! payload limits, AXFR), the views (arrival address, source address, networks), forwarding to real dnsmasq peers,
//! and the reference lab's case file replayed over UDP. Traffic stays on 127.0.0.0/8.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use vpc_resolver::topology::{self, EndpointKind, Topology};

use crate::peers::{BlackHole, Dnsmasq};

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A fresh directory for one test's files, removed on Drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(kind: &str) -> Self {
        Self(crate::peers::temp_dir(kind))
    }

    pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `vpc-resolver serve ...` as a child process, killed on Drop. Knows the sockets it printed.
pub(crate) struct Served {
    child: Child,
    pub(crate) udp: Vec<SocketAddr>,
    pub(crate) tcp: Vec<SocketAddr>,
    log: PathBuf,
    _dir: TempDir,
}

impl Served {
    /// Starts the binary with `args` after `serve` and waits (bounded) for its "listening on" lines.
    pub(crate) fn start(args: &[String]) -> Self {
        Self::try_start(args)
            .unwrap_or_else(|log| panic!("vpc-resolver serve {args:?} did not start:\n{log}"))
    }

    /// Like [`start`](Self::start), but returns the log when the server exits before it listens (e.g. a port race).
    pub(crate) fn try_start(args: &[String]) -> Result<Self, String> {
        let dir = TempDir::new("serve");
        let log = dir.0.join("stderr");
        let mut child = Command::new(env!("CARGO_BIN_EXE_vpc-resolver"))
            .arg("serve")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn vpc-resolver");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut udp, mut tcp) = (Vec::new(), Vec::new());
        let deadline = Instant::now() + Duration::from_secs(30);
        // All udp lines come first, then one tcp line per udp socket.
        while tcp.is_empty() || tcp.len() < udp.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(a) = line.strip_prefix("listening on udp ") {
                        udp.push(a.parse().expect("udp address"));
                    } else if let Some(a) = line.strip_prefix("listening on tcp ") {
                        tcp.push(a.parse().expect("tcp address"));
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(std::fs::read_to_string(&log).unwrap_or_default());
                }
            }
        }
        Ok(Self {
            child,
            udp,
            tcp,
            log,
            _dir: dir,
        })
    }

    /// The first UDP socket (the first `--listen`).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.udp[0]
    }

    pub(crate) fn tcp_addr(&self) -> SocketAddr {
        self.tcp[0]
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// One dig run, parsed.
#[derive(Debug, Default)]
pub(crate) struct Dig {
    pub(crate) status: String,
    pub(crate) flags: BTreeSet<String>,
    pub(crate) question: Vec<String>,
    pub(crate) answer: Vec<String>,
    pub(crate) authority: Vec<String>,
    pub(crate) size: usize,
    pub(crate) raw: String,
}

impl Dig {
    fn flag(&self, f: &str) -> bool {
        self.flags.contains(f)
    }

    /// Answer records as `name ttl class type data`, lowercased, sorted.
    fn answers(&self) -> Vec<String> {
        let mut v: Vec<String> = self.answer.iter().map(|s| s.to_lowercase()).collect();
        v.sort();
        v
    }

    /// The data of the answer records of `rtype`, sorted.
    fn data(&self, rtype: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .answer
            .iter()
            .filter_map(|l| {
                let w: Vec<&str> = l.split(' ').collect();
                (w.len() >= 5 && w[3] == rtype).then(|| w[4..].join(" "))
            })
            .collect();
        v.sort();
        v
    }
}

fn find_dig() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("dig"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`dig` not found: install the Debian package `bind9-dnsutils` (apt-get install bind9-dnsutils)")
        })
}

/// Runs `dig @server -p PORT +tries=1 +time=4 +nocookie EXTRA...` and parses its output.
pub(crate) fn dig(server: SocketAddr, extra: &[&str]) -> Dig {
    let out = Command::new(find_dig())
        .arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .args(["+tries=1", "+time=4", "+nocookie"])
        .args(extra)
        .output()
        .expect("run dig");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    parse_dig(&text)
}

fn parse_dig(text: &str) -> Dig {
    let mut d = Dig {
        raw: text.to_string(),
        ..Dig::default()
    };
    let mut section = "";
    for line in text.lines() {
        if let Some(rest) = line.split("status: ").nth(1) {
            d.status = rest.split(',').next().unwrap_or("").to_string();
        } else if let Some(rest) = line.strip_prefix(";; flags: ") {
            let flags = rest.split(';').next().unwrap_or("");
            d.flags = flags.split_whitespace().map(String::from).collect();
        } else if let Some(rest) = line.strip_prefix(";; MSG SIZE  rcvd: ") {
            d.size = rest.trim().parse().unwrap_or(0);
        } else if line.starts_with(";; QUESTION SECTION") {
            section = "q";
        } else if line.starts_with(";; ANSWER SECTION") {
            section = "an";
        } else if line.starts_with(";; AUTHORITY SECTION") {
            section = "ns";
        } else if line.starts_with(";; ") || line.trim().is_empty() {
            section = "";
        } else {
            let norm = line.split_whitespace().collect::<Vec<_>>().join(" ");
            match section {
                "q" => d.question.push(norm.trim_start_matches(';').to_string()),
                "an" => d.answer.push(norm),
                "ns" => d.authority.push(norm),
                _ => {}
            }
        }
    }
    assert!(
        !d.status.is_empty() || text.contains("connection timed out"),
        "unparsable dig output:\n{text}"
    );
    d
}

/// The addresses of `service`'s interface endpoint in `topo`, per AZ, and its vpce name prefix.
fn endpoint_facts(topo: &Topology, code: &str) -> (Vec<(String, String)>, String, String) {
    let e = topo
        .endpoints
        .iter()
        .find(|e| e.service.code == code && e.kind == EndpointKind::Interface)
        .unwrap_or_else(|| panic!("no {code} endpoint"));
    let enis = e
        .enis
        .iter()
        .map(|n| (n.az.clone(), n.ip.expect("ipv4").to_string()))
        .collect();
    (enis, e.name_prefix(), e.service.endpoint_service_id.clone())
}

fn sorted(v: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = v.into_iter().collect();
    v.sort();
    v
}

/// Sends one query over UDP from `bind` to `server` and returns the raw reply (recv buffer 65535 bytes).
fn raw_udp(server: SocketAddr, bind: IpAddr, query: &[u8]) -> Vec<u8> {
    let sock = UdpSocket::bind((bind, 0)).expect("bind client");
    sock.set_read_timeout(Some(Duration::from_secs(4)))
        .expect("timeout");
    sock.send_to(query, server).expect("send");
    let mut buf = vec![0u8; 65535];
    let (n, _) = sock.recv_from(&mut buf).expect("UDP reply");
    buf.truncate(n);
    buf
}

/// One query over TCP (length-prefixed), the reply's bytes.
fn raw_tcp(server: SocketAddr, query: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect_timeout(&server, Duration::from_secs(4)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(4)))
        .expect("timeout");
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    s.write_all(&framed).expect("write");
    let mut len = [0u8; 2];
    s.read_exact(&mut len).expect("TCP reply length");
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf).expect("TCP reply");
    buf
}

fn query_bytes(name: &str, qtype: RecordType, id: u16) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    m.to_vec().expect("encode")
}

#[test]
fn default_topology_answers_over_udp_and_tcp() {
    let topo = topology::default_topology().expect("default topology");
    let (enis, prefix, svc_id) = endpoint_facts(&topo, "ec2");
    let ips: Vec<String> = sorted(enis.iter().map(|(_, ip)| ip.clone()));
    assert!(
        ips.len() >= 2,
        "the default lab has an ENI per AZ: {enis:?}"
    );
    let server = Served::start(&args(&["--listen", "127.0.0.1:0"]));
    for (proto, addr) in [("+notcp", server.addr()), ("+tcp", server.tcp_addr())] {
        let q = |name: &str, t: &str| dig(addr, &[proto, name, t]);

        // Endpoint private DNS: the whole set, TTL 60, authoritative (a private zone of the VPC).
        let d = q("ec2.us-east-1.amazonaws.com", "A");
        assert_eq!(d.status, "NOERROR", "{proto}: {}", d.raw);
        assert_eq!(d.data("A"), ips, "{proto}: {}", d.raw);
        for line in &d.answer {
            assert!(line.contains(" 60 IN A "), "{proto}: TTL 60: {line}");
        }
        for f in ["qr", "rd", "ra", "aa"] {
            assert!(d.flag(f), "{proto}: flag {f} missing: {}", d.raw);
        }

        // AAAA of an IPv4 endpoint: NODATA with the zone's SOA.
        let d = q("ec2.us-east-1.amazonaws.com", "AAAA");
        assert_eq!(d.status, "NOERROR", "{proto}: {}", d.raw);
        assert!(d.answer.is_empty(), "{proto}: {}", d.raw);
        assert!(
            d.authority.iter().any(|l| l.contains(" SOA ")),
            "{proto}: {}",
            d.raw
        );
        assert!(d.flag("ra"), "{}", d.raw);

        // NXDOMAIN under the private DNS zone, SOA of that zone in authority.
        let d = q("foo.ec2.us-east-1.amazonaws.com", "A");
        assert_eq!(d.status, "NXDOMAIN", "{proto}: {}", d.raw);
        assert!(
            d.authority.iter().any(|l| l
                .to_lowercase()
                .starts_with("ec2.us-east-1.amazonaws.com. ")
                && l.contains(" SOA ")),
            "{proto}: SOA of the endpoint's zone: {}",
            d.raw
        );
        assert!(d.flag("aa") && d.flag("ra"), "{}", d.raw);

        // vpce names: Regional (every ENI) and zonal (one AZ's ENI). Public DNS: not authoritative here.
        let regional = format!("{prefix}.{svc_id}.us-east-1.vpce.amazonaws.com");
        let d = q(&regional, "A");
        assert_eq!(
            (d.status.as_str(), d.data("A")),
            ("NOERROR", ips.clone()),
            "{}",
            d.raw
        );
        assert!(!d.flag("aa") && d.flag("ra"), "{}", d.raw);
        for (az, ip) in &enis {
            let zonal = format!("{prefix}-{az}.{svc_id}.us-east-1.vpce.amazonaws.com");
            let d = q(&zonal, "A");
            assert_eq!(d.data("A"), vec![ip.clone()], "{zonal}: {}", d.raw);
        }

        // Private hosted zone: the CNAME is chased inside the server.
        let d = q("www.lab.internal", "A");
        assert_eq!(d.status, "NOERROR", "{}", d.raw);
        assert_eq!(
            d.data("CNAME"),
            vec!["db.lab.internal.".to_string()],
            "{}",
            d.raw
        );
        assert_eq!(d.data("A"), vec!["10.0.1.100".to_string()], "{}", d.raw);
        assert!(d.flag("aa"), "{}", d.raw);

        // EC2 internal names, forward and reverse.
        let d = q("ip-10-0-1-25.ec2.internal", "A");
        assert_eq!(d.data("A"), vec!["10.0.1.25".to_string()], "{}", d.raw);
        let d = dig(addr, &[proto, "-x", "10.0.1.25"]);
        assert_eq!(
            d.data("PTR"),
            vec!["ip-10-0-1-25.ec2.internal.".to_string()],
            "{}",
            d.raw
        );

        // 0x20: the question comes back with the client's case.
        let mixed = "eC2.uS-EaSt-1.AmAzOnAwS.CoM.";
        let d = q(mixed, "A");
        assert_eq!(d.question, vec![format!("{mixed} IN A")], "{}", d.raw);
        assert_eq!(d.data("A"), ips, "{}", d.raw);
    }
}

#[test]
fn axfr_is_refused_over_udp_and_tcp() {
    let server = Served::start(&args(&["--listen", "127.0.0.1:0"]));
    for (n, reply) in [
        raw_udp(
            server.addr(),
            LO,
            &query_bytes("lab.internal.", RecordType::AXFR, 4242),
        ),
        raw_tcp(
            server.tcp_addr(),
            &query_bytes("lab.internal.", RecordType::AXFR, 4243),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let m = Message::from_vec(&reply).expect("parse reply");
        assert_eq!(m.id, 4242 + n as u16);
        assert_eq!(m.metadata.response_code, ResponseCode::Refused, "{m:?}");
        assert!(m.answers.is_empty());
        assert!(m.metadata.recursion_available);
    }
    // dig's own AXFR (TCP) fails too.
    let out = Command::new(find_dig())
        .arg(format!("@{}", server.tcp_addr().ip()))
        .args([
            "-p",
            &server.tcp_addr().port().to_string(),
            "+tries=1",
            "+time=4",
        ])
        .args(["lab.internal", "AXFR"])
        .output()
        .expect("dig");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Transfer failed"), "{text}");
}

/// A topology with a big record set, for truncation and payload limits.
const BIG: &str = "
version: 1
region: us-east-1
upstream: []
vpcs:
  - { name: big, cidr: 10.0.0.0/16, clients: [127.0.0.0/8] }
hosted_zones:
  - name: big.internal
    records:
";

fn big_topology(dir: &TempDir) -> PathBuf {
    let mut text = BIG.to_string();
    let many: Vec<String> = (1..=100)
        .map(|i| format!("10.0.{}.{}", i / 50, 10 + i % 50))
        .collect();
    text.push_str(&format!(
        "      - {{ name: many, type: A, values: [{}] }}\n",
        many.join(", ")
    ));
    let mid: Vec<String> = (1..=50).map(|i| format!("10.1.0.{i}")).collect();
    text.push_str(&format!(
        "      - {{ name: mid, type: A, values: [{}] }}\n",
        mid.join(", ")
    ));
    dir.write("big.yaml", &text)
}

#[test]
fn truncation_and_udp_payload_limits() {
    let dir = TempDir::new("big");
    let path = big_topology(&dir);
    let server = Served::start(&args(&[
        "--listen",
        "127.0.0.1:0",
        path.to_str().expect("path"),
    ]));

    // No EDNS: 512 bytes. The 100-address answer doesn't fit: TC, no answers, then TCP gives it all.
    let d = dig(
        server.addr(),
        &["+notcp", "+noedns", "+ignore", "many.big.internal", "A"],
    );
    assert_eq!(d.status, "NOERROR", "{}", d.raw);
    assert!(d.flag("tc"), "TC expected: {}", d.raw);
    assert!(d.answer.is_empty(), "no partial answer: {}", d.raw);
    assert!(d.size <= 512, "{} bytes", d.size);
    let d = dig(
        server.tcp_addr(),
        &["+tcp", "+noedns", "many.big.internal", "A"],
    );
    assert!(!d.flag("tc"), "{}", d.raw);
    assert_eq!(d.data("A").len(), 100, "{}", d.raw);

    // EDNS 65535 is clamped to 1232: the 50-address answer (~850 bytes) fits, the 100-address one doesn't.
    let d = dig(
        server.addr(),
        &[
            "+notcp",
            "+bufsize=65535",
            "+ignore",
            "mid.big.internal",
            "A",
        ],
    );
    assert!(!d.flag("tc"), "{}", d.raw);
    assert_eq!(d.data("A").len(), 50, "{}", d.raw);
    assert!(d.size > 512 && d.size <= 1232, "{} bytes", d.size);
    let d = dig(
        server.addr(),
        &[
            "+notcp",
            "+bufsize=65535",
            "+ignore",
            "many.big.internal",
            "A",
        ],
    );
    assert!(d.flag("tc"), "{}", d.raw);
    assert!(d.size <= 1232, "UDP reply of {} bytes: {}", d.size, d.raw);

    // The same with a raw socket that could receive 65535 bytes.
    let mut m = Message::new(77, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(
        Name::from_ascii("many.big.internal.").expect("name"),
        RecordType::A,
    ));
    let mut edns = hickory_proto::op::Edns::new();
    edns.set_max_payload(65535);
    m.edns = Some(edns);
    let reply = raw_udp(server.addr(), LO, &m.to_vec().expect("encode"));
    assert!(reply.len() <= 1232, "UDP reply of {} bytes", reply.len());
    let r = Message::from_vec(&reply).expect("parse");
    assert!(r.metadata.truncation && r.metadata.recursion_available);
    assert_eq!(r.edns.expect("OPT echoed").max_payload(), 1232);
}

#[test]
fn forwards_to_real_dnsmasq_upstream_and_rule_target() {
    let upstream = Dnsmasq::start(
        LO,
        &["--address=/www.example.test/192.0.2.80", "--local-ttl=30"],
    );
    let onprem = Dnsmasq::start(
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
        &[
            "--address=/host1.corp.example.com/192.0.2.81",
            "--local-ttl=30",
        ],
    );
    let dir = TempDir::new("fwd");
    let path = dir.write(
        "fwd.yaml",
        &format!(
            "version: 1\nregion: us-east-1\nupstream: [system]\nvpcs:\n  - {{ name: lab, cidr: 10.0.0.0/16, clients: [127.0.0.0/8] }}\n\
             endpoints: [ec2]\n\
             resolver:\n  rules:\n    - {{ domain: corp.example.com, targets: [\"{}\"] }}\n",
            onprem.addr()
        ),
    );
    let server = Served::start(&args(&[
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &upstream.addr().to_string(),
        path.to_str().expect("path"),
    ]));
    for proto in ["+notcp", "+tcp"] {
        let addr = if proto == "+tcp" {
            server.tcp_addr()
        } else {
            server.addr()
        };
        let d = dig(addr, &[proto, "www.example.test", "A"]);
        assert_eq!(d.status, "NOERROR", "{}\n{}", d.raw, server.log());
        assert_eq!(d.data("A"), vec!["192.0.2.80".to_string()], "{}", d.raw);
        assert!(d.flag("ra") && !d.flag("aa"), "{}", d.raw);
        let d = dig(addr, &[proto, "host1.corp.example.com", "A"]);
        assert_eq!(
            d.data("A"),
            vec!["192.0.2.81".to_string()],
            "{}\n{}",
            d.raw,
            server.log()
        );
        assert!(d.flag("ra") && !d.flag("aa"), "{}", d.raw);
        // The upstream does not know the corp name: proof the rule, not the upstream, answered.
        let direct = dig(upstream.addr(), &["host1.corp.example.com", "A"]);
        assert!(direct.data("A").is_empty(), "{}", direct.raw);
    }
}

#[test]
fn dead_upstream_gives_servfail_within_3s() {
    let hole = BlackHole::start();
    let server = Served::start(&args(&[
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &hole.addr().to_string(),
    ]));
    for proto in ["+notcp", "+tcp"] {
        let addr = if proto == "+tcp" {
            server.tcp_addr()
        } else {
            server.addr()
        };
        let started = Instant::now();
        let d = dig(
            addr,
            &[proto, "+time=6", "nothing-answers.example.test", "A"],
        );
        let took = started.elapsed();
        assert_eq!(d.status, "SERVFAIL", "{proto}: {}", d.raw);
        assert!(d.flag("ra"), "{}", d.raw);
        // dig's own measure: the wall time also counts starting dig, which a loaded machine stretches.
        let query_ms: u64 = d
            .raw
            .lines()
            .find_map(|l| {
                l.strip_prefix(";; Query time: ")?
                    .strip_suffix(" msec")?
                    .parse()
                    .ok()
            })
            .unwrap_or(took.as_millis() as u64);
        assert!(query_ms < 3000, "{proto}: SERVFAIL after {query_ms} ms");
        // Local names still answer while the upstream is dead.
        let d = dig(addr, &[proto, "db.lab.internal", "A"]);
        assert_eq!(d.data("A"), vec!["10.0.1.100".to_string()], "{}", d.raw);
    }
}

#[test]
fn hickory_resolver_client() {
    use hickory_resolver::Resolver;
    use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
    use hickory_resolver::net::runtime::TokioRuntimeProvider;

    let topo = topology::default_topology().expect("default topology");
    let (enis, _, _) = endpoint_facts(&topo, "ec2");
    let ips: Vec<String> = sorted(enis.iter().map(|(_, ip)| ip.clone()));
    let server = Served::start(&args(&["--listen", "127.0.0.1:0"]));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for tcp in [false, true] {
        let mut ns = if tcp {
            NameServerConfig::tcp(LO)
        } else {
            NameServerConfig::udp(LO)
        };
        let port = if tcp {
            server.tcp_addr().port()
        } else {
            server.addr().port()
        };
        for c in &mut ns.connections {
            c.port = port;
        }
        let mut opts = ResolverOpts::default();
        opts.cache_size = 0;
        opts.attempts = 1;
        opts.timeout = Duration::from_secs(4);
        let resolver = Resolver::builder_with_config(
            ResolverConfig::from_name_servers(vec![ns]),
            TokioRuntimeProvider::default(),
        )
        .with_options(opts)
        .build()
        .expect("build resolver");
        runtime.block_on(async {
            let got = resolver
                .lookup_ip("ec2.us-east-1.amazonaws.com.")
                .await
                .expect("lookup_ip");
            assert_eq!(
                sorted(got.iter().map(|ip| ip.to_string())),
                ips,
                "tcp={tcp}"
            );
            let err = resolver
                .lookup("foo.ec2.us-east-1.amazonaws.com.", RecordType::A)
                .await
                .expect_err("NXDOMAIN");
            assert!(err.is_nx_domain(), "tcp={tcp}: {err:?}");
            let ptr = resolver
                .lookup("25.1.0.10.in-addr.arpa.", RecordType::PTR)
                .await
                .expect("PTR");
            let names: Vec<String> = ptr.answers().iter().map(|r| r.data.to_string()).collect();
            assert_eq!(names, vec!["ip-10-0-1-25.ec2.internal.".to_string()]);
            let cname = resolver
                .lookup_ip("www.lab.internal.")
                .await
                .expect("CNAME chased");
            assert_eq!(
                cname.iter().map(|ip| ip.to_string()).collect::<Vec<_>>(),
                vec!["10.0.1.100".to_string()]
            );
        });
    }
}

/// dnspython over UDP and TCP; skipped (not passed) when the module is not installed.
#[test]
fn dnspython_client() {
    let probe = Command::new("python3")
        .args(["-c", "import dns.message, dns.query"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: dnspython not importable (pip install dnspython)");
        return;
    }
    let topo = topology::default_topology().expect("default topology");
    let (enis, _, _) = endpoint_facts(&topo, "ec2");
    let ips: Vec<String> = sorted(enis.iter().map(|(_, ip)| ip.clone()));
    let server = Served::start(&args(&["--listen", "127.0.0.1:0"]));
    let script = r#"
import sys, dns.message, dns.query, dns.rcode, dns.flags
ip, udp_port, tcp_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for proto in ("udp", "tcp"):
    for name in ("ec2.us-east-1.amazonaws.com.", "foo.ec2.us-east-1.amazonaws.com.", "Www.Lab.Internal."):
        q = dns.message.make_query(name, "A", use_edns=0, payload=65535)
        if proto == "udp":
            r = dns.query.udp(q, ip, port=udp_port, timeout=4)
        else:
            r = dns.query.tcp(q, ip, port=tcp_port, timeout=4)
        addrs = sorted(rd.address for rrset in r.answer for rd in rrset if rrset.rdtype == 1)
        flags = dns.flags.to_text(r.flags)
        print(proto, r.question[0].name.to_text(), dns.rcode.to_text(r.rcode()), flags.replace(" ", ","), ",".join(addrs) or "-", len(r.authority))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(server.addr().ip().to_string())
        .arg(server.addr().port().to_string())
        .arg(server.tcp_addr().port().to_string())
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{}",
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(lines.len(), 6, "{text}");
    for l in &lines {
        assert!(l[3].split(',').any(|f| f == "RA"), "RA: {text}");
        match l[1] {
            "ec2.us-east-1.amazonaws.com." => {
                assert_eq!((l[2], l[4]), ("NOERROR", ips.join(",").as_str()), "{text}");
                assert!(l[3].split(',').any(|f| f == "AA"), "{text}");
            }
            "foo.ec2.us-east-1.amazonaws.com." => {
                assert_eq!((l[2], l[4], l[5]), ("NXDOMAIN", "-", "1"), "{text}")
            }
            // Question case echoed (dnspython rejects a reply whose question differs, case aside).
            "Www.Lab.Internal." => assert_eq!((l[2], l[4]), ("NOERROR", "10.0.1.100"), "{text}"),
            other => panic!("unexpected question {other}: {text}"),
        }
    }
}

/// A free port on every address of `ips` (UDP and TCP), at the time of asking.
fn free_port_on(ips: &[IpAddr]) -> u16 {
    'outer: for _ in 0..50 {
        let probe = UdpSocket::bind((ips[0], 0)).expect("bind probe");
        let port = probe.local_addr().expect("addr").port();
        for ip in ips {
            if std::net::TcpListener::bind((*ip, port)).is_err()
                || (ip != &ips[0] && UdpSocket::bind((*ip, port)).is_err())
            {
                continue 'outer;
            }
        }
        return port;
    }
    panic!("no common free port on {ips:?}");
}

/// Two VPCs whose CIDRs are loopback ranges, so their resolver addresses (base + 2) and an inbound endpoint exist
/// on this host: `--listen-topology` binds them, and the arrival address picks the view (spec rule 1).
const LOOPBACK_VPCS: &str = "
version: 1
region: us-east-1
vpcs:
  - { id: vpc-0a10000000000000a, name: x, cidr: 127.10.0.0/16 }
  - { id: vpc-0a20000000000000b, name: y, cidr: 127.20.0.0/16 }
endpoints:
  - { vpc: x, service: ec2 }
  - { vpc: y, service: ec2 }
  - { vpc: x, service: s3, type: gateway }
  - { vpc: x, service: s3, private_dns: true }
resolver:
  inbound_endpoints:
    - { id: rslvr-in-0a10000000000000a, vpc: x, ips: [127.10.1.53, 127.10.2.53] }
";

#[test]
fn arrival_address_decides_the_view() {
    let upstream = Dnsmasq::start(
        LO,
        &[
            "--address=/s3.us-east-1.amazonaws.com/192.0.2.33",
            "--address=/ec2.us-east-1.amazonaws.com/192.0.2.22",
        ],
    );
    let dir = TempDir::new("rule1");
    let path = dir.write("loopback-vpcs.yaml", LOOPBACK_VPCS);
    let topo = topology::load(&[&path]).expect("valid topology");
    let ec2_of = |vpc: usize| -> Vec<String> {
        let e = topo
            .endpoints
            .iter()
            .find(|e| e.vpc == vpc && e.service.code == "ec2")
            .expect("ec2 endpoint");
        sorted(e.enis.iter().map(|n| n.ip.expect("ip").to_string()))
    };
    let s3 = topo
        .endpoints
        .iter()
        .find(|e| e.service.code == "s3" && e.kind == EndpointKind::Interface)
        .expect("s3 interface endpoint");
    assert!(s3.inbound_only, "AWS's default with an S3 gateway endpoint");
    let s3_ips = sorted(s3.enis.iter().map(|n| n.ip.expect("ip").to_string()));
    let x_resolver: IpAddr = [127, 10, 0, 2].into();
    let y_resolver: IpAddr = [127, 20, 0, 2].into();
    let inbound: IpAddr = [127, 10, 1, 53].into();

    let mut server = None;
    let mut port = 0;
    for _ in 0..5 {
        port = free_port_on(&[x_resolver, y_resolver, inbound, [127, 10, 2, 53].into()]);
        let mut a = args(&[
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &upstream.addr().to_string(),
        ]);
        a.push(format!("--listen-topology={port}"));
        a.push(path.to_str().expect("path").to_string());
        if let Ok(s) = Served::try_start(&a) {
            server = Some(s);
            break;
        }
    }
    let server = server.expect("server with --listen-topology started");
    for ip in [x_resolver, y_resolver, inbound] {
        assert!(
            server.udp.contains(&SocketAddr::new(ip, port)),
            "{:?}",
            server.udp
        );
    }
    let at = |ip: IpAddr| SocketAddr::new(ip, port);
    let from = |s: &str| format!("-b{s}");
    let ec2 = "ec2.us-east-1.amazonaws.com";

    // Rule 1: the arrival address wins over the source address (the source is in the other VPC).
    let d = dig(at(x_resolver), &[&from("127.20.0.9"), ec2, "A"]);
    assert_eq!(d.data("A"), ec2_of(0), "{}", d.raw);
    let d = dig(at(y_resolver), &[&from("127.10.0.9"), ec2, "A"]);
    assert_eq!(d.data("A"), ec2_of(1), "{}", d.raw);
    let d = dig(at(x_resolver), &["+tcp", &from("127.20.0.9"), ec2, "A"]);
    assert_eq!(d.data("A"), ec2_of(0), "TCP: {}", d.raw);
    // Rule 2 on a plain listener: the source address.
    let d = dig(server.addr(), &[&from("127.20.0.9"), ec2, "A"]);
    assert_eq!(d.data("A"), ec2_of(1), "{}", d.raw);
    let d = dig(server.addr(), &[&from("127.10.0.9"), ec2, "A"]);
    assert_eq!(d.data("A"), ec2_of(0), "{}", d.raw);
    // Rule 4: 127.0.0.1 matches no VPC: the public view forwards to the upstream.
    let d = dig(server.addr(), &[ec2, "A"]);
    assert_eq!(d.data("A"), vec!["192.0.2.22".to_string()], "{}", d.raw);

    // S3 private DNS for inbound endpoints only: through the inbound endpoint the ENIs, from the VPC the public name.
    let s3name = "my-bucket.s3.us-east-1.amazonaws.com";
    let d = dig(at(inbound), &[&from("127.0.0.1"), s3name, "A"]);
    assert_eq!(d.data("A"), s3_ips, "{}", d.raw);
    let d = dig(at(x_resolver), &[&from("127.0.0.1"), s3name, "A"]);
    assert_eq!(d.data("A"), vec!["192.0.2.33".to_string()], "{}", d.raw);
}

/// Blocks of a `.case` file: `(line, from, to, name, type, expect words, records)`.
struct CaseBlock {
    line: usize,
    from: IpAddr,
    to: Option<IpAddr>,
    name: String,
    qtype: String,
    expect: String,
    records: Vec<String>,
}

fn parse_case_blocks(text: &str) -> Vec<CaseBlock> {
    let mut out: Vec<CaseBlock> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split(" #").next().unwrap_or("").trim();
        if line.is_empty()
            || line.starts_with('#')
            || line.starts_with("topology:")
            || line.starts_with("allow:")
        {
            continue;
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        match w[0] {
            "from" => {
                let (to, rest) = if w[2] == "to" {
                    (Some(w[3].parse().expect("to")), &w[4..])
                } else {
                    (None, &w[2..])
                };
                out.push(CaseBlock {
                    line: n + 1,
                    from: w[1].parse().expect("from"),
                    to,
                    name: rest[1].to_string(),
                    qtype: rest[2].to_string(),
                    expect: String::new(),
                    records: Vec::new(),
                });
            }
            "expect" => out.last_mut().expect("block").expect = w[1..].join(" "),
            "view" | "aa" | "no-aa" | "authority" => {}
            _ => out
                .last_mut()
                .expect("block")
                .records
                .push(w.join(" ").to_lowercase()),
        }
    }
    out
}

/// Where a case's client stands, as the spec's view rules see it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Place {
    Vpc(usize),
    Inbound(usize),
    Public,
}

fn place_of(topo: &Topology, from: IpAddr, to: Option<IpAddr>) -> Place {
    if let Some(to) = to
        && let Some((_, vpc, inbound)) = topo
            .resolver_addresses()
            .into_iter()
            .find(|(ip, _, _)| *ip == to)
    {
        return if inbound {
            Place::Inbound(vpc)
        } else {
            Place::Vpc(vpc)
        };
    }
    if let Some(i) = topo.vpcs.iter().position(|v| v.contains(from)) {
        return Place::Vpc(i);
    }
    if let Some(n) = topo
        .networks
        .iter()
        .find(|n| n.cidrs.iter().any(|c| c.contains(&from)))
        && let Some(inb) = n.via_inbound
    {
        return Place::Inbound(topo.inbound_endpoints[inb].vpc);
    }
    Place::Public
}

/// The reference lab's case file, every locally answered block, sent over UDP to the real binary. Each client place
/// is played by a loopback source: a VPC's by an address added to its `clients`, an on-premises client's by an
/// address added to the `networks` entry that reaches the inbound endpoint, the internet by 127.0.0.4.
#[test]
fn reference_lab_cases_replayed_over_udp() {
    let lab_text =
        std::fs::read_to_string(repo("zones/scenarios/reference-lab.yaml")).expect("lab");
    let lab = topology::load(&[repo("zones/scenarios/reference-lab.yaml")]).expect("lab topology");
    let vpc_src = |i: usize| format!("127.0.0.{}", 10 + i);
    let mut text = lab_text.clone();
    let mut replace = |from: &str, to: &str| {
        assert!(
            text.contains(from),
            "the lab topology changed: `{from}` not found; update this test"
        );
        text = text.replacen(from, to, 1);
    };
    for (i, v) in lab.vpcs.iter().enumerate() {
        let name = v.name.as_deref().expect("lab VPCs have names");
        let cidr = v.cidrs[0];
        if lab_text.contains(&format!("name: {name}, cidr: {cidr} }}")) {
            replace(
                &format!("name: {name}, cidr: {cidr} }}"),
                &format!(
                    "name: {name}, cidr: {cidr}, clients: [{}/32] }}",
                    vpc_src(i)
                ),
            );
        } else {
            replace(
                &format!("    name: {name}\n"),
                &format!("    name: {name}\n    clients: [{}/32]\n", vpc_src(i)),
            );
        }
    }
    assert_eq!(lab.networks.len(), 1, "one on-premises network in the lab");
    let onprem = lab.networks[0].cidrs[0].to_string();
    replace(
        &format!("cidrs: [{onprem}]"),
        &format!("cidrs: [{onprem}, 127.0.0.3/32]"),
    );
    let dir = TempDir::new("lab");
    let path = dir.write("reference-lab-loopback.yaml", &text);
    let server = Served::start(&args(&[
        "--listen",
        "127.0.0.1:0",
        path.to_str().expect("path"),
    ]));

    let cases = parse_case_blocks(
        &std::fs::read_to_string(repo("tests/cases/reference-lab.case")).expect("case file"),
    );
    let mut failures = Vec::new();
    let mut replayed = 0;
    for c in &cases {
        if c.expect.starts_with("FORWARD") {
            continue;
        }
        let src = match place_of(&lab, c.from, c.to) {
            Place::Vpc(i) => vpc_src(i),
            Place::Inbound(_) => "127.0.0.3".to_string(),
            // A source refused for standing nowhere can't be played by an admitted loopback address.
            Place::Public if c.expect == "REFUSED" => continue,
            Place::Public => "127.0.0.4".to_string(),
        };
        replayed += 1;
        let d = dig(
            server.addr(),
            &["+notcp", &format!("-b{src}"), &c.name, &c.qtype],
        );
        let status = match d.status.as_str() {
            "NOERROR" if d.answer.is_empty() => "NODATA",
            s => s,
        };
        let mut want = c.records.clone();
        want.sort();
        if status != c.expect || d.answers() != want {
            failures.push(format!(
                "reference-lab.case:{}: {} {} from {src}: got {status}\n      {}\n    expected {}\n      {}",
                c.line,
                c.name,
                c.qtype,
                d.answers().join("\n      "),
                c.expect,
                want.join("\n      ")
            ));
        }
        assert!(d.flag("ra"), "RA on every response: {}", d.raw);
    }
    assert!(replayed >= 25, "only {replayed} blocks replayed");
    assert!(
        failures.is_empty(),
        "{} of {replayed} replayed cases failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}
