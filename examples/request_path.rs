//! Runs queries through the server's request path in one thread, without sockets, for instruction counts that a
//! loaded machine cannot disturb (`valgrind --tool=callgrind`; see benches/README.md).
//!
//! `cargo run --release --example request_path -- QUERIES [ROUNDS [SOURCE [TOPOLOGY]...]]`: QUERIES is a dnsperf
//! query file (`NAME TYPE` per line), asked ROUNDS times (default 1) from SOURCE (default 127.0.0.1, arriving on
//! 127.0.0.1) over UDP against TOPOLOGY (default: the embedded one). Prints the queries asked and the replies by
//! rcode; ROUNDS 0 only loads, for the baseline to subtract.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::str::FromStr;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use vpc_resolver::server::{Answered, Buffers, Protocol, Responder, ServerConfig};
use vpc_resolver::topology::{self, LoadError};

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("request_path: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let [queries, rest @ ..] = args.as_slice() else {
        return Err("usage: request_path QUERIES [ROUNDS [SOURCE [TOPOLOGY]...]]".into());
    };
    let rounds: usize = rest
        .first()
        .map_or(Ok(1), |r| r.parse().map_err(|e| format!("ROUNDS {r}: {e}")))?;
    let source: IpAddr = rest.get(1).map_or(Ok(Ipv4Addr::LOCALHOST.into()), |s| {
        s.parse().map_err(|e| format!("SOURCE {s}: {e}"))
    })?;
    let topo = match rest.get(2..) {
        Some(paths) if !paths.is_empty() => topology::load(paths),
        _ => topology::default_topology().map_err(LoadError::Invalid),
    }
    .map_err(|e| e.to_string())?;
    let text = std::fs::read_to_string(queries).map_err(|e| format!("{queries}: {e}"))?;
    let packets = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| packet(i, line))
        .collect::<Result<Vec<_>, _>>()?;
    let responder = Responder::new(topo, &ServerConfig::default()).map_err(|e| e.to_string())?;
    let (src, local) = (
        SocketAddr::new(source, 40000),
        Some(Ipv4Addr::LOCALHOST.into()),
    );
    let mut rcodes: BTreeMap<String, usize> = BTreeMap::new();
    // Reused, as a server socket reuses its buffers: no per-query growth in the counts.
    let mut buffers = Buffers::default();
    for _ in 0..rounds {
        for p in &packets {
            let what = match responder.answer_in(&mut buffers, p, src, local, Protocol::Udp) {
                Answered::Reply(out) => Message::from_vec(out).map_or("unparsable".into(), |m| {
                    m.metadata.response_code.to_string()
                }),
                Answered::Forward => "forwarded".into(),
                Answered::Drop => "dropped".into(),
            };
            *rcodes.entry(what).or_default() += 1;
        }
    }
    println!("{} queries, replies: {rcodes:?}", packets.len() * rounds);
    Ok(())
}

/// The query of one `NAME TYPE` line, id `i`, recursion desired.
fn packet(i: usize, line: &str) -> Result<Vec<u8>, String> {
    let mut words = line.split_whitespace();
    let (Some(name), Some(rtype)) = (words.next(), words.next()) else {
        return Err(format!("query {line:?}: want NAME TYPE"));
    };
    let name = Name::from_ascii(name).map_err(|e| format!("{name}: {e}"))?;
    let rtype = RecordType::from_str(rtype).map_err(|e| format!("{rtype}: {e}"))?;
    let mut m = Message::query();
    m.metadata.id = i as u16;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(name, rtype));
    m.to_vec().map_err(|e| e.to_string())
}
