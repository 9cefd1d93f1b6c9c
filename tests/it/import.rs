//! `vpc-resolver import aws`, end to end through the binary: an account built in moto (tests/moto/make_account.py)
//! and a hand-written set of real-AWS-shaped responses (tests/fixtures/aws/) become topologies that pass `check`,
//! and the served names are the account's: private DNS names and vpce names answer with the ENI addresses.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use serde_json::Value;
use vpc_resolver::topology::{self, EndpointKind, Topology};

const BIN: &str = env!("CARGO_BIN_EXE_vpc-resolver");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn temp_dir(kind: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "vpc-resolver-import-{kind}-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Runs `import aws INPUT -o DIR/topo.yaml`, then `check` on it; returns the topology file and the warnings.
fn import(input: &Path, dir: &Path) -> (PathBuf, Vec<String>) {
    let out = dir.join("topo.yaml");
    let run = Command::new(BIN)
        .args(["import", "aws"])
        .arg(input)
        .arg("-o")
        .arg(&out)
        .output()
        .expect("run import");
    let stderr = String::from_utf8_lossy(&run.stderr).to_string();
    assert!(run.status.success(), "import failed:\n{stderr}");
    let warnings = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("warning: "))
        .map(str::to_string)
        .collect();
    let check = Command::new(BIN)
        .arg("check")
        .arg(&out)
        .output()
        .expect("run check");
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success() && text.starts_with("ok: "),
        "check failed:\n{text}"
    );
    (out, warnings)
}

/// `vpc-resolver serve FILE --listen 127.0.0.1:0 --default-view VPC`, killed on drop.
struct Served {
    child: Child,
    udp: SocketAddr,
}

impl Served {
    fn start(topology: &Path, view: &str) -> Self {
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg(topology)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--default-view",
                view,
                "--upstream",
                "127.0.0.1:9",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut udp = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("line");
            if let Some(a) = line.strip_prefix("listening on udp ") {
                udp = Some(a.parse().expect("address"));
                break;
            }
        }
        let udp = udp.expect("serve printed its UDP address");
        Self { child, udp }
    }

    fn query(&self, name: &str, qtype: RecordType) -> Message {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket
            .set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        let mut packet = Vec::new();
        vpc_resolver::wire::build_query(
            42,
            &Name::from_str(name).expect("name"),
            qtype,
            false,
            &mut packet,
        );
        socket.send_to(&packet, self.udp).expect("send");
        let mut buf = [0u8; 4096];
        let (len, _) = socket.recv_from(&mut buf).expect("a reply");
        Message::from_vec(&buf[..len]).expect("a DNS message")
    }

    /// The A or AAAA addresses of a NOERROR answer, sorted.
    fn addresses(&self, name: &str, qtype: RecordType) -> BTreeSet<IpAddr> {
        let m = self.query(name, qtype);
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NoError,
            "{name} {qtype}: {m:?}"
        );
        m.answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .collect()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn endpoint<'t>(t: &'t Topology, id: &str) -> &'t topology::Endpoint {
    t.endpoints
        .iter()
        .find(|e| e.id == id)
        .unwrap_or_else(|| panic!("endpoint {id} imported"))
}

fn v4s(e: &topology::Endpoint) -> BTreeSet<IpAddr> {
    e.enis.iter().filter_map(|x| x.ip.map(IpAddr::V4)).collect()
}

/// A query name for a private DNS name (`*.x` -> `registry.x`).
fn concrete(name: &str) -> String {
    match name.strip_prefix("*.") {
        Some(rest) => format!("123456789012.{rest}."),
        None => format!("{name}."),
    }
}

