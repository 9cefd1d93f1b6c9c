//! The forwarder's answer cache, kept encoded: an upstream answer is encoded once, when it arrives, against a
//! question at offset 12 (the client's question has the same length whatever its case), with the offsets of its
//! TTLs. A hit copies the bytes, patches id, flags, question case and TTLs, and sends: no hickory `Record` is
//! decoded or encoded per hit. Slow paths that need records (serve-stale, a local CNAME in front of the forwarded
//! name) decode the stored bytes.
//!
//! Keys are the lowercase wire name, the query type and the route, hashed with a per-process seeded FNV-1a (the
//! names come from clients: the seed keeps colliding sets from being prepared in advance). Shards keep the two
//! socket threads off each other's lock.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};
use hickory_proto::serialize::binary::BinDecodable;
use tokio::time::Instant;

use super::{Outcome, STALE_TTL, Via, ede};
use crate::hash::SeededFnv;
use crate::wire::{self, Peek, Prepared, Query, Reply};

const HEADER_LEN: usize = 12;
/// Shards of the cache; a small cache gets fewer, so its capacity stays exact.
const MAX_SHARDS: usize = 16;
const MIN_ENTRIES_PER_SHARD: usize = 1024;

/// Writes the cache key of a question into `buf`: lowercase wire name, query type, route name.
pub(super) fn key_into(buf: &mut Vec<u8>, lower_wire: &[u8], qtype: u16, route: &str) {
    buf.clear();
    buf.extend_from_slice(lower_wire);
    buf.extend_from_slice(&qtype.to_be_bytes());
    buf.extend_from_slice(route.as_bytes());
}

/// The lowercase wire form of `name` (always ending in the root label).
pub(super) fn lower_wire(name: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        // Labels of a valid Name are at most 63 octets.
        out.push(u8::try_from(label.len()).unwrap_or(63));
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out
}

/// One encoded reply body and where its TTLs are.
struct Encoded {
    reply: Prepared,
    answers: u16,
    /// Offsets of every record's TTL from the start of the body.
    ttl_at: Box<[u16]>,
}

impl Encoded {
    fn new(
        question: &Question,
        rcode: ResponseCode,
        answers: &[Record],
        authority: &[Record],
    ) -> Option<Self> {
        let query = question.query();
        let reply = Reply {
            rcode,
            authoritative: false,
            answers,
            authority,
            additional: &[],
            ede: None,
        };
        let prepared = Prepared::new(&query, &reply, None)?;
        let ttl_at = ttl_offsets(prepared.body(), answers.len() + authority.len())?;
        Some(Self {
            reply: prepared,
            answers: u16::try_from(answers.len()).ok()?,
            ttl_at,
        })
    }

    /// Writes the reply for the query in `packet` into `out`, every TTL given by `ttl`; `false` if it would exceed
    /// `limit`.
    fn write(
        &self,
        packet: &[u8],
        peek: &Peek,
        body_at: usize,
        limit: usize,
        ttl: impl Fn(u32) -> u32,
        out: &mut Vec<u8>,
    ) -> bool {
        if !wire::encode_prepared(packet, peek, &self.reply, limit, out) {
            return false;
        }
        patch_ttls(out, body_at, &self.ttl_at, ttl)
    }

    /// The records back, for the paths that combine them with others.
    fn records(
        &self,
        question: &Question,
        ttl: impl Fn(u32) -> u32,
    ) -> Option<(Vec<Record>, Vec<Record>)> {
        let body = self.reply.body();
        let mut msg = Vec::with_capacity(HEADER_LEN + question.bytes.len() + body.len());
        let total = u16::try_from(self.ttl_at.len()).ok()?;
        msg.extend_from_slice(&[0, 0, 0x81, 0x80, 0, 1]);
        msg.extend_from_slice(&self.answers.to_be_bytes());
        msg.extend_from_slice(&(total - self.answers).to_be_bytes());
        msg.extend_from_slice(&[0, 0]);
        msg.extend_from_slice(&question.bytes);
        let body_at = msg.len();
        msg.extend_from_slice(body);
        patch_ttls(&mut msg, body_at, &self.ttl_at, ttl).then_some(())?;
        let mut m = Message::from_vec(&msg).ok()?;
        Some((
            std::mem::take(&mut m.answers),
            std::mem::take(&mut m.authorities),
        ))
    }
}

