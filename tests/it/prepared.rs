//! Answers replayed from the prepared table are byte for byte what the full path sends (apart from the id).

use std::net::UdpSocket;
use std::time::Duration;

use hickory_proto::rr::{Name, RecordType};
use vpc_resolver::server::{Server, ServerConfig, TopologySource};
use vpc_resolver::wire;

use crate::robust::{http_get, metric};

const HITS: &str = "vpc_resolver_prepared_answers_total";

fn ask(sock: &UdpSocket, id: u16, name: &str, qtype: RecordType, edns: bool) -> Vec<u8> {
    let mut q = Vec::new();
    wire::build_query(
        id,
        &Name::from_ascii(name).expect("name"),
        qtype,
        false,
        &mut q,
    );
    if !edns {
        // Drop the OPT record build_query adds.
        let mut lower = Vec::new();
        wire::peek(&q, &mut lower).expect("peek");
        q.truncate(12 + lower.len() + 4);
        q[11] = 0;
    }
    sock.send(&q).expect("send");
    let mut buf = [0u8; 2048];
    let n = sock.recv(&mut buf).expect("answer");
    buf[..n].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_answers_equal_the_full_path() {
    let topo = vpc_resolver::topology::load(&[concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/zones/scenarios/reference-lab.yaml"
    )])
    .expect("lab");
    let server = Server::start(ServerConfig {
        source: TopologySource::Given(Box::new(topo)),
        listen: vec!["127.0.0.1:0".parse().expect("addr")],
        default_view: Some("vpc-a".into()),
        metrics: Some("127.0.0.1:0".parse().expect("addr")),
        ..ServerConfig::default()
    })
    .await
    .expect("start");
    let addr = server.udp_addrs()[0];
    let ops = server.metrics_addr().expect("metrics address");
    let hits = move || metric(&http_get(ops, "/metrics").1, HITS);
    let checks = tokio::task::spawn_blocking(move || {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        sock.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        sock.connect(addr).expect("connect");
        let mut prepared_seen = 0;
        for (name, qtype) in [
            ("ec2.us-east-1.amazonaws.com", RecordType::A),
            ("ec2.us-east-1.amazonaws.com", RecordType::AAAA),
            ("monitoring.us-east-1.amazonaws.com", RecordType::AAAA),
            ("db.internal.example.com", RecordType::A),
            ("api.partner.example.net", RecordType::A),
            (
                "vpce-0e1c2a3b4d5f60001-k3x9p2qz-us-east-1a.ec2.us-east-1.vpce.amazonaws.com",
                RecordType::A,
            ),
        ] {
            for edns in [false, true] {
                // The first query takes the full path and prepares; the second, in another case, is replayed.
                let before = hits();
                let first = ask(&sock, 1, name, qtype, edns);
                let between = hits();
                let second = ask(&sock, 2, &name.to_uppercase(), qtype, edns);
                // The counter is bumped before the reply is sent, so it is current once the reply is here.
                let after = hits();
                if !edns {
                    assert_eq!(
                        between, before,
                        "{name} {qtype}: the first query is not a replay"
                    );
                }
                assert_eq!(
                    after,
                    between + 1.0,
                    "{name} {qtype} edns={edns}: the second reply came from the prepared table"
                );
                assert_eq!(first[2..12], second[2..12], "{name} {qtype}: header");
                assert_eq!(
                    first.len(),
                    second.len(),
                    "{name} {qtype} edns={edns}: length"
                );
                let question_end = 12 + name.len() + 2 + 4;
                // Same bytes except the question's letter case.
                let lower = |b: &[u8]| b.iter().map(u8::to_ascii_lowercase).collect::<Vec<_>>();
                assert_eq!(
                    lower(&first[12..question_end]),
                    lower(&second[12..question_end]),
                    "{name} {qtype}"
                );
                assert_eq!(
                    first[question_end..],
                    second[question_end..],
                    "{name} {qtype} edns={edns}: records"
                );
                assert_ne!(
                    first[12..],
                    second[12..],
                    "{name}: the second reply must echo the uppercase question"
                );
                prepared_seen += (after - between) as usize;
            }
        }
        prepared_seen
    })
    .await
    .expect("queries");
    assert_eq!(checks, 12);
    server.shutdown(Duration::from_secs(1)).await;
}
