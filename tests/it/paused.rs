//! The forwarder on tokio's paused clock, through a scripted network ([`Transport`]): attempt timeouts, the
//! deadline, failover, late answers, TCP after truncation, ICMP errors, coalescing and hold-down are checked to
//! the millisecond of virtual time, so a loaded machine cannot make them pass or fail. `forwarding.rs` runs the same
//! behaviours through real sockets to real peers.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use vpc_resolver::upstream::*;

const ANSWER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);

/// What a scripted target does with a query.
#[derive(Debug, Clone, Copy)]
enum Script {
    /// Never answers.
    Silent,
    /// Answers each packet after this long.
    After(Duration),
    /// Its host reports the port unreachable (ICMP): the receive fails.
    Unreachable,
    /// Answers UDP at once with TC set; answers over TCP after this long.
    Truncates(Duration),
    /// Answers SERVFAIL at once.
    Fails,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Udp,
    Tcp,
}

/// One packet a target received: when (virtual time since the network was made) and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sent {
    at: Duration,
    target: SocketAddr,
    proto: Proto,
}

#[derive(Debug)]
struct Net {
    start: Instant,
    scripts: HashMap<SocketAddr, Script>,
    sent: Mutex<Vec<Sent>>,
}

impl Net {
    fn new(scripts: &[(SocketAddr, Script)]) -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            scripts: scripts.iter().copied().collect(),
            sent: Mutex::default(),
        })
    }

    fn record(&self, target: SocketAddr, proto: Proto) {
        let at = self.start.elapsed();
        self.sent
            .lock()
            .expect("log")
            .push(Sent { at, target, proto });
    }

    fn sent(&self) -> Vec<Sent> {
        self.sent.lock().expect("log").clone()
    }

    fn script(&self, target: SocketAddr) -> Script {
        self.scripts.get(&target).copied().unwrap_or(Script::Silent)
    }
}

/// The transport handed to the forwarder (the test keeps the `Net` to read what was sent).
#[derive(Debug)]
struct Scripted(Arc<Net>);

impl Transport for Scripted {
    fn udp(&self, _local: SocketAddr, target: SocketAddr) -> Io<'_, Box<dyn Datagram>> {
        let (tx, rx) = mpsc::unbounded_channel();
        let chan = Chan {
            net: self.0.clone(),
            target,
            tx,
            rx: tokio::sync::Mutex::new(rx),
        };
        Box::pin(async move { Ok(Box::new(chan) as Box<dyn Datagram>) })
    }

    fn tcp(&self, _local: Option<SocketAddr>, target: SocketAddr) -> Io<'_, Box<dyn Stream>> {
        let net = self.0.clone();
        Box::pin(async move {
            let Script::Truncates(after) = net.script(target) else {
                return Err(io::ErrorKind::ConnectionRefused.into());
            };
            let (ours, mut theirs) = tokio::io::duplex(4096);
            tokio::spawn(async move {
                let len = theirs.read_u16().await.expect("length");
                let mut query = vec![0; usize::from(len)];
                theirs.read_exact(&mut query).await.expect("query");
                net.record(target, Proto::Tcp);
                tokio::time::sleep(after).await;
                let reply = reply(&query, ResponseCode::NoError, false);
                let len = u16::try_from(reply.len()).expect("short");
                theirs.write_all(&len.to_be_bytes()).await.expect("write");
                theirs.write_all(&reply).await.expect("write");
            });
            Ok(Box::new(ours) as Box<dyn Stream>)
        })
    }
}

struct Chan {
    net: Arc<Net>,
    target: SocketAddr,
    tx: mpsc::UnboundedSender<io::Result<Vec<u8>>>,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<io::Result<Vec<u8>>>>,
}

impl Datagram for Chan {
    fn send<'a>(&'a self, packet: &'a [u8]) -> Io<'a, ()> {
        self.net.record(self.target, Proto::Udp);
        let tx = self.tx.clone();
        let query = packet.to_vec();
        match self.net.script(self.target) {
            Script::Silent => {}
            Script::After(after) => {
                tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    let _ = tx.send(Ok(reply(&query, ResponseCode::NoError, false)));
                });
            }
            Script::Unreachable => {
                let _ = tx.send(Err(io::ErrorKind::ConnectionRefused.into()));
            }
            Script::Truncates(_) => {
                let _ = tx.send(Ok(reply(&query, ResponseCode::NoError, true)));
            }
            Script::Fails => {
                let _ = tx.send(Ok(reply(&query, ResponseCode::ServFail, false)));
            }
        }
        Box::pin(async { Ok(()) })
    }

    fn recv<'a>(&'a self, buf: &'a mut [u8]) -> Io<'a, usize> {
        Box::pin(async move {
            let got = self.rx.lock().await.recv().await;
            let bytes = got.unwrap_or_else(|| Err(io::ErrorKind::BrokenPipe.into()))?;
            buf[..bytes.len()].copy_from_slice(&bytes);
            Ok(bytes.len())
        })
    }
}

