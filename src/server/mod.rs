//! Sockets and lifecycle: UDP and TCP listeners, the current topology snapshot, reloads, metrics and shutdown.
//!
//! We keep hickory-proto for the wire format but run our own transport instead of `hickory_server::Server`: its UDP
//! loop spawns a task per packet, its TCP accept loop neither bounds connections nor backs off when descriptors
//! run out, and it cannot tell a handler which local address a query arrived on over a wildcard socket.
//! Everything here is reachable from the library API (`Server::start`), which the CLI and the tests share.

mod answers;
mod doh;
mod handler;
mod metrics;
mod ops;
mod querylog;
mod reload;
mod rrl;
mod udp;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use ipnet::IpNet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tracing::{debug, error, info, warn};

pub use doh::TlsError;
pub use handler::Protocol;
pub use metrics::Metrics;
pub use querylog::{AWS_TARGET, QueryLogFormat};

use crate::engine::{Engine, EngineError, Options};
use crate::topology::{self, Diagnostics, LoadError, RateLimit, Topology, Upstream};
use crate::upstream::{Forwarder, ForwarderConfig};

/// Where the topology comes from; `Files` and `Embedded` can be reloaded.
#[derive(Debug, Clone)]
pub enum TopologySource {
    Embedded,
    Files(Vec<PathBuf>),
    /// Built in code or parsed from text by the caller.
    Given(Box<Topology>),
}

impl TopologySource {
    /// Loads (or re-loads) the topology.
    pub fn load(&self) -> Result<Topology, LoadError> {
        match self {
            Self::Embedded => topology::default_topology().map_err(LoadError::Invalid),
            Self::Files(paths) => topology::load(paths),
            Self::Given(t) => Ok((**t).clone()),
        }
    }
}

