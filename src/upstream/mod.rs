//! Forwarding to the upstream resolvers ("everything else") and to the targets of Resolver forward rules, the
//! way the Route 53 VPC Resolver does it: a target is picked at random and the query is retried on another
//! target when there is no answer; answers are cached (shared by all views) and may be served beyond their
//! TTL when the upstreams fail (serve-stale, RFC 8767).
//!
//! The design goals come from measuring a naive forwarder against a black-holed target: every client query
//! must end (answer or SERVFAIL) within [`ForwarderConfig::deadline`], the packets per client query are
//! bounded by [`ForwarderConfig::max_attempts`], identical concurrent queries share one upstream exchange,
//! the number of concurrent exchanges (and so of open sockets) is bounded, failing targets are held down with
//! exponential back-off (RFC 9520) and the cache has a fixed number of entries.

mod cache;
mod transport;

pub use transport::{Datagram, Io, Sockets, Stream, Transport};

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::wire::Peek;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::{Instant, timeout_at};
use tracing::{debug, warn};

/// EDNS UDP payload size advertised upstream (DNS flag day 2020).
pub const EDNS_PAYLOAD: u16 = 1232;
/// TTL given to stale answers (RFC 8767 section 4 recommends 30 s).
pub const STALE_TTL: u32 = 30;
/// Negative answers are kept at most this long whatever the SOA says (RFC 2308 section 5: 1 to 3 hours).
pub const MAX_NEGATIVE_TTL: Duration = Duration::from_secs(3 * 3600);

/// RFC 8914 Extended DNS Error codes used here.
pub mod ede {
    /// Other error (the text says what).
    pub const OTHER: u16 = 0;
    /// Stale Answer: served from the cache beyond its TTL.
    pub const STALE_ANSWER: u16 = 3;
    /// Stale NXDOMAIN Answer.
    pub const STALE_NXDOMAIN_ANSWER: u16 = 19;
    /// No Reachable Authority: no target answered in time (or all are held down).
    pub const NO_REACHABLE_AUTHORITY: u16 = 22;
    /// Network Error: sending or receiving failed (e.g. ICMP port unreachable).
    pub const NETWORK_ERROR: u16 = 23;
}

/// The receive buffer for one UDP exchange: larger than the payload we advertise, small enough that
/// `max_in_flight * max_attempts` buffers stay a few MB.
const UDP_BUFFER: usize = 4096;
/// Extra time the first caller of an exchange waits beyond its deadline for the exchange's own verdict
/// (the exchange itself is bounded by the same deadline; this only absorbs scheduling jitter).
const LEADER_GRACE: Duration = Duration::from_millis(100);

/// Tunables of the [`Forwarder`].
#[derive(Debug, Clone)]
pub struct ForwarderConfig {
    /// How long to wait for an answer to one packet before trying the next target.
    pub attempt_timeout: Duration,
    /// Bound on a whole client query: it ends (answer, stale answer or SERVFAIL) by then.
    pub deadline: Duration,
    /// Upstream packets per client query, a TCP retry after TC included.
    pub max_attempts: usize,
    /// Distinct upstream exchanges at once, over all routes (bounds sockets and memory).
    pub max_in_flight: usize,
    /// Distinct upstream exchanges at once for one route, so one slow rule can't starve the others.
    pub max_in_flight_per_route: usize,
    /// Cache capacity; when full, the entries that expire first are evicted.
    pub cache_entries: usize,
    /// Cap on cached TTLs.
    pub max_ttl: Duration,
    /// How long expired entries are kept for serve-stale (RFC 8767).
    pub stale_for: Duration,
    /// First hold-down of a failing target (RFC 9520), doubled per consecutive failed exchange...
    pub holddown_min: Duration,
    /// ...up to this.
    pub holddown_max: Duration,
    /// The time cache entries and hold-downs are measured in.
    pub clock: Arc<dyn Clock>,
    /// The order in which a query tries the targets of a route.
    pub order: Arc<dyn TargetOrder>,
    /// How targets are reached: the host's sockets, or a test's scripted network.
    pub transport: Arc<dyn Transport>,
}

/// The time the cache and the hold-downs see. Attempt timeouts and deadlines stay on tokio's timers, so a
/// test that moves this clock ages the cache without waiting, and never makes a query wait longer.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now.
    fn now(&self) -> Instant;
}

/// tokio's clock (which follows tokio's paused time in tests).
#[derive(Debug, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// tokio's clock plus an offset that only moves forward when told: for tests of TTLs, serve-stale and hold-down.
#[derive(Debug, Default)]
pub struct ManualClock {
    offset: Mutex<Duration>,
}

impl ManualClock {
    /// Moves this clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        *lock(&self.offset) += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        Instant::now() + *lock(&self.offset)
    }
}

/// Arranges the live targets of a route into the order a query tries them.
pub trait TargetOrder: Send + Sync + std::fmt::Debug {
    /// Reorders `targets` in place.
    fn arrange(&self, targets: &mut [SocketAddr]);
}

/// Random order (the VPC Resolver's): Fisher-Yates with xorshift64*, seeded from the time unless given a seed. The
/// order only spreads load, so a small PRNG is enough.
#[derive(Debug)]
pub struct Shuffle {
    state: AtomicU64,
}

impl Shuffle {
    /// A shuffle seeded from the time and process id.
    pub fn new() -> Self {
        Self::seeded(time_seed())
    }

