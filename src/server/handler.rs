//! One query, from bytes to bytes: parse, admit, decide, encode. Local answers are produced synchronously on the
//! receiving task; only forwarded questions go async.
//!
//! This module makes no policy decision of its own about names: the decision engine (`resolve`) does. It owns the
//! protocol rules around it: access control, opcodes, EDNS version, classes, zone transfers, ANY.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{HINFO, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tracing::{debug, info};

use super::Snapshot;
use super::answers::{Entry, preparable};
use super::metrics::KINDS;
use crate::resolve::{Client, Decision, Forwarding, Outcome};
use crate::upstream::{Forwarder, Route};
use crate::wire::{self, ParseError, Query, Reply};

/// Transport the query came over: it sets the size limit and appears in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Udp,
    Tcp,
}

impl Protocol {
    fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
        }
    }
}

/// What the transport must do after `handle`.
pub(crate) enum Handled {
    /// `out` holds the response.
    Reply,
    /// Send nothing (a response, or too short to answer).
    Drop,
    /// Needs the network: run it with `forward`.
    Forward(Box<ForwardJob>),
}

/// A forwarded question, owned so it can move to another task.
pub(crate) struct ForwardJob {
    packet: Vec<u8>,
    route: Route,
    name: Name,
    prefix: Vec<Record>,
    protocol: Protocol,
    decided_by: String,
    view: String,
    src: SocketAddr,
    started: Instant,
}

/// Extended DNS Error codes (RFC 8914) used here.
const EDE_PROHIBITED: u16 = 18;
const EDE_NOT_SUPPORTED: u16 = 21;

fn limit(query: &Query<'_>, protocol: Protocol) -> usize {
    match protocol {
        Protocol::Udp => wire::udp_limit(query),
        Protocol::Tcp => 65535,
    }
}

/// Buffers the hot path reuses from query to query (one set per socket task), and the forwarder whose cache it
/// may answer from (none: forwarded questions always go through `forward`).
#[derive(Default)]
pub(crate) struct Scratch {
    lower: Vec<u8>,
    key: Vec<u8>,
    cache_key: Vec<u8>,
    forwarder: Option<Forwarder>,
}

impl Scratch {
    pub(crate) fn with_forwarder(forwarder: Forwarder) -> Self {
        Self {
            forwarder: Some(forwarder),
            ..Self::default()
        }
    }
}