fn patch_ttls(msg: &mut [u8], body_at: usize, ttl_at: &[u16], ttl: impl Fn(u32) -> u32) -> bool {
    for off in ttl_at {
        let at = body_at + usize::from(*off);
        let Some(field) = msg.get_mut(at..at + 4) else {
            return false;
        };
        let old = u32::from_be_bytes([field[0], field[1], field[2], field[3]]);
        field.copy_from_slice(&ttl(old).to_be_bytes());
    }
    true
}

/// Walks `count` records of a body we encoded (names end in a root label or a pointer) and returns their TTL offsets.
fn ttl_offsets(body: &[u8], count: usize) -> Option<Box<[u16]>> {
    let mut pos = 0;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        loop {
            let len = *body.get(pos)?;
            if len & 0xC0 == 0xC0 {
                pos += 2;
                break;
            }
            pos += 1 + usize::from(len);
            if len == 0 {
                break;
            }
        }
        let ttl = pos + 4;
        out.push(u16::try_from(ttl).ok()?);
        let rdlen = body.get(ttl + 4..ttl + 6)?;
        pos = ttl + 6 + usize::from(u16::from_be_bytes([rdlen[0], rdlen[1]]));
    }
    (pos == body.len()).then(|| out.into_boxed_slice())
}

/// The question of a cache entry, rebuilt from its key.
struct Question {
    name: Name,
    qtype: RecordType,
    bytes: Vec<u8>,
}

impl Question {
    fn from_key(key: &[u8]) -> Option<Self> {
        let mut pos = 0;
        loop {
            let len = usize::from(*key.get(pos)?);
            pos += 1 + len;
            if len == 0 {
                break;
            }
        }
        let qtype = key.get(pos..pos + 2)?;
        let qtype = RecordType::from(u16::from_be_bytes([qtype[0], qtype[1]]));
        let name = Name::from_bytes(&key[..pos]).ok()?;
        let mut bytes = key[..pos + 2].to_vec();
        bytes.extend_from_slice(&u16::from(DNSClass::IN).to_be_bytes());
        Some(Self { name, qtype, bytes })
    }

    fn query(&self) -> Query<'_> {
        Query {
            id: 0,
            opcode: 0,
            recursion_desired: false,
            checking_disabled: false,
            name: self.name.clone(),
            qtype: self.qtype,
            qclass: DNSClass::IN,
            question: &self.bytes,
            edns: None,
        }
    }
}

/// A cached answer.
pub(super) struct Entry {
    rcode: ResponseCode,
    /// Without DNSSEC records the client did not ask for (RFC 4035 section 3.2.1).
    plain: Encoded,
    /// With them, when the answer was fetched with DO and had any.
    signed: Option<Encoded>,
    stored: Instant,
    expires: Instant,
    stale_until: Instant,
    /// Fetched with DO: holds the signatures, so it can serve DO and non-DO queries.
    dnssec_ok: bool,
    /// Position in the eviction order.
    order: (Instant, u64),
}

