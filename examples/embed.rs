//! Embeds the DNS server in a program (or a test suite): start it on a free port, query it, change its
//! topology while it runs, query again, stop it. `cargo run --example embed`.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::str::FromStr;
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::{Name, RData, RecordType};
use vpc_resolver::server::{Server, ServerConfig, TopologySource};
use vpc_resolver::topology;

/// A lab VPC that loopback clients see, with a private hosted zone; `db` points at `addr`.
fn lab(addr: &str) -> String {
    format!(
        "
region: us-east-1
upstream: []
vpcs:
  - {{ id: vpc-0a0b0c0d0e0f00001, cidr: 10.0.0.0/16, clients: [127.0.0.0/8] }}
hosted_zones:
  - name: corp.internal
    records:
      - {{ name: db, type: A, values: [{addr}] }}
"
    )
}

/// One query over UDP, built with the crate's own `wire::build_query`; the A addresses of the answer.
fn query_a(server: SocketAddr, name: &str) -> Result<Vec<IpAddr>, Box<dyn std::error::Error>> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut packet = Vec::new();
    vpc_resolver::wire::build_query(
        0x1234,
        &Name::from_str(name)?,
        RecordType::A,
        false,
        &mut packet,
    );
    socket.send_to(&packet, server)?;
    let mut buf = [0u8; 1500];
    let (len, _) = socket.recv_from(&mut buf)?;
    let reply = Message::from_vec(&buf[..len])?;
    Ok(reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        })
        .collect())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::start(ServerConfig {
        source: TopologySource::Given(Box::new(topology::parse_str(&lab("10.0.1.10"))?)),
        listen: vec!["127.0.0.1:0".parse()?],
        ..Default::default()
    })
    .await?;
    let addr = server.udp_addrs()[0];
    println!("listening on udp {addr}");

    // The client is blocking std code; keep it off the runtime's worker threads.
    let before = tokio::task::spawn_blocking(move || {
        query_a(addr, "db.corp.internal.").map_err(|e| e.to_string())
    })
    .await??;
    println!("db.corp.internal -> {before:?}");
    assert_eq!(before, ["10.0.1.10".parse::<IpAddr>()?]);

    server.set_topology(topology::parse_str(&lab("10.0.2.20"))?)?;
    let after = tokio::task::spawn_blocking(move || {
        query_a(addr, "db.corp.internal.").map_err(|e| e.to_string())
    })
    .await??;
    println!("after set_topology: db.corp.internal -> {after:?}");
    assert_eq!(after, ["10.0.2.20".parse::<IpAddr>()?]);

    server.shutdown(Duration::from_secs(1)).await;
    println!("stopped");
    Ok(())
}