    /// A shuffle that gives the same sequence of orders for the same seed.
    pub fn seeded(seed: u64) -> Self {
        Self {
            state: AtomicU64::new(seed | 1),
        }
    }

    fn next(&self) -> u64 {
        // Racing updates only make it "more random".
        let mut x = self.state.load(Ordering::Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state.store(x, Ordering::Relaxed);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

impl Default for Shuffle {
    fn default() -> Self {
        Self::new()
    }
}

impl TargetOrder for Shuffle {
    fn arrange(&self, targets: &mut [SocketAddr]) {
        for i in (1..targets.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            targets.swap(i, j);
        }
    }
}

/// The targets in the order the route lists them (tests of failover).
#[derive(Debug, Default)]
pub struct AsListed;

impl TargetOrder for AsListed {
    fn arrange(&self, _targets: &mut [SocketAddr]) {}
}

fn time_seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x9E37_79B9_7F4A_7C15)
        ^ u64::from(std::process::id()).rotate_left(32)
}

impl Default for ForwarderConfig {
    fn default() -> Self {
        Self {
            attempt_timeout: Duration::from_millis(800),
            deadline: Duration::from_millis(2500),
            max_attempts: 3,
            max_in_flight: 1024,
            max_in_flight_per_route: 256,
            cache_entries: 50_000,
            max_ttl: Duration::from_secs(86_400),
            stale_for: Duration::from_secs(86_400),
            holddown_min: Duration::from_secs(1),
            holddown_max: Duration::from_secs(60),
            clock: Arc::new(TokioClock),
            order: Arc::new(Shuffle::new()),
            transport: Arc::new(Sockets),
        }
    }
}

/// Where a query is forwarded: the default upstreams or the targets of one Resolver rule.
#[derive(Debug, Clone)]
pub struct Route {
    /// "upstream" or a rule id; part of the cache key because different rules may answer differently.
    pub name: Arc<str>,
    /// Target resolvers, tried in random order.
    pub targets: Arc<[SocketAddr]>,
    /// Outbound endpoint address: used as source when the host has it, else the default source.
    pub source: Option<IpAddr>,
}

/// Where the answer of [`Forwarder::forward`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A fresh cache entry.
    Cache,
    /// An expired cache entry, served because the targets failed.
    Stale,
    /// This target (the one that answered, or the last one tried when none did).
    Target(SocketAddr),
    /// Nothing was sent: loop, all targets held down, too busy.
    NotSent,
}

/// The result of one forwarded query.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Response code to give the client.
    pub rcode: ResponseCode,
    /// Answer records; TTLs already decremented for cache hits; stale answers get TTL 30.
    pub answers: Vec<Record>,
    /// Authority records, e.g. the SOA of a negative answer.
    pub authority: Vec<Record>,
    /// Where the answer came from.
    pub via: Via,
    /// RFC 8914 extended error (code, text).
    pub ede: Option<(u16, String)>,
    /// Packets this call sent (0 for cache hits and for callers that joined another caller's exchange).
    pub upstream_packets: u8,
}

/// Health of one target, for metrics and the admin interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHealth {
    /// The target.
    pub addr: SocketAddr,
    /// Timeouts, network errors and REFUSED since the last good answer.
    pub consecutive_failures: u32,
    /// Whether new queries skip it now.
    pub held_down: bool,
    /// How much longer it is held down.
    pub held_down_for: Option<Duration>,
    /// Packets sent to it.
    pub queries: u64,
    /// Packets that failed (timeout, network error, REFUSED).
    pub failures: u64,
    /// Round-trip time of the last answer.
    pub last_rtt: Option<Duration>,
}

/// Forwards queries; cheap to clone (shared state behind an `Arc`), `Send + Sync`.
#[derive(Clone)]
pub struct Forwarder {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("config", &self.inner.config)
            .field("cache_len", &self.cache_len())
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: ForwarderConfig,
    cache: cache::Cache,
    in_flight: Mutex<HashMap<FlightKey, Waiter>>,
    global_permits: Arc<Semaphore>,
    route_permits: Mutex<HashMap<Arc<str>, Arc<Semaphore>>>,
    health: Mutex<HashMap<SocketAddr, Health>>,
    local_addrs: ArcSwap<Vec<SocketAddr>>,
    /// Outbound source addresses the host lacks, warned about once each.
    missing_sources: Mutex<HashSet<IpAddr>>,
    /// Targets found to be our own listeners, warned about once each.
    warned_loops: Mutex<HashSet<SocketAddr>>,
}

/// Poisoning only means another thread panicked mid-update; the maps stay structurally valid.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The cache key of a question through a route (see `cache::key_into`).
fn cache_key(route: &Route, name: &Name, qtype: RecordType) -> Box<[u8]> {
    let mut key = Vec::new();
    cache::key_into(
        &mut key,
        &cache::lower_wire(name),
        qtype.into(),
        &route.name,
    );
    key.into_boxed_slice()
}

/// The question a client query forwards, and when it must end.
struct Flight<'a> {
    route: &'a Route,
    name: &'a Name,
    qtype: RecordType,
    dnssec_ok: bool,
    deadline: Instant,
}

/// Where the callers of one exchange wait for its result.
type Waiter = watch::Receiver<Option<Arc<Exchanged>>>;