/// Everything `serve` can be told.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub source: TopologySource,
    /// Addresses to listen on, UDP and TCP each; port 0 picks a free port.
    pub listen: Vec<SocketAddr>,
    /// Also listen on every VPC resolver and inbound endpoint address of the topology that exists on this host,
    /// plus 169.254.169.253 and fd00:ec2::253, on this port.
    pub listen_topology: Option<u16>,
    /// Replaces the topology's `upstream`.
    pub upstream: Option<Vec<Upstream>>,
    /// Replaces the topology's `default_view` (a VPC id or name, or `public`).
    pub default_view: Option<String>,
    /// Sources allowed besides the defaults.
    pub allow: Vec<IpNet>,
    /// Replaces the topology's `rate_limit` (UDP response rate limiting).
    pub rate_limit: Option<RateLimit>,
    /// One log event per query (the JSON log is meant for this).
    pub query_log: bool,
    /// The query log's records: the server's own, or Route 53 Resolver's.
    pub query_log_format: QueryLogFormat,
    /// Reload when a topology file changes.
    pub watch: bool,
    /// Serve Prometheus metrics, /healthz and /readyz here.
    pub metrics: Option<SocketAddr>,
    pub forwarder: ForwarderConfig,
    /// UDP sockets per listen address (SO_REUSEPORT); default: one per core.
    pub udp_sockets: usize,
    /// Open TCP connections at most; the oldest idle one is closed to admit a new one.
    pub max_tcp_connections: usize,
    /// Forwarded client queries waiting for an upstream, at most (unbound's per-thread request list does this
    /// job): beyond it a query gets SERVFAIL at once, so a flood costs a bounded amount of memory and work.
    pub max_pending_forwards: usize,
    /// A TCP connection idle this long is closed.
    pub tcp_idle: Duration,
    /// DNS over HTTPS listen addresses (RFC 8484 on /dns-query); needs `tls_cert` and `tls_key`.
    pub listen_doh: Vec<SocketAddr>,
    /// PEM certificate chain for DoH.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for DoH.
    pub tls_key: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            source: TopologySource::Embedded,
            listen: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 5300))],
            listen_topology: None,
            upstream: None,
            default_view: None,
            allow: Vec::new(),
            rate_limit: None,
            query_log: false,
            query_log_format: QueryLogFormat::Native,
            watch: false,
            metrics: None,
            forwarder: ForwarderConfig::default(),
            udp_sockets: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_tcp_connections: 512,
            max_pending_forwards: 4096,
            tcp_idle: Duration::from_secs(10),
            listen_doh: Vec::new(),
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Topology(#[from] LoadError),
    #[error("default view `{0}` is neither `public` nor a VPC id or name of the topology")]
    UnknownView(String),
    #[error("DNS over HTTPS needs --tls-cert and --tls-key (PEM files)")]
    NoCertificate,
    #[error("{0}")]
    Tls(#[from] TlsError),
    #[error("binding {proto} {addr}: {source}")]
    Bind {
        proto: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// One compiled topology with everything the query path needs; replaced whole on reload. The engine holds every
/// policy (admission, views, routes); the snapshot adds only the server's own state.
pub(crate) struct Snapshot {
    pub(crate) engine: Engine,
    pub(crate) answers: answers::Answers,
    /// The engine's negative-answer SOA, encoded once (NXDOMAIN and NODATA for names no table prepares).
    pub(crate) negative: Option<crate::wire::NegativeSoa>,
    /// Routes of forwarded questions with a fixed decision (the forwarder's cache answers them).
    pub(crate) forwards: answers::Answers<answers::Forwarded>,
    rate_limit: Option<RateLimit>,
    pub(crate) query_log: bool,
    /// Set with `--query-log-format aws`: what its records need from the topology.
    pub(crate) aws_log: Option<querylog::AwsLog>,
    pub(crate) metrics: Arc<Metrics>,
}

impl Snapshot {
    fn new(
        topo: Topology,
        cfg: &ServerConfig,
        local: &[SocketAddr],
        metrics: Arc<Metrics>,
    ) -> Result<Self, ServeError> {
        let rate_limit = cfg.rate_limit.clone().or_else(|| topo.rate_limit.clone());
        let options = Options {
            allow: cfg.allow.clone(),
            default_view: cfg.default_view.clone(),
            upstream: cfg.upstream.clone(),
            system: system_nameservers(local),
        };
        let aws_log =
            (cfg.query_log_format == QueryLogFormat::Aws).then(|| querylog::AwsLog::new(&topo));
        let engine = Engine::with_options(topo, &options).map_err(|e| match e {
            EngineError::UnknownView(v) => ServeError::UnknownView(v),
        })?;
        Ok(Self {
            engine,
            answers: answers::Answers::new(),
            negative: crate::wire::NegativeSoa::new(&crate::engine::negative_soa()),
            forwards: answers::Answers::new(),
            rate_limit,
            query_log: cfg.query_log,
            aws_log,
            metrics,
        })
    }

    /// One line describing the topology, for the log (reload.rs).
    fn summary(&self) -> String {
        self.engine.topology().summary()
    }

    /// Every view name the metrics may carry for this topology (reload.rs drops the others' series).
    fn metric_views(&self) -> impl Iterator<Item = &str> {
        self.engine
            .view_keys()
            .into_iter()
            .map(|k| self.engine.view_name(k))
    }
}

/// What [`Responder::answer`] did with a packet (with [`Responder::answer_in`], the reply borrows its buffers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answered<R = Vec<u8>> {
    /// The reply the server would send.
    Reply(R),
    /// The server would send nothing.
    Drop,
    /// The question needs an upstream (not contacted here).
    Forward,
}

/// The request path without sockets: the same admission, decision and encoding the server runs for each
/// datagram or TCP message. For fuzzing and for unit-level tests of protocol rules.
pub struct Responder {
    snap: Snapshot,
}

impl Responder {
    /// A responder for `topology` with the server's defaults (`config.source` is ignored).
    pub fn new(topology: Topology, config: &ServerConfig) -> Result<Self, ServeError> {
        let snap = Snapshot::new(topology, config, &[], Arc::new(Metrics::default()))?;
        Ok(Self { snap })
    }

    /// Handles one request from `src` arriving on `local`.
    pub fn answer(
        &self,
        packet: &[u8],
        src: SocketAddr,
        local: Option<IpAddr>,
        protocol: Protocol,
    ) -> Answered {
        let mut buffers = Buffers::default();
        match self.answer_in(&mut buffers, packet, src, local, protocol) {
            Answered::Reply(_) => Answered::Reply(buffers.out),
            Answered::Drop => Answered::Drop,
            Answered::Forward => Answered::Forward,
        }
    }

    /// [`Responder::answer`] with buffers kept from one request to the next, as each server socket keeps its own:
    /// what a request costs once the buffers have grown (examples/request_path.rs counts instructions with it).
    pub fn answer_in<'b>(
        &self,
        buffers: &'b mut Buffers,
        packet: &[u8],
        src: SocketAddr,
        local: Option<IpAddr>,
        protocol: Protocol,
    ) -> Answered<&'b [u8]> {
        let request = handler::Request {
            packet,
            src,
            local,
            protocol,
        };
        match handler::handle(&self.snap, request, &mut buffers.scratch, &mut buffers.out) {
            handler::Handled::Reply => Answered::Reply(&buffers.out),
            handler::Handled::Drop => Answered::Drop,
            handler::Handled::Forward(_) => Answered::Forward,
        }
    }
}