impl Entry {
    /// Encodes an upstream answer whose records are already TTL-capped; `None` if it cannot be replayed.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        key: &[u8],
        rcode: ResponseCode,
        answers: &[Record],
        authority: &[Record],
        dnssec_ok: bool,
        now: Instant,
        ttl: Duration,
        stale_for: Duration,
    ) -> Option<Self> {
        let question = Question::from_key(key)?;
        let qtype = question.qtype;
        let plain_answers = super::strip_dnssec(answers, false, qtype);
        let plain_authority = super::strip_dnssec(authority, false, qtype);
        let stripped =
            plain_answers.len() != answers.len() || plain_authority.len() != authority.len();
        let plain = Encoded::new(&question, rcode, &plain_answers, &plain_authority)?;
        let signed = if dnssec_ok && stripped {
            Some(Encoded::new(&question, rcode, answers, authority)?)
        } else {
            None
        };
        Some(Self {
            rcode,
            plain,
            signed,
            stored: now,
            expires: now + ttl,
            stale_until: now + ttl + stale_for,
            dnssec_ok,
            order: (now, 0),
        })
    }

    fn body(&self, dnssec_ok: bool) -> &Encoded {
        match &self.signed {
            Some(signed) if dnssec_ok => signed,
            _ => &self.plain,
        }
    }

    fn age(&self, now: Instant) -> u32 {
        u32::try_from(now.saturating_duration_since(self.stored).as_secs()).unwrap_or(u32::MAX)
    }

    fn outcome(
        &self,
        key: &[u8],
        dnssec_ok: bool,
        ttl: impl Fn(u32) -> u32,
        via: Via,
    ) -> Option<Outcome> {
        let question = Question::from_key(key)?;
        let (answers, authority) = self.body(dnssec_ok).records(&question, ttl)?;
        Some(Outcome {
            rcode: self.rcode,
            answers,
            authority,
            via,
            ede: None,
            upstream_packets: 0,
        })
    }
}

/// Poisoning only means another thread panicked mid-update; the maps stay structurally valid.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Fixed-capacity cache; eviction order is the end of the stale window, so dead and soon-dead entries go first.
pub(super) struct Cache {
    hasher: SeededFnv,
    shards: Box<[Mutex<Shard>]>,
}

struct Shard {
    capacity: usize,
    map: HashMap<Box<[u8]>, Entry, SeededFnv>,
    order: BTreeMap<(Instant, u64), Box<[u8]>>,
    seq: u64,
}

impl Cache {
    pub(super) fn new(capacity: usize, seed: u64) -> Self {
        let hasher = SeededFnv::new(seed);
        let n = (capacity / MIN_ENTRIES_PER_SHARD).clamp(1, MAX_SHARDS);
        let shards = (0..n)
            .map(|i| {
                // The first shards take the remainder, so the capacities add up to `capacity`.
                let cap = capacity / n + usize::from(i < capacity % n);
                Mutex::new(Shard {
                    capacity: cap,
                    map: HashMap::with_hasher(hasher),
                    order: BTreeMap::new(),
                    seq: 0,
                })
            })
            .collect();
        Self { hasher, shards }
    }

    fn shard(&self, key: &[u8]) -> MutexGuard<'_, Shard> {
        let i = (self.hasher.hash_one(key) % self.shards.len() as u64) as usize;
        lock(&self.shards[i])
    }

    pub(super) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).map.len()).sum()
    }

    pub(super) fn insert(&self, key: &[u8], entry: Entry, now: Instant) {
        self.shard(key).insert(key.into(), entry, now);
    }

    /// Writes the reply from a fresh entry for the query in `packet` (`lower` is its lowercase question name) into
    /// `out`; `false` when there is none or it does not fit `limit`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn answer(
        &self,
        key: &[u8],
        packet: &[u8],
        peek: &Peek,
        lower: &[u8],
        limit: usize,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> bool {
        let shard = self.shard(key);
        let Some(e) = shard.map.get(key) else {
            return false;
        };
        let dnssec_ok = peek.edns.is_some_and(|e| e.dnssec_ok);
        if e.expires <= now || (dnssec_ok && !e.dnssec_ok) {
            return false;
        }
        let age = e.age(now);
        let body_at = HEADER_LEN + lower.len() + 4;
        e.body(dnssec_ok)
            .write(packet, peek, body_at, limit, |t| t.saturating_sub(age), out)
    }

    /// A fresh entry, as records with their TTLs aged.
    pub(super) fn fresh(&self, key: &[u8], dnssec_ok: bool, now: Instant) -> Option<Outcome> {
        let mut shard = self.shard(key);
        let e = shard.map.get(key)?;
        if e.stale_until <= now {
            shard.remove(key);
            return None;
        }
        if e.expires <= now || (dnssec_ok && !e.dnssec_ok) {
            return None;
        }
        let age = e.age(now);
        e.outcome(key, dnssec_ok, |t| t.saturating_sub(age), Via::Cache)
    }

    /// An expired entry within its stale window, TTLs set to 30 s, with the EDE saying why (RFC 8767).
    pub(super) fn stale(
        &self,
        key: &[u8],
        dnssec_ok: bool,
        now: Instant,
        why: &str,
    ) -> Option<Outcome> {
        let mut shard = self.shard(key);
        let e = shard.map.get(key)?;
        if e.stale_until <= now {
            shard.remove(key);
            return None;
        }
        let code = if e.rcode == ResponseCode::NXDomain {
            ede::STALE_NXDOMAIN_ANSWER
        } else {
            ede::STALE_ANSWER
        };
        let mut o = e.outcome(key, dnssec_ok, |_| STALE_TTL, Via::Stale)?;
        o.ede = Some((code, format!("stale answer: {why}")));
        Some(o)
    }
}

