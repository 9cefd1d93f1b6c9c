//! Reloads that cannot race and an ops endpoint that cannot be exhausted, against the real binary: SIGHUPs in
//! quick succession end with the last version serving, generations in /readyz, metrics and the log, thousands of
//! idle connections to the ops port, and `/metrics` read by a real Prometheus parser.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::robust::{
    Spawned, a, a_records, ask, http_get, lab_yaml, metric, serial, tcp_ask, temp_dir, versioned,
    write_atomically,
};

fn version(srv: &Spawned, id: u16) -> u8 {
    a_records(&ask(srv.udp, &a(id, "pair.internal")))[0].octets()[2]
}

#[test]
fn thirty_sighups_20ms_apart_end_with_the_last_version_serving() {
    let _serial = serial();
    let dir = temp_dir("hups");
    let file = dir.join("topology.yaml");
    std::fs::write(&file, versioned(1)).expect("write");
    let srv = Spawned::start(
        &[],
        &[file.to_str().expect("utf-8"), "--metrics", "127.0.0.1:0"],
    );
    assert_eq!(srv.generation(), 1);
    for n in 2..=31u8 {
        write_atomically(&file, &versioned(n));
        srv.signal("-HUP");
        // The scenario: signals 20 ms apart, while earlier reloads are still loading.
        thread::sleep(Duration::from_millis(20));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while version(&srv, 1) != 31 {
        assert!(
            Instant::now() < deadline,
            "version 31 never served:\n{}",
            srv.stderr_text()
        );
        thread::sleep(Duration::from_millis(10));
    }
    // One more request with the file unchanged: the worker applies requests in order, so once its generation
    // serves, every earlier load has finished, and none of them may have replaced the last version.
    let g = srv.generation();
    srv.signal("-HUP");
    let last = srv.wait_generation(g + 1);
    assert_eq!(version(&srv, 2), 31, "an older load replaced the newest");
    let (_, body) = http_get(srv.metrics.expect("metrics"), "/metrics");
    assert_eq!(
        metric(&body, "vpc_resolver_topology_generation"),
        last as f64,
        "{body}"
    );
    let stderr = srv.stderr_text();
    assert!(
        stderr.contains(&format!("serving topology generation {last}")),
        "{stderr}"
    );
    assert_eq!(
        metric(&body, "vpc_resolver_reloads_total{result=\"failed\"}"),
        0.0
    );
}

#[test]
fn watch_reloads_an_in_place_edit_of_the_same_length() {
    let _serial = serial();
    let dir = temp_dir("watch-edit");
    let file = dir.join("topology.yaml");
    std::fs::write(&file, versioned(1)).expect("write");
    let srv = Spawned::start(
        &[],
        &[
            file.to_str().expect("utf-8"),
            "--watch",
            "--metrics",
            "127.0.0.1:0",
        ],
    );
    // Same inode, same length, possibly the same modification time: only the content tells.
    std::fs::write(&file, versioned(2)).expect("rewrite in place");
    srv.wait_generation(2);
    assert_eq!(version(&srv, 1), 2);
}

/// Raises this process's soft descriptor limit to `want` (the hard limit permitting); false if it cannot.
fn raise_nofile(want: u64) -> bool {
    let pid = std::process::id().to_string();
    let hard = Command::new("prlimit")
        .args(["--pid", &pid, "--nofile", "--output=HARD", "--noheadings"])
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<u64>()
                .ok()
        });
    let Some(hard) = hard else {
        return false;
    };
    if hard < want {
        return false;
    }
    Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={want}:")])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn thousands_of_idle_ops_connections_leave_dns_answering_and_the_server_idle() {
    let _serial = serial();
    const IDLE: usize = 3000;
    if !raise_nofile(IDLE as u64 + 500) {
        return crate::prereq::missing(
            "a descriptor limit above 3500 and prlimit",
            "apt-get install util-linux; raise the hard nofile limit (ulimit -Hn)",
        );
    }
    let dir = temp_dir("ops-idle");
    let file = dir.join("lab.yaml");
    std::fs::write(&file, lab_yaml("", "")).expect("write");
    let srv = Spawned::start(
        &[],
        &[file.to_str().expect("utf-8"), "--metrics", "127.0.0.1:0"],
    );
    let m = srv.metrics.expect("metrics");
    assert_eq!(http_get(m, "/metrics").0, 200);
    let window = Duration::from_secs(2);
    let baseline = srv.cpu_ticks_over(window);
    let mut idle: Vec<TcpStream> = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        let s = TcpStream::connect_timeout(&m, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("connect {i}: {e}"));
        idle.push(s);
    }
    let used = srv.cpu_ticks_over(window);
    let db = [Ipv4Addr::new(10, 0, 1, 100)];
    assert_eq!(a_records(&ask(srv.udp, &a(1, "db.lab.internal"))), db);
    assert_eq!(a_records(&tcp_ask(srv.tcp, &a(2, "db.lab.internal"))), db);
    // The excess was closed at once: a read sees EOF (or a reset), not the read timeout.
    let mut closed = 0;
    for s in idle.iter_mut().skip(IDLE / 2).take(200) {
        s.set_read_timeout(Some(Duration::from_secs(1)))
            .expect("timeout");
        let mut b = [0u8; 1];
        match s.read(&mut b) {
            Ok(0) => closed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            _ => {}
        }
    }
    assert_eq!(closed, 200, "connections past the cap are closed at once");
    let spin = window.as_secs_f64() * 100.0;
    eprintln!(
        "cpu ticks over {window:?}: idle {baseline}, with {IDLE} idle ops connections {used}"
    );
    assert!(
        (used as f64) < baseline as f64 + spin / 4.0,
        "{used} ticks with {IDLE} idle ops connections vs {baseline} before, over {window:?}"
    );
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = http_get_patient(m, "/metrics");
        if status == 200 {
            assert!(
                body.contains("# TYPE vpc_resolver_queries_total counter"),
                "{body}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/metrics does not answer after the idle connections closed"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Like `http_get`, but a refused or reset connection is status 0 instead of a panic.
fn http_get_patient(addr: SocketAddr, path: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return (0, String::new());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    if s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .is_err()
    {
        return (0, String::new());
    }
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        status,
        text.split("\r\n\r\n").nth(1).unwrap_or("").to_string(),
    )
}

fn raw(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    s.write_all(request.as_bytes()).expect("write");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}

#[test]
fn ops_endpoint_takes_query_strings_and_head() {
    let _serial = serial();
    let srv = Spawned::start(&[], &["--metrics", "127.0.0.1:0"]);
    let m = srv.metrics.expect("metrics");
    let (status, body) = http_get(m, "/readyz?verbose=1");
    assert_eq!((status, body.trim()), (200, "ready generation 1"));
    assert_eq!(
        http_get(m, "/metrics?name[]=vpc_resolver_queries_total").0,
        200
    );
    let head = raw(m, "HEAD /metrics HTTP/1.0\r\n\r\n");
    let (headers, body) = head.split_once("\r\n\r\n").expect("a head");
    assert!(headers.starts_with("HTTP/1.0 200"), "{head}");
    assert!(body.is_empty(), "HEAD has no body: {body:?}");
    let length: usize = headers
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|n| n.parse().ok())
        .expect("Content-Length");
    assert!(length > 100, "the length GET would have: {length}");
    let post = raw(m, "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n");
    assert!(post.starts_with("HTTP/1.0 405"), "{post}");
    assert!(post.contains("Allow: GET, HEAD"), "{post}");
    assert!(raw(m, "garbage\r\n\r\n").starts_with("HTTP/1.0 400"));
}