/// Coalescing key: a DO query must not be satisfied by an exchange made without DO (no signatures).
type FlightKey = (Box<[u8]>, bool);

/// What one upstream exchange produced, shared by every caller that joined it.
#[derive(Debug)]
struct Exchanged {
    rcode: ResponseCode,
    answers: Vec<Record>,
    authority: Vec<Record>,
    via: Via,
    ede: Option<(u16, String)>,
    packets: u8,
    /// A usable answer (NOERROR/NXDOMAIN...) rather than a failure, which callers may replace with stale data.
    answered: bool,
}

impl Forwarder {
    /// A forwarder with an empty cache and no known local addresses.
    pub fn new(config: ForwarderConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                global_permits: Arc::new(Semaphore::new(config.max_in_flight)),
                cache: cache::Cache::new(config.cache_entries, time_seed()),
                in_flight: Mutex::new(HashMap::new()),
                route_permits: Mutex::new(HashMap::new()),
                health: Mutex::new(HashMap::new()),
                local_addrs: ArcSwap::from_pointee(Vec::new()),
                missing_sources: Mutex::new(HashSet::new()),
                warned_loops: Mutex::new(HashSet::new()),
                config,
            }),
        }
    }

    /// Our own listening sockets: a target equal to one of them is a forwarding loop, answered with
    /// SERVFAIL (EDE) without sending. A listener on an unspecified address (0.0.0.0:53) matches loopback
    /// targets on that port.
    pub fn set_local_addrs(&self, addrs: Vec<SocketAddr>) {
        self.inner.local_addrs.store(Arc::new(addrs));
    }

    /// Number of cache entries (fresh and stale).
    pub fn cache_len(&self) -> usize {
        self.inner.cache.len()
    }

    /// Health of every target seen so far, sorted by address.
    pub fn target_health(&self) -> Vec<TargetHealth> {
        let now = self.inner.config.clock.now();
        let mut v: Vec<TargetHealth> = lock(&self.inner.health)
            .iter()
            .map(|(addr, h)| {
                let held_down_for = h
                    .held_down_until
                    .filter(|until| *until > now)
                    .map(|until| until - now);
                TargetHealth {
                    addr: *addr,
                    consecutive_failures: h.consecutive_failures,
                    held_down: held_down_for.is_some(),
                    held_down_for,
                    queries: h.queries,
                    failures: h.failures,
                    last_rtt: h.last_rtt,
                }
            })
            .collect();
        v.sort_by_key(|h| h.addr);
        v
    }

    /// Answers a query from a fresh cache entry by copying its encoded bytes into `out`: no record is decoded or
    /// encoded. `false` when the cache has no fresh answer for it that fits `limit`; the query then takes
    /// [`Self::forward`]. `lower` is the question name in lowercase wire form, as [`crate::wire::peek`] writes it;
    /// `key` is a buffer reused from query to query.
    #[allow(clippy::too_many_arguments)]
    pub fn answer_from_cache(
        &self,
        route: &Route,
        packet: &[u8],
        peek: &Peek,
        lower: &[u8],
        limit: usize,
        key: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> bool {
        cache::key_into(key, lower, peek.qtype, &route.name);
        let now = self.inner.config.clock.now();
        self.inner
            .cache
            .answer(key, packet, peek, lower, limit, now, out)
    }

    /// Answers `name`/`qtype` through `route`: from the cache, else from a target (joining an identical
    /// exchange already in flight), else from stale cache data, else SERVFAIL with an extended error.
    /// Always returns within `config.deadline` (plus scheduling jitter).
    pub async fn forward(
        &self,
        route: &Route,
        name: &Name,
        qtype: RecordType,
        dnssec_ok: bool,
    ) -> Outcome {
        let inner = &self.inner;
        let deadline = Instant::now() + inner.config.deadline;
        let now = inner.config.clock.now();
        let key = cache_key(route, name, qtype);

        if let Some(hit) = inner.cache.fresh(&key, dnssec_ok, now) {
            return hit;
        }

        let local = inner.local_addrs.load();
        let (looped, targets): (Vec<SocketAddr>, Vec<SocketAddr>) = route
            .targets
            .iter()
            .partition(|t| local.iter().any(|l| is_same_socket(*l, **t)));
        for t in &looped {
            // Once per target: a misconfigured rule must not flood the log.
            if lock(&inner.warned_loops).insert(*t) {
                warn!(route = %route.name, target = %t, "forward target is one of our own listeners, skipped (loop)");
            }
        }
        if targets.is_empty() {
            let why = if looped.is_empty() {
                "no forward targets"
            } else {
                "forwarding loop: the target is this resolver"
            };
            return servfail(Via::NotSent, ede::OTHER, why);
        }

        let candidates = inner.live_targets(&targets, now);
        if candidates.is_empty() {
            debug!(route = %route.name, name = %name, "all targets held down");
            return self.stale_or(
                &key,
                dnssec_ok,
                qtype,
                servfail(
                    Via::NotSent,
                    ede::NO_REACHABLE_AUTHORITY,
                    "all forward targets are held down after failures",
                ),
            );
        }

        let flight = Flight {
            route,
            name,
            qtype,
            dnssec_ok,
            deadline,
        };
        let (mut rx, leader) = match self.join_or_start(&flight, &key, candidates) {
            Ok(joined) => joined,
            Err(busy) => return busy,
        };

        let wait_until = if leader {
            deadline + LEADER_GRACE
        } else {
            deadline
        };
        let result = timeout_at(wait_until, rx.wait_for(Option::is_some))
            .await
            .ok()
            .and_then(|r| r.ok().and_then(|v| v.clone()));
        let Some(ex) = result else {
            return self.stale_or(
                &key,
                dnssec_ok,
                qtype,
                servfail(
                    Via::NotSent,
                    ede::NO_REACHABLE_AUTHORITY,
                    "no answer from the forward targets before the deadline",
                ),
            );
        };
        let outcome = Outcome {
            rcode: ex.rcode,
            answers: strip_dnssec(&ex.answers, dnssec_ok, qtype),
            authority: strip_dnssec(&ex.authority, dnssec_ok, qtype),
            via: ex.via,
            ede: ex.ede.clone(),
            upstream_packets: if leader { ex.packets } else { 0 },
        };
        if ex.answered {
            outcome
        } else {
            self.stale_or(&key, dnssec_ok, qtype, outcome)
        }
    }

    /// Joins the exchange in flight for the same question, or starts one (`true`: this caller leads it); the
    /// SERVFAIL (or stale answer) when the in-flight bounds leave no room.
    fn join_or_start(
        &self,
        f: &Flight<'_>,
        key: &[u8],
        candidates: Vec<SocketAddr>,
    ) -> Result<(Waiter, bool), Outcome> {
        let inner = &self.inner;
        let flight_key: FlightKey = (key.into(), f.dnssec_ok);
        let mut flights = lock(&inner.in_flight);
        if let Some(rx) = flights.get(&flight_key) {
            return Ok((rx.clone(), false));
        }
        let Some(permits) = inner.permits(&f.route.name) else {
            drop(flights);
            debug!(route = %f.route.name, name = %f.name, "too many upstream exchanges in flight");
            let busy = servfail(
                Via::NotSent,
                ede::OTHER,
                "busy: too many queries in flight upstream",
            );
            return Err(self.stale_or(key, f.dnssec_ok, f.qtype, busy));
        };
        let (tx, rx) = watch::channel(None);
        flights.insert(flight_key.clone(), rx.clone());
        let mut name = f.name.clone();
        name.set_fqdn(true);
        let job = Job {
            inner: inner.clone(),
            route: f.route.clone(),
            name,
            qtype: f.qtype,
            dnssec_ok: f.dnssec_ok,
            candidates,
            deadline: f.deadline,
            key: flight_key,
        };
        // A task, so the exchange completes (and fills the cache) even if this caller goes away.
        tokio::spawn(job.run(tx, permits));
        Ok((rx, true))
    }

    /// A stale (or, if someone refreshed it meanwhile, fresh) cache entry instead of `failure`, keeping the
    /// packet count of `failure`.
    fn stale_or(
        &self,
        key: &[u8],
        dnssec_ok: bool,
        qtype: RecordType,
        failure: Outcome,
    ) -> Outcome {
        let now = self.inner.config.clock.now();
        let why = failure
            .ede
            .as_ref()
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| format!("upstream answered {}", failure.rcode));
        let cache = &self.inner.cache;
        if let Some(mut fresh) = cache.fresh(key, dnssec_ok, now) {
            fresh.upstream_packets = failure.upstream_packets;
            return fresh;
        }
        match cache.stale(key, dnssec_ok, now, &why) {
            Some(mut o) => {
                o.upstream_packets = failure.upstream_packets;
                debug!(qtype = %qtype, reason = %why, "serving stale answer");
                o
            }
            None => failure,
        }
    }
}

