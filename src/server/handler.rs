//! One query, from bytes to bytes: parse, ask the engine, encode, send or forward where told, log and count what
//! it is told. Local answers are produced synchronously on the receiving task; only forwarded questions go async.
//!
//! No policy lives here: admission, views, protocol policy (ANY, CHAOS, classes, zone transfers) and routes are the
//! engine's (`engine`). What remains is the wire: malformed packets, opcodes and EDNS versions.

use std::fmt::Display;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, Record};
use tracing::{debug, info};

use super::Snapshot;
use super::answers::{Entry, Forwarded, preparable};
use crate::engine::{Client, DecidedBy, Decision, FirewallMatch, Outcome, Question};
use crate::upstream::{Forwarder, Route};
use crate::wire::{self, ParseError, Peek, Query, Reply};

/// Transport the query came over: it sets the size limit and appears in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Udp,
    Tcp,
    /// DNS over HTTPS (RFC 8484), one query per HTTP/2 stream.
    Https,
}

impl Protocol {
    fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Https => "https",
        }
    }

    /// The Route 53 Resolver name of the transport (the query log's `transport`).
    fn transport(self) -> &'static str {
        match self {
            Self::Udp | Self::Tcp => "Do53",
            Self::Https => "DoH",
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
    decided_by: DecidedBy,
    /// The view's VPC, for the DNS Firewall on the upstream's CNAME chain.
    vpc: Option<usize>,
    view: String,
    src: SocketAddr,
    local: Option<IpAddr>,
    firewall: Option<FirewallMatch>,
    /// Synthesize AAAA from A when the answer has none (the engine's DNS64 decision).
    dns64: bool,
    started: Instant,
}

fn limit(query: &Query<'_>, protocol: Protocol) -> usize {
    match protocol {
        Protocol::Udp => wire::udp_limit(query),
        Protocol::Tcp | Protocol::Https => 65535,
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

/// One request as the transport hands it over.
#[derive(Clone, Copy)]
pub(crate) struct Request<'p> {
    pub(crate) packet: &'p [u8],
    pub(crate) src: SocketAddr,
    pub(crate) local: Option<IpAddr>,
    pub(crate) protocol: Protocol,
}

impl Request<'_> {
    fn client(&self) -> Client {
        Client {
            src: self.src.ip().to_canonical(),
            local: self.local,
        }
    }
}

/// Handles one request; writes a reply into `out` unless it returns `Drop` or `Forward`.
pub(crate) fn handle(
    snap: &Snapshot,
    req: Request<'_>,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
) -> Handled {
    let started = Instant::now();
    let peek = wire::peek(req.packet, &mut scratch.lower);
    if let Some(peek) = &peek
        && replay(snap, req, peek, scratch, out, started)
    {
        return Handled::Reply;
    }
    let query = match wire::parse_query(req.packet) {
        Ok(q) => q,
        Err(ParseError::Drop) => return Handled::Drop,
        Err(ParseError::Reply {
            id,
            opcode,
            recursion_desired,
            rcode,
        }) => {
            debug!(src = %req.src, ?rcode, "malformed query");
            wire::encode_header_only(id, opcode, recursion_desired, rcode, out);
            snap.metrics.count_rcode(rcode, req.protocol);
            return Handled::Reply;
        }
    };
    let span = tracing::debug_span!(
        "query", id = query.id, src = %req.src, proto = req.protocol.as_str(), qname = %query.name, qtype = %query.qtype);
    let _entered = span.enter();
    if wire_policy(snap, req, &query, started, out) {
        return Handled::Reply;
    }
    let decision = ask(snap, req.client(), &query);
    if let Some(hit) = decision.firewall.as_ref().filter(|h| h.action != "ALLOW") {
        snap.metrics.firewall_match(&hit.rule_group, hit.action);
    }
    if let Some(peek) = &peek {
        remember(snap, req.client(), &query, &decision, scratch);
        if from_cache(snap, req, peek, &query, &decision, scratch, out, started) {
            return Handled::Reply;
        }
    }
    carry_out(snap, req, &query, decision, started, out)
}