/// The reply buffer and scratch space of [`Responder::answer_in`].
#[derive(Default)]
pub struct Buffers {
    scratch: handler::Scratch,
    out: Vec<u8>,
}

/// The nameservers of /etc/resolv.conf, without this server itself (a loop).
fn system_nameservers(local: &[SocketAddr]) -> Vec<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    crate::upstream::parse_resolv_conf(&text)
        .into_iter()
        .filter(|ns| {
            !local
                .iter()
                .any(|l| l.port() == ns.port() && (l.ip() == ns.ip() || l.ip().is_unspecified()))
        })
        .collect()
}

struct Shared {
    config: ServerConfig,
    snapshot: ArcSwap<Snapshot>,
    forwarder: Forwarder,
    metrics: Arc<Metrics>,
    local: Vec<SocketAddr>,
    shutdown: watch::Sender<bool>,
    in_flight: AtomicUsize,
    drained: Notify,
    ready: AtomicBool,
    tcp: TcpSlots,
    rrl: rrl::Table,
    reloads: reload::Reloads,
}

/// A running server. Dropping it stops it at once; [`RunningServer::shutdown`] lets queries in flight finish first.
pub struct RunningServer {
    shared: Arc<Shared>,
    udp: Vec<SocketAddr>,
    tcp: Vec<SocketAddr>,
    doh: Vec<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Starts the server: loads the topology, binds every socket, and returns once they are listening.
pub struct Server;

impl Server {
    /// Loads the topology, binds every listen address (UDP and TCP; port 0 picks a free port) and starts serving.
    /// Returns once the sockets are bound, so a client may query [`RunningServer::udp_addrs`] at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use vpc_resolver::server::{Server, ServerConfig, TopologySource};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let topology = vpc_resolver::topology::default_topology()?;
    /// let server = Server::start(ServerConfig {
    ///     source: TopologySource::Given(Box::new(topology.clone())),
    ///     listen: vec!["127.0.0.1:0".parse()?],
    ///     ..Default::default()
    /// })
    /// .await?;
    /// let addr = server.udp_addrs()[0];
    /// assert_ne!(addr.port(), 0);
    /// server.set_topology(topology)?; // e.g. a changed one; queries in flight finish on the old
    /// server.shutdown(Duration::from_secs(1)).await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn start(config: ServerConfig) -> Result<RunningServer, ServeError> {
        let watch_from = reload::initial_stamps(&config.source, config.watch);
        let topo = config.source.load()?;
        // Bind first: the snapshot needs our own addresses to skip them in resolv.conf.
        let listen = listen_addresses(&config, &topo);
        let bound = bind_all(&listen, config.udp_sockets)?;
        let local: Vec<SocketAddr> = bound
            .udp_addrs
            .iter()
            .chain(&bound.tcp_addrs)
            .copied()
            .collect();
        let metrics = Arc::new(Metrics::default());
        let snapshot = Snapshot::new(topo, &config, &local, metrics.clone())?;
        let forwarder = Forwarder::new(config.forwarder.clone());
        forwarder.set_local_addrs(local.clone());
        let (shutdown, _) = watch::channel(false);
        let (reloads, reload_queue) = reload::Reloads::new();
        metrics.set_generation(reloads.generation());
        let shared = Arc::new(Shared {
            tcp: TcpSlots::new(config.max_tcp_connections),
            config,
            snapshot: ArcSwap::from_pointee(snapshot),
            forwarder,
            metrics,
            local,
            shutdown,
            in_flight: AtomicUsize::new(0),
            drained: Notify::new(),
            ready: AtomicBool::new(true),
            rrl: rrl::Table::default(),
            reloads,
        });
        let Bound {
            udp_sockets,
            tcp_listeners,
            udp_addrs,
            tcp_addrs,
        } = bound;
        spawn_udp_threads(udp_sockets, &shared, udp_addrs[0])?;
        let mut tasks: Vec<_> = tcp_listeners
            .into_iter()
            .map(|listener| tokio::spawn(tcp_accept(listener, shared.clone())))
            .collect();
        let metrics_addr = match shared.config.metrics {
            Some(addr) => {
                let listener =
                    TcpListener::bind(addr)
                        .await
                        .map_err(|source| ServeError::Bind {
                            proto: "tcp",
                            addr,
                            source,
                        })?;
                let bound = listener.local_addr().ok();
                tasks.push(tokio::spawn(ops::serve(listener, shared.clone())));
                bound
            }
            None => None,
        };
        tasks.push(tokio::spawn(reload::worker(shared.clone(), reload_queue)));
        if shared.config.watch
            && let TopologySource::Files(paths) = &shared.config.source
        {
            tasks.push(tokio::spawn(reload::watch_files(
                shared.clone(),
                paths.clone(),
                watch_from,
            )));
        }
        let (doh_tasks, doh) = start_doh(&shared)?;
        tasks.extend(doh_tasks);
        let snap = shared.snapshot.load();
        info!(topology = %snap.engine.topology().summary(), generation = 1, "serving topology generation 1");
        Ok(RunningServer {
            shared,
            udp: udp_addrs,
            tcp: tcp_addrs,
            doh,
            metrics_addr,
            tasks,
        })
    }
}