impl Outcome {
    /// SERVFAIL with an extended error, nothing sent upstream.
    pub fn not_sent(code: u16, text: &str) -> Self {
        servfail(Via::NotSent, code, text)
    }
}

fn servfail(via: Via, code: u16, text: &str) -> Outcome {
    Outcome {
        rcode: ResponseCode::ServFail,
        answers: Vec::new(),
        authority: Vec::new(),
        via,
        ede: Some((code, text.to_owned())),
        upstream_packets: 0,
    }
}

/// A target that is one of our listeners; an unspecified listener address covers loopback targets.
fn is_same_socket(local: SocketAddr, target: SocketAddr) -> bool {
    local == target
        || (local.port() == target.port()
            && local.ip().is_unspecified()
            && target.ip().is_loopback()
            && local.is_ipv4() == target.is_ipv4())
}

/// Without DO the client gets no DNSSEC records it didn't ask for (RFC 4035 section 3.2.1).
fn strip_dnssec(records: &[Record], dnssec_ok: bool, qtype: RecordType) -> Vec<Record> {
    records
        .iter()
        .filter(|r| {
            let t = r.record_type();
            dnssec_ok
                || t == qtype
                || !matches!(t, RecordType::RRSIG | RecordType::NSEC | RecordType::NSEC3)
        })
        .cloned()
        .collect()
}

impl Inner {
    /// Targets not held down, in random order.
    fn live_targets(&self, targets: &[SocketAddr], now: Instant) -> Vec<SocketAddr> {
        let health = lock(&self.health);
        let mut live: Vec<SocketAddr> = targets
            .iter()
            .copied()
            .filter(|t| {
                health
                    .get(t)
                    .and_then(|h| h.held_down_until)
                    .is_none_or(|until| until <= now)
            })
            .collect();
        drop(health);
        self.config.order.arrange(&mut live);
        live
    }