#[test]
fn metrics_parse_with_prometheus_client_and_every_family_has_help_and_type() {
    let _serial = serial();
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    out.append({"name": f.name, "type": f.type, "help": f.documentation, "samples": len(f.samples)})
print(json.dumps(out))
"#;
    let probe = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        return crate::prereq::missing(
            "prometheus_client (Python)",
            "pip install -r tests/requirements.txt",
        );
    }
    let srv = Spawned::start(&[], &["--metrics", "127.0.0.1:0"]);
    ask(srv.udp, &a(1, "db.lab.internal"));
    tcp_ask(srv.tcp, &a(2, "nothing.lab.internal"));
    let (status, body) = http_get(srv.metrics.expect("metrics"), "/metrics");
    assert_eq!(status, 200);
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("parser");
    assert!(
        out.status.success(),
        "prometheus_client rejects /metrics: {}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    let families: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).expect("parser output");
    let declared = body.lines().filter(|l| l.starts_with("# TYPE ")).count();
    assert_eq!(families.len(), declared, "{families:?}");
    assert!(declared >= 12, "{body}");
    for f in &families {
        assert_ne!(f["type"], "unknown", "{f}: no TYPE");
        assert!(
            f["help"].as_str().is_some_and(|h| !h.is_empty()),
            "{f}: no HELP"
        );
    }
    let named = |n: &str| families.iter().any(|f| f["name"] == n);
    for n in [
        "vpc_resolver_queries",
        "vpc_resolver_topology_generation",
        "vpc_resolver_prepared_answers",
        "vpc_resolver_query_duration_seconds",
    ] {
        assert!(named(n), "{n} missing from {families:?}");
    }
}

#[test]
fn series_of_views_gone_after_a_reload_are_dropped() {
    let _serial = serial();
    let dir = temp_dir("views");
    let file = dir.join("lab.yaml");
    let before = lab_yaml("", "");
    std::fs::write(&file, &before).expect("write");
    let srv = Spawned::start(
        &[],
        &[file.to_str().expect("utf-8"), "--metrics", "127.0.0.1:0"],
    );
    let m = srv.metrics.expect("metrics");
    ask(srv.udp, &a(1, "db.lab.internal"));
    let views = |body: &str| -> Vec<String> {
        body.lines()
            .filter_map(|l| l.strip_prefix("vpc_resolver_view_queries_total{view=\""))
            .filter_map(|l| l.split('"').next())
            .map(str::to_string)
            .collect()
    };
    let old = views(&http_get(m, "/metrics").1);
    assert_eq!(old.len(), 1, "{old:?}");
    let renamed = before
        .replace("default_view: lab\n", "default_view: renamed\n")
        .replace("  - name: lab\n", "  - name: renamed\n");
    assert_ne!(renamed, before);
    write_atomically(&file, &renamed);
    srv.signal("-HUP");
    srv.wait_generation(2);
    ask(srv.udp, &a(2, "db.lab.internal"));
    let new = views(&http_get(m, "/metrics").1);
    assert!(!new.contains(&old[0]), "{old:?} still exported: {new:?}");
    assert_eq!(new.len(), 1, "{new:?}");
}
