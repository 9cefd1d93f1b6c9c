//! The hybrid lab everyone builds first, with the on-premises network listed NOWHERE in the topology: an "aws"
//! namespace runs the real binary with per-address listeners on the inbound endpoint address, the VPC resolver
//! address and an address that is no place; an "onprem" namespace, joined by a veth pair, asks from 192.168.50.10.
//! Through the inbound endpoint it gets the inbound view (S3's interface ENIs), through the VPC resolver address the
//! VPC view (S3 private DNS only for inbound endpoints stays public: forwarded upstream), and REFUSED on the no-place
//! address — with dig, dnspython and glibc's getent — and `explain --from --to` says the same for each.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use crate::property::{Ns, Proc, missing, python_with_dnspython, repo, run, wait_lines};

const BIN: &str = env!("CARGO_BIN_EXE_vpc-resolver");
const CLIENT: &str = "192.168.50.10";
const INBOUND: &str = "10.20.1.53";
const VPC_RESOLVER: &str = "10.20.0.2";
const NO_PLACE: &str = "198.19.0.53";
const UPSTREAM: &str = "10.20.9.53";

const TOPOLOGY: &str = "
version: 1
region: us-east-1
upstream: [\"10.20.9.53:53\"]
vpcs:
  - id: vpc-0e0e0000000000001
    name: hub
    cidr: 10.20.0.0/16
    subnets:
      - { id: subnet-0e0e00000000000a1, az: a, cidr: 10.20.1.0/24 }
      - { id: subnet-0e0e00000000000b1, az: b, cidr: 10.20.2.0/24 }
endpoints:
  - { vpc: hub, service: s3, type: gateway }
  - vpc: hub
    service: s3
    private_dns: true
    private_dns_only_for_inbound_resolver_endpoint: true
    enis: [ { subnet: subnet-0e0e00000000000a1, ip: 10.20.1.30 }, { subnet: subnet-0e0e00000000000b1, ip: 10.20.2.30 } ]
  - { vpc: hub, service: ec2, enis: [ { subnet: subnet-0e0e00000000000a1, ip: 10.20.1.25 } ] }
resolver:
  inbound_endpoints:
    - { id: rslvr-in-0e0e0000000000001, vpc: hub, ips: [10.20.1.53, 10.20.2.53] }
";

/// What each arrival address must answer for `s3.us-east-1.amazonaws.com A` from the on-premises client.
fn expected(to: &str) -> (&'static str, Vec<&'static str>) {
    match to {
        INBOUND => ("NOERROR", vec!["10.20.1.30", "10.20.2.30"]),
        // Public: forwarded upstream, which (played by the catcher) says NXDOMAIN.
        VPC_RESOLVER => ("NXDOMAIN", vec![]),
        _ => ("REFUSED", vec![]),
    }
}

struct Lab {
    aws: Ns,
    onprem: Ns,
    dir: PathBuf,
    _catcher: Proc,
    _server: Proc,
}

fn link(aws: &Ns, onprem: &Ns) {
    let tag = std::process::id() % 100_000;
    let (a, o) = (format!("vra{tag}"), format!("vro{tag}"));
    let _ = run("ip", &["link", "del", &a]);
    let ok = |args: &[&str]| {
        let out = run("ip", args);
        assert!(
            out.status.success(),
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ok(&[
        "link",
        "add",
        &a,
        "netns",
        &aws.name,
        "type",
        "veth",
        "peer",
        "name",
        &o,
        "netns",
        &onprem.name,
    ]);
    aws.ok(&["ip", "addr", "add", "192.168.50.1/24", "dev", &a]);
    aws.ok(&["ip", "link", "set", &a, "up"]);
    onprem.ok(&["ip", "addr", "add", &format!("{CLIENT}/24"), "dev", &o]);
    onprem.ok(&["ip", "link", "set", &o, "up"]);
    // The data center routes the VPC (and everything else) over the link, as over Direct Connect.
    onprem.ok(&["ip", "route", "add", "default", "via", "192.168.50.1"]);
}

impl Lab {
    fn start() -> Option<Self> {
        let aws = Ns::new("aws")?;
        let onprem = Ns::new("onprem")?;
        link(&aws, &onprem);
        for ip in [INBOUND, "10.20.2.53", VPC_RESOLVER, NO_PLACE, UPSTREAM] {
            aws.add_local(ip.parse().expect("ip"));
        }
        let dir = std::env::temp_dir().join(format!("vpcr-onprem-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let topo = dir.join("hybrid.yaml");
        std::fs::write(&topo, TOPOLOGY).expect("topology");
        let probe = repo("tests/it/dnsprobe.py");
        let caught = dir.join("caught.jsonl");
        let catcher_log = dir.join("catcher.log");
        let mut catcher = Proc(aws.spawn(
            &[
                "python3",
                probe.to_str().unwrap(),
                "catch",
                caught.to_str().unwrap(),
                &format!("{UPSTREAM}:53"),
            ],
            &catcher_log,
        ));
        wait_lines(&mut catcher.0, "ready", 1, &catcher_log);
        let mut args = vec![BIN.to_string(), "serve".into(), topo.display().to_string()];
        for a in [INBOUND, VPC_RESOLVER, NO_PLACE] {
            args.extend(["--listen".into(), format!("{a}:53")]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let log = dir.join("server.log");
        let mut server = Proc(aws.spawn(&args, &log));
        wait_lines(&mut server.0, "listening on udp", 3, &log);
        // glibc in the data center asks the inbound endpoint (port 53 only).
        let etc = PathBuf::from(format!("/etc/netns/{}", onprem.name));
        std::fs::create_dir_all(&etc).expect("/etc/netns");
        std::fs::write(
            etc.join("resolv.conf"),
            format!("nameserver {INBOUND}\noptions attempts:2 timeout:2\n"),
        )
        .expect("resolv.conf");
        Some(Self {
            aws,
            onprem,
            dir,
            _catcher: catcher,
            _server: server,
        })
    }

    fn caught(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join("caught.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", self.onprem.name));
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = &self.aws;
    }
}

/// `dig +short`-like: (status, sorted A records).
fn dig(lab: &Lab, to: &str, name: &str) -> (String, Vec<String>) {
    let out = lab
        .onprem
        .exec(&["dig", "+tries=1", "+time=3", &format!("@{to}"), name, "A"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("NO REPLY")
        .to_string();
    let mut addrs: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with(';'))
        .filter_map(|l| {
            l.split_whitespace()
                .collect::<Vec<_>>()
                .get(4)
                .map(|s| s.to_string())
        })
        .filter(|a| a.parse::<IpAddr>().is_ok())
        .collect();
    addrs.sort();
    (status, addrs)
}

/// `explain`'s answer section for the client asking at `to`.
fn explain(lab: &Lab, to: &str, name: &str) -> String {
    let out = Command::new(BIN)
        .args([
            "explain",
            name,
            "A",
            lab.dir.join("hybrid.yaml").to_str().unwrap(),
            "--from",
            CLIENT,
            "--to",
            to,
        ])
        .output()
        .expect("explain");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.split("\nanswer\n").nth(1).unwrap_or("").to_string()
}

#[test]
fn onprem_listed_nowhere_gets_the_view_of_where_it_asks() {
    if !python_with_dnspython() {
        return;
    }
    if Command::new("dig").arg("-v").output().is_err()
        && missing("dig (apt install bind9-dnsutils)")
    {
        return;
    }
    let Some(lab) = Lab::start() else {
        return;
    };
    let s3 = "s3.us-east-1.amazonaws.com";
    for to in [INBOUND, VPC_RESOLVER, NO_PLACE] {
        let (status, addrs) = expected(to);
        let got = dig(&lab, to, s3);
        assert_eq!(
            got,
            (
                status.to_string(),
                addrs.iter().map(|a| a.to_string()).collect()
            ),
            "dig @{to} {s3}"
        );
        let answer = explain(&lab, to, s3);
        match status {
            "NOERROR" => assert!(
                addrs.iter().all(|a| answer.contains(a)),
                "explain --to {to}: {answer}"
            ),
            "NXDOMAIN" => assert!(
                answer.contains("forwarded:") && answer.contains(UPSTREAM),
                "explain --to {to}: {answer}"
            ),
            _ => assert!(answer.contains("REFUSED"), "explain --to {to}: {answer}"),
        }
    }
    // The VPC resolver address forwarded the S3 name upstream: the public answer, as inside the VPC.
    assert!(
        lab.caught()
            .iter()
            .any(|c| c["name"] == json!(format!("{s3}."))),
        "upstream never asked: {:?}",
        lab.caught()
    );
    // Names without the inbound-only restriction are private at both addresses.
    for to in [INBOUND, VPC_RESOLVER] {
        assert_eq!(
            dig(&lab, to, "ec2.us-east-1.amazonaws.com").1,
            ["10.20.1.25"],
            "ec2 @{to}"
        );
    }

    // dnspython, from the same source.
    let tuples: Vec<Value> = [INBOUND, VPC_RESOLVER, NO_PLACE]
        .iter()
        .map(|to| json!({"src": CLIENT, "dst": to, "port": 53, "name": s3, "type": "A"}))
        .collect();
    let (tp, rp) = (lab.dir.join("tuples.json"), lab.dir.join("results.json"));
    std::fs::write(&tp, serde_json::to_string(&tuples).unwrap()).expect("write");
    let probe = repo("tests/it/dnsprobe.py");
    let out = lab.onprem.exec(&[
        "python3",
        probe.to_str().unwrap(),
        "ask",
        tp.to_str().unwrap(),
        rp.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&rp).expect("results")).expect("json");
    for (to, r) in [INBOUND, VPC_RESOLVER, NO_PLACE].iter().zip(&results) {
        let (status, addrs) = expected(to);
        let mut got: Vec<String> = r["answers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a[3].as_str().map(String::from))
            .collect();
        got.sort();
        assert_eq!(
            (r["rcode"].as_str().unwrap_or(""), got),
            (status, addrs.iter().map(|a| a.to_string()).collect()),
            "dnspython @{to}"
        );
        if status == "REFUSED" {
            assert_eq!(r["ede"], json!([18]), "EDE Prohibited");
        }
    }

    // glibc: the data center's resolv.conf points at the inbound endpoint.
    let out = lab.onprem.exec(&["getent", "ahosts", s3]);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut got: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("STREAM"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    got.sort();
    assert_eq!(
        got,
        ["10.20.1.30", "10.20.2.30"],
        "getent ahosts {s3}: {text}"
    );
}