    fn permits(&self, route: &Arc<str>) -> Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)> {
        let route_sem = lock(&self.route_permits)
            .entry(route.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(self.config.max_in_flight_per_route)))
            .clone();
        let global = self.global_permits.clone().try_acquire_owned().ok()?;
        let per_route = route_sem.try_acquire_owned().ok()?;
        Some((global, per_route))
    }

    fn record_sent(&self, target: SocketAddr) {
        lock(&self.health).entry(target).or_default().queries += 1;
    }

    fn record_failure(&self, target: SocketAddr, why: &str) {
        let mut health = lock(&self.health);
        let h = health.entry(target).or_default();
        h.consecutive_failures = h.consecutive_failures.saturating_add(1);
        h.failures += 1;
        debug!(target = %target, reason = why, consecutive = h.consecutive_failures, "upstream attempt failed");
    }

    fn record_success(&self, target: SocketAddr, rtt: Duration) {
        let mut health = lock(&self.health);
        let h = health.entry(target).or_default();
        if h.strikes > 0 {
            debug!(target = %target, "target answers again, hold-down cleared");
        }
        h.consecutive_failures = 0;
        h.strikes = 0;
        h.held_down_until = None;
        h.last_rtt = Some(rtt);
    }

    /// RFC 9520: a target that failed an exchange without answering is skipped for a while, doubling the
    /// time for each consecutive failed exchange.
    fn hold_down(&self, target: SocketAddr) {
        let now = self.config.clock.now();
        let mut health = lock(&self.health);
        let h = health.entry(target).or_default();
        if h.held_down_until.is_some_and(|until| until > now) {
            // Exchanges that started before the hold-down report the same outage: count it once.
            return;
        }
        h.strikes = h.strikes.saturating_add(1);
        let factor = 1u32 << (h.strikes - 1).min(20);
        let hold = self
            .config
            .holddown_min
            .saturating_mul(factor)
            .min(self.config.holddown_max)
            .max(self.config.holddown_min.min(self.config.holddown_max));
        h.held_down_until = Some(now + hold);
        warn!(target = %target, hold_ms = hold.as_millis() as u64, failures = h.consecutive_failures, "forward target held down");
    }

    /// A UDP or TCP source for `target`: the route's outbound address if the host has it.
    fn source_for(&self, route: &Route, target: SocketAddr) -> Option<SocketAddr> {
        let ip = route.source?;
        (ip.is_ipv4() == target.is_ipv4()).then_some(SocketAddr::new(ip, 0))
    }

    /// The host lacks the outbound address (bind fails with EADDRNOTAVAIL): the default source is used instead.
    fn note_missing_source(&self, ip: IpAddr, err: &io::Error) {
        if lock(&self.missing_sources).insert(ip) {
            warn!(source = %ip, error = %err, "outbound endpoint address not on this host, using the default source");
        }
    }

    async fn udp_socket(&self, route: &Route, target: SocketAddr) -> io::Result<Box<dyn Datagram>> {
        let any = if target.is_ipv4() {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
        } else {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0)
        };
        let transport = &self.config.transport;
        if let Some(src) = self.source_for(route, target) {
            match transport.udp(src, target).await {
                Err(e) if e.kind() == io::ErrorKind::AddrNotAvailable => {
                    self.note_missing_source(src.ip(), &e);
                }
                opened => return opened,
            }
        }
        transport.udp(any, target).await
    }

    async fn tcp_exchange(
        &self,
        route: &Route,
        target: SocketAddr,
        query: &[u8],
        check: &Check,
    ) -> io::Result<Message> {
        let transport = &self.config.transport;
        let mut stream = match self.source_for(route, target) {
            Some(src) => match transport.tcp(Some(src), target).await {
                Err(e) if e.kind() == io::ErrorKind::AddrNotAvailable => {
                    self.note_missing_source(src.ip(), &e);
                    transport.tcp(None, target).await?
                }
                opened => opened?,
            },
            None => transport.tcp(None, target).await?,
        };
        let len = u16::try_from(query.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "query too long"))?;
        let mut framed = Vec::with_capacity(query.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(query);
        stream.write_all(&framed).await?;
        loop {
            let len = stream.read_u16().await?;
            let mut buf = vec![0; usize::from(len)];
            stream.read_exact(&mut buf).await?;
            if let Some(msg) = check.accept(&buf) {
                return Ok(msg);
            }
        }
    }
}

#[derive(Debug, Default)]
struct Health {
    consecutive_failures: u32,
    /// Consecutive exchanges this target failed without answering; drives the back-off.
    strikes: u32,
    held_down_until: Option<Instant>,
    queries: u64,
    failures: u64,
    last_rtt: Option<Duration>,
}

/// Validates a response: only the matching id and question is accepted (spoofing, stray late answers).
#[derive(Debug, Clone)]
struct Check {
    id: u16,
    name: Name,
    qtype: RecordType,
}

impl Check {
    fn accept(&self, bytes: &[u8]) -> Option<Message> {
        let msg = Message::from_vec(bytes).ok()?;
        let ok = msg.id == self.id
            && msg.message_type == MessageType::Response
            && msg.queries.len() == 1
            && msg.queries.first().is_some_and(|q| {
                // Name equality is case-insensitive (0x20 randomizing upstreams).
                q.name() == &self.name
                    && q.query_type() == self.qtype
                    && q.query_class() == DNSClass::IN
            });
        if !ok {
            debug!(
                id = msg.id,
                expected = self.id,
                "ignored a response that doesn't match the query"
            );
        }
        ok.then_some(msg)
    }
}