/// Handles one request; writes a reply into `out` unless it returns `Drop` or `Forward`.
pub(crate) fn handle(
    snap: &Snapshot,
    packet: &[u8],
    src: SocketAddr,
    local: Option<IpAddr>,
    protocol: Protocol,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
) -> Handled {
    let started = Instant::now();
    // Hot path: a plain query whose fixed answer was prepared before is answered by copying bytes. Not taken while
    // queries are logged or traced, so every logged query has its span and decision.
    let peek = wire::peek(packet, &mut scratch.lower);
    if let Some(peek) = &peek
        && !snap.query_log
        && !tracing::enabled!(tracing::Level::DEBUG)
    {
        let src_ip = src.ip().to_canonical();
        if snap.allowed(src_ip) {
            let view = snap.resolver.view_key(Client { src: src_ip, local });
            let limit = match protocol {
                Protocol::Udp => peek.udp_limit(),
                Protocol::Tcp => 65535,
            };
            let done = snap.answers.with(
                view,
                peek.qtype,
                &scratch.lower,
                &mut scratch.key,
                |entry| {
                    wire::encode_prepared(packet, peek, &entry.reply, limit, out)
                        .then_some((entry.kind, entry.rcode))
                },
            );
            if let Some(Some((kind, rcode))) = done {
                snap.metrics.answered(
                    snap.view_name(view),
                    kind,
                    rcode,
                    protocol,
                    started.elapsed(),
                );
                return Handled::Reply;
            }
            if let Some(forwarder) = &scratch.forwarder {
                // A forwarded question seen before: its route is known, and the cache may hold the answer.
                let done =
                    snap.forwards
                        .with(view, peek.qtype, &scratch.lower, &mut scratch.key, |fwd| {
                            forwarder
                                .answer_from_cache(
                                    &fwd.route,
                                    packet,
                                    peek,
                                    &scratch.lower,
                                    limit,
                                    &mut scratch.cache_key,
                                    out,
                                )
                                .then_some(fwd.kind)
                        });
                if let Some(Some(kind)) = done {
                    snap.metrics.answered(
                        snap.view_name(view),
                        kind,
                        reply_rcode(out),
                        protocol,
                        started.elapsed(),
                    );
                    return Handled::Reply;
                }
            }
        }
    }
    let query = match wire::parse_query(packet) {
        Ok(q) => q,
        Err(ParseError::Drop) => return Handled::Drop,
        Err(ParseError::Reply {
            id,
            opcode,
            recursion_desired,
            rcode,
        }) => {
            debug!(%src, ?rcode, "malformed query");
            wire::encode_header_only(id, opcode, recursion_desired, rcode, out);
            snap.metrics.count_rcode(rcode, protocol);
            return Handled::Reply;
        }
    };
    let span = tracing::debug_span!(
        "query", id = query.id, src = %src, proto = protocol.as_str(), qname = %query.name, qtype = %query.qtype);
    let _entered = span.enter();
    let log = |view: &str, decided_by: &str, rcode: ResponseCode| {
        log_query(
            snap, &query, src, protocol, view, decided_by, rcode, started,
        );
    };
    let src_ip = src.ip().to_canonical();
    let reply_simple = |rcode: ResponseCode, ede: Option<(u16, &str)>, out: &mut Vec<u8>| {
        let reply = Reply {
            rcode,
            authoritative: false,
            answers: &[],
            authority: &[],
            additional: &[],
            ede,
        };
        wire::encode_reply(&query, &reply, limit(&query, protocol), out);
    };
    if !snap.allowed(src_ip) {
        snap.metrics.refused();
        reply_simple(
            ResponseCode::Refused,
            Some((EDE_PROHIBITED, "source not allowed")),
            out,
        );
        log("-", "acl", ResponseCode::Refused);
        return Handled::Reply;
    }
    if query.opcode != 0 {
        wire::encode_header_only(
            query.id,
            query.opcode,
            query.recursion_desired,
            ResponseCode::NotImp,
            out,
        );
        log("-", "opcode", ResponseCode::NotImp);
        return Handled::Reply;
    }
    if let Some(edns) = query.edns
        && edns.version != 0
    {
        reply_simple(ResponseCode::BADVERS, None, out);
        log("-", "edns", ResponseCode::BADVERS);
        return Handled::Reply;
    }
    if query.qclass == DNSClass::CH {
        return chaos(snap, &query, protocol, src, started, out);
    }
    if query.qclass != DNSClass::IN {
        reply_simple(
            ResponseCode::Refused,
            Some((EDE_NOT_SUPPORTED, "only class IN")),
            out,
        );
        log("-", "class", ResponseCode::Refused);
        return Handled::Reply;
    }
    if matches!(query.qtype, RecordType::AXFR | RecordType::IXFR) {
        reply_simple(
            ResponseCode::Refused,
            Some((EDE_PROHIBITED, "zone transfers are not offered")),
            out,
        );
        log("-", "xfr", ResponseCode::Refused);
        return Handled::Reply;
    }
    let client = Client { src: src_ip, local };
    // The reasons are put into words only when the debug log will print them.
    let decision = if tracing::enabled!(tracing::Level::DEBUG) {
        snap.resolver.resolve(client, &query.name, query.qtype)
    } else {
        snap.resolver.decide(client, &query.name, query.qtype)
    };
    if tracing::enabled!(tracing::Level::DEBUG) {
        // The same explanation `vpc-resolver explain` prints, from the same code.
        let explanation =
            crate::explain::explain(&snap.resolver, client, &query.name, query.qtype, &decision);
        debug!(explanation = %explanation.render(), "decision");
    }
    if decision.fixed
        && peek.is_some()
        && preparable(query.qtype)
        && let Outcome::Answer {
            rcode,
            authoritative,
            answers,
            authority,
        } = &decision.outcome
    {
        // Keep the engine's answer for the next query of this view, name and type.
        let plain = Query {
            edns: None,
            ..query.clone()
        };
        let reply = Reply {
            rcode: *rcode,
            authoritative: *authoritative,
            answers,
            authority,
            additional: &[],
            ede: None,
        };
        if let Some(prepared) = wire::Prepared::new(&plain, &reply) {
            let kind = KINDS
                .iter()
                .copied()
                .find(|k| *k == kind_of(&decision.decided_by))
                .unwrap_or("other");
            let view = snap.resolver.view_key(client);
            snap.answers.insert(
                view,
                u16::from(query.qtype),
                &scratch.lower,
                Entry {
                    reply: prepared,
                    kind,
                    rcode: *rcode,
                },
            );
        }
    }
    let fixed = decision.fixed;
    let Decision {
        view,
        outcome,
        decided_by,
        ..
    } = decision;
    match outcome {
        Outcome::Answer {
            rcode,
            authoritative,
            mut answers,
            authority,
        } => {
            if query.qtype == RecordType::ANY {
                minimal_any(&mut answers, &query.name);
            }
            let reply = Reply {
                rcode,
                authoritative,
                answers: &answers,
                authority: &authority,
                additional: &[],
                ede: None,
            };
            wire::encode_reply(&query, &reply, limit(&query, protocol), out);
            snap.metrics.answered(
                &view.name,
                kind_of(&decided_by),
                rcode,
                protocol,
                started.elapsed(),
            );
            log(&view.name, &decided_by, rcode);
            Handled::Reply
        }
        Outcome::Refused { reason } => {
            reply_simple(ResponseCode::Refused, Some((EDE_PROHIBITED, &reason)), out);
            log(&view.name, &decided_by, ResponseCode::Refused);
            Handled::Reply
        }
        Outcome::ServFail { reason } => {
            reply_simple(ResponseCode::ServFail, Some((0, &reason)), out);
            log(&view.name, &decided_by, ResponseCode::ServFail);
            Handled::Reply
        }
        Outcome::Forward {
            rule,
            targets,
            source,
            name,
            answers,
        } => {
            if query.qtype == RecordType::ANY {
                // RFC 8482: don't fetch ANY from upstream; a synthesized HINFO says so.
                let mut any = answers;
                any.push(Record::from_rdata(
                    query.name.clone(),
                    3600,
                    RData::HINFO(HINFO::new("RFC8482".into(), String::new())),
                ));
                let reply = Reply {
                    rcode: ResponseCode::NoError,
                    authoritative: false,
                    answers: &any,
                    authority: &[],
                    additional: &[],
                    ede: None,
                };
                wire::encode_reply(&query, &reply, limit(&query, protocol), out);
                log(&view.name, "rfc8482", ResponseCode::NoError);
                return Handled::Reply;
            }
            let route = snap.route(rule.as_deref(), &targets, source);
            // Only a question forwarded as asked (no local CNAME in front) can be replayed from the cache alone.
            if let (Some(peek), Some(forwarder)) = (&peek, &scratch.forwarder)
                && fixed
                && answers.is_empty()
                && name == query.name
            {
                let view_key = snap.resolver.view_key(client);
                let kind = KINDS
                    .iter()
                    .copied()
                    .find(|k| *k == kind_of(&decided_by))
                    .unwrap_or("other");
                snap.forwards.insert(
                    view_key,
                    peek.qtype,
                    &scratch.lower,
                    super::answers::Forwarded {
                        route: route.clone(),
                        kind,
                    },
                );
                let limit = limit(&query, protocol);
                if forwarder.answer_from_cache(
                    &route,
                    packet,
                    peek,
                    &scratch.lower,
                    limit,
                    &mut scratch.cache_key,
                    out,
                ) {
                    let rcode = reply_rcode(out);
                    snap.metrics
                        .answered(&view.name, kind, rcode, protocol, started.elapsed());
                    log(&view.name, &decided_by, rcode);
                    return Handled::Reply;
                }
            }
            Handled::Forward(Box::new(ForwardJob {
                packet: packet.to_vec(),
                route,
                name,
                prefix: answers,
                protocol,
                decided_by,
                view: view.name,
                src,
                started,
            }))
        }
    }
}

