//! Answers prepared at load time, as NSD does: for every view, every name with a fixed local answer (endpoint
//! private DNS names, private zone records, vpce names) and the usual query types, the decision engine runs once and
//! the reply is encoded once. A query that matches is answered by copying bytes; anything else takes the full path.
//!
//! The table is a memo of the engine, never a second implementation: each entry is the engine's own answer.

use std::collections::HashMap;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::resolve::{Outcome, Resolver, ViewKey};
use crate::wire::{self, Prepared, Reply};

/// Query types prepared for each name; others take the full path.
const TYPES: [RecordType; 4] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::TXT,
    RecordType::CNAME,
];

/// One prepared reply and what the metrics need to know about it.
pub(crate) struct Entry {
    pub(crate) reply: Prepared,
    pub(crate) kind: &'static str,
    pub(crate) rcode: ResponseCode,
}

pub(crate) struct Answers {
    /// Key: view tag (4 bytes), query type (2 bytes), lowercase question name in wire form.
    table: HashMap<Box<[u8]>, Entry>,
    /// Views that answer vpce names as the public view does (they may use its entries).
    public_vpce: Vec<ViewKey>,
}

/// A view as 4 bytes: the VPC index + 1 (0 = public), high bit for "through an inbound endpoint".
fn tag(key: ViewKey) -> [u8; 4] {
    let v = key.vpc.map_or(0, |v| v + 1) | (u32::from(key.via_inbound) << 31);
    v.to_be_bytes()
}

/// Writes the lookup key into `buf`.
pub(crate) fn key_into(buf: &mut Vec<u8>, view: ViewKey, qtype: u16, lower_name: &[u8]) {
    buf.clear();
    buf.extend_from_slice(&tag(view));
    buf.extend_from_slice(&qtype.to_be_bytes());
    buf.extend_from_slice(lower_name);
}

impl Answers {
    pub(crate) fn build(resolver: &Resolver) -> Self {
        let mut table = HashMap::new();
        let mut public_vpce = Vec::new();
        let mut query_buf = Vec::new();
        let mut key = Vec::new();
        for view_key in resolver.view_keys() {
            if resolver.sees_public_vpce_names(view_key) {
                public_vpce.push(view_key);
            }
            let view = resolver.view_of(view_key, String::new());
            let mut names = resolver.static_names(view_key);
            names.sort();
            names.dedup();
            for name in names {
                for qtype in TYPES {
                    let decision = resolver.resolve_in(view.clone(), &name, qtype);
                    let kind = super::handler::kind_of(&decision.decided_by);
                    let kind = super::metrics::KINDS
                        .iter()
                        .copied()
                        .find(|k| *k == kind)
                        .unwrap_or("other");
                    let Outcome::Answer {
                        rcode,
                        authoritative,
                        answers,
                        authority,
                    } = decision.outcome
                    else {
                        continue;
                    };
                    wire::build_query(0, &name, qtype, false, &mut query_buf);
                    // build_query adds EDNS; prepared bodies are EDNS-independent, so strip it before parsing.
                    let Some(plain) = strip_opt(&query_buf) else {
                        continue;
                    };
                    let Ok(query) = wire::parse_query(&plain) else {
                        continue;
                    };
                    let reply = Reply {
                        rcode,
                        authoritative,
                        answers: &answers,
                        authority: &authority,
                        additional: &[],
                        ede: None,
                    };
                    let Some(prepared) = Prepared::new(&query, &reply) else {
                        continue;
                    };
                    let mut lower = Vec::new();
                    if wire::peek(&plain, &mut lower).is_none() {
                        continue;
                    }
                    key_into(&mut key, view_key, u16::from(qtype), &lower);
                    table.insert(
                        key.as_slice().into(),
                        Entry {
                            reply: prepared,
                            kind,
                            rcode,
                        },
                    );
                }
            }
        }
        Self { table, public_vpce }
    }

    /// The prepared answer for a question in `view`, if there is one.
    pub(crate) fn get(
        &self,
        view: ViewKey,
        qtype: u16,
        lower_name: &[u8],
        key: &mut Vec<u8>,
    ) -> Option<&Entry> {
        key_into(key, view, qtype, lower_name);
        if let Some(p) = self.table.get(key.as_slice()) {
            return Some(p);
        }
        if view.vpc.is_some() && self.public_vpce.contains(&view) {
            key_into(
                key,
                ViewKey {
                    vpc: None,
                    via_inbound: false,
                },
                qtype,
                lower_name,
            );
            return self.table.get(key.as_slice());
        }
        None
    }

    /// How many answers are prepared (logged at start-up).
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }
}

/// The query without its OPT record (ARCOUNT 0).
fn strip_opt(packet: &[u8]) -> Option<Vec<u8>> {
    let mut lower = Vec::new();
    wire::peek(packet, &mut lower)?;
    let end = 12 + lower.len() + 4;
    let mut plain = packet.get(..end)?.to_vec();
    plain[11] = 0;
    Some(plain)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use hickory_proto::rr::Name;

    use super::*;
    use crate::resolve::Client;

    /// Every prepared answer equals what the full path encodes for the same query.
    #[test]
    fn prepared_answers_match_the_full_path() {
        let topo = crate::topology::load(&[concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/zones/scenarios/reference-lab.yaml"
        )])
        .expect("lab");
        let resolver = Resolver::new(topo);
        let answers = Answers::build(&resolver);
        assert!(
            answers.len() > 50,
            "only {} prepared answers",
            answers.len()
        );
        let client = Client {
            src: "10.0.1.25".parse().expect("ip"),
            local: None,
        };
        let view = resolver.view_key(client);
        for (qname, qtype) in [
            ("EC2.us-east-1.amazonaws.com.", RecordType::A),
            ("db.internal.example.com.", RecordType::AAAA),
            (
                "vpce-0e1c2a3b4d5f60001-k3x9p2qz.ec2.us-east-1.vpce.amazonaws.com.",
                RecordType::A,
            ),
        ] {
            let name = Name::from_str(qname).expect("name");
            let mut packet = Vec::new();
            wire::build_query(77, &name, qtype, true, &mut packet);
            let mut lower = Vec::new();
            let peek = wire::peek(&packet, &mut lower).expect("peek");
            let mut key = Vec::new();
            let prepared = answers
                .get(view, u16::from(qtype), &lower, &mut key)
                .expect("prepared");
            let mut fast = Vec::new();
            assert!(wire::encode_prepared(
                &packet,
                &peek,
                &prepared.reply,
                1232,
                &mut fast
            ));
            let query = wire::parse_query(&packet).expect("query");
            let d = resolver.resolve(client, &name, qtype);
            let Outcome::Answer {
                rcode,
                authoritative,
                answers,
                authority,
            } = d.outcome
            else {
                panic!("not an answer")
            };
            let reply = Reply {
                rcode,
                authoritative,
                answers: &answers,
                authority: &authority,
                additional: &[],
                ede: None,
            };
            let mut full = Vec::new();
            wire::encode_reply(&query, &reply, 1232, &mut full);
            assert_eq!(fast, full, "{qname} {qtype}");
        }
    }
}