/// The response to `query`: one A record unless it fails or is truncated.
fn reply(query: &[u8], rcode: ResponseCode, truncated: bool) -> Vec<u8> {
    let q = Message::from_vec(query).expect("query parses");
    let mut m = Message::response(q.id, q.op_code);
    m.metadata.message_type = MessageType::Response;
    m.metadata.response_code = rcode;
    m.metadata.truncation = truncated;
    m.add_queries(q.queries.clone());
    if rcode == ResponseCode::NoError && !truncated {
        let name = q.queries[0].name().clone();
        m.add_answer(Record::from_rdata(name, 60, RData::A(ANSWER.into())));
    }
    m.to_vec().expect("encodes")
}

fn target(n: u8) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(192, 0, 2, n), 53))
}

fn route(targets: &[SocketAddr]) -> Route {
    Route {
        name: Arc::from("upstream"),
        targets: Arc::from(targets),
        source: None,
    }
}

/// A forwarder on the scripted network, trying targets in their listed order, with the default timings.
fn forwarder(scripts: &[(SocketAddr, Script)]) -> (Forwarder, Arc<Net>) {
    let net = Net::new(scripts);
    let f = Forwarder::new(ForwarderConfig {
        transport: Arc::new(Scripted(net.clone())),
        order: Arc::new(AsListed),
        ..ForwarderConfig::default()
    });
    (f, net)
}

async fn ask(f: &Forwarder, targets: &[SocketAddr], qname: &str) -> (Outcome, Duration) {
    let started = Instant::now();
    let name = Name::from_ascii(qname).expect("name");
    let o = f
        .forward(&route(targets), &name, RecordType::A, false)
        .await;
    (o, started.elapsed())
}

fn answered(o: &Outcome) -> bool {
    o.rcode == ResponseCode::NoError
        && o.answers
            .iter()
            .any(|r| matches!(&r.data, RData::A(a) if a.0 == ANSWER))
}

const MS: Duration = Duration::from_millis(1);

#[tokio::test(start_paused = true)]
async fn a_silent_target_gets_three_packets_then_servfail_at_the_deadline() {
    let (f, net) = forwarder(&[(target(1), Script::Silent)]);
    let (o, took) = ask(&f, &[target(1)], "silent.example.").await;
    assert_eq!(o.rcode, ResponseCode::ServFail);
    assert_eq!(
        o.ede.as_ref().map(|e| e.0),
        Some(ede::NO_REACHABLE_AUTHORITY)
    );
    assert_eq!(took, 2500 * MS, "the deadline");
    let at: Vec<Duration> = net.sent().iter().map(|s| s.at).collect();
    assert_eq!(
        at,
        [Duration::ZERO, 800 * MS, 1600 * MS],
        "one packet per attempt timeout"
    );
}

#[tokio::test(start_paused = true)]
async fn failover_to_the_second_target_after_one_attempt_timeout() {
    let (f, net) = forwarder(&[
        (target(1), Script::Silent),
        (target(2), Script::After(30 * MS)),
    ]);
    let (o, took) = ask(&f, &[target(1), target(2)], "failover.example.").await;
    assert!(answered(&o), "{o:?}");
    assert_eq!(o.via, Via::Target(target(2)));
    assert_eq!(took, 830 * MS);
    let sent: Vec<(Duration, SocketAddr)> = net.sent().iter().map(|s| (s.at, s.target)).collect();
    assert_eq!(sent, [(Duration::ZERO, target(1)), (800 * MS, target(2))]);
    // The silent one is held down for the minimum (1 s): the next question goes straight to the second.
    let (o, took) = ask(&f, &[target(1), target(2)], "next.example.").await;
    assert!(answered(&o));
    assert_eq!(took, 30 * MS);
    assert_eq!(net.sent().last().map(|s| s.target), Some(target(2)));
}

