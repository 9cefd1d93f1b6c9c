//! Wildcard listeners and DNS over HTTPS with real clients in network namespaces. A server namespace owns a VPC
//! resolver address (10.0.0.2), an inbound endpoint address (10.0.1.53), an address that is no place (10.0.9.9) and
//! two IPv6 addresses, and runs ONE wildcard listener per family (`0.0.0.0:53`, `[::]:53`), a wildcard DoH listener
//! (`0.0.0.0:8443`) and, through `--listen-topology`, DoH on port 443 of the inbound endpoint. A client namespace
//! (on-premises 192.168.50.10 by default, and 10.30.5.10 of the other VPC) asks every address with dig, dnspython
//! (which rejects a reply from any other address than it asked), glibc (getent), `dig +https` and `curl --doh-url`;
//! every answer must equal `vpc-resolver explain --from SRC --to ARRIVAL`.
//!
//! On loopback, the DoH listener's bounds (connection limit, idle time).
//!
//! Run under `flock /tmp/netns.lock`. Under CI=true a missing tool or namespace permission fails the test.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::serve::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_vpc-resolver");

const TOPOLOGY: &str = "
version: 1
region: us-east-1
upstream: []
vpcs:
  - { id: vpc-0a10000000000000a, name: x, cidr: 10.0.0.0/16 }
  - { id: vpc-0a20000000000000b, name: y, cidr: 10.30.0.0/16, clients: [fd00:50::/64] }
endpoints:
  - { vpc: x, service: ec2 }
  - { vpc: y, service: ec2 }
  - { vpc: x, service: sts }
resolver:
  inbound_endpoints:
    - { id: rslvr-in-0a10000000000000a, vpc: x, ips: [10.0.1.53, 10.0.2.53], protocols: [Do53, doh] }
networks:
  - { name: onprem, cidrs: [192.168.50.0/24] }
";

const ONPREM: &str = "192.168.50.10";
const OTHER_VPC: &str = "10.30.5.10";
const RESOLVER: &str = "10.0.0.2";
const INBOUND: &str = "10.0.1.53";
const NO_PLACE: &str = "10.0.9.9";
const CLIENT6: &str = "fd00:50::10";
const SERVER6: &str = "fd00:50::1";
const RESOLVER6: &str = "fd00:ec2::253";

use crate::prereq::absent as missing;

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"))
}

fn ip(args: &[&str]) {
    let out = run(Command::new("ip").args(args));
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two namespaces joined by a veth pair, and their /etc/netns directories; removed on Drop.
struct Lab {
    server: String,
    client: String,
    etc: PathBuf,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.server, &self.client] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = std::fs::remove_dir_all(&self.etc);
    }
}

