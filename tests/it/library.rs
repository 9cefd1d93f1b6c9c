//! The library API a test suite uses, as `examples/embed.rs` and `examples/pure.rs` use it: parse a topology from
//! text, decide without sockets, serve on a free port, swap the topology while serving, stop.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::net::UdpSocket;
use vpc_resolver::resolve::Outcome;
use vpc_resolver::server::{Server, ServerConfig, TopologySource};
use vpc_resolver::{answer_addresses, resolve_once, topology};

fn lab(db: &str) -> String {
    format!(
        "
region: us-east-1
upstream: []
vpcs:
  - id: vpc-0a0b0c0d0e0f00001
    cidr: 10.0.0.0/16
    clients: [127.0.0.0/8]
    subnets:
      - {{ id: subnet-0aaa000000000000a, az: a, cidr: 10.0.1.0/24 }}
      - {{ id: subnet-0bbb000000000000b, az: b, cidr: 10.0.2.0/24 }}
endpoints:
  - id: vpce-0a1b2c3d4e5f60718
    service: sts
    dns_suffix: abcd1234
    enis:
      - {{ subnet: subnet-0aaa000000000000a, ip: 10.0.1.25 }}
      - {{ subnet: subnet-0bbb000000000000b, ip: 10.0.2.25 }}
hosted_zones:
  - {{ name: corp.internal, records: [ {{ name: db, type: A, value: {db} }} ] }}
allow: [203.0.113.0/24]
"
    )
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

#[test]
fn pure_resolve_by_place() {
    let topo = topology::parse_str(&lab("10.0.1.100")).expect("valid");
    let inside = resolve_once(
        &topo,
        ip("10.0.9.9"),
        "sts.us-east-1.amazonaws.com",
        RecordType::A,
    )
    .expect("name");
    assert_eq!(inside.view.name, "vpc-0a0b0c0d0e0f00001");
    assert_eq!(
        answer_addresses(&inside),
        [ip("10.0.1.25"), ip("10.0.2.25")]
    );
    assert_eq!(inside.decided_by, "endpoint:vpce-0a1b2c3d4e5f60718");

    let zonal = "vpce-0a1b2c3d4e5f60718-abcd1234-us-east-1b.sts.us-east-1.vpce.amazonaws.com";
    let z = resolve_once(&topo, ip("203.0.113.9"), zonal, RecordType::A).expect("name");
    assert_eq!(answer_addresses(&z), [ip("10.0.2.25")]);

    let outside = resolve_once(
        &topo,
        ip("203.0.113.9"),
        "sts.us-east-1.amazonaws.com",
        RecordType::A,
    )
    .expect("name");
    assert_eq!(outside.view.name, "public");
    assert!(
        matches!(outside.outcome, Outcome::Forward { .. }),
        "{:?}",
        outside.outcome
    );
    assert!(answer_addresses(&outside).is_empty());

    // A source listed nowhere may not ask: the engine refuses, as the server does.
    let stranger = resolve_once(
        &topo,
        ip("198.51.100.9"),
        "sts.us-east-1.amazonaws.com",
        RecordType::A,
    )
    .expect("name");
    assert!(
        matches!(stranger.outcome, Outcome::Refused { .. }),
        "{:?}",
        stranger.outcome
    );

    assert!(resolve_once(&topo, ip("10.0.9.9"), "bad..name", RecordType::A).is_err());
}

async fn query(server: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let mut packet = Vec::new();
    vpc_resolver::wire::build_query(
        7,
        &Name::from_str(name).expect("name"),
        qtype,
        false,
        &mut packet,
    );
    socket.send_to(&packet, server).await.expect("send");
    let mut buf = vec![0u8; 1500];
    let (len, _) = tokio::time::timeout(Duration::from_secs(3), socket.recv_from(&mut buf))
        .await
        .expect("a reply within 3 s")
        .expect("recv");
    Message::from_vec(&buf[..len]).expect("a DNS message")
}

fn a_records(m: &Message) -> Vec<IpAddr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn serve_swap_and_stop() {
    let server = Server::start(ServerConfig {
        source: TopologySource::Given(Box::new(
            topology::parse_str(&lab("10.0.1.100")).expect("valid"),
        )),
        listen: vec!["127.0.0.1:0".parse().expect("addr")],
        udp_sockets: 1,
        ..Default::default()
    })
    .await
    .expect("start");
    let addr = server.udp_addrs()[0];
    assert_ne!(
        addr.port(),
        0,
        "the bound port is reported, not the requested 0"
    );
    assert_eq!(server.tcp_addrs().len(), 1);

    let m = query(addr, "db.corp.internal.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_records(&m), [ip("10.0.1.100")]);
    let m = query(addr, "sts.us-east-1.amazonaws.com.", RecordType::A).await;
    assert_eq!(a_records(&m), [ip("10.0.1.25"), ip("10.0.2.25")]);

    server
        .set_topology(topology::parse_str(&lab("10.0.2.200")).expect("valid"))
        .expect("swap");
    let m = query(addr, "db.corp.internal.", RecordType::A).await;
    assert_eq!(a_records(&m), [ip("10.0.2.200")]);

    server.shutdown(Duration::from_millis(200)).await;
    // Stopped: nothing answers on that port any more.
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let mut packet = Vec::new();
    vpc_resolver::wire::build_query(
        8,
        &Name::from_str("db.corp.internal.").expect("name"),
        RecordType::A,
        false,
        &mut packet,
    );
    let _ = socket.send_to(&packet, addr).await;
    let mut buf = vec![0u8; 512];
    let got = tokio::time::timeout(Duration::from_millis(300), socket.recv_from(&mut buf)).await;
    assert!(
        !matches!(got, Ok(Ok(_))),
        "a stopped server must not answer"
    );
}
