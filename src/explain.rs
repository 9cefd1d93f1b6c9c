//! Renders a [`Decision`] as an explanation: the view and why, every candidate the engine judged (the one that won
//! and why the others lost), the answer, and the reference section behind each step. Used by
//! `vpc-resolver explain` (text or JSON) and by the debug query log. Never resolves anything itself.

use std::fmt::Write as _;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, Record, RecordType};
use serde::Serialize;

use crate::engine::{
    Candidate, Client, DecidedBy, Decision, Engine, Forwarding, Lost, Outcome, Route, Step, View,
};
use crate::topology::EndpointKind;

#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub question: String,
    pub client: String,
    pub view: View,
    pub candidates: Vec<Judged>,
    pub steps: Vec<Step>,
    pub result: Vec<String>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Judged {
    #[serde(flatten)]
    pub candidate: Candidate,
    pub verdict: String,
}

/// Puts an engine decision into words: the engine judged the candidates; this only renders them.
pub fn explain(
    resolver: &Engine,
    client: Client,
    qname: &Name,
    qtype: RecordType,
    decision: &Decision,
) -> Explanation {
    let candidates = decision
        .candidates
        .iter()
        .map(|c| Judged {
            candidate: c.clone(),
            verdict: verdict(c.lost.as_ref(), c.kind),
        })
        .collect();
    // The route-table note is for clients inside the VPC getting a public answer; through an inbound endpoint, or
    // with an endpoint's private answer, traffic doesn't take the gateway endpoint.
    let notes = if decision.view.via_inbound
        || matches!(decision.decided_by, DecidedBy::EndpointZone(_))
        || matches!(decision.outcome, Outcome::Refused { .. })
    {
        Vec::new()
    } else {
        gateway_notes(resolver, &decision.view, qname)
    };
    Explanation {
        question: format!("{qname} {qtype}"),
        client: match client.local {
            Some(local) => format!("{} -> {local}", client.src),
            None => client.src.to_string(),
        },
        view: decision.view.clone(),
        candidates,
        steps: decision.trace.clone(),
        result: result_lines(&decision.outcome, qtype),
        notes,
    }
}

/// Why a candidate lost, in words.
fn verdict(lost: Option<&Lost>, kind: &str) -> String {
    match lost {
        None => "decides: the most specific match in this view".into(),
        Some(Lost::NotAssociated { vpc }) => format!("not used: associated with {vpc} only, not with this view"),
        Some(Lost::InboundOnly) => "not used: private DNS only for inbound Resolver endpoints; this client is inside the VPC".into(),
        Some(Lost::SystemRuleDefers) => "defers: the Resolver answers itself below this domain, so less specific forward rules are skipped (§6.3)".into(),
        Some(Lost::ShieldedBySystemRule) => "skipped: a more specific system rule covers the name (§6.3)".into(),
        Some(Lost::SameDomain { winner }) => format!("ignored: a {winner} for the same domain takes precedence over a {kind} (§6.3)"),
        Some(Lost::LessSpecific { winner }) => format!("less specific than {winner}: the most specific domain wins (§6.3, §6.4)"),
        Some(Lost::NotApplicable) => "not used".into(),
    }
}

/// The answer section of an explanation: exactly what the server sends (rcode and records, or where it forwards).
fn result_lines(outcome: &Outcome, qtype: RecordType) -> Vec<String> {
    let mut result = Vec::new();
    match outcome {
        Outcome::Answer {
            rcode,
            answers,
            authority,
            ..
        } => {
            let code = match *rcode {
                ResponseCode::NoError if answers.is_empty() => {
                    "NOERROR, no answer (NODATA)".to_string()
                }
                ResponseCode::NoError => "NOERROR".to_string(),
                ResponseCode::NXDomain => "NXDOMAIN".to_string(),
                other => other.to_string(),
            };
            result.push(code);
            for r in answers.iter().chain(authority) {
                result.push(record_line(r));
            }
        }
        Outcome::Forward {
            route,
            name,
            answers,
            dns64,
        } => {
            for r in answers {
                result.push(record_line(r));
            }
            result.push(forward_line(route, name, qtype));
            if *dns64 {
                result.push("DNS64: without AAAA in the answer, A is asked and synthesized under 64:ff9b::/96".into());
            }
        }
        Outcome::Refused { reason } => result.push(format!(
            "REFUSED: {reason} (Extended DNS Error {})",
            reason.ede()
        )),
        Outcome::ServFail { reason } => result.push(format!("SERVFAIL: {reason}")),
    }
    result
}