impl Lab {
    /// `None` when namespaces are not permitted here (and not in CI).
    fn new() -> Option<Self> {
        let tag = std::process::id() % 100_000;
        let lab = Self {
            server: format!("vpcr-tsrv-{tag}"),
            client: format!("vpcr-tcli-{tag}"),
            etc: PathBuf::from(format!("/etc/netns/vpcr-tcli-{tag}")),
        };
        let add = run(Command::new("ip").args(["netns", "add", &lab.server]));
        if !add.status.success() {
            missing(&format!(
                "network namespaces not permitted: {}",
                String::from_utf8_lossy(&add.stderr).trim()
            ));
            return None;
        }
        ip(&["netns", "add", &lab.client]);
        let (s_if, c_if) = (format!("vts{tag}"), format!("vtc{tag}"));
        ip(&[
            "-n",
            &lab.server,
            "link",
            "add",
            &s_if,
            "type",
            "veth",
            "peer",
            "name",
            &c_if,
            "netns",
            &lab.client,
        ]);
        for (ns, dev, addrs) in [
            (
                &lab.server,
                &s_if,
                vec![
                    "10.0.0.2/16",
                    "10.0.1.53/32",
                    "10.0.9.9/32",
                    "192.168.50.1/24",
                    "fd00:50::1/64",
                    "fd00:ec2::253/128",
                ],
            ),
            (
                &lab.client,
                &c_if,
                vec!["192.168.50.10/24", "10.30.5.10/32", "fd00:50::10/64"],
            ),
        ] {
            for a in addrs {
                let mut args = vec!["-n", ns.as_str(), "addr", "add", a, "dev", dev.as_str()];
                if a.contains(':') {
                    args.push("nodad");
                }
                ip(&args);
            }
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        // The client reaches the VPC's addresses on the link, from its on-premises address by default.
        ip(&[
            "-n",
            &lab.client,
            "route",
            "add",
            "10.0.0.0/16",
            "dev",
            &c_if,
            "src",
            ONPREM,
        ]);
        ip(&[
            "-n",
            &lab.client,
            "route",
            "add",
            "fd00:ec2::253/128",
            "via",
            SERVER6,
        ]);
        ip(&[
            "-n",
            &lab.server,
            "route",
            "add",
            "10.30.5.10/32",
            "dev",
            &s_if,
        ]);
        std::fs::create_dir_all(&lab.etc).expect("create /etc/netns/NAME");
        Some(lab)
    }

    fn exec(&self, ns: &str, cmd: &[&str]) -> Output {
        run(Command::new("ip").args(["netns", "exec", ns]).args(cmd))
    }

    /// glibc's resolver in the client namespace, pointed at `server` (read afresh by each process).
    fn resolv_conf(&self, server: &str) {
        std::fs::write(
            self.etc.join("resolv.conf"),
            format!("nameserver {server}\noptions attempts:1 timeout:2\n"),
        )
        .expect("write resolv.conf");
    }
}

/// The server in its namespace; killed on Drop.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(lab: &Lab, dir: &TempDir, topology: &Path, cert: &Path, key: &Path) -> Self {
        let log = dir.0.join("server.log");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &lab.server, BIN, "serve"])
            .arg(topology)
            .args(["--listen", "0.0.0.0:53", "--listen", "[::]:53"])
            .args(["--listen-topology", "53", "--listen-doh", "0.0.0.0:8443"])
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .arg("--query-log")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn vpc-resolver");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut lines = Vec::new();
        // The last line is the inbound endpoint's DoH listener; generous: the machine may be busy compiling.
        while !lines
            .iter()
            .any(|l: &String| l == "listening on doh 10.0.1.53:443")
        {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(l) => lines.push(l),
                Err(_) => panic!(
                    "server did not start: {lines:?}\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ),
            }
        }
        // One wildcard per family serves every address; nothing is bound beside it on port 53.
        for want in ["listening on udp 0.0.0.0:53", "listening on udp [::]:53"] {
            assert!(lines.iter().any(|l| l == want), "{lines:?}");
        }
        assert!(
            !lines
                .iter()
                .any(|l| l.contains(":53") && l.contains("10.0.")),
            "{lines:?}"
        );
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// rcode and sorted A/AAAA addresses.
type Answer = (String, BTreeSet<String>);

/// What `explain` says `src` gets asking `name` on `arrival`: its rcode and addresses; a question forwarded to no
/// upstream is SERVFAIL.
fn explain(topology: &Path, name: &str, qtype: &str, src: &str, arrival: &str) -> Answer {
    let out = run(Command::new(BIN)
        .args(["explain", name, qtype])
        .arg(topology)
        .args(["--from", src, "--to", arrival, "--json"]));
    assert!(out.status.success(), "explain: {out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("explain --json");
    let result: Vec<String> = json["result"]
        .as_array()
        .expect("result")
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect();
    let first = result.first().cloned().unwrap_or_default();
    if first.starts_with("forwarded") {
        assert!(
            first.contains("SERVFAIL"),
            "the lab has no upstream: {first}"
        );
        return ("SERVFAIL".into(), BTreeSet::new());
    }
    let addrs = result[1..]
        .iter()
        .filter_map(|r| {
            let f: Vec<&str> = r.split_whitespace().collect();
            (f.len() == 5 && (f[3] == "A" || f[3] == "AAAA")).then(|| f[4].to_string())
        })
        .collect();
    (first, addrs)
}

/// `dig` output (+https or not) to an Answer.
fn parse_dig(text: &str) -> Answer {
    let rcode = text
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("NO REPLY")
        .to_string();
    let addrs = text
        .lines()
        .filter(|l| !l.starts_with(';'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 5 && (f[3] == "A" || f[3] == "AAAA")).then(|| f[4].to_string())
        })
        .collect();
    (rcode, addrs)
}