#[test]
fn moto_account_imports_checks_and_serves() {
    let moto = Command::new("python3")
        .args(["-c", "import moto, boto3"])
        .output();
    if !moto.is_ok_and(|o| o.status.success()) {
        return crate::prereq::missing("moto and boto3", "pip install -r tests/requirements.txt");
    }
    let dir = temp_dir("moto");
    let json_dir = dir.join("account");
    let made = Command::new("python3")
        .arg(root().join("tests/moto/make_account.py"))
        .arg(&json_dir)
        .output()
        .expect("run make_account.py");
    assert!(
        made.status.success(),
        "make_account.py: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let ids: Value = serde_json::from_slice(&made.stdout).expect("ids on stdout");
    let vpc = ids["vpc"].as_str().expect("vpc id");

    let (file, warnings) = import(&json_dir, &dir);
    // moto's ENI addresses lie outside their subnets: each is dropped, with a warning naming it.
    let dropped = warnings
        .iter()
        .filter(|w| w.contains("is outside subnet"))
        .count();
    assert_eq!(dropped, 6, "three endpoints, two ENIs each: {warnings:#?}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("app.corp.internal. A: skipped: alias to internal-app")),
        "{warnings:#?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains(ids["other_vpc"].as_str().expect("id"))
                && w.contains("assumed true")),
        "{warnings:#?}"
    );

    let topo = topology::load(&[&file]).expect("valid");
    let v = topo.vpcs.iter().find(|x| x.id == vpc).expect("the VPC");
    assert_eq!(
        v.cidrs.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        ["10.20.0.0/16", "10.21.0.0/16"]
    );
    assert_eq!(v.name.as_deref(), Some("app"));
    let gw = endpoint(&topo, ids["endpoints"]["s3-gateway"].as_str().expect("id"));
    assert_eq!(gw.kind, EndpointKind::Gateway);
    assert_eq!(gw.route_tables.len(), 1);
    assert_eq!(topo.rules.len(), 2);
    assert_eq!(
        topo.inbound_endpoints[0].ips,
        [IpAddr::from([10, 20, 1, 53]), IpAddr::from([10, 20, 2, 53])]
    );

    let endpoints: Value = serde_json::from_str(
        &std::fs::read_to_string(json_dir.join("describe-vpc-endpoints.json")).expect("read"),
    )
    .expect("json");
    let served = Served::start(&file, vpc);
    let mut checked = 0;
    for (svc, svc_id) in [("ec2", "ec2"), ("sts", "sts"), ("ecr.dkr", "dkr.ecr")] {
        let id = ids["endpoints"][svc].as_str().expect("id");
        let e = endpoint(&topo, id);
        let ips = v4s(e);
        assert_eq!(ips.len(), 2, "{id}: one address per AZ");
        for eni in &e.enis {
            let subnet = &v.subnets[eni.subnet];
            let addr = eni.ip.expect("an IPv4 address");
            assert!(
                subnet.cidr.contains(&addr),
                "{id}: {addr} in {}",
                subnet.cidr
            );
        }
        // moto's single DnsEntries name carries the suffix; the served name is AWS's form of it.
        let moto_name = endpoints["VpcEndpoints"]
            .as_array()
            .expect("list")
            .iter()
            .find(|x| x["VpcEndpointId"] == id)
            .and_then(|x| x["DnsEntries"][0]["DnsName"].as_str())
            .expect("moto DnsEntries");
        let sfx = &moto_name[id.len() + 1..id.len() + 9];
        let regional = format!("{id}-{sfx}.{svc_id}.us-east-1.vpce.amazonaws.com.");
        assert_eq!(
            served.addresses(&regional, RecordType::A),
            ips,
            "{regional}"
        );
        for private in &e.service.private_dns_names {
            assert_eq!(
                served.addresses(&concrete(private), RecordType::A),
                ips,
                "{private}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 3, "every endpoint has a private DNS name");
    let ec2 = endpoint(&topo, ids["endpoints"]["ec2"].as_str().expect("id"));
    assert_eq!(
        served.addresses("ec2-alias.corp.internal.", RecordType::A),
        v4s(ec2)
    );
    assert_eq!(
        served.addresses("db.corp.internal.", RecordType::A),
        BTreeSet::from([IpAddr::from([10, 20, 1, 100])])
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn aws_fixture_serves_the_dns_entries_names_exactly() {
    let fixtures = root().join("tests/fixtures/aws");
    let dir = temp_dir("aws");
    let (file, warnings) = import(&fixtures, &dir);
    let expected = [
        "vpce-0c0c0c0c0c0c0c0c0: skipped: Resource endpoints are not modelled",
        "TXT: the 2 strings of",
        "api.prod.internal. A: skipped: another record set",
        "legacy.prod.internal. SPF: skipped: record type not supported",
        "hosted zone Z1111111111PUBLIC (example.com.): skipped: public zones",
        "rslvr-autodefined-rr-internet-resolver (RECURSIVE .): skipped",
        "i-0dddddddddddddddd: skipped: state terminated",
        "rslvr-fdl-0aaaaaaaaaaaaaaaa (AWSManagedDomainsMalwareDomainList): imported without domains",
        "association of rslvr-frg-0fedcba9876543210 with vpc-0ffffffffffffffff left out",
        "rp-0123456789abcdef: RESOLVER_QUERY_LOGGING_CONFIG rqlc-0123456789abcdef left out",
    ];
    for e in expected {
        assert!(
            warnings.iter().any(|w| w.contains(e)),
            "missing warning `{e}` in {warnings:#?}"
        );
    }
    assert_eq!(warnings.len(), expected.len(), "{warnings:#?}");

    let topo = topology::load(&[&file]).expect("valid");
    // The inbound endpoint's `Protocols` ([Do53, DoH] in the fixture) survive; the outbound's default stays implied.
    let inbound = &topo.inbound_endpoints[0];
    assert_eq!(
        inbound.protocols,
        [
            topology::EndpointProtocol::Do53,
            topology::EndpointProtocol::DoH
        ],
        "{}",
        inbound.id
    );
    assert_eq!(
        topo.outbound_endpoints[0].protocols,
        [topology::EndpointProtocol::Do53]
    );
    let served = Served::start(&file, "vpc-0a1b2c3d4e5f60718");
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures.join("describe-vpc-endpoints.json")).expect("read"),
    )
    .expect("json");
    let enis: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures.join("describe-network-interfaces.json")).expect("read"),
    )
    .expect("json");
    let eni_of = |id: &str| {
        enis["NetworkInterfaces"]
            .as_array()
            .expect("list")
            .iter()
            .find(|x| x["NetworkInterfaceId"] == id)
            .expect("eni")
            .clone()
    };
    let mut names = 0;
    for ep in json["VpcEndpoints"].as_array().expect("list") {
        // The cross-Region endpoint has no ENIs in the input (default addresses): its name is checked below.
        if ep["VpcEndpointType"] != "Interface" || ep.get("ServiceRegion").is_some() {
            continue;
        }
        let id = ep["VpcEndpointId"].as_str().expect("id");
        let e = endpoint(&topo, id);
        // The real ENI addresses are kept as they are.
        let mut all_v4 = BTreeSet::new();
        let mut all_v6 = BTreeSet::new();
        let mut by_az: Vec<(String, IpAddr, Option<IpAddr>)> = Vec::new();
        for eni_id in ep["NetworkInterfaceIds"].as_array().expect("list") {
            let eni = eni_of(eni_id.as_str().expect("id"));
            let v4: IpAddr = eni["PrivateIpAddress"]
                .as_str()
                .expect("ip")
                .parse()
                .expect("ip");
            let v6: Option<IpAddr> = eni["Ipv6Addresses"][0]["Ipv6Address"]
                .as_str()
                .map(|s| s.parse().expect("v6"));
            all_v4.insert(v4);
            all_v6.extend(v6);
            by_az.push((
                eni["AvailabilityZone"].as_str().expect("az").to_string(),
                v4,
                v6,
            ));
        }
        assert_eq!(v4s(e), all_v4, "{id}");
        let dualstack = ep["DnsOptions"]["DnsRecordIpType"] == "dualstack";
        let inbound_only = ep["DnsOptions"]["PrivateDnsOnlyForInboundResolverEndpoint"] == true;
        for entry in ep["DnsEntries"].as_array().expect("list") {
            let name = entry["DnsName"].as_str().expect("name");
            let vpce = name.trim_start_matches("*.").starts_with("vpce-");
            if !vpce && inbound_only {
                // Private DNS only for queries through an inbound endpoint: not what this client sees.
                continue;
            }
            let (want4, want6): (BTreeSet<IpAddr>, BTreeSet<IpAddr>) = match by_az
                .iter()
                .find(|(az, ..)| name.contains(&format!("-{az}.")))
            {
                Some((_, v4, v6)) => ([*v4].into(), v6.iter().copied().collect()),
                None => (all_v4.clone(), all_v6.clone()),
            };
            assert_eq!(
                served.addresses(&concrete(name), RecordType::A),
                want4,
                "{name} A"
            );
            if dualstack {
                assert_eq!(
                    served.addresses(&concrete(name), RecordType::AAAA),
                    want6,
                    "{name} AAAA"
                );
            }
            names += 1;
        }
        // The name is the real one, not any suffix: with another suffix it is not a local name (it goes upstream,
        // which here answers nothing).
        let regional = ep["DnsEntries"][0]["DnsName"]
            .as_str()
            .expect("name")
            .trim_start_matches("*.");
        let sfx = &regional[id.len() + 1..id.len() + 9];
        let wrong = concrete(&regional.replacen(sfx, "zzzzzzzz", 1));
        let m = served.query(&wrong, RecordType::A);
        assert!(m.answers.is_empty(), "{wrong}: {m:?}");
        let decision = vpc_resolver::resolve_once(
            &topo,
            "10.50.8.200".parse().expect("ip"),
            &wrong,
            RecordType::A,
        )
        .expect("name");
        assert_eq!(decision.decided_by, "upstream", "{wrong}");
    }
    assert_eq!(
        names,
        4 + 4 + 3,
        "ec2 and sts: regional, 2 zonal, private; s3: regional, 2 zonal"
    );
    // The cross-Region endpoint answers under its service's Region, as its DnsEntries say.
    let xr = endpoint(&topo, "vpce-0d0d0d0d0d0d0d0d0");
    assert_eq!(
        served.addresses(
            "vpce-0d0d0d0d0d0d0d0d0-xr9kms01.kms.us-west-2.vpce.amazonaws.com.",
            RecordType::A
        ),
        v4s(xr)
    );
    assert_eq!(
        served.addresses("ec2-a.prod.internal.", RecordType::A),
        BTreeSet::from([IpAddr::from([10, 50, 3, 17])])
    );
    assert_eq!(
        served.addresses("x.apps.prod.internal.", RecordType::A),
        BTreeSet::from([IpAddr::from([10, 50, 5, 5])])
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// DNS Firewall, Profiles, instances, DNS64, cross-Region endpoints and DELEGATE rules come through as AWS reports
/// them, and the result passes `check`.
#[test]
fn aws_fixture_keeps_every_resolver_feature() {
    use vpc_resolver::topology::{
        AssociatedWith, BlockResponse, FirewallAction, HostnameType, Redirection,
    };
    let fixtures = root().join("tests/fixtures/aws");
    let dir = temp_dir("aws-features");
    let (file, _) = import(&fixtures, &dir);
    let topo = topology::load(&[&file]).expect("valid");
    let fw = &topo.firewall;
    let list = |id: &str| {
        fw.domain_lists
            .iter()
            .position(|l| l.id == id)
            .expect("list")
    };
    assert_eq!(
        fw.domain_lists[list("rslvr-fdl-0123456789abcdef0")]
            .domains
            .len(),
        2
    );
    let baseline = fw
        .rule_groups
        .iter()
        .find(|g| g.id == "rslvr-frg-0123456789abcdef0")
        .expect("group");
    let names: Vec<&str> = baseline.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["block-malware", "walled-garden", "aws-managed"]);
    assert_eq!(
        baseline.rules[0].action,
        FirewallAction::Block(BlockResponse::Nxdomain)
    );
    let walled = &baseline.rules[1];
    assert_eq!(walled.qtype, Some(RecordType::A));
    assert_eq!(walled.redirection, Redirection::Trust);
    assert!(
        matches!(&walled.action, FirewallAction::Block(BlockResponse::Override { domain, ttl: 30 })
        if domain.to_string() == "walled.example.net.")
    );
    assert_eq!(baseline.rules[2].action, FirewallAction::Alert);
    let order: Vec<(u32, bool)> = topo
        .firewall_of(0)
        .iter()
        .map(|a| (a.priority, matches!(a.target, AssociatedWith::Profile(_))))
        .collect();
    assert_eq!(
        order,
        [(101, false), (102, true)],
        "direct 101, then the Profile's 102"
    );
    let profile = &topo.profiles[0];
    assert_eq!(profile.id, "rp-0123456789abcdef");
    assert_eq!(
        (
            profile.vpcs.len(),
            profile.hosted_zones.len(),
            profile.rules.len()
        ),
        (1, 1, 1)
    );
    assert_eq!(topo.instances.len(), 2);
    let i = &topo.instances[0];
    assert_eq!(i.ip.to_string(), "10.50.1.25");
    assert_eq!(
        i.public_ip.map(|p| p.to_string()).as_deref(),
        Some("203.0.113.25")
    );
    assert!(i.resource_name_a && i.resource_name_aaaa && i.ipv6.is_some());
    assert_eq!(topo.instances[1].hostname_type, HostnameType::ResourceName);
    assert!(topo.vpcs[0].subnets[0].dns64 && !topo.vpcs[0].subnets[1].dns64);
    let xr = endpoint(&topo, "vpce-0d0d0d0d0d0d0d0d0");
    assert_eq!(xr.service_region.as_deref(), Some("us-west-2"));
    assert_eq!(xr.dns_suffix, "xr9kms01");
    let d = &topo.delegations[0];
    assert_eq!(
        (d.id.as_str(), d.record.to_string().as_str()),
        ("rslvr-rr-0fedcba9876543210", "onprem.prod.internal.")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--keep-reported`: what moto reports is what DNS answers, its ENI addresses outside their subnets and its
/// `DnsEntries` names included, each with a warning; the topology still passes `check`.
#[test]
fn moto_account_keep_reported_serves_the_reported_values() {
    let moto = Command::new("python3")
        .args(["-c", "import moto, boto3"])
        .output();
    if !moto.is_ok_and(|o| o.status.success()) {
        crate::prereq::missing("moto", "pip install 'moto[ec2,route53,route53resolver]'");
        return;
    }
    let dir = temp_dir("moto-kept");
    let json_dir = dir.join("account");
    let made = Command::new("python3")
        .arg(root().join("tests/moto/make_account.py"))
        .arg(&json_dir)
        .output()
        .expect("run make_account.py");
    assert!(made.status.success(), "make_account.py failed");
    let ids: Value = serde_json::from_slice(&made.stdout).expect("ids on stdout");
    let out = dir.join("topo.yaml");
    let run = Command::new(BIN)
        .args(["import", "aws", "--keep-reported", "-o"])
        .arg(&out)
        .arg(&json_dir)
        .output()
        .expect("run import");
    let stderr = String::from_utf8_lossy(&run.stderr).to_string();
    assert!(run.status.success(), "import failed:\n{stderr}");
    let kept = stderr
        .lines()
        .filter(|l| l.contains("kept as reported"))
        .count();
    assert_eq!(
        kept,
        6 + 3,
        "six ENI addresses, three DnsEntries names:\n{stderr}"
    );
    let read = |name: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(json_dir.join(name)).expect("read"))
            .expect("json")
    };
    let (endpoints, enis) = (
        read("describe-vpc-endpoints.json"),
        read("describe-network-interfaces.json"),
    );
    let served = Served::start(&out, ids["vpc"].as_str().expect("vpc id"));
    for svc in ["ec2", "sts", "ecr.dkr"] {
        let id = ids["endpoints"][svc].as_str().expect("id");
        let ep = endpoints["VpcEndpoints"]
            .as_array()
            .expect("list")
            .iter()
            .find(|x| x["VpcEndpointId"] == id)
            .expect("endpoint");
        let reported: BTreeSet<IpAddr> = ep["NetworkInterfaceIds"]
            .as_array()
            .expect("list")
            .iter()
            .map(|eni| {
                let e = enis["NetworkInterfaces"]
                    .as_array()
                    .expect("list")
                    .iter()
                    .find(|x| &x["NetworkInterfaceId"] == eni)
                    .expect("eni");
                e["PrivateIpAddress"]
                    .as_str()
                    .expect("ip")
                    .parse()
                    .expect("ip")
            })
            .collect();
        assert_eq!(reported.len(), 2);
        for entry in ep["DnsEntries"].as_array().expect("list") {
            let name = format!("{}.", entry["DnsName"].as_str().expect("name"));
            assert_eq!(served.addresses(&name, RecordType::A), reported, "{name}");
        }
        let private = if svc == "ecr.dkr" {
            "123456789012.dkr.ecr.us-east-1.amazonaws.com.".to_string()
        } else {
            format!("{svc}.us-east-1.amazonaws.com.")
        };
        assert_eq!(
            served.addresses(&private, RecordType::A),
            reported,
            "{private}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