#[tokio::test(start_paused = true)]
async fn a_late_answer_to_the_first_packet_is_taken_after_the_retry() {
    // One target, answering each packet after 1 s: the retry at 800 ms goes on the same socket with the same id,
    // so the first packet's answer at 1,000 ms ends the exchange.
    let (f, net) = forwarder(&[(target(1), Script::After(1000 * MS))]);
    let (o, took) = ask(&f, &[target(1)], "late.example.").await;
    assert!(answered(&o), "{o:?}");
    assert_eq!(took, 1000 * MS);
    assert_eq!(net.sent().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn truncated_udp_is_retried_over_tcp() {
    let (f, net) = forwarder(&[(target(1), Script::Truncates(40 * MS))]);
    let (o, took) = ask(&f, &[target(1)], "big.example.").await;
    assert!(answered(&o), "{o:?}");
    assert_eq!(took, 40 * MS);
    let protos: Vec<Proto> = net.sent().iter().map(|s| s.proto).collect();
    assert_eq!(protos, [Proto::Udp, Proto::Tcp]);
}

#[tokio::test(start_paused = true)]
async fn unreachable_targets_fail_over_at_once_and_end_with_a_network_error() {
    let (f, net) = forwarder(&[
        (target(1), Script::Unreachable),
        (target(2), Script::After(5 * MS)),
    ]);
    let (o, took) = ask(&f, &[target(1), target(2)], "icmp.example.").await;
    assert!(answered(&o), "{o:?}");
    assert_eq!(took, 5 * MS, "no attempt timeout waited for an ICMP error");
    assert_eq!(net.sent().len(), 2);

    let (f, net) = forwarder(&[(target(3), Script::Unreachable)]);
    let (o, took) = ask(&f, &[target(3)], "icmp.example.").await;
    assert_eq!(o.ede.as_ref().map(|e| e.0), Some(ede::NETWORK_ERROR));
    assert_eq!(took, Duration::ZERO);
    assert_eq!(net.sent().len(), 3, "each attempt tried");
}

#[tokio::test(start_paused = true)]
async fn servfail_from_a_target_is_relayed_at_once_and_the_target_stays_up() {
    let (f, net) = forwarder(&[(target(1), Script::Fails)]);
    for qname in ["a.example.", "b.example."] {
        let (o, took) = ask(&f, &[target(1)], qname).await;
        assert_eq!(o.rcode, ResponseCode::ServFail);
        assert_eq!(took, Duration::ZERO);
    }
    assert_eq!(net.sent().len(), 2, "not held down: it answered");
}

#[tokio::test(start_paused = true)]
async fn identical_questions_in_flight_share_one_exchange() {
    let (f, net) = forwarder(&[(target(1), Script::After(200 * MS))]);
    let mut asks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let f = f.clone();
        asks.spawn(async move { ask(&f, &[target(1)], "shared.example.").await });
    }
    while let Some(done) = asks.join_next().await {
        let (o, took) = done.expect("task");
        assert!(answered(&o));
        assert_eq!(took, 200 * MS);
    }
    assert_eq!(net.sent().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn hold_down_doubles_with_each_failed_exchange_and_ends() {
    let (f, net) = forwarder(&[(target(1), Script::Silent)]);
    let health = |f: &Forwarder| {
        f.target_health()
            .into_iter()
            .find(|h| h.addr == target(1))
            .expect("health")
    };
    // First failed exchange: held 1 s. A question meanwhile sends nothing and fails at once.
    ask(&f, &[target(1)], "q1.example.").await;
    assert_eq!(health(&f).held_down_for, Some(1000 * MS));
    let (o, took) = ask(&f, &[target(1)], "q2.example.").await;
    assert_eq!(o.via, Via::NotSent);
    assert_eq!(took, Duration::ZERO);
    assert_eq!(net.sent().len(), 3);
    // After the hold-down the target is tried again; failing again doubles it.
    tokio::time::sleep(1000 * MS).await;
    ask(&f, &[target(1)], "q3.example.").await;
    assert_eq!(net.sent().len(), 6);
    assert_eq!(health(&f).held_down_for, Some(2000 * MS));
    tokio::time::sleep(1999 * MS).await;
    assert!(health(&f).held_down, "still held at 1,999 ms");
    tokio::time::sleep(MS).await;
    assert!(!health(&f).held_down, "released at 2,000 ms");
}

#[tokio::test(start_paused = true)]
async fn a_tcp_retry_that_times_out_moves_on_to_the_next_target() {
    // The TCP retry may take two attempt timeouts (1,600 ms); then the next target's turn comes.
    let (f, net) = forwarder(&[
        (target(1), Script::Truncates(5000 * MS)),
        (target(2), Script::After(10 * MS)),
    ]);
    let (o, took) = ask(&f, &[target(1), target(2)], "tc.example.").await;
    assert!(answered(&o), "{o:?}");
    assert_eq!(o.via, Via::Target(target(2)));
    assert_eq!(took, 1610 * MS);
    let sent: Vec<(Duration, SocketAddr, Proto)> = net
        .sent()
        .iter()
        .map(|s| (s.at, s.target, s.proto))
        .collect();
    assert_eq!(
        sent,
        [
            (Duration::ZERO, target(1), Proto::Udp),
            (Duration::ZERO, target(1), Proto::Tcp),
            (1600 * MS, target(2), Proto::Udp),
        ]
    );
}
