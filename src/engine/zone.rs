//! A private zone as Route 53 answers from it: exact names, empty non-terminals, wildcards (RFC 4592), CNAMEs,
//! NODATA and NXDOMAIN with the zone's SOA. Shared by customer private hosted zones and the hidden zones of
//! endpoints with private DNS, which follow the same rules.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, Record, RecordType};

use super::Trace;
use super::authority::{Answer, Ask, soa_for};
use super::key::{Key, Wire, key, parents};
use crate::hash::{FastMap, FastSet};

#[derive(Debug)]
pub(crate) struct Zone {
    pub(crate) name: Name,
    pub(crate) label: String,
    /// Endpoint private DNS that only inbound-endpoint queries see (S3 `private_dns_only_for_inbound_resolver_endpoint`).
    pub(crate) inbound_only: bool,
    /// Owner name -> records (already expanded: aliases resolved to addresses), each set at its exact size: a
    /// topology holds 100,000s of one-record sets and a `Vec` grown by push keeps room for four.
    records: FastMap<Key, Box<[Record]>>,
    /// Names that exist only because something lives below them (empty non-terminals).
    parents: FastSet<Key>,
    /// Owner -> the endpoint its alias records point at, for the trace.
    pub(crate) aliases: FastMap<Key, String>,
    pub(crate) reference: &'static str,
}

impl Zone {
    pub(crate) fn new(name: Name, label: String, reference: &'static str) -> Self {
        Self {
            name,
            label,
            inbound_only: false,
            records: FastMap::default(),
            parents: FastSet::default(),
            aliases: FastMap::default(),
            reference,
        }
    }

    /// Adds `recs` to the records of `owner`.
    pub(crate) fn add(&mut self, owner: &Name, recs: impl IntoIterator<Item = Record>) {
        let set = self.records.entry(key(owner)).or_default();
        let recs = recs.into_iter();
        let mut all = std::mem::take(set).into_vec();
        all.reserve_exact(recs.size_hint().0);
        all.extend(recs);
        *set = all.into_boxed_slice();
    }

    /// Fills `parents` once every record is in.
    pub(crate) fn seal(&mut self) {
        let apex = usize::from(self.name.num_labels());
        for owner in self.records.keys() {
            let below_apex = parents(owner).count().saturating_sub(apex + 1);
            self.parents
                .extend(parents(owner).take(below_apex).map(Key::from));
        }
    }

    /// The records owned by `name` (wildcard-synthesized when `.1`; no records for the apex and empty
    /// non-terminals); `None`: the name does not exist. `name` is at or below the apex.
    fn find(&self, name: &Wire) -> Option<(Option<&[Record]>, bool)> {
        if let Some(recs) = self.records.get(name.suffix(0)) {
            return Some((Some(&**recs), false));
        }
        // Below the apex: how many labels to strip to reach it.
        let depth = name
            .labels()
            .saturating_sub(usize::from(self.name.num_labels()));
        if depth == 0 || self.parents.contains(name.suffix(0)) {
            return Some((None, false));
        }
        // Wildcard: `*.` + the closest existing ancestor, within the zone.
        let mut buf = [0; Name::MAX_LENGTH + 3];
        for skip in 1..=depth {
            if let Some(recs) = self.records.get(name.wildcard(skip, &mut buf)) {
                return Some((Some(&**recs), true));
            }
            let probe = name.suffix(skip);
            if skip == depth || self.records.contains_key(probe) || self.parents.contains(probe) {
                return None;
            }
        }
        None
    }

    /// The answer of this zone for `qname` (lowercase, fully qualified); `fixed` is cleared for names that are
    /// missing or synthesized (unbounded in number: never prepared).
    pub(crate) fn answer(
        &self,
        soa: &Record,
        ask: &Ask<'_>,
        trace: &mut Trace,
        fixed: &mut bool,
    ) -> Answer {
        let (qname, qtype) = (ask.qname, ask.qtype);
        let Some((owner_recs, synthesized)) = self.find(ask.wire) else {
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
            .owner_alias(ask.wire, synthesized)
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

    /// The alias target description of the record set that answered `name` (exact or wildcard owner).
    fn owner_alias(&self, name: &Wire, synthesized: bool) -> Option<&String> {
        let mut buf = [0; Name::MAX_LENGTH + 3];
        let owner = if synthesized {
            name.wildcard(1, &mut buf)
        } else {
            name.suffix(0)
        };
        self.aliases.get(owner)
    }
}

/// A copy of `r` owned by `owner` (wildcard synthesis, case of the question).
pub(crate) fn rename(r: &Record, owner: &Name) -> Record {
    let mut r = r.clone();
    r.name = owner.clone();
    r
}