impl Shard {
    fn remove(&mut self, key: &[u8]) {
        if let Some(e) = self.map.remove(key) {
            self.order.remove(&e.order);
        }
    }

    fn insert(&mut self, key: Box<[u8]>, mut entry: Entry, now: Instant) {
        if self.capacity == 0 {
            return;
        }
        self.remove(&key);
        // Drop what is past its stale window, then the soonest-expiring while full.
        while let Some(((until, _), _)) = self.order.first_key_value() {
            if *until > now && self.map.len() < self.capacity {
                break;
            }
            if let Some((_, k)) = self.order.pop_first() {
                self.map.remove(&k);
            }
        }
        self.seq += 1;
        entry.order = (entry.stale_until, self.seq);
        self.order.insert(entry.order, key.clone());
        self.map.insert(key, entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::RData;
    use hickory_proto::rr::rdata::{A, SOA};

    fn key(name: &str, qtype: RecordType) -> Vec<u8> {
        let mut k = Vec::new();
        key_into(
            &mut k,
            &lower_wire(&Name::from_ascii(name).unwrap()),
            qtype.into(),
            "upstream",
        );
        k
    }

    #[test]
    fn question_round_trips_through_the_key() {
        let q = Question::from_key(&key("Www.Example.COM.", RecordType::AAAA)).unwrap();
        assert_eq!(q.name.to_string(), "www.example.com.");
        assert_eq!(q.qtype, RecordType::AAAA);
        assert_eq!(q.bytes.len(), 17 + 4);
    }

    #[test]
    fn stored_answer_decodes_to_the_same_records_with_aged_ttls() {
        let k = key("a.example.", RecordType::A);
        let owner = Name::from_ascii("a.example.").unwrap();
        let answers = vec![
            Record::from_rdata(owner.clone(), 300, RData::A(A::new(192, 0, 2, 1))),
            Record::from_rdata(owner.clone(), 200, RData::A(A::new(192, 0, 2, 2))),
        ];
        let soa = SOA::new(owner.clone(), owner.clone(), 1, 2, 3, 4, 5);
        let authority = vec![Record::from_rdata(owner, 60, RData::SOA(soa))];
        let now = Instant::now();
        let e = Entry::new(
            &k,
            ResponseCode::NoError,
            &answers,
            &authority,
            false,
            now,
            Duration::from_secs(60),
            Duration::ZERO,
        )
        .unwrap();
        assert_eq!(e.plain.ttl_at.len(), 3);
        let o = e.outcome(&k, false, |t| t - 10, Via::Cache).unwrap();
        assert_eq!(
            o.answers.iter().map(|r| r.ttl).collect::<Vec<_>>(),
            [290, 190]
        );
        assert_eq!(o.answers[1].data, answers[1].data);
        assert_eq!(o.authority[0].ttl, 50);
        assert_eq!(o.authority[0].data, authority[0].data);
    }
}