/// `--listen` plus, with `--listen-topology`, every VPC resolver and inbound endpoint address (and 169.254.169.253,
/// fd00:ec2::253) this host has and no wildcard on the same port already covers.
fn listen_addresses(config: &ServerConfig, topo: &Topology) -> Vec<SocketAddr> {
    let mut listen = config.listen.clone();
    let Some(port) = config.listen_topology else {
        return listen;
    };
    let mut extra: Vec<IpAddr> = topo
        .resolver_addresses()
        .into_iter()
        .map(|(ip, _, _)| ip)
        .collect();
    extra.push(IpAddr::V4(Ipv4Addr::new(169, 254, 169, 253)));
    extra.push(IpAddr::V6(Ipv6Addr::new(
        0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x253,
    )));
    for ip in extra {
        let addr = SocketAddr::new(ip, port);
        // A wildcard listener on the same port already receives these queries and knows where each one arrived
        // (IP_PKTINFO), so the address needs no socket of its own.
        if listen
            .iter()
            .any(|l| l.port() == port && l.ip().is_unspecified() && l.is_ipv4() == addr.is_ipv4())
        {
            debug!(%addr, "served by the wildcard listener on the same port");
            continue;
        }
        // Only addresses this host has: binding tells.
        if !listen.contains(&addr) && std::net::UdpSocket::bind(addr).is_ok() {
            listen.push(addr);
        } else {
            debug!(%addr, "topology address not on this host; not listening on it");
        }
    }
    listen
}

/// The sockets of every listen address: `per_address` UDP sockets (SO_REUSEPORT; one for port 0) and one TCP
/// listener on the same port.
struct Bound {
    udp_sockets: Vec<std::net::UdpSocket>,
    tcp_listeners: Vec<TcpListener>,
    udp_addrs: Vec<SocketAddr>,
    tcp_addrs: Vec<SocketAddr>,
}

