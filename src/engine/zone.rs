//! A private zone as Route 53 answers from it: exact names, empty non-terminals, wildcards (RFC 4592), CNAMEs,
//! NODATA and NXDOMAIN with the zone's SOA. Shared by customer private hosted zones and the hidden zones of
//! endpoints with private DNS, which follow the same rules.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{LowerName, Name, Record, RecordType};

use super::Trace;
use super::authority::{Answer, soa_for};

#[derive(Debug)]
pub(crate) struct Zone {
    pub(crate) name: Name,
    pub(crate) label: String,
    /// Endpoint private DNS that only inbound-endpoint queries see (S3 `private_dns_only_for_inbound_resolver_endpoint`).
    pub(crate) inbound_only: bool,
    /// Owner name -> records (already expanded: aliases resolved to addresses).
    pub(crate) records: HashMap<LowerName, Vec<Record>>,
    /// Names that exist only because something lives below them (empty non-terminals).
    pub(crate) parents: HashSet<LowerName>,
    /// Owner -> the endpoint its alias records point at, for the trace.
    pub(crate) aliases: HashMap<LowerName, String>,
    pub(crate) reference: &'static str,
}

impl Zone {
    pub(crate) fn new(name: Name, label: String, reference: &'static str) -> Self {
        Self {
            name,
            label,
            inbound_only: false,
            records: HashMap::new(),
            parents: HashSet::new(),
            aliases: HashMap::new(),
            reference,
        }
    }

    /// Fills `parents` once every record is in.
    pub(crate) fn seal(&mut self) {
        for owner in self.records.keys() {
            let mut n = owner.base_name();
            while n.num_labels() > self.name.num_labels() {
                self.parents.insert(n.clone());
                n = n.base_name();
            }
        }
    }

    /// The records owned by `lower` (wildcard-synthesized when `.1`; no records for the apex and empty
    /// non-terminals); `None`: the name does not exist.
    fn find(&self, lower: &LowerName) -> Option<(Option<&Vec<Record>>, bool)> {
        if let Some(recs) = self.records.get(lower) {
            return Some((Some(recs), false));
        }
        if self.parents.contains(lower) || *lower == LowerName::new(&self.name) {
            return Some((None, false));
        }
        // Wildcard: `*.` + the closest existing ancestor, within the zone.
        let mut probe = lower.base_name();
        while probe.num_labels() >= self.name.num_labels() {
            if let Some(recs) = self.records.get(&wildcard_of(&probe)) {
                return Some((Some(recs), true));
            }
            if self.records.contains_key(&probe)
                || self.parents.contains(&probe)
                || probe.num_labels() == self.name.num_labels()
            {
                return None;
            }
            probe = probe.base_name();
        }
        None
    }

    /// The answer of this zone for `qname` (lowercase, fully qualified); `fixed` is cleared for names that are
    /// missing or synthesized (unbounded in number: never prepared).
    pub(crate) fn answer(
        &self,
        soa: &Record,
        qname: &Name,
        qtype: RecordType,
        trace: &mut Trace,
        fixed: &mut bool,
    ) -> Answer {
        let lower = LowerName::new(qname);
        let Some((owner_recs, synthesized)) = self.find(&lower) else {
            *fixed = false;
            trace.add(self.reference, || format!(
                "{} is the most specific zone for {qname} and has no such name: NXDOMAIN, with no fallback to public DNS",
                self.label
            ));
            return Answer::negative(ResponseCode::NXDomain, soa_for(soa, &self.name));
        };
        if synthesized {
            *fixed = false;
        }
        let recs: Vec<Record> = owner_recs
            .map(|r| r.iter().map(|r| rename(r, qname)).collect())
            .unwrap_or_default();
        let how = if synthesized { " (wildcard)" } else { "" };
        let cname: Vec<Record> = recs
            .iter()
            .filter(|r| r.record_type() == RecordType::CNAME)
            .cloned()
            .collect();
        if !cname.is_empty() && qtype != RecordType::CNAME {
            trace.add(self.reference, || {
                format!("{} answers {qname}{how} with a CNAME", self.label)
            });
            return Answer::records(cname);
        }
        let matching: Vec<Record> = recs
            .into_iter()
            .filter(|r| qtype == RecordType::ANY || r.record_type() == qtype)
            .collect();
        if matching.is_empty() {
            trace.add("§6.4 [INF]", || format!("{} has {qname}{how} but no {qtype} record: NODATA (NOERROR, empty answer, SOA)", self.label));
            return Answer::negative(ResponseCode::NoError, soa_for(soa, &self.name));
        }
        let alias = self
            .owner_alias(qname, synthesized)
            .map(|a| format!(": an alias record to {a}"))
            .unwrap_or_default();
        let reference = if alias.is_empty() {
            self.reference
        } else {
            "§6.4, §6.5"
        };
        trace.add(reference, || {
            format!("{} answers {qname}{how} {qtype}{alias}", self.label)
        });
        Answer::records(matching)
    }

    /// The alias target description of the record set that answered `qname` (exact or wildcard owner).
    fn owner_alias(&self, qname: &Name, synthesized: bool) -> Option<&String> {
        let owner = if synthesized {
            wildcard_of(&LowerName::new(&qname.base_name()))
        } else {
            LowerName::new(qname)
        };
        self.aliases.get(&owner)
    }
}

/// `*.` + `parent`.
fn wildcard_of(parent: &LowerName) -> LowerName {
    LowerName::new(
        &Name::from_str("*")
            .unwrap_or_default()
            .append_domain(&Name::from(parent))
            .unwrap_or_default(),
    )
}

/// A copy of `r` owned by `owner` (wildcard synthesis, case of the question).
pub(crate) fn rename(r: &Record, owner: &Name) -> Record {
    let mut r = r.clone();
    r.name = owner.clone();
    r
}