fn forward_line(route: &Route, name: &Name, qtype: RecordType) -> String {
    let to: Vec<String> = route
        .listed
        .iter()
        .map(|t| match t {
            Forwarding::Target(a) => a.to_string(),
            Forwarding::System => "the system resolvers".into(),
        })
        .collect();
    let via = match &route.rule {
        Some(id) => format!("forward rule {id}"),
        None => "the upstream resolvers".into(),
    };
    let from = route
        .source
        .map(|s| format!(", sent from outbound endpoint address {s}"))
        .unwrap_or_default();
    let to = if to.is_empty() {
        "nowhere (no upstream: SERVFAIL)".into()
    } else {
        to.join(", ")
    };
    format!(
        "forwarded: {name} {qtype} goes to {to} via {via}{from}; targets are tried in random order, the next on timeout"
    )
}

/// S3 and DynamoDB: with a gateway endpoint, the public answer is still private traffic (reference §3.3).
fn gateway_notes(resolver: &Engine, view: &View, qname: &Name) -> Vec<String> {
    let topo = resolver.topology();
    let Some(vi) = view.vpc else {
        return Vec::new();
    };
    let q = qname.to_lowercase().to_string();
    let q = q.trim_end_matches('.');
    topo.endpoints
        .iter()
        .filter(|e| e.vpc == vi && e.kind == EndpointKind::Gateway)
        .filter(|e| {
            let base = format!("{}.{}.{}", e.service.code, topo.region, topo.dns_suffix);
            q == base || q.ends_with(&format!(".{base}")) || (e.service.code == "s3" && q == format!("s3.{}", topo.dns_suffix))
        })
        .map(|e| {
            let tables = if e.route_tables.is_empty() { "the associated route tables".to_string() } else { e.route_tables.join(", ") };
            format!(
                "gateway endpoint {} ({}): traffic to the addresses of this answer follows the prefix-list route (com.amazonaws.{}.{}) in {tables} to the gateway endpoint, not the internet (§3.3)",
                e.id, e.service.code, topo.region, e.service.code
            )
        })
        .collect()
}

/// A record in zone-file form: `name ttl IN TYPE data`.
pub fn record_line(r: &Record) -> String {
    format!("{} {} IN {} {}", r.name, r.ttl, r.record_type(), r.data)
}

impl Explanation {
    /// Stable, readable text for people and snapshot tests.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "question  {}", self.question);
        let _ = writeln!(s, "client    {}", self.client);
        let _ = writeln!(
            s,
            "view      {}{}",
            self.view.name,
            if self.view.via_inbound {
                " (through an inbound Resolver endpoint)"
            } else {
                ""
            }
        );
        let _ = writeln!(s, "          because {}", self.view.why);
        s.push_str("\ncandidates (most specific first)\n");
        if self.candidates.is_empty() {
            s.push_str("  none: no rule or private zone covers this name\n");
        }
        for c in &self.candidates {
            let mark = if c.candidate.won { "*" } else { "-" };
            let _ = writeln!(
                s,
                "  {mark} {} [{}] {}",
                c.candidate.domain, c.candidate.kind, c.candidate.label
            );
            let _ = writeln!(s, "      {}", c.verdict);
        }
        s.push_str("\nsteps\n");
        for (i, step) in self.steps.iter().enumerate() {
            let _ = writeln!(s, "  {}. {}  [{}]", i + 1, step.text, step.reference);
        }
        s.push_str("\nanswer\n");
        for line in &self.result {
            let _ = writeln!(s, "  {line}");
        }
        if !self.notes.is_empty() {
            s.push_str("\nnotes\n");
            for n in &self.notes {
                let _ = writeln!(s, "  {n}");
            }
        }
        s
    }
}
