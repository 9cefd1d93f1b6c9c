//! The fidelity scenario (zones/scenarios/fidelity.yaml) through the real binary and real sockets with dig:
//! private hosted zone apex, S3 vpce names at any depth, DNS Firewall blocks and overrides, EC2 names, DNS64 for a
//! subnet's loopback client, and no DNSSEC records or AD bit for a DO query (reference §12).

use crate::serve::{Served, dig};

fn serve() -> Served {
    let topology = concat!(env!("CARGO_MANIFEST_DIR"), "/zones/scenarios/fidelity.yaml");
    Served::start(&[
        topology.to_string(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--default-view".into(),
        "vpc-0f1d0000000000001".into(),
        "--log-format".into(),
        "json".into(),
    ])
}

#[test]
fn fidelity_scenario_through_dig() {
    let s = serve();
    let at = s.udp[0];
    let soa = dig(at, &["corp.internal", "SOA"]);
    assert_eq!(soa.status, "NOERROR", "{}", soa.raw);
    assert!(
        soa.answer
            .iter()
            .any(|l| l.contains("SOA ns-1536.awsdns-00.co.uk.")),
        "{}",
        soa.raw
    );
    let ns = dig(at, &["corp.internal", "NS"]);
    assert_eq!(ns.answer.len(), 4, "{}", ns.raw);
    let bucket = dig(
        at,
        &[
            "my-bucket.bucket.vpce-0f1d00000000000e2-app0s3aa.s3.eu-west-2.vpce.amazonaws.com",
            "A",
        ],
    );
    assert_eq!(bucket.answer.len(), 2, "{}", bucket.raw);
    let blocked = dig(at, &["a.b.exfil.example", "A"]);
    assert_eq!(blocked.status, "NXDOMAIN", "{}", blocked.raw);
    let walled = dig(at, &["x.casino.example", "A"]);
    assert!(
        walled
            .answer
            .iter()
            .any(|l| l == "x.casino.example. 30 IN CNAME walled.example.net."),
        "{}",
        walled.raw
    );
    let public = dig(
        at,
        &["ec2-203-0-113-25.eu-west-2.compute.amazonaws.com", "A"],
    );
    assert_eq!(
        public.answer,
        ["ec2-203-0-113-25.eu-west-2.compute.amazonaws.com. 60 IN A 10.10.1.25"],
        "{}",
        public.raw
    );
    // ALERT and BLOCK matches are in the query log with rule group, rule and domain list (poll: the log is
    // written by the server process).
    let alert = dig(at, &["db.corp.internal", "A"]);
    assert_eq!(alert.status, "NOERROR", "{}", alert.raw);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let logged = |needle: &str| {
        s.log()
            .lines()
            .any(|l| l.contains(needle) && l.contains("rslvr-frg-0f1d0000000000001"))
    };
    while !(logged("\"BLOCK\"") && logged("\"ALERT\"")) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        logged("\"BLOCK\"") && logged("rslvr-fdl-0f1d0000000000001"),
        "{}",
        s.log()
    );
    assert!(
        logged("\"ALERT\"") && logged("rslvr-fdl-0f1d0000000000005"),
        "{}",
        s.log()
    );
    // DNSSEC: DO and CD are ignored; a local answer carries no RRSIG and no AD.
    let dnssec = dig(at, &["+dnssec", "+cd", "db.corp.internal", "A"]);
    assert!(!dnssec.flags.contains("ad"), "{}", dnssec.raw);
    assert!(!dnssec.raw.contains("RRSIG"), "{}", dnssec.raw);
}

#[test]
fn dns64_for_a_subnet_client() {
    let s = serve();
    let at = s.udp[0];
    // 127.0.0.21 is listed in `clients` of the DNS64 subnet.
    let d = dig(at, &["-b", "127.0.0.21", "db.corp.internal", "AAAA"]);
    assert_eq!(
        d.answer,
        ["db.corp.internal. 300 IN AAAA 64:ff9b::a0a:10a"],
        "{}",
        d.raw
    );
    let other = dig(at, &["-b", "127.0.0.1", "db.corp.internal", "AAAA"]);
    assert!(other.answer.is_empty(), "{}", other.raw);
}

