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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, UdpSocket};
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
    cache: Mutex<Cache>,
    in_flight: Mutex<HashMap<FlightKey, watch::Receiver<Option<Arc<Exchanged>>>>>,
    global_permits: Arc<Semaphore>,
    route_permits: Mutex<HashMap<Arc<str>, Arc<Semaphore>>>,
    health: Mutex<HashMap<SocketAddr, Health>>,
    local_addrs: ArcSwap<Vec<SocketAddr>>,
    /// Outbound source addresses the host lacks, warned about once each.
    missing_sources: Mutex<HashSet<IpAddr>>,
    /// Targets found to be our own listeners, warned about once each.
    warned_loops: Mutex<HashSet<SocketAddr>>,
    rng: AtomicU64,
}

/// Poisoning only means another thread panicked mid-update; the maps stay structurally valid.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    route: Arc<str>,
    name: Name,
    qtype: RecordType,
}

impl CacheKey {
    fn new(route: &Route, name: &Name, qtype: RecordType) -> Self {
        let mut name = name.to_lowercase();
        name.set_fqdn(true);
        Self {
            route: route.name.clone(),
            name,
            qtype,
        }
    }
}

/// Coalescing key: a DO query must not be satisfied by an exchange made without DO (no signatures).
type FlightKey = (CacheKey, bool);

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
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15)
            ^ u64::from(std::process::id()).rotate_left(32);
        Self {
            inner: Arc::new(Inner {
                global_permits: Arc::new(Semaphore::new(config.max_in_flight)),
                cache: Mutex::new(Cache::new(config.cache_entries)),
                in_flight: Mutex::new(HashMap::new()),
                route_permits: Mutex::new(HashMap::new()),
                health: Mutex::new(HashMap::new()),
                local_addrs: ArcSwap::from_pointee(Vec::new()),
                missing_sources: Mutex::new(HashSet::new()),
                warned_loops: Mutex::new(HashSet::new()),
                rng: AtomicU64::new(seed | 1),
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
        lock(&self.inner.cache).map.len()
    }

    /// Health of every target seen so far, sorted by address.
    pub fn target_health(&self) -> Vec<TargetHealth> {
        let now = Instant::now();
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
        let start = Instant::now();
        let deadline = start + inner.config.deadline;
        let key = CacheKey::new(route, name, qtype);

        if let Some(hit) = lock(&inner.cache).fresh(&key, dnssec_ok, qtype, start) {
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

        let candidates = inner.live_targets(&targets, start);
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

        let flight_key: FlightKey = (key.clone(), dnssec_ok);
        let (mut rx, leader) = {
            let mut flights = lock(&inner.in_flight);
            if let Some(rx) = flights.get(&flight_key) {
                (rx.clone(), false)
            } else {
                let Some(permits) = inner.permits(&route.name) else {
                    drop(flights);
                    debug!(route = %route.name, name = %name, "too many upstream exchanges in flight");
                    return self.stale_or(
                        &key,
                        dnssec_ok,
                        qtype,
                        servfail(
                            Via::NotSent,
                            ede::OTHER,
                            "busy: too many queries in flight upstream",
                        ),
                    );
                };
                let (tx, rx) = watch::channel(None);
                flights.insert(flight_key.clone(), rx.clone());
                let job = Job {
                    inner: inner.clone(),
                    route: route.clone(),
                    name: {
                        let mut n = name.clone();
                        n.set_fqdn(true);
                        n
                    },
                    qtype,
                    dnssec_ok,
                    candidates,
                    deadline,
                    key: flight_key,
                };
                // A task, so the exchange completes (and fills the cache) even if this caller goes away.
                tokio::spawn(job.run(tx, permits));
                (rx, true)
            }
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

    /// A stale (or, if someone refreshed it meanwhile, fresh) cache entry instead of `failure`, keeping the
    /// packet count of `failure`.
    fn stale_or(
        &self,
        key: &CacheKey,
        dnssec_ok: bool,
        qtype: RecordType,
        failure: Outcome,
    ) -> Outcome {
        let now = Instant::now();
        let why = failure
            .ede
            .as_ref()
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| format!("upstream answered {}", failure.rcode));
        let mut cache = lock(&self.inner.cache);
        if let Some(mut fresh) = cache.fresh(key, dnssec_ok, qtype, now) {
            fresh.upstream_packets = failure.upstream_packets;
            return fresh;
        }
        match cache.stale(key, dnssec_ok, qtype, now, &why) {
            Some(mut o) => {
                o.upstream_packets = failure.upstream_packets;
                debug!(name = %key.name, qtype = %qtype, reason = %why, "serving stale answer");
                o
            }
            None => failure,
        }
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
        // Fisher-Yates; the order only spreads load, so a small PRNG is enough.
        for i in (1..live.len()).rev() {
            let j = (self.next_random() % (i as u64 + 1)) as usize;
            live.swap(i, j);
        }
        live
    }

    fn next_random(&self) -> u64 {
        // xorshift64*; racing updates only make it "more random".
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.store(x, Ordering::Relaxed);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
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
        let now = Instant::now();
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

    fn note_missing_source(&self, ip: IpAddr, err: &io::Error) {
        if lock(&self.missing_sources).insert(ip) {
            warn!(source = %ip, error = %err, "outbound endpoint address not on this host, using the default source");
        }
    }

    async fn udp_socket(&self, route: &Route, target: SocketAddr) -> io::Result<UdpSocket> {
        let any = if target.is_ipv4() {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
        } else {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0)
        };
        let sock = match self.source_for(route, target) {
            Some(src) => match UdpSocket::bind(src).await {
                Ok(s) => s,
                Err(e) => {
                    self.note_missing_source(src.ip(), &e);
                    UdpSocket::bind(any).await?
                }
            },
            None => UdpSocket::bind(any).await?,
        };
        // Connected: the kernel drops datagrams from other addresses and reports ICMP errors to us.
        sock.connect(target).await?;
        Ok(sock)
    }

    async fn tcp_exchange(
        &self,
        route: &Route,
        target: SocketAddr,
        query: &[u8],
        check: &Check,
    ) -> io::Result<Message> {
        let new_socket = || {
            if target.is_ipv4() {
                TcpSocket::new_v4()
            } else {
                TcpSocket::new_v6()
            }
        };
        let mut sock = new_socket()?;
        if let Some(src) = self.source_for(route, target)
            && let Err(e) = sock.bind(src)
        {
            self.note_missing_source(src.ip(), &e);
            sock = new_socket()?;
        }
        let mut stream = sock.connect(target).await?;
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
    sock: UdpSocket,
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

    async fn exchange(&self) -> Exchanged {
        let cfg = &self.inner.config;
        let max_attempts = cfg.max_attempts.clamp(1, usize::from(u8::MAX));
        let mut attempts = 0usize;
        let mut packets = 0u8;
        let mut last_target = self.candidates.first().copied();
        let mut last_failure = Failure::Timeout;
        // Targets that failed in this exchange; those that never answered get held down at the end.
        let mut failed: Vec<SocketAddr> = Vec::new();
        let mut next = 0usize;
        // One socket at a time (so sockets <= exchanges in flight). A retry to the same target resends the
        // same query on the same socket, so a late answer to the first packet still counts.
        let mut current: Option<Current> = None;

        let verdict = loop {
            if attempts >= max_attempts || Instant::now() >= self.deadline {
                break None;
            }
            let Some(&target) = self.candidates.get(next % self.candidates.len().max(1)) else {
                break None;
            };
            next += 1;
            attempts += 1;
            last_target = Some(target);
            if current.as_ref().is_none_or(|c| c.target != target) {
                current = None;
                let (bytes, check) = match self.query() {
                    Ok(q) => q,
                    Err(e) => {
                        warn!(name = %self.name, error = %e, "cannot encode query");
                        break None;
                    }
                };
                match self.inner.udp_socket(&self.route, target).await {
                    Ok(sock) => {
                        current = Some(Current {
                            target,
                            sock,
                            bytes,
                            check,
                        })
                    }
                    Err(e) => {
                        // A local problem (e.g. out of file descriptors), not the target's fault.
                        last_failure = Failure::Network;
                        warn!(target = %target, error = %e, "cannot open a UDP socket");
                        continue;
                    }
                }
            }
            let Some(cur) = current.as_ref() else {
                continue;
            };
            if let Err(e) = cur.sock.send(&cur.bytes).await {
                self.inner.record_failure(target, "send");
                failed.push(target);
                last_failure = Failure::Network;
                debug!(target = %target, error = %e, "send failed");
                current = None;
                continue;
            }
            let sent_at = Instant::now();
            packets = packets.saturating_add(1);
            self.inner.record_sent(target);
            debug!(route = %self.route.name, name = %self.name, qtype = %self.qtype, target = %target, attempt = attempts, "query sent upstream");
            // The last packet may use all the time left: a late answer is better than a SERVFAIL.
            let until = if attempts >= max_attempts {
                self.deadline
            } else {
                (sent_at + cfg.attempt_timeout).min(self.deadline)
            };
            match timeout_at(until, read_udp(&cur.sock, &cur.check)).await {
                Err(_) => {
                    self.inner.record_failure(target, "timeout");
                    failed.push(target);
                    last_failure = Failure::Timeout;
                }
                Ok(Err(e)) => {
                    // Typically ICMP port unreachable: try the next target at once.
                    self.inner.record_failure(target, "network");
                    failed.push(target);
                    last_failure = Failure::Network;
                    debug!(target = %target, error = %e, "receive failed");
                    current = None;
                }
                Ok(Ok(msg)) => {
                    let rtt = sent_at.elapsed();
                    if let Some(v) = self
                        .on_answer(
                            target,
                            msg,
                            rtt,
                            &mut attempts,
                            &mut packets,
                            &mut failed,
                            &mut last_failure,
                        )
                        .await
                    {
                        break Some(v);
                    }
                }
            }
        };
        drop(current);

        for t in failed.iter().collect::<HashSet<_>>() {
            let answered = verdict
                .as_ref()
                .is_some_and(|v: &Exchanged| v.via == Via::Target(*t) && v.answered);
            if !answered {
                self.inner.hold_down(*t);
            }
        }

        match verdict {
            Some(mut v) => {
                v.packets = packets;
                v
            }
            None => {
                let via = last_target.map_or(Via::NotSent, Via::Target);
                let (code, text) = match last_failure {
                    Failure::Timeout => (
                        ede::NO_REACHABLE_AUTHORITY,
                        "no answer from the forward targets",
                    ),
                    Failure::Network => (
                        ede::NETWORK_ERROR,
                        "network error reaching the forward targets",
                    ),
                };
                debug!(route = %self.route.name, name = %self.name, qtype = %self.qtype, packets, "upstream exchange failed");
                Exchanged {
                    rcode: ResponseCode::ServFail,
                    answers: Vec::new(),
                    authority: Vec::new(),
                    via,
                    ede: Some((code, text.to_owned())),
                    packets,
                    answered: false,
                }
            }
        }
    }

    /// Handles a matching UDP response (retrying over TCP if truncated): `Some` ends the exchange.
    #[allow(clippy::too_many_arguments)]
    async fn on_answer(
        &self,
        target: SocketAddr,
        msg: Message,
        rtt: Duration,
        attempts: &mut usize,
        packets: &mut u8,
        failed: &mut Vec<SocketAddr>,
        last_failure: &mut Failure,
    ) -> Option<Exchanged> {
        let (msg, rtt) = if msg.truncation {
            let max_attempts = self
                .inner
                .config
                .max_attempts
                .clamp(1, usize::from(u8::MAX));
            if *attempts >= max_attempts {
                self.inner.record_success(target, rtt);
                return Some(failed_answer(
                    target,
                    ede::OTHER,
                    "response truncated and no attempt left for TCP",
                ));
            }
            let Ok((bytes, check)) = self.query() else {
                return None;
            };
            *attempts += 1;
            *packets = packets.saturating_add(1);
            self.inner.record_sent(target);
            let started = Instant::now();
            let until = (started + self.inner.config.attempt_timeout * 2).min(self.deadline);
            debug!(target = %target, name = %self.name, "truncated over UDP, retrying over TCP");
            match timeout_at(
                until,
                self.inner.tcp_exchange(&self.route, target, &bytes, &check),
            )
            .await
            {
                Ok(Ok(m)) => (m, started.elapsed()),
                Ok(Err(e)) => {
                    self.inner.record_failure(target, "tcp");
                    failed.push(target);
                    *last_failure = Failure::Network;
                    debug!(target = %target, error = %e, "TCP retry failed");
                    return None;
                }
                Err(_) => {
                    self.inner.record_failure(target, "tcp timeout");
                    failed.push(target);
                    *last_failure = Failure::Timeout;
                    return None;
                }
            }
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
async fn read_udp(sock: &UdpSocket, check: &Check) -> io::Result<Message> {
    let mut buf = vec![0u8; UDP_BUFFER];
    loop {
        let n = sock.recv(&mut buf).await?;
        if let Some(msg) = buf.get(..n).and_then(|b| check.accept(b)) {
            return Ok(msg);
        }
    }
}

impl Inner {
    fn cache_insert(&self, key: &CacheKey, ex: &Exchanged, dnssec_ok: bool) {
        let Some(ttl) = cache_ttl(ex, self.config.max_ttl) else {
            return;
        };
        let now = Instant::now();
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
        let entry = Entry {
            rcode: ex.rcode,
            answers: cap(&ex.answers),
            authority: cap(&ex.authority),
            stored: now,
            expires: now + Duration::from_secs(u64::from(ttl.entry_ttl)),
            stale_until: now
                + Duration::from_secs(u64::from(ttl.entry_ttl))
                + self.config.stale_for,
            dnssec_ok,
            order: (now, 0),
        };
        lock(&self.cache).insert(key.clone(), entry, now);
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

struct Entry {
    rcode: ResponseCode,
    answers: Vec<Record>,
    authority: Vec<Record>,
    stored: Instant,
    expires: Instant,
    stale_until: Instant,
    /// Fetched with DO: holds the signatures, so it can serve DO and non-DO queries.
    dnssec_ok: bool,
    /// Position in the eviction order.
    order: (Instant, u64),
}

/// Fixed-capacity cache; eviction order is the end of the stale window, so dead and soon-dead entries go
/// first.
struct Cache {
    capacity: usize,
    map: HashMap<CacheKey, Entry>,
    order: BTreeMap<(Instant, u64), CacheKey>,
    seq: u64,
}

impl Cache {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            map: HashMap::new(),
            order: BTreeMap::new(),
            seq: 0,
        }
    }

    fn remove(&mut self, key: &CacheKey) {
        if let Some(e) = self.map.remove(key) {
            self.order.remove(&e.order);
        }
    }

    fn insert(&mut self, key: CacheKey, mut entry: Entry, now: Instant) {
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

    fn fresh(
        &mut self,
        key: &CacheKey,
        dnssec_ok: bool,
        qtype: RecordType,
        now: Instant,
    ) -> Option<Outcome> {
        let e = self.map.get(key)?;
        if e.stale_until <= now {
            self.remove(key);
            return None;
        }
        if e.expires <= now || (dnssec_ok && !e.dnssec_ok) {
            return None;
        }
        let elapsed = u32::try_from((now - e.stored).as_secs()).unwrap_or(u32::MAX);
        let age = |records: &[Record]| {
            strip_dnssec(records, dnssec_ok, qtype)
                .into_iter()
                .map(|mut r| {
                    r.ttl = r.ttl.saturating_sub(elapsed);
                    r
                })
                .collect()
        };
        Some(Outcome {
            rcode: e.rcode,
            answers: age(&e.answers),
            authority: age(&e.authority),
            via: Via::Cache,
            ede: None,
            upstream_packets: 0,
        })
    }

    fn stale(
        &mut self,
        key: &CacheKey,
        dnssec_ok: bool,
        qtype: RecordType,
        now: Instant,
        why: &str,
    ) -> Option<Outcome> {
        let e = self.map.get(key)?;
        if e.stale_until <= now {
            self.remove(key);
            return None;
        }
        let code = if e.rcode == ResponseCode::NXDomain {
            ede::STALE_NXDOMAIN_ANSWER
        } else {
            ede::STALE_ANSWER
        };
        let fix = |records: &[Record]| {
            strip_dnssec(records, dnssec_ok, qtype)
                .into_iter()
                .map(|mut r| {
                    r.ttl = STALE_TTL;
                    r
                })
                .collect()
        };
        Some(Outcome {
            rcode: e.rcode,
            answers: fix(&e.answers),
            authority: fix(&e.authority),
            via: Via::Stale,
            ede: Some((code, format!("stale answer: {why}"))),
            upstream_packets: 0,
        })
    }
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
