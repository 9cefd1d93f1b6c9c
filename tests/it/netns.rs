//! The glibc stub resolver against the real binary: a network namespace joined to the host by a veth pair, its
//! resolv.conf pointing at the server on the host side, and `getent` run inside it. glibc only speaks to port 53, so
//! the server listens on the host-side veth address (a private /30 that exists only while the test runs). Where
//! namespaces are not permitted the test fails under CI=true, and elsewhere prints a notice and returns.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Output};

use vpc_resolver::topology;

use crate::serve::{Served, TempDir};

fn ip(args: &[&str]) -> Output {
    Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (package iproute2)")
}

fn ok(args: &[&str]) {
    let out = ip(args);
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A namespace, its veth pair and its /etc/netns directory, all removed on Drop.
struct Netns {
    name: String,
    host_if: String,
    etc: PathBuf,
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
        // Deleting the namespace deletes the peer and so the pair; this covers a half-built setup.
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = std::fs::remove_dir_all(&self.etc);
    }
}

impl Netns {
    fn exec(&self, cmd: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .output()
            .expect("ip netns exec")
    }
}

#[test]
fn glibc_getent_in_a_namespace() {
    let pid = std::process::id();
    let name = format!("vpcr-it-{pid}");
    let add = ip(&["netns", "add", &name]);
    if !add.status.success() {
        return crate::prereq::missing(
            &format!(
                "network namespaces ({})",
                String::from_utf8_lossy(&add.stderr).trim()
            ),
            "run as root with iproute2 (apt-get install iproute2)",
        );
    }
    // Interface names are at most 15 bytes.
    let tag = pid % 100_000;
    let ns = Netns {
        name: name.clone(),
        host_if: format!("vrh{tag}"),
        etc: PathBuf::from(format!("/etc/netns/{name}")),
    };
    let peer_if = format!("vrn{tag}");
    // A /30 of 10.199.0.0/16 chosen by pid: .1 the host side (the server), .2 the namespace (the client).
    // Skip a /30 that another run already has on this host.
    let taken = String::from_utf8_lossy(&ip(&["-4", "addr"]).stdout).to_string();
    let third = (0..250u32)
        .map(|k| ((pid + k) % 250) as u8)
        .find(|t| !taken.contains(&format!("10.199.{t}.")))
        .expect("a free /30 in 10.199.0.0/16");
    let host = Ipv4Addr::new(10, 199, third, 1);
    let client = Ipv4Addr::new(10, 199, third, 2);
    ok(&[
        "link",
        "add",
        &ns.host_if,
        "type",
        "veth",
        "peer",
        "name",
        &peer_if,
    ]);
    ok(&["link", "set", &peer_if, "netns", &name]);
    ok(&["addr", "add", &format!("{host}/30"), "dev", &ns.host_if]);
    ok(&["link", "set", &ns.host_if, "up"]);
    ok(&[
        "netns",
        "exec",
        &name,
        "ip",
        "addr",
        "add",
        &format!("{client}/30"),
        "dev",
        &peer_if,
    ]);
    ok(&["netns", "exec", &name, "ip", "link", "set", &peer_if, "up"]);
    ok(&["netns", "exec", &name, "ip", "link", "set", "lo", "up"]);
    std::fs::create_dir_all(&ns.etc).expect("create /etc/netns/NAME");
    std::fs::write(
        ns.etc.join("resolv.conf"),
        format!("nameserver {host}\noptions attempts:2 timeout:2\n"),
    )
    .expect("write resolv.conf");

    // The namespace's address is a client of the VPC: it sees the VPC's view.
    let dir = TempDir::new("netns");
    let path = dir.write(
        "netns.yaml",
        &format!(
            "version: 1\nregion: us-east-1\nupstream: []\nvpcs:\n  - {{ name: lab, cidr: 10.0.0.0/16, clients: [{client}/32] }}\nendpoints: [ec2, sts]\n"
        ),
    );
    let topo = topology::load(&[&path]).expect("valid topology");
    let e = topo
        .endpoints
        .iter()
        .find(|e| e.service.code == "ec2")
        .expect("ec2 endpoint");
    let mut want: Vec<String> = e
        .enis
        .iter()
        .map(|n| n.ip.expect("ip").to_string())
        .collect();
    want.sort();
    let server = Served::start(&[
        "--listen".to_string(),
        format!("{host}:53"),
        path.display().to_string(),
    ]);

    let out = ns.exec(&["getent", "ahosts", "ec2.us-east-1.amazonaws.com"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "getent ahosts: {text}\n{}",
        server.log()
    );
    let mut got: Vec<String> = text
        .lines()
        .filter(|l| l.contains("STREAM"))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect();
    got.sort();
    assert_eq!(got, want, "{text}");

    // The EC2 internal name and its reverse, through glibc.
    let out = ns.exec(&["getent", "hosts", "ip-10-0-1-25.ec2.internal"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("10.0.1.25 "), "{text}");
    let out = ns.exec(&["getent", "hosts", "10.0.1.25"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ip-10-0-1-25.ec2.internal"), "{text}");

    // NXDOMAIN under the private DNS zone: getent's "not found" (exit 2).
    let out = ns.exec(&["getent", "ahosts", "nope.ec2.us-east-1.amazonaws.com"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