/// The rcode of an encoded reply (cached answers are NOERROR or NXDOMAIN: no extended bits).
fn reply_rcode(out: &[u8]) -> ResponseCode {
    ResponseCode::from_low(out.get(3).map_or(0, |b| b & 0x0F))
}

/// An empty reply with TC=1 for a rate-limited client (RRL slip); `false` if the packet is no query.
pub(crate) fn truncated(packet: &[u8], out: &mut Vec<u8>) -> bool {
    let Ok(query) = wire::parse_query(packet) else {
        return false;
    };
    // No records: the TC bit alone tells the client to come back over TCP.
    wire::encode_reply(&query, &Reply::empty(ResponseCode::NoError), 512, out);
    out.get_mut(2).map(|flags| *flags |= 0x02).is_some()
}

/// Carries out a forwarded question and encodes the reply into `out`.
pub(crate) async fn forward(
    snap: Arc<Snapshot>,
    forwarder: &Forwarder,
    job: Box<ForwardJob>,
    out: &mut Vec<u8>,
) {
    let Ok(query) = wire::parse_query(&job.packet) else {
        return;
    };
    let span = tracing::debug_span!(
        "query", id = query.id, src = %job.src, proto = job.protocol.as_str(), qname = %query.name, qtype = %query.qtype);
    let _entered = span.enter();
    let dnssec_ok = query.edns.is_some_and(|e| e.dnssec_ok);
    let result = forwarder
        .forward(&job.route, &job.name, query.qtype, dnssec_ok)
        .await;
    let mut answers = job.prefix;
    answers.extend(result.answers);
    let ede = result
        .ede
        .as_ref()
        .map(|(code, text)| (*code, text.as_str()));
    let reply = Reply {
        rcode: result.rcode,
        authoritative: false,
        answers: &answers,
        authority: &result.authority,
        additional: &[],
        ede,
    };
    wire::encode_reply(&query, &reply, limit(&query, job.protocol), out);
    snap.metrics.answered(
        &job.view,
        kind_of(&job.decided_by),
        result.rcode,
        job.protocol,
        job.started.elapsed(),
    );
    log_query(
        &snap,
        &query,
        job.src,
        job.protocol,
        &job.view,
        &job.decided_by,
        result.rcode,
        job.started,
    );
}