/// A plain query whose fixed answer was prepared before is answered by copying bytes, once the engine admits the
/// client (the table is keyed by the admitted view). Not taken while queries are logged or traced, so every logged
/// query has its span and decision.
fn replay(
    snap: &Snapshot,
    req: Request<'_>,
    peek: &Peek,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
    started: Instant,
) -> bool {
    if snap.query_log || tracing::enabled!(tracing::Level::DEBUG) {
        return false;
    }
    let Ok(admitted) = snap.engine.admit(req.client()) else {
        return false;
    };
    let limit = match req.protocol {
        Protocol::Udp => peek.udp_limit(),
        Protocol::Tcp | Protocol::Https => 65535,
    };
    let done = snap.answers.with(
        admitted,
        peek.qtype,
        &scratch.lower,
        &mut scratch.key,
        |entry| {
            wire::encode_prepared(req.packet, peek, &entry.reply, limit, out)
                .then_some((entry.kind, entry.rcode))
        },
    );
    let (kind, rcode) = match done {
        Some(Some(done)) => done,
        Some(None) => return false,
        None => {
            // A forwarded question seen before: its route is known, and the cache may hold the answer.
            let Some(forwarder) = &scratch.forwarder else {
                return false;
            };
            let done = snap.forwards.with(
                admitted,
                peek.qtype,
                &scratch.lower,
                &mut scratch.key,
                |fwd| {
                    forwarder
                        .answer_from_cache(
                            &fwd.route,
                            req.packet,
                            peek,
                            &scratch.lower,
                            limit,
                            &mut scratch.cache_key,
                            out,
                        )
                        .then_some(fwd.kind)
                },
            );
            let Some(Some(kind)) = done else {
                return false;
            };
            (kind, reply_rcode(out))
        }
    };
    let view = snap.engine.view_name(admitted.view());
    snap.metrics.prepared_hit();
    snap.metrics
        .answered(view, kind, rcode, req.protocol, started.elapsed());
    true
}

/// The rcode of an encoded reply (cached answers are NOERROR or NXDOMAIN: no extended bits).
fn reply_rcode(out: &[u8]) -> ResponseCode {
    ResponseCode::from_low(out.get(3).map_or(0, |b| b & 0x0F))
}

/// Answers a forwarded question from the forwarder's cache, encoded bytes only; `false` when it has no fresh answer.
#[allow(clippy::too_many_arguments)]
fn from_cache(
    snap: &Snapshot,
    req: Request<'_>,
    peek: &Peek,
    query: &Query<'_>,
    decision: &Decision,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
    started: Instant,
) -> bool {
    let (
        Some(forwarder),
        Outcome::Forward {
            route,
            answers,
            dns64,
            ..
        },
    ) = (&scratch.forwarder, &decision.outcome)
    else {
        return false;
    };
    // A local CNAME in front of the forwarded name needs the records, DNS64 may need a second question: both take
    // `forward`.
    if !answers.is_empty() || *dns64 || snap.engine.inspects_forwarded(decision.view.vpc) {
        return false;
    }
    let route = Route {
        name: route.name.clone(),
        targets: route.targets.clone(),
        source: route.source,
    };
    let limit = limit(query, req.protocol);
    if !forwarder.answer_from_cache(
        &route,
        req.packet,
        peek,
        &scratch.lower,
        limit,
        &mut scratch.cache_key,
        out,
    ) {
        return false;
    }
    let rcode = reply_rcode(out);
    let (view, by) = (&decision.view.name, &decision.decided_by);
    count(snap, view, by, rcode, req, started);
    let said = Said {
        firewall: decision.firewall.as_ref(),
        ..Said::new(view, by)
    };
    log_query(snap, query, req, said, rcode, started, out);
    true
}

/// The wire's own rules: opcodes other than QUERY, EDNS versions other than 0.
fn wire_policy(
    snap: &Snapshot,
    req: Request<'_>,
    query: &Query<'_>,
    started: Instant,
    out: &mut Vec<u8>,
) -> bool {
    if query.opcode != 0 {
        let (id, op, rd) = (query.id, query.opcode, query.recursion_desired);
        wire::encode_header_only(id, op, rd, ResponseCode::NotImp, out);
        let said = Said::new("-", &"opcode");
        log_query(snap, query, req, said, ResponseCode::NotImp, started, out);
        return true;
    }
    if let Some(edns) = query.edns
        && edns.version != 0
    {
        let reply = Reply::empty(ResponseCode::BADVERS);
        wire::encode_reply(query, &reply, limit(query, req.protocol), out);
        let said = Said::new("-", &"edns");
        log_query(snap, query, req, said, ResponseCode::BADVERS, started, out);
        return true;
    }
    false
}