fn bind_all(listen: &[SocketAddr], per_address: usize) -> Result<Bound, ServeError> {
    let mut b = Bound {
        udp_sockets: Vec::new(),
        tcp_listeners: Vec::new(),
        udp_addrs: Vec::new(),
        tcp_addrs: Vec::new(),
    };
    for addr in listen {
        let first = bind_udp(*addr)?;
        let bound = first.local_addr().map_err(|source| ServeError::Bind {
            proto: "udp",
            addr: *addr,
            source,
        })?;
        b.udp_addrs.push(bound);
        b.udp_sockets.push(first);
        let extra = if addr.port() == 0 {
            0
        } else {
            per_address.max(1) - 1
        };
        b.udp_sockets
            .extend((0..extra).filter_map(|_| bind_udp(bound).ok()));
        // TCP on the port UDP got; for port 0 any free port if that one is taken.
        let tcp_addr = SocketAddr::new(addr.ip(), bound.port());
        let listener = bind_tcp(tcp_addr).or_else(|e| {
            if addr.port() == 0 {
                bind_tcp(SocketAddr::new(addr.ip(), 0))
            } else {
                Err(e)
            }
        })?;
        b.tcp_addrs
            .push(listener.local_addr().map_err(|source| ServeError::Bind {
                proto: "tcp",
                addr: tcp_addr,
                source,
            })?);
        b.tcp_listeners.push(listener);
    }
    Ok(b)
}

/// Each UDP socket gets a thread with its own single-threaded runtime: receive, answer and send stay on one core with
/// no cross-thread wake-ups (they were a fifth of the CPU per query on the shared runtime).
fn spawn_udp_threads(
    sockets: Vec<std::net::UdpSocket>,
    shared: &Arc<Shared>,
    first: SocketAddr,
) -> Result<(), ServeError> {
    for sock in sockets {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("vpc-resolver-udp".into())
            .spawn(move || udp_thread(sock, shared))
            .map_err(|source| ServeError::Bind {
                proto: "udp",
                addr: first,
                source,
            })?;
    }
    Ok(())
}

