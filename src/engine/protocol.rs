//! Protocol policy that does not depend on names: CHAOS identity queries, classes other than IN, zone transfers
//! (refused before any name is looked at), and minimal answers to ANY (RFC 8482, forwarded names included).

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{HINFO, TXT};
use hickory_proto::rr::{DNSClass, RData, Record, RecordType};

use super::{DecidedBy, Outcome, Question, Reason, Trace};

/// An outcome decided by the question alone, before any view is consulted.
pub(crate) fn before(q: &Question<'_>, trace: &mut Trace) -> Option<(Outcome, DecidedBy)> {
    if q.qclass == DNSClass::CH {
        return Some((chaos(q, trace), DecidedBy::Chaos));
    }
    let refuse = |reason: Reason| Outcome::Refused { reason };
    if q.qclass != DNSClass::IN {
        trace.add("RFC 1035 §3.2.4", || {
            format!("class {} is not served: only IN", q.qclass)
        });
        return Some((refuse(Reason::ClassNotSupported), DecidedBy::Protocol));
    }
    if matches!(q.qtype, RecordType::AXFR | RecordType::IXFR) {
        trace.add("§6.4 [INF]", || {
            "zone transfers are not offered (Route 53 private zones offer none)".to_string()
        });
        return Some((refuse(Reason::ZoneTransfer), DecidedBy::Protocol));
    }
    None
}

/// CHAOS class: `version.bind` and `id.server` are answered locally; nothing else, and nothing is forwarded.
fn chaos(q: &Question<'_>, trace: &mut Trace) -> Outcome {
    let lower = q.name.to_lowercase().to_string();
    let text = match (lower.as_str(), q.qtype) {
        ("version.bind." | "version.server.", RecordType::TXT) => {
            Some(concat!("vpc-resolver ", env!("CARGO_PKG_VERSION")))
        }
        ("id.server." | "hostname.bind.", RecordType::TXT) => Some("vpc-resolver"),
        _ => None,
    };
    trace.add("RFC 4892", || match text {
        Some(t) => format!("CHAOS {lower} TXT: \"{t}\""),
        None => format!("CHAOS {lower} {}: not a name this server answers", q.qtype),
    });
    let (rcode, answers) = match text {
        Some(t) => {
            let mut rec =
                Record::from_rdata(q.name.clone(), 0, RData::TXT(TXT::new(vec![t.to_string()])));
            rec.dns_class = DNSClass::CH;
            (ResponseCode::NoError, vec![rec])
        }
        None => (ResponseCode::Refused, Vec::new()),
    };
    Outcome::Answer {
        rcode,
        authoritative: true,
        answers,
        authority: Vec::new(),
    }
}

/// RFC 8482: an ANY answer carries one RRset; a forwarded ANY is not fetched, a synthesized HINFO says so.
pub(crate) fn minimal_any(q: &Question<'_>, outcome: Outcome, trace: &mut Trace) -> Outcome {
    if q.qtype != RecordType::ANY {
        return outcome;
    }
    match outcome {
        Outcome::Answer {
            rcode,
            authoritative,
            mut answers,
            authority,
        } => {
            if let Some(first) = answers.first().map(|r| r.record_type()) {
                answers.retain(|r| r.record_type() == first);
            }
            trace.add("RFC 8482 §4.1", || {
                "ANY: one RRset of the answer".to_string()
            });
            Outcome::Answer {
                rcode,
                authoritative,
                answers,
                authority,
            }
        }
        Outcome::Forward { mut answers, .. } => {
            trace.add("RFC 8482 §4.2", || {
                "ANY is not forwarded: a synthesized HINFO \"RFC8482\" answers".to_string()
            });
            let mut owner = q.name.clone();
            owner.set_fqdn(true);
            answers.push(Record::from_rdata(
                owner,
                3600,
                RData::HINFO(HINFO::new("RFC8482".into(), String::new())),
            ));
            Outcome::Answer {
                rcode: ResponseCode::NoError,
                authoritative: false,
                answers,
                authority: Vec::new(),
            }
        }
        other => other,
    }
}
