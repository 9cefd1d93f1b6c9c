//! Prepared answers, as NSD does it, but filled on first use: the first query for a name with a fixed local answer
//! (an endpoint's private DNS name, a private zone record, a vpce name) goes through the decision engine and its
//! encoded reply is kept; later queries for the same view, name and type are answered by copying bytes.
//!
//! The table is a memo of the engine, never a second implementation. It lives in the topology snapshot, so a reload
//! starts it afresh. Only `Decision::fixed` answers enter it (no wildcard, NXDOMAIN or synthesized names), so its
//! size is bounded by the topology, and by `MAX_ENTRIES` besides.
//!
//! The same kind of table remembers where a forwarded question goes (its route, when the decision is fixed), so a
//! query the forwarder's cache can answer is replayed from the cache's encoded bytes without asking the engine.

use std::sync::RwLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::engine::Admitted;
use crate::hash::{self, FastMap};
use crate::upstream::Route;
use crate::wire::Prepared;

const SHARDS: usize = 16;
const MAX_ENTRIES: usize = 200_000;

/// Query types whose fixed answers are kept (a name's NODATA for every possible type would not be bounded).
pub(crate) fn preparable(qtype: RecordType) -> bool {
    matches!(
        qtype,
        RecordType::A
            | RecordType::AAAA
            | RecordType::CNAME
            | RecordType::TXT
            | RecordType::MX
            | RecordType::SRV
            | RecordType::PTR
            | RecordType::NS
            | RecordType::SOA
            | RecordType::CAA
            | RecordType::HTTPS
            | RecordType::SVCB
    )
}

/// One prepared reply and what the metrics need to know about it.
pub(crate) struct Entry {
    pub(crate) reply: Prepared,
    pub(crate) kind: &'static str,
    pub(crate) rcode: ResponseCode,
}

type Shard<T> = RwLock<FastMap<Box<[u8]>, T>>;

/// Where a forwarded question goes, for the cache's fast path.
pub(crate) struct Forwarded {
    pub(crate) route: Route,
    pub(crate) kind: &'static str,
}

pub(crate) struct Answers<T = Entry> {
    shards: Vec<Shard<T>>,
    entries: AtomicUsize,
}

/// Writes the lookup key into `buf`: the admitted view (4 bytes; only the engine's admission makes one), query type
/// (2 bytes), lowercase question name in wire form.
fn key_into(buf: &mut Vec<u8>, admitted: Admitted, qtype: u16, lower_name: &[u8]) -> usize {
    let view = admitted.view();
    let tag = view.vpc.map_or(0, |v| v + 1)
        | (u32::from(view.via_inbound) << 31)
        | (u32::from(admitted.dns64()) << 30);
    buf.clear();
    buf.extend_from_slice(&tag.to_be_bytes());
    buf.extend_from_slice(&qtype.to_be_bytes());
    buf.extend_from_slice(lower_name);
    (hash::of(buf) % SHARDS as u64) as usize
}

impl<T> Answers<T> {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            entries: AtomicUsize::new(0),
        }
    }

    /// Runs `use_entry` on the prepared answer for a question in `view`, if there is one.
    pub(crate) fn with<R>(
        &self,
        view: Admitted,
        qtype: u16,
        lower_name: &[u8],
        key: &mut Vec<u8>,
        use_entry: impl FnOnce(&T) -> R,
    ) -> Option<R> {
        let shard = key_into(key, view, qtype, lower_name);
        let map = self.shards[shard].read().ok()?;
        map.get(key.as_slice()).map(use_entry)
    }

    /// Keeps an answer the engine just gave, unless the table is full.
    pub(crate) fn insert(&self, view: Admitted, qtype: u16, lower_name: &[u8], entry: T) {
        if self.entries.load(Ordering::Relaxed) >= MAX_ENTRIES {
            return;
        }
        let mut key = Vec::with_capacity(6 + lower_name.len());
        let shard = key_into(&mut key, view, qtype, lower_name);
        if let Ok(mut map) = self.shards[shard].write()
            && map.insert(key.into_boxed_slice(), entry).is_none()
        {
            self.entries.fetch_add(1, Ordering::Relaxed);
        }
    }
}