fn udp_thread(sock: std::net::UdpSocket, shared: Arc<Shared>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return error!(error = %e, "udp runtime"),
    };
    runtime.block_on(async move {
        match udp::Socket::new(sock) {
            Ok(sock) => udp_loop(Arc::new(sock), shared.clone()).await,
            Err(e) => return error!(error = %e, "udp socket"),
        }
        // Forwarded queries this runtime started finish before it goes (bounded by their deadline).
        let deadline = Instant::now() + Duration::from_secs(3);
        while shared.in_flight.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

impl RunningServer {
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp
    }
    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp
    }
    /// DNS over HTTPS listeners (`--listen-doh`, and port 443 of DoH inbound endpoints with `--listen-topology`).
    pub fn doh_addrs(&self) -> &[SocketAddr] {
        &self.doh
    }
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Replaces the topology while serving; queries in flight finish on the old one. Returns the generation it
    /// serves as. A reload requested earlier that is still loading will not replace it (the last request wins).
    pub fn set_topology(&self, topology: Topology) -> Result<u64, ServeError> {
        let snap = Snapshot::new(
            topology,
            &self.shared.config,
            &self.shared.local,
            self.shared.metrics.clone(),
        )?;
        let seq = self.shared.reloads.number();
        Ok(self.shared.reloads.store(&self.shared, seq, snap))
    }

    /// Re-reads the topology source; on error the old topology keeps serving and the errors are returned. On
    /// success, the generation serving afterwards (requests queued together are answered by one load).
    pub async fn reload(&self) -> Result<u64, Diagnostics> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.shared.reloads.request(Some(tx));
        rx.await.unwrap_or_else(|_| {
            Err(Diagnostics(vec![topology::Diagnostic {
                file: "".into(),
                line: 0,
                col: 0,
                message: "the server stopped before the reload finished".into(),
            }]))
        })
    }

    /// A handle that queues a reload (for signal handlers) and returns the request's number: the generation it
    /// becomes once loaded, unless the load fails.
    pub fn reloader(&self) -> impl Fn() -> u64 + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || shared.reloads.request(None)
    }

    /// The topology generation serving: 1 at start; each reload request or `set_topology` call takes the next
    /// number, and a generation serves once its topology is loaded.
    pub fn generation(&self) -> u64 {
        self.shared.reloads.generation()
    }

    /// Waits until generation `n` or a later one serves (wrap it in a timeout: a failed load never serves).
    pub async fn wait_for_generation(&self, n: u64) {
        self.shared.reloads.wait_for(n).await;
    }

    /// Stops listening, lets forwarded queries in flight finish (at most `drain`), and returns.
    pub async fn shutdown(mut self, drain: Duration) {
        self.shared.ready.store(false, Ordering::Relaxed);
        let _ = self.shared.shutdown.send(true);
        let deadline = Instant::now() + drain;
        while self.shared.in_flight.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            let _ = tokio::time::timeout(Duration::from_millis(50), self.shared.drained.notified())
                .await;
        }
        for t in self.tasks.drain(..) {
            t.abort();
        }
        // Return once the sockets are closed: every UDP thread and connection task holds `shared` until it ends,
        // and a thread that has not yet seen the signal would still answer (bounded, as a thread may be starved).
        let closed_by = Instant::now() + Duration::from_secs(2);
        while Arc::strong_count(&self.shared) > 1 && Instant::now() < closed_by {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for RunningServer {
    /// A dropped server stops listening (its UDP threads would otherwise outlive it).
    fn drop(&mut self) {
        let _ = self.shared.shutdown.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn bind_udp(addr: SocketAddr) -> Result<std::net::UdpSocket, ServeError> {
    let err = |source| ServeError::Bind {
        proto: "udp",
        addr,
        source,
    };
    let domain = socket2::Domain::for_address(addr);
    let sock = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))
        .map_err(err)?;
    if addr.is_ipv6() {
        let _ = sock.set_only_v6(true);
    }
    // Several sockets share an explicit port (one per core). Never on port 0: Linux may then hand out a port that
    // another SO_REUSEPORT socket of the same user already has, and the two would split each other's traffic.
    if addr.port() != 0 {
        let _ = sock.set_reuse_port(true);
    }
    udp::set_recv_buffer(&sock);
    let _ = sock.set_send_buffer_size(udp::RECV_BUFFER);
    sock.set_nonblocking(true).map_err(err)?;
    sock.bind(&addr.into()).map_err(err)?;
    Ok(sock.into())
}

/// Binds the DoH listeners: `listen_doh`, plus port 443 of every inbound endpoint address with DoH that exists on
/// this host when `listen_topology` is set (an address a wildcard DoH listener on 443 already covers is skipped).
fn start_doh(
    shared: &Arc<Shared>,
) -> Result<(Vec<tokio::task::JoinHandle<()>>, Vec<SocketAddr>), ServeError> {
    let config = &shared.config;
    let mut wanted: Vec<(SocketAddr, bool)> =
        config.listen_doh.iter().map(|a| (*a, true)).collect();
    if config.listen_topology.is_some() {
        let snap = shared.snapshot.load();
        for ep in &snap.engine.topology().inbound_endpoints {
            if !ep.protocols.iter().any(|p| p.is_doh()) {
                continue;
            }
            for ip in &ep.ips {
                let addr = SocketAddr::new(*ip, 443);
                let covered = wanted.iter().any(|(a, _)| {
                    *a == addr
                        || (a.port() == 443
                            && a.ip().is_unspecified()
                            && a.is_ipv4() == addr.is_ipv4())
                });
                if !covered {
                    wanted.push((addr, false));
                }
            }
        }
    }
    if wanted.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) else {
        if config.listen_doh.is_empty() {
            warn!(
                "inbound endpoints speak DoH, but no --tls-cert/--tls-key was given: serving them Do53 only"
            );
            return Ok((Vec::new(), Vec::new()));
        }
        return Err(ServeError::NoCertificate);
    };
    let tls = doh::tls_acceptor(cert, key)?;
    // Open DoH connections at most, over every DoH listener, as many as TCP connections.
    let permits = Arc::new(Semaphore::new(config.max_tcp_connections.max(1)));
    let mut tasks = Vec::new();
    let mut bound = Vec::new();
    for (addr, explicit) in wanted {
        match bind_tcp(addr) {
            Ok(listener) => {
                bound.push(listener.local_addr().unwrap_or(addr));
                tasks.push(tokio::spawn(doh::accept_loop(
                    listener,
                    tls.clone(),
                    shared.clone(),
                    permits.clone(),
                )));
            }
            Err(e) if explicit => return Err(e),
            // Only the topology's addresses this host has: binding tells.
            Err(e) => debug!(%addr, error = %e, "inbound endpoint DoH address not on this host"),
        }
    }
    Ok((tasks, bound))
}