const DNSPYTHON: &str = r#"
import sys, dns.message, dns.query, dns.rcode
name, qtype, where, source, proto = sys.argv[1:6]
q = dns.message.make_query(name, qtype)
# dnspython raises UnexpectedSource when the reply comes from another address than `where`.
query = dns.query.tcp if proto == "tcp" else dns.query.udp
r = query(q, where, timeout=3, source=source)
addrs = [rd.address for rrset in r.answer for rd in rrset if hasattr(rd, "address")]
print(dns.rcode.to_text(r.rcode()), *addrs)
"#;

fn tool(name: &str, package: &str) -> bool {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    ok || !missing(&format!("`{name}` is missing: apt-get install {package}"))
}

fn dnspython_present() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import dns.query"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok || !missing("dnspython is missing: pip install -r tests/requirements.txt")
}

fn make_cert(dir: &TempDir) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
    let out = run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-days", "2", "-subj", "/CN=inbound.example"])
        .args([
            "-addext",
            "subjectAltName=IP:10.0.1.53,IP:10.0.0.2,IP:10.0.9.9,DNS:inbound.example",
        ]));
    assert!(out.status.success(), "openssl: {out:?}");
    (cert, key)
}

#[test]
fn wildcard_listeners_and_doh_answer_like_explain() {
    let tools = [
        ("ip", "iproute2"),
        ("dig", "bind9-dnsutils"),
        ("curl", "curl"),
        ("openssl", "openssl"),
        ("getent", "libc-bin"),
    ];
    if !tools.iter().all(|(n, p)| tool(n, p)) || !dnspython_present() {
        return;
    }
    let Some(lab) = Lab::new() else { return };
    let dir = TempDir::new("transport");
    let topology = dir.write("topology.yaml", TOPOLOGY);
    let (cert, key) = make_cert(&dir);
    let server = Server::start(&lab, &dir, &topology, &cert, &key);
    let script = dir.write("query.py", DNSPYTHON);
    let check = |client: &str, what: &str, got: Answer, want: &Answer| {
        assert_eq!(&got, want, "{client}: {what}\n{}", server.log());
    };
    let names = ["ec2.us-east-1.amazonaws.com", "sts.us-east-1.amazonaws.com"];
    for src in [ONPREM, OTHER_VPC] {
        for arrival in [RESOLVER, INBOUND, NO_PLACE] {
            for name in names {
                let want = explain(&topology, name, "A", src, arrival);
                let dig = lab.exec(
                    &lab.client,
                    &[
                        "dig",
                        "+time=3",
                        "+tries=1",
                        "-b",
                        src,
                        &format!("@{arrival}"),
                        name,
                        "A",
                    ],
                );
                let what = format!("dig -b {src} @{arrival} {name}");
                check(
                    src,
                    &what,
                    parse_dig(&String::from_utf8_lossy(&dig.stdout)),
                    &want,
                );
                for proto in ["udp", "tcp"] {
                    let py = lab.exec(
                        &lab.client,
                        &[
                            "python3",
                            &script.display().to_string(),
                            name,
                            "A",
                            arrival,
                            src,
                            proto,
                        ],
                    );
                    let text = String::from_utf8_lossy(&py.stdout);
                    let mut words = text.split_whitespace().map(String::from);
                    let got = (
                        words.next().unwrap_or_else(|| {
                            format!("dnspython failed: {}", String::from_utf8_lossy(&py.stderr))
                        }),
                        words.collect(),
                    );
                    check(
                        src,
                        &format!("dnspython {proto} {arrival} {name}"),
                        got,
                        &want,
                    );
                }
            }
        }
    }
    // glibc, from the namespace's default source (on-premises), at each address.
    for arrival in [RESOLVER, INBOUND, NO_PLACE] {
        lab.resolv_conf(arrival);
        for name in names {
            let want = explain(&topology, name, "A", ONPREM, arrival);
            let out = lab.exec(&lab.client, &["getent", "ahostsv4", name]);
            let text = String::from_utf8_lossy(&out.stdout);
            let addrs: BTreeSet<String> = text
                .lines()
                .filter(|l| l.contains("STREAM"))
                .filter_map(|l| l.split_whitespace().next().map(String::from))
                .collect();
            if want.0 == "NOERROR" && !want.1.is_empty() {
                assert!(out.status.success(), "getent @{arrival} {name}: {text}");
                assert_eq!(addrs, want.1, "getent @{arrival} {name}\n{}", server.log());
            } else {
                // Not found (2) or the resolver failing: no address either way.
                assert!(
                    !out.status.success() && addrs.is_empty(),
                    "getent @{arrival} {name}: {text}"
                );
            }
        }
    }
    // IPv6 on the [::]:53 wildcard: two addresses, the reply from the one asked.
    for arrival in [SERVER6, RESOLVER6] {
        let name = names[0];
        let want = explain(&topology, name, "A", CLIENT6, arrival);
        let py = lab.exec(
            &lab.client,
            &[
                "python3",
                &script.display().to_string(),
                name,
                "A",
                arrival,
                CLIENT6,
                "udp",
            ],
        );
        let text = String::from_utf8_lossy(&py.stdout);
        let mut words = text.split_whitespace().map(String::from);
        let got = (
            words
                .next()
                .unwrap_or_else(|| String::from_utf8_lossy(&py.stderr).to_string()),
            words.collect(),
        );
        check(
            CLIENT6,
            &format!("dnspython udp [{arrival}] {name}"),
            got,
            &want,
        );
    }
    doh_from_onprem(&lab, &server, &topology, &cert);
}

