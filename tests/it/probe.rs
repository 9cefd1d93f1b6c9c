//! `vpc-resolver probe`, the image's health check: exit 0 only on a well-formed reply to its question.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::{Child, Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_vpc-resolver");

fn probe(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("probe")
        .args(args)
        .output()
        .expect("run vpc-resolver probe")
}

/// `serve` on free loopback ports; the addresses come from its "listening on" lines.
fn serve() -> (Child, SocketAddr, SocketAddr) {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut addr = |proto: &str| -> SocketAddr {
        let line = lines.next().expect("a listening line").expect("utf-8");
        let prefix = format!("listening on {proto} ");
        line.strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{line:?}"))
            .parse()
            .expect("an address")
    };
    let udp = addr("udp");
    let tcp = addr("tcp");
    (child, udp, tcp)
}

#[test]
fn probe_passes_against_the_server_over_udp_and_tcp() {
    let (mut child, udp, tcp) = serve();
    let over_udp = probe(&[&udp.to_string()]);
    let over_tcp = probe(&[&tcp.to_string(), "--tcp"]);
    child.kill().ok();
    child.wait().ok();
    for (what, out) in [("udp", over_udp), ("tcp", over_tcp)] {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{what}: {text}");
        assert!(
            text.starts_with("ok: ") && text.contains("No Error"),
            "{what}: {text}"
        );
    }
}

#[test]
fn probe_fails_when_nothing_answers_in_time() {
    // Bound but silent: the probe must give up at its timeout.
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let out = probe(&[
        &silent.local_addr().expect("addr").to_string(),
        "--timeout",
        "1",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("fail: "));
}

#[test]
fn probe_fails_on_a_reply_that_is_not_an_answer() {
    // An echo: a well-formed DNS message with the right id, but a query, not a response.
    let echo = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = echo.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = echo.recv_from(&mut buf) {
            echo.send_to(&buf[..n], from).ok();
        }
    });
    let out = probe(&[&addr.to_string(), "--timeout", "1"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn probe_fails_when_the_tcp_port_is_closed() {
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let out = probe(&[&addr.to_string(), "--tcp", "--timeout", "1"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