/// RFC 8482: answer ANY with one RRset only.
fn minimal_any(answers: &mut Vec<Record>, _name: &Name) {
    if let Some(first) = answers.first().map(|r| r.record_type()) {
        answers.retain(|r| r.record_type() == first);
    }
}

/// CHAOS class: `version.bind` and `id.server` are answered locally; nothing else, and nothing is forwarded.
fn chaos(
    snap: &Snapshot,
    query: &Query<'_>,
    protocol: Protocol,
    src: SocketAddr,
    started: Instant,
    out: &mut Vec<u8>,
) -> Handled {
    let lower = query.name.to_lowercase().to_string();
    let text = match (lower.as_str(), query.qtype) {
        ("version.bind." | "version.server.", RecordType::TXT) => {
            Some(concat!("vpc-resolver ", env!("CARGO_PKG_VERSION")))
        }
        ("id.server." | "hostname.bind.", RecordType::TXT) => Some("vpc-resolver"),
        _ => None,
    };
    let (rcode, answers) = match text {
        Some(t) => {
            let mut rec = Record::from_rdata(
                query.name.clone(),
                0,
                RData::TXT(TXT::new(vec![t.to_string()])),
            );
            rec.dns_class = DNSClass::CH;
            (ResponseCode::NoError, vec![rec])
        }
        None => (ResponseCode::Refused, Vec::new()),
    };
    let reply = Reply {
        rcode,
        authoritative: true,
        answers: &answers,
        authority: &[],
        additional: &[],
        ede: None,
    };
    wire::encode_reply(query, &reply, limit(query, protocol), out);
    log_query(snap, query, src, protocol, "-", "chaos", rcode, started);
    Handled::Reply
}

/// `endpoint:vpce-…` -> `endpoint`: a bounded label set for metrics.
pub(crate) fn kind_of(decided_by: &str) -> &str {
    decided_by.split(':').next().unwrap_or(decided_by)
}

#[allow(clippy::too_many_arguments)]
fn log_query(
    snap: &Snapshot,
    query: &Query<'_>,
    src: SocketAddr,
    protocol: Protocol,
    view: &str,
    decided_by: &str,
    rcode: ResponseCode,
    started: Instant,
) {
    if snap.query_log {
        info!(
            target: "vpc_resolver::query",
            client = %src.ip(),
            port = src.port(),
            proto = protocol.as_str(),
            view,
            qname = %query.name,
            qtype = %query.qtype,
            decided_by,
            rcode = %rcode,
            micros = started.elapsed().as_micros() as u64,
            "answered"
        );
    }
}

/// Builds the forwarding route for an outcome; `targets` may include the system resolvers.
pub(crate) fn expand_targets(targets: &[Forwarding], system: &[SocketAddr]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for t in targets {
        match t {
            Forwarding::Target(a) => out.push(*a),
            Forwarding::System => out.extend_from_slice(system),
        }
    }
    out
}