/// The engine's decision; the reasons are put into words only when the debug log will print them.
fn ask(snap: &Snapshot, client: Client, query: &Query<'_>) -> Decision {
    let question = Question {
        name: &query.name,
        qtype: query.qtype,
        qclass: query.qclass,
    };
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return snap.engine.decide(client, &question);
    }
    let decision = snap.engine.explain(client, &question);
    // The same explanation `vpc-resolver explain` prints, from the same decision.
    let explanation =
        crate::explain::explain(&snap.engine, client, &query.name, query.qtype, &decision);
    debug!(explanation = %explanation.render(), "decision");
    decision
}

/// Keeps the engine's fixed answer for the next query of this admitted view, name and type.
fn remember(
    snap: &Snapshot,
    client: Client,
    query: &Query<'_>,
    decision: &Decision,
    scratch: &Scratch,
) {
    if let Outcome::Forward {
        route,
        name,
        answers,
        dns64,
    } = &decision.outcome
    {
        // Only a question forwarded as asked (no local CNAME in front) can be replayed from the cache alone. The route
        // is the engine's for this admitted view, name and type whatever `fixed` says (that flag speaks of answers:
        // a forward is never a prepared answer), so it is remembered for every forward.
        // A firewall match is counted and logged per query, so its route is not replayed without the engine.
        if answers.is_empty()
            && !dns64
            && decision.firewall.is_none()
            && !snap.engine.inspects_forwarded(decision.view.vpc)
            && *name == query.name
            && let Ok(admitted) = snap.engine.admit(client)
        {
            let fwd = Forwarded {
                route: Route {
                    name: route.name.clone(),
                    targets: route.targets.clone(),
                    source: route.source,
                },
                kind: decision.decided_by.kind(),
            };
            let qtype = u16::from(query.qtype);
            snap.forwards.insert(admitted, qtype, &scratch.lower, fwd);
        }
        return;
    }
    let Outcome::Answer {
        rcode,
        authoritative,
        answers,
        authority,
    } = &decision.outcome
    else {
        return;
    };
    if !decision.fixed || !preparable(query.qtype) {
        return;
    }
    let Ok(admitted) = snap.engine.admit(client) else {
        return;
    };
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
    if let Some(prepared) = wire::Prepared::new(&plain, &reply, snap.negative.as_ref()) {
        let entry = Entry {
            reply: prepared,
            kind: decision.decided_by.kind(),
            rcode: *rcode,
        };
        let qtype = u16::from(query.qtype);
        snap.answers.insert(admitted, qtype, &scratch.lower, entry);
    }
}

/// Encodes what the engine decided, or hands the forward to the transport.
fn carry_out(
    snap: &Snapshot,
    req: Request<'_>,
    query: &Query<'_>,
    decision: Decision,
    started: Instant,
    out: &mut Vec<u8>,
) -> Handled {
    let Decision {
        view,
        outcome,
        decided_by,
        firewall,
        ..
    } = decision;
    if let Some(hit) = &firewall
        && snap.query_log
        && snap.aws_log.is_none()
    {
        // A DNS Firewall ALERT or BLOCK match, as the Route 53 query log shows it (reference §12.1).
        info!(
            target: "vpc_resolver::firewall",
            client = %req.src.ip(),
            view = %view.name,
            qname = %query.name,
            matched = %hit.name,
            firewall_rule_group_id = %hit.rule_group,
            firewall_rule = %hit.rule,
            firewall_domain_list_id = %hit.domain_list,
            firewall_rule_action = hit.action,
            "firewall"
        );
    }
    let (rcode, answers, authority, authoritative, ede) = match outcome {
        Outcome::Forward {
            route,
            name,
            answers,
            dns64,
        } => {
            let job = ForwardJob {
                packet: req.packet.to_vec(),
                route: Route {
                    name: route.name.clone(),
                    targets: route.targets.clone(),
                    source: route.source,
                },
                name,
                prefix: answers,
                protocol: req.protocol,
                decided_by,
                vpc: view.vpc,
                view: view.name,
                src: req.src,
                local: req.local,
                firewall,
                dns64,
                started,
            };
            return Handled::Forward(Box::new(job));
        }
        Outcome::Answer {
            rcode,
            authoritative,
            answers,
            authority,
        } => (rcode, answers, authority, authoritative, None),
        Outcome::Refused { reason } => {
            let ede = (reason.ede(), reason.text());
            (
                ResponseCode::Refused,
                Vec::new(),
                Vec::new(),
                false,
                Some(ede),
            )
        }
        Outcome::ServFail { reason } => {
            let ede = Some((0, reason.as_str()));
            let reply = Reply {
                ede,
                ..Reply::empty(ResponseCode::ServFail)
            };
            let said = Said {
                firewall: firewall.as_ref(),
                ..Said::new(&view.name, &decided_by)
            };
            return send(snap, req, query, said, &decided_by, &reply, started, out);
        }
    };
    let reply = Reply {
        rcode,
        authoritative,
        answers: &answers,
        authority: &authority,
        additional: &[],
        ede,
    };
    let said = Said {
        firewall: firewall.as_ref(),
        ..Said::new(&view.name, &decided_by)
    };
    send(snap, req, query, said, &decided_by, &reply, started, out)
}