/// Why an attempt ended without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Timeout,
    Network,
}

/// The socket and query of the target an exchange is talking to.
struct Current {
    target: SocketAddr,
    sock: Box<dyn Datagram>,
    bytes: Vec<u8>,
    check: Check,
}

/// One upstream exchange, run as its own task.
struct Job {
    inner: Arc<Inner>,
    route: Route,
    name: Name,
    qtype: RecordType,
    dnssec_ok: bool,
    candidates: Vec<SocketAddr>,
    deadline: Instant,
    key: FlightKey,
}

/// Removes the in-flight entry however the exchange ends (even by panic), so later queries start afresh.
struct FlightGuard {
    inner: Arc<Inner>,
    key: FlightKey,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        lock(&self.inner.in_flight).remove(&self.key);
    }
}

impl Job {
    async fn run(
        self,
        tx: watch::Sender<Option<Arc<Exchanged>>>,
        permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
    ) {
        let guard = FlightGuard {
            inner: self.inner.clone(),
            key: self.key.clone(),
        };
        let ex = self.exchange().await;
        // Cache first, so a query arriving right after the in-flight entry is gone finds the answer.
        if ex.answered
            && let Via::Target(_) = ex.via
        {
            self.inner.cache_insert(&self.key.0, &ex, self.dnssec_ok);
        }
        tx.send_replace(Some(Arc::new(ex)));
        drop(guard);
        drop(permits);
    }

    fn query(&self) -> Result<(Vec<u8>, Check), hickory_proto::ProtoError> {
        let mut msg = Message::query();
        msg.metadata.recursion_desired = true;
        msg.add_query(Query::query(self.name.clone(), self.qtype));
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        edns.set_dnssec_ok(self.dnssec_ok);
        msg.set_edns(edns);
        let check = Check {
            id: msg.id,
            name: self.name.clone(),
            qtype: self.qtype,
        };
        Ok((msg.to_vec()?, check))
    }

    fn max_attempts(&self) -> usize {
        self.inner
            .config
            .max_attempts
            .clamp(1, usize::from(u8::MAX))
    }

    async fn exchange(&self) -> Exchanged {
        let mut p = Progress {
            attempts: 0,
            packets: 0,
            last_target: self.candidates.first().copied(),
            last_failure: Failure::Timeout,
            failed: Vec::new(),
        };
        // One socket at a time (so sockets <= exchanges in flight). A retry to the same target resends the
        // same query on the same socket, so a late answer to the first packet still counts.
        let mut current: Option<Current> = None;
        // The targets in turn (a TCP retry counts as an attempt but keeps the turn).
        let mut turn = 0usize;
        let verdict = loop {
            if p.attempts >= self.max_attempts() || Instant::now() >= self.deadline {
                break None;
            }
            let Some(&target) = self.candidates.get(turn % self.candidates.len().max(1)) else {
                break None;
            };
            turn += 1;
            p.attempts += 1;
            p.last_target = Some(target);
            match self.attempt(target, &mut current, &mut p).await {
                Step::Next => {}
                Step::Done(v) => break Some(v),
                Step::Stop => break None,
            }
        };
        drop(current);
        self.hold_down_failed(&p.failed, verdict.as_ref());
        match verdict {
            Some(mut v) => {
                v.packets = p.packets;
                v
            }
            None => self.no_answer(&p),
        }
    }

    /// One packet to `target` (opening a socket for it unless the last attempt used the same target) and the wait
    /// for its answer.
    async fn attempt(
        &self,
        target: SocketAddr,
        current: &mut Option<Current>,
        p: &mut Progress,
    ) -> Step {
        if current.as_ref().is_none_or(|c| c.target != target) {
            *current = None;
            let Ok((bytes, check)) = self.query().inspect_err(|e| {
                warn!(name = %self.name, error = %e, "cannot encode query");
            }) else {
                return Step::Stop;
            };
            match self.inner.udp_socket(&self.route, target).await {
                Ok(sock) => {
                    *current = Some(Current {
                        target,
                        sock,
                        bytes,
                        check,
                    });
                }
                Err(e) => {
                    // A local problem (e.g. out of file descriptors), not the target's fault.
                    p.last_failure = Failure::Network;
                    warn!(target = %target, error = %e, "cannot open a UDP socket");
                    return Step::Next;
                }
            }
        }
        let Some(cur) = current.as_ref() else {
            return Step::Next;
        };
        if let Err(e) = cur.sock.send(&cur.bytes).await {
            debug!(target = %target, error = %e, "send failed");
            p.fail(&self.inner, target, "send", Failure::Network);
            *current = None;
            return Step::Next;
        }
        let sent_at = Instant::now();
        p.packets = p.packets.saturating_add(1);
        self.inner.record_sent(target);
        debug!(route = %self.route.name, name = %self.name, qtype = %self.qtype, target = %target, attempt = p.attempts, "query sent upstream");
        // The last packet may use all the time left: a late answer is better than a SERVFAIL.
        let until = if p.attempts >= self.max_attempts() {
            self.deadline
        } else {
            (sent_at + self.inner.config.attempt_timeout).min(self.deadline)
        };
        match timeout_at(until, read_udp(cur.sock.as_ref(), &cur.check)).await {
            Err(_) => p.fail(&self.inner, target, "timeout", Failure::Timeout),
            Ok(Err(e)) => {
                // Typically ICMP port unreachable: try the next target at once.
                debug!(target = %target, error = %e, "receive failed");
                p.fail(&self.inner, target, "network", Failure::Network);
                *current = None;
            }
            Ok(Ok(msg)) => {
                if let Some(v) = self.on_answer(target, msg, sent_at.elapsed(), p).await {
                    return Step::Done(v);
                }
            }
        }
        Step::Next
    }