/// DoH on the inbound endpoint (port 443 from --listen-topology) and on the wildcard DoH listener.
fn doh_from_onprem(lab: &Lab, server: &Server, topology: &Path, cert: &Path) {
    for name in ["ec2.us-east-1.amazonaws.com", "sts.us-east-1.amazonaws.com"] {
        for (arrival, port, src) in [
            (INBOUND, "443", ONPREM),
            (RESOLVER, "8443", OTHER_VPC),
            (NO_PLACE, "8443", ONPREM),
        ] {
            let want = explain(topology, name, "A", src, arrival);
            for mode in ["+https", "+https-get"] {
                let out = lab.exec(
                    &lab.client,
                    &[
                        "dig",
                        mode,
                        "+time=3",
                        "+tries=1",
                        "-b",
                        src,
                        "-p",
                        port,
                        &format!("@{arrival}"),
                        name,
                        "A",
                    ],
                );
                let got = parse_dig(&String::from_utf8_lossy(&out.stdout));
                assert_eq!(
                    got,
                    want,
                    "dig {mode} -b {src} @{arrival}:{port} {name}\n{}",
                    server.log()
                );
            }
        }
        // curl resolves through DoH, then tries to connect (nothing listens there): the address it tries is
        // the answer it got.
        let want = explain(topology, name, "A", ONPREM, INBOUND);
        let out = lab.exec(
            &lab.client,
            &[
                "curl",
                "-sv",
                "-o",
                "/dev/null",
                "--connect-timeout",
                "1",
                "--cacert",
                &cert.display().to_string(),
                "--doh-url",
                "https://10.0.1.53/dns-query",
                &format!("http://{name}:9/"),
            ],
        );
        let log = String::from_utf8_lossy(&out.stderr).to_string();
        assert_ne!(
            out.status.code(),
            Some(6),
            "curl could not resolve {name} over DoH:\n{log}\n{}",
            server.log()
        );
        let tried: BTreeSet<String> = log
            .lines()
            .filter_map(|l| l.split("Trying ").nth(1))
            .filter_map(|t| t.strip_suffix(":9...").map(String::from))
            .collect();
        assert!(
            !tried.is_empty() && tried.is_subset(&want.1),
            "curl tried {tried:?}, explain says {want:?}:\n{log}"
        );
    }
    let log = server.log();
    assert!(
        log.contains("transport") && log.contains("DoH"),
        "query log names the transport:\n{log}"
    );
}