fn bind_tcp(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    let err = |source| ServeError::Bind {
        proto: "tcp",
        addr,
        source,
    };
    let domain = socket2::Domain::for_address(addr);
    let sock = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))
        .map_err(err)?;
    if addr.is_ipv6() {
        let _ = sock.set_only_v6(true);
    }
    let _ = sock.set_reuse_address(true);
    sock.set_nonblocking(true).map_err(err)?;
    sock.bind(&addr.into()).map_err(err)?;
    sock.listen(1024).map_err(err)?;
    TcpListener::from_std(sock.into()).map_err(err)
}

async fn udp_loop(sock: Arc<udp::Socket>, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut batch = udp::Batch::default();
    let mut outbox = udp::Outbox::default();
    let mut out = Vec::with_capacity(1232);
    let mut scratch = handler::Scratch::with_forwarder(shared.forwarder.clone());
    loop {
        let received = tokio::select! {
            r = sock.recv(&mut batch) => r,
            _ = shutdown.changed() => return,
        };
        if let Err(e) = received {
            // ICMP errors from earlier replies surface here on Linux; they are not fatal.
            debug!(error = %e, "udp receive error");
            continue;
        }
        let snap = shared.snapshot.load_full();
        for dgram in batch.datagrams(sock.bound()) {
            out.clear();
            if udp_one(&sock, &shared, &snap, &dgram, &mut scratch, &mut out)
                && outbox.push(&out, dgram.src, dgram.local)
            {
                sock.flush(&mut outbox).await;
            }
        }
        sock.flush(&mut outbox).await;
    }
}

/// One datagram through the handler; `true` when `out` holds a reply to send from the address the query arrived
/// on. Forwarded queries go on in their own task, which sends their reply itself.
fn udp_one(
    sock: &Arc<udp::Socket>,
    shared: &Arc<Shared>,
    snap: &Arc<Snapshot>,
    dgram: &udp::Datagram<'_>,
    scratch: &mut handler::Scratch,
    out: &mut Vec<u8>,
) -> bool {
    let (src, local, packet) = (dgram.src, dgram.local, dgram.payload);
    let req = handler::Request {
        packet,
        src,
        local,
        protocol: Protocol::Udp,
    };
    let handled = handler::handle(snap, req, scratch, out);
    // Rate limiting counts responses, so it is checked once we know there is one, and before forwarding.
    if !matches!(handled, handler::Handled::Drop)
        && let Some(policy) = &snap.rate_limit
    {
        match shared.rrl.check(src.ip(), policy) {
            rrl::Verdict::Send => {}
            rrl::Verdict::Slip => {
                snap.metrics.rate_limited(true);
                out.clear();
                return handler::truncated(packet, out);
            }
            rrl::Verdict::Drop => {
                snap.metrics.rate_limited(false);
                return false;
            }
        }
    }
    match handled {
        handler::Handled::Reply => true,
        handler::Handled::Drop => false,
        handler::Handled::Forward(job) => match Pending::take(shared) {
            Ok(pending) => {
                let sock = sock.clone();
                let snap = snap.clone();
                tokio::spawn(async move {
                    let mut out = Vec::with_capacity(512);
                    handler::forward(snap, &pending.0.forwarder, job, &mut out).await;
                    if !out.is_empty() {
                        sock.send(&out, src, local).await;
                    }
                });
                false
            }
            Err(pending) => {
                handler::busy(snap, job, pending, out);
                !out.is_empty()
            }
        },
    }
}

/// One forwarded query in progress; when the last one ends, a draining shutdown may finish.
struct Pending(Arc<Shared>);