/// Encodes a local reply, counts and logs it.
#[allow(clippy::too_many_arguments)]
fn send(
    snap: &Snapshot,
    req: Request<'_>,
    query: &Query<'_>,
    said: Said<'_>,
    decided_by: &DecidedBy,
    reply: &Reply<'_>,
    started: Instant,
    out: &mut Vec<u8>,
) -> Handled {
    let limit = limit(query, req.protocol);
    wire::encode_local(snap.negative.as_ref(), query, reply, limit, out);
    count(snap, said.view, decided_by, reply.rcode, req, started);
    log_query(snap, query, req, said, reply.rcode, started, out);
    Handled::Reply
}

/// The metrics of one reply: refusals by admission have their own counter.
fn count(
    snap: &Snapshot,
    view: &str,
    by: &DecidedBy,
    rcode: ResponseCode,
    req: Request<'_>,
    started: Instant,
) {
    if *by == DecidedBy::Admission {
        snap.metrics.refused();
        snap.metrics.count_rcode(rcode, req.protocol);
    } else {
        snap.metrics
            .answered(view, by.kind(), rcode, req.protocol, started.elapsed());
    }
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
    let mut job = *job;
    let prefix = std::mem::take(&mut job.prefix);
    let Ok(query) = wire::parse_query(&job.packet) else {
        return;
    };
    let span = job_span(&job, &query);
    let _entered = span.enter();
    // The VPC Resolver ignores DO and CD and returns no DNSSEC records (reference §12.7): never ask for them.
    let dnssec_ok = false;
    let mut result = forwarder
        .forward(&job.route, &job.name, query.qtype, dnssec_ok)
        .await;
    if job.dns64 {
        dns64(forwarder, &job, &mut result).await;
    }
    if let Some((hit, blocked)) = inspect_chain(&snap, job.vpc, query.qtype, &mut result) {
        if blocked {
            job.decided_by = DecidedBy::Firewall(hit.rule_group.as_str().into());
        }
        job.firewall = job.firewall.take().or(Some(hit));
    }
    finish(&snap, &job, &query, prefix, result, out);
}

/// A forwarded question turned away because the server already has `pending` forwarded queries waiting: SERVFAIL
/// at once (the client retries or asks another resolver), so a flood cannot queue unbounded work and memory.
pub(crate) fn busy(snap: &Snapshot, mut job: Box<ForwardJob>, pending: usize, out: &mut Vec<u8>) {
    let prefix = std::mem::take(&mut job.prefix);
    let Ok(query) = wire::parse_query(&job.packet) else {
        return;
    };
    let span = job_span(&job, &query);
    let _entered = span.enter();
    debug!(pending, "too many forwarded queries pending");
    let result = crate::upstream::Outcome::not_sent(
        crate::upstream::ede::OTHER,
        "busy: too many forwarded queries pending",
    );
    finish(snap, &job, &query, prefix, result, out);
}

/// The query's span, for the part of its life spent forwarding.
fn job_span(job: &ForwardJob, query: &Query<'_>) -> tracing::Span {
    tracing::debug_span!(
        "query", id = query.id, src = %job.src, proto = job.protocol.as_str(), qname = %query.name, qtype = %query.qtype)
}