/// Prepared answers are replayed only without the query log; a view's prepared NODATA for AAAA must never reach a
/// client of the DNS64 subnet (nor its synthesized answer the others). No firewall here: firewall VPCs prepare nothing.
#[test]
fn dns64_answers_are_not_replayed_across_subnets() {
    let dir = crate::peers::temp_dir("dns64");
    let file = dir.join("dns64.yaml");
    std::fs::write(
        &file,
        "version: 1\nregion: eu-west-2\nupstream: []\nvpcs:\n  - id: vpc-0d6400000000000a1\n    cidr: 10.64.0.0/16\n    clients: [127.0.0.0/8]\n    subnets:\n      - { id: subnet-0d6400000000000a1, az: a, cidr: 10.64.1.0/24 }\n      - { id: subnet-0d6400000000000b1, az: b, cidr: 10.64.2.0/24, enable_dns64: true, clients: [127.0.0.21/32] }\nhosted_zones:\n  - name: corp.internal\n    records:\n      - { name: db, type: A, values: [10.10.1.10] }\n",
    )
    .expect("write");
    let s = Served::start(&[
        file.to_string_lossy().into_owned(),
        "--listen".into(),
        "127.0.0.1:0".into(),
    ]);
    let at = s.udp[0];
    let plain = ["db.corp.internal", "AAAA"];
    let ask = |src: &str| dig(at, &[&["-b", src][..], &plain[..]].concat());
    for _ in 0..3 {
        let other = ask("127.0.0.1");
        assert_eq!(other.status, "NOERROR", "{}", other.raw);
        assert!(other.answer.is_empty(), "{}", other.raw);
    }
    for _ in 0..3 {
        let d = ask("127.0.0.21");
        assert_eq!(
            d.answer,
            ["db.corp.internal. 300 IN AAAA 64:ff9b::a0a:10a"],
            "{}",
            d.raw
        );
    }
    assert!(ask("127.0.0.1").answer.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--query-log-format aws`: one Route 53 Resolver query-log record per query, a JSON object per line, with the
/// firewall fields for ALERT and BLOCK matches, the answers the client got, and the source instance.
#[test]
fn aws_query_log_records() {
    let topology = concat!(env!("CARGO_MANIFEST_DIR"), "/zones/scenarios/fidelity.yaml");
    let s = Served::start(&[
        topology.to_string(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--default-view".into(),
        "vpc-0f1d0000000000001".into(),
        "--query-log-format".into(),
        "aws".into(),
    ]);
    let at = s.udp[0];
    assert_eq!(dig(at, &["bad.example.com", "A"]).status, "NXDOMAIN");
    assert_eq!(dig(at, &["db.corp.internal", "A"]).status, "NOERROR");
    let records = || -> Vec<serde_json::Value> {
        s.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while records().len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let all = records();
    let find = |name: &str| {
        all.iter()
            .find(|r| r["query_name"] == name)
            .unwrap_or_else(|| panic!("no record for {name} in {}", s.log()))
            .clone()
    };
    let blocked = find("bad.example.com.");
    for (field, want) in [
        ("version", "1.100000"),
        ("region", "eu-west-2"),
        ("vpc_id", "vpc-0f1d0000000000001"),
        ("query_type", "A"),
        ("query_class", "IN"),
        ("rcode", "NXDOMAIN"),
        ("srcaddr", "127.0.0.1"),
        ("transport", "UDP"),
        ("firewall_rule_group_id", "rslvr-frg-0f1d0000000000001"),
        ("firewall_rule_action", "BLOCK"),
        ("firewall_domain_list_id", "rslvr-fdl-0f1d0000000000001"),
    ] {
        assert_eq!(blocked[field], want, "{field} in {blocked}");
    }
    assert!(
        blocked["query_timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert!(
        blocked["srcport"]
            .as_str()
            .is_some_and(|p| p.parse::<u16>().is_ok())
    );
    let alert = find("db.corp.internal.");
    assert_eq!(alert["firewall_rule_action"], "ALERT", "{alert}");
    assert_eq!(
        alert["answers"],
        serde_json::json!([{"Rdata": "10.10.1.10", "Type": "A", "Class": "IN"}]),
        "{alert}"
    );
}

/// DNS64 for forwarded answers: a client of the DNS64 subnet asking AAAA for a name the upstream (real dnsmasq)
/// has only an A record for gets the synthesized address; a real AAAA is kept; other clients get NODATA.
#[test]
fn dns64_for_forwarded_answers() {
    let upstream = crate::peers::Dnsmasq::start(
        "127.0.0.1".parse().expect("ip"),
        &[
            // --local: dnsmasq answers NODATA itself instead of REFUSED for a type it has no record of.
            "--local=/example.net/",
            "--host-record=v4only.example.net,192.0.2.7",
            "--host-record=dual.example.net,192.0.2.8,2001:db8::8",
        ],
    );
    let dir = crate::peers::temp_dir("dns64-fwd");
    let file = dir.join("dns64.yaml");
    let yaml = format!(
        "version: 1\nregion: eu-west-2\nupstream: [\"{}\"]\nvpcs:\n  - id: vpc-0d6400000000000a1\n    cidr: 10.64.0.0/16\n    clients: [127.0.0.0/8]\n    subnets:\n      - {{ id: subnet-0d6400000000000a1, az: a, cidr: 10.64.1.0/24 }}\n      - {{ id: subnet-0d6400000000000b1, az: b, cidr: 10.64.2.0/24, enable_dns64: true, clients: [127.0.0.21/32] }}\n",
        upstream.addr()
    );
    std::fs::write(&file, yaml).expect("write");
    let s = Served::start(&[
        file.to_string_lossy().into_owned(),
        "--listen".into(),
        "127.0.0.1:0".into(),
    ]);
    let at = s.udp[0];
    let aaaa = |src: &str, name: &str| -> Vec<String> {
        let d = dig(at, &["-b", src, name, "AAAA"]);
        assert_eq!(d.status, "NOERROR", "{}", d.raw);
        d.answer
            .iter()
            .filter(|l| l.contains(" AAAA "))
            .filter_map(|l| l.split_whitespace().last().map(str::to_string))
            .collect()
    };
    for _ in 0..2 {
        assert!(aaaa("127.0.0.1", "v4only.example.net").is_empty());
        assert_eq!(
            aaaa("127.0.0.21", "v4only.example.net"),
            ["64:ff9b::c000:207"]
        );
        assert_eq!(aaaa("127.0.0.21", "dual.example.net"), ["2001:db8::8"]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The DNS Firewall inspects the CNAME chain of a forwarded answer (redirection inspect): a forwarded name whose
/// upstream answer (real dnsmasq) redirects into a blocked domain is blocked, every time, cache or not.
#[test]
fn firewall_inspects_forwarded_cname_chains() {
    let upstream = crate::peers::Dnsmasq::start(
        "127.0.0.1".parse().expect("ip"),
        &[
            "--local=/example.net/",
            "--local=/exfil.example/",
            "--cname=cdn.example.net,x.exfil.example",
            "--host-record=x.exfil.example,192.0.2.9",
            "--host-record=ok.example.net,192.0.2.10",
        ],
    );
    let dir = crate::peers::temp_dir("fw-fwd");
    let file = dir.join("fw.yaml");
    let yaml = format!(
        "version: 1\nregion: eu-west-2\nupstream: [\"{}\"]\nvpcs:\n  - id: vpc-0f0f0000000000001\n    cidr: 10.70.0.0/16\n    clients: [127.0.0.0/8]\nfirewall:\n  domain_lists:\n    - {{ id: rslvr-fdl-0f0f0000000000001, name: exfil, domains: [\"*.exfil.example\"] }}\n  rule_groups:\n    - id: rslvr-frg-0f0f0000000000001\n      rules:\n        - {{ name: block-exfil, priority: 10, domain_list: exfil, action: BLOCK, block_response: NXDOMAIN }}\n  associations:\n    - {{ rule_group: rslvr-frg-0f0f0000000000001, vpc: vpc-0f0f0000000000001, priority: 101 }}\n",
        upstream.addr()
    );
    std::fs::write(&file, yaml).expect("write");
    let s = Served::start(&[
        file.to_string_lossy().into_owned(),
        "--listen".into(),
        "127.0.0.1:0".into(),
    ]);
    let at = s.udp[0];
    for _ in 0..3 {
        let d = dig(at, &["cdn.example.net", "A"]);
        assert_eq!(d.status, "NXDOMAIN", "{}", d.raw);
        assert!(!d.raw.contains("192.0.2.9"), "{}", d.raw);
        let ok = dig(at, &["ok.example.net", "A"]);
        assert_eq!(
            ok.answer,
            ["ok.example.net. 0 IN A 192.0.2.10"],
            "{}",
            ok.raw
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