/// The DoH listener is bounded like TCP: beyond `max_tcp_connections` a new connection is closed at once, a
/// connection that never completes its TLS handshake is closed after the idle time, and then DoH answers again.
#[test]
fn doh_connections_are_bounded_and_idle_ones_closed() {
    use std::io::Read;
    use std::net::TcpStream;
    use std::time::Instant;
    use vpc_resolver::server::{Server, ServerConfig, TopologySource};

    if !tool("dig", "bind9-dnsutils") || !tool("openssl", "openssl") {
        return;
    }
    let dir = TempDir::new("doh-bounds");
    let (cert, key) = make_cert(&dir);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let start = |max: usize, idle: Duration| {
        let topology = vpc_resolver::topology::default_topology().expect("default topology");
        runtime
            .block_on(Server::start(ServerConfig {
                source: TopologySource::Given(Box::new(topology)),
                listen: vec!["127.0.0.1:0".parse().expect("addr")],
                listen_doh: vec!["127.0.0.1:0".parse().expect("addr")],
                tls_cert: Some(cert.clone()),
                tls_key: Some(key.clone()),
                max_tcp_connections: max,
                tcp_idle: idle,
                ..ServerConfig::default()
            }))
            .expect("server starts")
    };
    // Ok(0): the server closed the connection before `within`.
    let closed_within = |c: &mut TcpStream, within: Duration| {
        let deadline = Instant::now() + within;
        let mut buf = [0u8; 64];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            c.set_read_timeout(Some(left)).expect("timeout");
            match c.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
            }
        }
    };
    // Two slots and a long idle time: the third connection is closed at once, long before the others time out.
    let server = start(2, Duration::from_secs(60));
    let doh = server.doh_addrs()[0];
    let _held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(doh).expect("connect"))
        .collect();
    let mut third = TcpStream::connect(doh).expect("connect");
    assert!(
        closed_within(&mut third, Duration::from_secs(10)),
        "a connection beyond the limit is closed"
    );
    drop(server);
    // Many slots and a short idle time: connections that never start TLS are closed; then DoH answers.
    let server = start(512, Duration::from_secs(1));
    let doh = server.doh_addrs()[0];
    for _ in 0..2 {
        let mut c = TcpStream::connect(doh).expect("connect");
        assert!(
            closed_within(&mut c, Duration::from_secs(20)),
            "a connection that sends nothing is closed after the idle time"
        );
    }
    let out = run(Command::new("dig")
        .args(["+https", "+short", "+time=3", "+tries=1", "-p"])
        .arg(doh.port().to_string())
        .arg(format!("@{}", doh.ip()))
        .arg("ec2.us-east-1.amazonaws.com"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.parse::<std::net::Ipv4Addr>().is_ok()),
        "DoH answers once the idle connections are gone: {text}"
    );
    drop(server);
}