    /// Targets that failed in this exchange and did not answer it in the end are held down.
    fn hold_down_failed(&self, failed: &[SocketAddr], verdict: Option<&Exchanged>) {
        for t in failed.iter().collect::<HashSet<_>>() {
            if !verdict.is_some_and(|v| v.via == Via::Target(*t) && v.answered) {
                self.inner.hold_down(*t);
            }
        }
    }

    /// The SERVFAIL of an exchange that got no usable answer, with the EDE of its last failure.
    fn no_answer(&self, p: &Progress) -> Exchanged {
        let (code, text) = match p.last_failure {
            Failure::Timeout => (
                ede::NO_REACHABLE_AUTHORITY,
                "no answer from the forward targets",
            ),
            Failure::Network => (
                ede::NETWORK_ERROR,
                "network error reaching the forward targets",
            ),
        };
        debug!(route = %self.route.name, name = %self.name, qtype = %self.qtype, packets = p.packets, "upstream exchange failed");
        Exchanged {
            rcode: ResponseCode::ServFail,
            answers: Vec::new(),
            authority: Vec::new(),
            via: p.last_target.map_or(Via::NotSent, Via::Target),
            ede: Some((code, text.to_owned())),
            packets: p.packets,
            answered: false,
        }
    }

    /// Handles a matching UDP response (retrying over TCP if truncated): `Some` ends the exchange.
    async fn on_answer(
        &self,
        target: SocketAddr,
        msg: Message,
        rtt: Duration,
        p: &mut Progress,
    ) -> Option<Exchanged> {
        let (msg, rtt) = if msg.truncation {
            if p.attempts >= self.max_attempts() {
                self.inner.record_success(target, rtt);
                return Some(failed_answer(
                    target,
                    ede::OTHER,
                    "response truncated and no attempt left for TCP",
                ));
            }
            self.over_tcp(target, p).await?
        } else {
            (msg, rtt)
        };
        let rcode = msg.response_code;
        // Any answer, REFUSED included, shows the target is up: relayed at once, and no hold-down (some servers refuse
        // one query type, e.g. AAAA, and holding the target down for it would fail every other query).
        self.inner.record_success(target, rtt);
        let answered = matches!(rcode, ResponseCode::NoError | ResponseCode::NXDomain);
        debug!(target = %target, name = %self.name, qtype = %self.qtype, rcode = %rcode, rtt_ms = rtt.as_millis() as u64, "upstream answered");
        let ede = upstream_ede(&msg);
        let mut msg = msg;
        // The client sees the same TTL cap on the first answer as on later cache hits.
        let max_ttl = u32::try_from(self.inner.config.max_ttl.as_secs()).unwrap_or(u32::MAX);
        let cap = |records: Vec<Record>| -> Vec<Record> {
            records
                .into_iter()
                .map(|mut r| {
                    r.ttl = r.ttl.min(max_ttl);
                    r
                })
                .collect()
        };
        Some(Exchanged {
            rcode,
            answers: cap(std::mem::take(&mut msg.answers)),
            authority: cap(std::mem::take(&mut msg.authorities)),
            via: Via::Target(target),
            ede,
            packets: 0,
            answered,
        })
    }

    /// The same question over TCP after a truncated UDP answer (one more attempt); `None` if it failed.
    async fn over_tcp(&self, target: SocketAddr, p: &mut Progress) -> Option<(Message, Duration)> {
        let (bytes, check) = self.query().ok()?;
        p.attempts += 1;
        p.packets = p.packets.saturating_add(1);
        self.inner.record_sent(target);
        let started = Instant::now();
        let until = (started + self.inner.config.attempt_timeout * 2).min(self.deadline);
        debug!(target = %target, name = %self.name, "truncated over UDP, retrying over TCP");
        let tcp = self.inner.tcp_exchange(&self.route, target, &bytes, &check);
        match timeout_at(until, tcp).await {
            Ok(Ok(m)) => Some((m, started.elapsed())),
            Ok(Err(e)) => {
                debug!(target = %target, error = %e, "TCP retry failed");
                p.fail(&self.inner, target, "tcp", Failure::Network);
                None
            }
            Err(_) => {
                p.fail(&self.inner, target, "tcp timeout", Failure::Timeout);
                None
            }
        }
    }
}

/// What one exchange has done so far.
struct Progress {
    attempts: usize,
    packets: u8,
    last_target: Option<SocketAddr>,
    last_failure: Failure,
    /// Targets that failed in this exchange; those that never answered get held down at the end.
    failed: Vec<SocketAddr>,
}