/// Encodes, counts and logs the reply to a forwarded question.
fn finish(
    snap: &Snapshot,
    job: &ForwardJob,
    query: &Query<'_>,
    mut answers: Vec<Record>,
    result: crate::upstream::Outcome,
    out: &mut Vec<u8>,
) {
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
    wire::encode_reply(query, &reply, limit(query, job.protocol), out);
    let req = Request {
        packet: &job.packet,
        src: job.src,
        local: job.local,
        protocol: job.protocol,
    };
    count(
        snap,
        &job.view,
        &job.decided_by,
        result.rcode,
        req,
        job.started,
    );
    let said = Said {
        firewall: job.firewall.as_ref(),
        ..Said::new(&job.view, &job.decided_by)
    };
    log_query(snap, query, req, said, result.rcode, job.started, out);
}

/// The DNS Firewall on the upstream's CNAME chain (the engine judges; reference §12.1): a BLOCK replaces the
/// answer, an ALERT or BLOCK match is counted and logged like one on the question.
fn inspect_chain(
    snap: &Snapshot,
    vpc: Option<usize>,
    qtype: hickory_proto::rr::RecordType,
    result: &mut crate::upstream::Outcome,
) -> Option<(FirewallMatch, bool)> {
    let (hit, blocked) = snap.engine.inspect_forwarded(vpc, qtype, &result.answers)?;
    snap.metrics.firewall_match(&hit.rule_group, hit.action);
    let Some(Outcome::Answer {
        rcode,
        answers,
        authority,
        ..
    }) = blocked
    else {
        return Some((hit, false));
    };
    result.rcode = rcode;
    result.answers = answers;
    result.authority = authority;
    result.ede = None;
    Some((hit, true))
}

/// DNS64 for a forwarded AAAA question (reference §12.6): an answer without AAAA records takes the A records of
/// the same name, each mapped into 64:ff9b::/96 (their CNAMEs kept); a real AAAA, or no A either, stays as it was.
async fn dns64(forwarder: &Forwarder, job: &ForwardJob, result: &mut crate::upstream::Outcome) {
    use hickory_proto::rr::{RData, RecordType};
    let no_aaaa = !result
        .answers
        .iter()
        .any(|r| r.record_type() == RecordType::AAAA);
    if result.rcode != ResponseCode::NoError || !no_aaaa {
        return;
    }
    let a = forwarder
        .forward(&job.route, &job.name, RecordType::A, false)
        .await;
    let synthesized: Vec<Record> = a
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(v4) => {
                let o = v4.0.octets();
                let v6 = std::net::Ipv6Addr::new(
                    0x64,
                    0xff9b,
                    0,
                    0,
                    0,
                    0,
                    u16::from_be_bytes([o[0], o[1]]),
                    u16::from_be_bytes([o[2], o[3]]),
                );
                Some(Record::from_rdata(
                    r.name.clone(),
                    r.ttl,
                    RData::AAAA(v6.into()),
                ))
            }
            RData::CNAME(_) => Some(r.clone()),
            _ => None,
        })
        .collect();
    if synthesized
        .iter()
        .any(|r| r.record_type() == RecordType::AAAA)
    {
        result.answers = synthesized;
        result.authority.clear();
    }
}

fn log_query(
    snap: &Snapshot,
    query: &Query<'_>,
    req: Request<'_>,
    said: Said<'_>,
    rcode: ResponseCode,
    started: Instant,
    reply: &[u8],
) {
    if !snap.query_log {
        return;
    }
    if let Some(aws) = &snap.aws_log {
        let seen = super::querylog::Seen {
            query,
            src: req.src,
            local: req.local,
            protocol: req.protocol,
            view: said.view,
            reply,
            firewall: said.firewall,
        };
        let record = aws.record(&seen, std::time::SystemTime::now());
        info!(target: "vpc_resolver::aws_query_log", "{record}");
        return;
    }
    info!(
        target: "vpc_resolver::query",
        client = %req.src.ip(),
        port = req.src.port(),
        proto = req.protocol.as_str(),
        transport = req.protocol.transport(),
        view = said.view,
        qname = %query.name,
        qtype = %query.qtype,
        decided_by = %said.by,
        rcode = %super::metrics::rcode_name(rcode),
        micros = started.elapsed().as_micros() as u64,
        "answered"
    );
}

/// What decided a query, for its log line.
#[derive(Clone, Copy)]
struct Said<'a> {
    view: &'a str,
    by: &'a dyn Display,
    firewall: Option<&'a FirewallMatch>,
}

impl<'a> Said<'a> {
    fn new(view: &'a str, by: &'a dyn Display) -> Self {
        Self {
            view,
            by,
            firewall: None,
        }
    }
}