impl Pending {
    /// A slot, or how many are pending when none is left.
    fn take(shared: &Arc<Shared>) -> Result<Self, usize> {
        let before = shared.in_flight.fetch_add(1, Ordering::AcqRel);
        let pending = Self(shared.clone());
        if before >= shared.config.max_pending_forwards {
            return Err(before);
        }
        Ok(pending)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}

type ConnSlot = (Option<Instant>, Arc<Notify>);

/// Bounded TCP connections: when all slots are taken, the connection idle longest is asked to close.
struct TcpSlots {
    permits: Arc<Semaphore>,
    /// Connection id -> (idle since, close signal).
    conns: Mutex<HashMap<u64, ConnSlot>>,
    next: AtomicU64,
}

impl TcpSlots {
    fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max.max(1))),
            conns: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
        }
    }

    fn set_idle(&self, id: u64, idle: bool) {
        if let Ok(mut conns) = self.conns.lock()
            && let Some(entry) = conns.get_mut(&id)
        {
            entry.0 = idle.then(Instant::now);
        }
    }

    fn reclaim_oldest_idle(&self) {
        if let Ok(conns) = self.conns.lock()
            && let Some((_, (_, notify))) = conns
                .iter()
                .filter(|(_, (idle, _))| idle.is_some())
                .min_by_key(|(_, (idle, _))| *idle)
        {
            notify.notify_one();
        }
    }
}

async fn tcp_accept(listener: TcpListener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => return,
        };
        let (stream, src) = match accepted {
            Ok(x) => {
                backoff = Duration::from_millis(10);
                x
            }
            Err(e) => {
                // Out of descriptors (EMFILE/ENFILE) or similar: back off instead of spinning.
                warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "tcp accept failed");
                shared.tcp.reclaim_oldest_idle();
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let permit = match shared.tcp.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                shared.tcp.reclaim_oldest_idle();
                match tokio::time::timeout(
                    Duration::from_millis(200),
                    shared.tcp.permits.clone().acquire_owned(),
                )
                .await
                {
                    Ok(Ok(p)) => p,
                    _ => {
                        debug!(%src, "tcp connection limit reached; closing new connection");
                        continue;
                    }
                }
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let id = shared.tcp.next.fetch_add(1, Ordering::Relaxed);
            let close = Arc::new(Notify::new());
            if let Ok(mut conns) = shared.tcp.conns.lock() {
                conns.insert(id, (Some(Instant::now()), close.clone()));
            }
            tcp_conn(stream, src, &shared, id, &close).await;
            if let Ok(mut conns) = shared.tcp.conns.lock() {
                conns.remove(&id);
            }
            drop(permit);
        });
    }
}

async fn tcp_conn(
    mut stream: TcpStream,
    src: SocketAddr,
    shared: &Arc<Shared>,
    id: u64,
    close: &Notify,
) {
    let local = stream.local_addr().ok().map(|a| a.ip());
    let _ = stream.set_nodelay(true);
    let mut shutdown = shared.shutdown.subscribe();
    let idle = shared.config.tcp_idle;
    let mut buf = Vec::with_capacity(512);
    let mut out = Vec::with_capacity(512);
    let mut scratch = handler::Scratch::with_forwarder(shared.forwarder.clone());
    loop {
        shared.tcp.set_idle(id, true);
        let mut len = [0u8; 2];
        let first = tokio::select! {
            r = tokio::time::timeout(idle, stream.read_exact(&mut len)) => r,
            _ = close.notified() => return,
            _ = shutdown.changed() => return,
        };
        if !matches!(first, Ok(Ok(_))) {
            return;
        }
        shared.tcp.set_idle(id, false);
        let n = u16::from_be_bytes(len) as usize;
        buf.resize(n, 0);
        // A slow client gets a bounded time to send the rest of its message.
        if !matches!(
            tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut buf)).await,
            Ok(Ok(_))
        ) {
            return;
        }
        let snap = shared.snapshot.load_full();
        out.clear();
        match handler::handle(
            &snap,
            handler::Request {
                packet: &buf,
                src,
                local,
                protocol: Protocol::Tcp,
            },
            &mut scratch,
            &mut out,
        ) {
            handler::Handled::Reply => {}
            handler::Handled::Drop => return,
            handler::Handled::Forward(job) => match Pending::take(shared) {
                Ok(_pending) => handler::forward(snap, &shared.forwarder, job, &mut out).await,
                Err(pending) => handler::busy(&snap, job, pending, &mut out),
            },
        }
        if out.is_empty() {
            continue;
        }
        let mut framed = Vec::with_capacity(out.len() + 2);
        framed.extend_from_slice(&(out.len() as u16).to_be_bytes());
        framed.extend_from_slice(&out);
        if !matches!(
            tokio::time::timeout(Duration::from_secs(5), stream.write_all(&framed)).await,
            Ok(Ok(_))
        ) {
            return;
        }
    }
}