impl Progress {
    fn fail(&mut self, inner: &Inner, target: SocketAddr, why: &str, failure: Failure) {
        inner.record_failure(target, why);
        self.failed.push(target);
        self.last_failure = failure;
    }
}

/// What an attempt leads to.
enum Step {
    /// Try the next attempt.
    Next,
    /// The exchange's answer.
    Done(Exchanged),
    /// Give up (the query cannot be encoded).
    Stop,
}

fn failed_answer(target: SocketAddr, code: u16, text: &str) -> Exchanged {
    Exchanged {
        rcode: ResponseCode::ServFail,
        answers: Vec::new(),
        authority: Vec::new(),
        via: Via::Target(target),
        ede: Some((code, text.to_owned())),
        packets: 0,
        answered: false,
    }
}

/// The first RFC 8914 option of an upstream response, relayed with its SERVFAIL/REFUSED.
fn upstream_ede(msg: &Message) -> Option<(u16, String)> {
    match msg.edns.as_ref()?.options().get(EdnsCode::Unknown(15))? {
        EdnsOption::Unknown(_, data) if data.len() >= 2 => Some((
            u16::from_be_bytes([data[0], data[1]]),
            String::from_utf8_lossy(&data[2..]).into_owned(),
        )),
        _ => None,
    }
}

/// Waits on a connected UDP socket for the matching response; errors are ICMP-reported network failures.
async fn read_udp(sock: &dyn Datagram, check: &Check) -> io::Result<Message> {
    let mut buf = vec![0u8; UDP_BUFFER];
    loop {
        let n = sock.recv(&mut buf).await?;
        if let Some(msg) = buf.get(..n).and_then(|b| check.accept(b)) {
            return Ok(msg);
        }
    }
}

impl Inner {
    fn cache_insert(&self, key: &[u8], ex: &Exchanged, dnssec_ok: bool) {
        let Some(ttl) = cache_ttl(ex, self.config.max_ttl) else {
            return;
        };
        let now = self.config.clock.now();
        let cap = |records: &[Record]| {
            records
                .iter()
                .cloned()
                .map(|mut r| {
                    r.ttl = r.ttl.min(ttl.max_record_ttl);
                    r
                })
                .collect::<Vec<_>>()
        };
        let entry = cache::Entry::new(
            key,
            ex.rcode,
            &cap(&ex.answers),
            &cap(&ex.authority),
            dnssec_ok,
            now,
            Duration::from_secs(u64::from(ttl.entry_ttl)),
            self.config.stale_for,
        );
        match entry {
            Some(entry) => self.cache.insert(key, entry, now),
            None => debug!("answer not cached: it cannot be re-encoded"),
        }
    }
}

struct Ttl {
    /// Lifetime of the entry.
    entry_ttl: u32,
    /// Records are capped at this (max_ttl, or the negative TTL for the SOA of a negative answer).
    max_record_ttl: u32,
}

/// Positive: min TTL of the answers; negative (NXDOMAIN/NODATA): min(SOA TTL, SOA minimum) per RFC 2308,
/// never cached without a SOA; zero TTLs aren't cached.
fn cache_ttl(ex: &Exchanged, max_ttl: Duration) -> Option<Ttl> {
    let cap = u32::try_from(max_ttl.as_secs()).unwrap_or(u32::MAX);
    let answers_min = ex.answers.iter().map(|r| r.ttl).min();
    let negative = ex.rcode == ResponseCode::NXDomain || ex.answers.is_empty();
    let ttl = if negative {
        let soa_ttl = ex.authority.iter().find_map(|r| match &r.data {
            RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
            _ => None,
        })?;
        let neg_cap = cap.min(u32::try_from(MAX_NEGATIVE_TTL.as_secs()).unwrap_or(u32::MAX));
        let t = soa_ttl.min(neg_cap);
        Ttl {
            entry_ttl: answers_min.map_or(t, |a| a.min(t)),
            max_record_ttl: t,
        }
    } else {
        let t = answers_min?.min(cap);
        Ttl {
            entry_ttl: t,
            max_record_ttl: cap,
        }
    };
    (ttl.entry_ttl > 0).then_some(ttl)
}

/// The "nameserver" lines of a resolv.conf text, port 53, in order; unparsable addresses (e.g. with an
/// IPv6 zone) are skipped.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let line = line.split(['#', ';']).next()?.trim();
            let mut words = line.split_whitespace();
            (words.next()? == "nameserver").then_some(())?;
            let ip: IpAddr = words.next()?.parse().ok()?;
            Some(SocketAddr::new(ip, 53))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf() {
        let text = "# comment\nsearch ec2.internal\nnameserver 10.0.0.2\nnameserver  fd00:ec2::253 # x\n\
                    nameserver fe80::1%eth0\n;nameserver 1.1.1.1\noptions edns0\n";
        assert_eq!(
            parse_resolv_conf(text),
            vec![
                "10.0.0.2:53".parse().unwrap(),
                "[fd00:ec2::253]:53".parse().unwrap()
            ]
        );
    }

    #[test]
    fn loop_match() {
        let t: SocketAddr = "127.0.0.1:53".parse().unwrap();
        assert!(is_same_socket(t, t));
        assert!(is_same_socket("0.0.0.0:53".parse().unwrap(), t));
        assert!(!is_same_socket("0.0.0.0:5353".parse().unwrap(), t));
        assert!(!is_same_socket("127.0.0.2:53".parse().unwrap(), t));
    }
}
