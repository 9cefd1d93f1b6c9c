//! The command line: `serve`, `check`, `explain`, `services`, `schema`, `import`, `probe`. The only module that
//! prints to stdout.
#![allow(clippy::print_stdout)]

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use ipnet::IpNet;
use vpc_resolver::catalog::Catalog;
use vpc_resolver::engine::{Client, Engine, Options};
use vpc_resolver::explain;
use vpc_resolver::server::{Server, ServerConfig, TopologySource};
use vpc_resolver::topology::{self, LoadError, RateLimit, Upstream};

#[derive(Parser, Debug)]
#[command(
    name = "vpc-resolver",
    version,
    about = "Answers DNS the way the Route 53 VPC Resolver answers inside an AWS VPC"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

impl Cli {
    /// Whether this run serves (long-lived: worth returning freed memory to the OS at once).
    pub(crate) fn serves(&self) -> bool {
        matches!(self.command, Command::Serve { .. })
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum QueryLogFormat {
    /// The server's own `answered` events, in --log-format.
    Native,
    /// Route 53 Resolver query-log records, one JSON object per line on stderr.
    Aws,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve DNS over UDP and TCP. With no TOPOLOGY, the embedded default (zones/default.yaml).
    Serve {
        /// Topology files; they merge.
        topology: Vec<PathBuf>,
        /// Listen address, UDP and TCP (repeatable). Port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:5300")]
        listen: Vec<SocketAddr>,
        /// Also listen on every VPC resolver address (VPC base + 2), inbound endpoint IP, 169.254.169.253 and
        /// fd00:ec2::253 that exists on this host, on PORT.
        #[arg(long, value_name = "PORT", num_args = 0..=1, default_missing_value = "53")]
        listen_topology: Option<u16>,
        /// Replaces the topology's upstream: `system`, `IP` or `IP:PORT` (repeatable).
        #[arg(long)]
        upstream: Vec<String>,
        /// View for clients that match nothing: a VPC id or name, or `public`.
        #[arg(long)]
        default_view: Option<String>,
        /// Also allow these source networks (always allowed: VPC CIDRs, clients, networks; loopback too unless the
        /// topology writes `allow`).
        #[arg(long)]
        allow: Vec<IpNet>,
        /// UDP responses per second per client /24 (IPv4) or /56 (IPv6); beyond it every 2nd response is sent
        /// truncated and the rest dropped. Loopback is exempt. Replaces the topology's `rate_limit`.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        rate_limit: Option<u32>,
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
        /// One log line per query (on by default with --log-format json and --query-log-format aws).
        #[arg(long)]
        query_log: bool,
        /// `aws`: each query's log line is the JSON record Route 53 Resolver query logging writes.
        #[arg(long, value_enum, default_value = "native")]
        query_log_format: QueryLogFormat,
        /// Reload when a topology file changes (SIGHUP always reloads).
        #[arg(long)]
        watch: bool,
        /// Serve Prometheus metrics, /healthz and /readyz on this address.
        #[arg(long, value_name = "ADDR")]
        metrics: Option<SocketAddr>,
        /// Serve DNS over HTTPS (RFC 8484, POST on /dns-query) here (repeatable); needs --tls-cert and --tls-key.
        /// With --listen-topology, port 443 of inbound endpoints whose protocols include DoH is served too.
        #[arg(long, value_name = "ADDR:PORT")]
        listen_doh: Vec<SocketAddr>,
        /// PEM certificate chain for DNS over HTTPS.
        #[arg(long, value_name = "PEM", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key for DNS over HTTPS.
        #[arg(long, value_name = "PEM", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Validate topology files: "ok: ..." and exit 0, or every problem as FILE:LINE:COL and exit 1.
    Check {
        #[arg(required = true)]
        topology: Vec<PathBuf>,
    },
    /// Explain how NAME resolves for a client at --from: the view, every candidate, the winner and the answer.
    Explain {
        name: String,
        /// `[TYPE] [TOPOLOGY]...`: a record type (default A), then topology files (default: the embedded one).
        #[arg(value_name = "TYPE|TOPOLOGY")]
        rest: Vec<String>,
        /// The client's source address.
        #[arg(long)]
        from: IpAddr,
        /// The local address the query arrives on (a VPC resolver or inbound endpoint address).
        #[arg(long)]
        to: Option<IpAddr>,
        /// As `serve --allow`: more source networks that may ask.
        #[arg(long)]
        allow: Vec<IpNet>,
        /// As `serve --default-view`.
        #[arg(long)]
        default_view: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List the service catalog: service name, private DNS names, endpoint types, evidence.
    Services {
        #[arg(long, default_value = "us-east-1")]
        region: String,
        filter: Option<String>,
    },
    /// Print the JSON Schema of topology files (for YAML editors).
    Schema,
    /// Build a topology from an account's AWS CLI JSON output (`import aws DIR_OR_FILES... [-o out.yaml]`).
    Import {
        #[command(subcommand)]
        from: ImportFrom,
    },
    /// Health check: ask a server `id.server. CH TXT` once; exit 0 on a well-formed reply (any rcode), 1 otherwise.
    Probe {
        #[arg(value_name = "ADDR:PORT", default_value = "127.0.0.1:53")]
        server: SocketAddr,
        /// Ask over TCP instead of UDP.
        #[arg(long)]
        tcp: bool,
        /// Give up after this many seconds.
        #[arg(long, value_name = "SECONDS", default_value = "2",
              value_parser = clap::value_parser!(u64).range(1..=60))]
        timeout: u64,
    },
}

#[derive(Subcommand, Debug)]
enum ImportFrom {
    /// From `aws ec2 describe-*`, `aws route53 list-*` and `aws route53resolver list-*` JSON, files or directories.
    Aws {
        #[arg(required = true, value_name = "DIR_OR_FILE")]
        inputs: Vec<PathBuf>,
        /// Write the topology here instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// The region (default: from the endpoint service names or availability zones).
        #[arg(long)]
        region: Option<String>,
        /// Write the topology even if it does not pass `check`.
        #[arg(long)]
        no_check: bool,
        /// Keep what the account reports even where AWS would not produce it (moto): ENI addresses outside their
        /// subnet and `DnsEntries` names not in AWS's form are served as reported, each with a warning.
        #[arg(long)]
        keep_reported: bool,
    },
}

pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve {
            topology,
            listen,
            listen_topology,
            upstream,
            default_view,
            allow,
            rate_limit,
            log_format,
            query_log,
            query_log_format,
            watch,
            metrics,
            listen_doh,
            tls_cert,
            tls_key,
        } => {
            let aws = query_log_format == QueryLogFormat::Aws;
            init_tracing(log_format, aws);
            let config = ServerConfig {
                source: topology_source(topology),
                listen,
                listen_topology,
                upstream: parse_upstreams(&upstream)?,
                default_view,
                allow,
                rate_limit: rate_limit.map(RateLimit::new),
                query_log: query_log || aws || matches!(log_format, LogFormat::Json),
                query_log_format: if aws {
                    vpc_resolver::server::QueryLogFormat::Aws
                } else {
                    vpc_resolver::server::QueryLogFormat::Native
                },
                watch,
                metrics,
                listen_doh,
                tls_cert,
                tls_key,
                ..ServerConfig::default()
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?;
            runtime.block_on(serve(config))
        }
        Command::Check { topology } => check(&topology),
        Command::Explain {
            name,
            rest,
            from,
            to,
            allow,
            default_view,
            json,
        } => {
            let client = Client {
                src: from,
                local: to,
            };
            let options = Options {
                allow,
                default_view,
                ..Options::default()
            };
            explain_cmd(&name, rest, client, &options, json)
        }
        Command::Services { region, filter } => services(&region, filter.as_deref()),
        Command::Probe {
            server,
            tcp,
            timeout,
        } => Ok(probe(server, tcp, Duration::from_secs(timeout))),
        Command::Schema => {
            println!("{}", serde_json::to_string_pretty(topology::schema())?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Import {
            from:
                ImportFrom::Aws {
                    inputs,
                    output,
                    region,
                    no_check,
                    keep_reported,
                },
        } => import(&inputs, output, region, no_check, keep_reported),
    }
}

fn topology_source(files: Vec<PathBuf>) -> TopologySource {
    if files.is_empty() {
        TopologySource::Embedded
    } else {
        TopologySource::Files(files)
    }
}

fn parse_upstreams(list: &[String]) -> anyhow::Result<Option<Vec<Upstream>>> {
    if list.is_empty() {
        return Ok(None);
    }
    let parsed = list.iter().map(|u| parse_upstream(u));
    Ok(Some(parsed.collect::<anyhow::Result<Vec<_>>>()?))
}

fn check(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    match topology::load(files) {
        Ok(t) => {
            println!("ok: {}", t.summary());
            Ok(ExitCode::SUCCESS)
        }
        Err(LoadError::Invalid(diags)) => {
            for d in &diags.0 {
                println!("{d}");
            }
            eprintln!("{} problem(s) found", diags.0.len());
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.into()),
    }
}

/// `[TYPE] [TOPOLOGY]...`: a leading record type (that is not also a file), then topology files.
fn type_and_files(rest: Vec<String>) -> (String, Vec<PathBuf>) {
    let mut rest = rest.into_iter().peekable();
    let qtype = match rest.peek() {
        Some(t)
            if RecordType::from_str(&t.to_uppercase()).is_ok()
                && !std::path::Path::new(t).exists() =>
        {
            rest.next().unwrap_or_default()
        }
        _ => "A".to_string(),
    };
    (qtype, rest.map(PathBuf::from).collect())
}

/// `explain`: the server's own engine, with the same `--allow` and `--default-view`, decides and explains.
fn explain_cmd(
    name: &str,
    rest: Vec<String>,
    client: Client,
    options: &Options,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let (qtype, files) = type_and_files(rest);
    let topo = if files.is_empty() {
        topology::default_topology().map_err(LoadError::Invalid)?
    } else {
        topology::load(&files)?
    };
    let engine = Engine::with_options(topo, options)?;
    let qname = Name::from_str(name).with_context(|| format!("`{name}` is not a domain name"))?;
    let qtype = RecordType::from_str(&qtype.to_uppercase())
        .map_err(|_| anyhow::anyhow!("`{qtype}` is not a record type"))?;
    let decision = engine.resolve(client, &qname, qtype);
    let explanation = explain::explain(&engine, client, &qname, qtype, &decision);
    if json {
        println!("{}", serde_json::to_string_pretty(&explanation)?);
    } else {
        print!("{}", explanation.render());
    }
    Ok(ExitCode::SUCCESS)
}

fn services(region: &str, filter: Option<&str>) -> anyhow::Result<ExitCode> {
    if !vpc_resolver::catalog::is_known_region(region) {
        bail!("unknown region `{region}`");
    }
    let mut out = std::io::stdout().lock();
    for s in Catalog::embedded().list(region, filter) {
        let types = match (s.interface, s.gateway) {
            (true, true) => "interface,gateway",
            (false, true) => "gateway",
            _ => "interface",
        };
        let names = if s.private_dns_names.is_empty() {
            "-".to_string()
        } else {
            s.private_dns_names.join(",")
        };
        // A closed pipe (`| head`) ends the listing quietly.
        if writeln!(
            out,
            "{}\t{}\t{}\tvpce: {}\tevidence: {:?}",
            s.name, names, types, s.endpoint_service_id, s.evidence
        )
        .is_err()
        {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn import(
    inputs: &[PathBuf],
    output: Option<PathBuf>,
    region: Option<String>,
    no_check: bool,
    keep_reported: bool,
) -> anyhow::Result<ExitCode> {
    use vpc_resolver::import::{ImportError, Options, import_aws_paths};
    let options = Options {
        region,
        no_check,
        keep_reported,
    };
    let imported = match import_aws_paths(inputs, &options) {
        Ok(i) => i,
        Err(ImportError::Invalid { yaml, diagnostics }) => {
            // Print the YAML with line numbers so each diagnostic's line can be found.
            for (n, line) in yaml.lines().enumerate() {
                eprintln!("{:4} {line}", n + 1);
            }
            for d in &diagnostics.0 {
                eprintln!("{d}");
            }
            eprintln!(
                "error: the imported topology does not pass check ({} problem(s)); --no-check writes it anyway",
                diagnostics.0.len()
            );
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    for w in &imported.warnings {
        eprintln!("warning: {w}");
    }
    match output {
        Some(path) => std::fs::write(&path, &imported.yaml)
            .with_context(|| format!("writing {}", path.display()))?,
        None => print!("{}", imported.yaml),
    }
    if let Some(t) = &imported.topology {
        eprintln!("ok: {}", t.summary());
    }
    Ok(ExitCode::SUCCESS)
}

/// `probe`: one question, one reply. The question is answered by the server itself (no upstream, no topology
/// lookup), so a slow or dead upstream never fails a liveness check; REFUSED (a source the topology does not
/// allow) still proves the server is serving.
fn probe(server: SocketAddr, tcp: bool, timeout: Duration) -> ExitCode {
    let id = probe_id();
    match probe_once(server, tcp, timeout, id) {
        Ok(rcode) => {
            println!("ok: {server} answered ({rcode})");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("fail: {server}: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn probe_once(
    server: SocketAddr,
    tcp: bool,
    timeout: Duration,
    id: u16,
) -> anyhow::Result<ResponseCode> {
    use std::io::Read as _;
    let mut query = Message::new(id, MessageType::Query, OpCode::Query);
    let mut question = Query::query(Name::from_ascii("id.server.")?, RecordType::TXT);
    question.set_query_class(DNSClass::CH);
    query.add_query(question);
    let wire = query.to_vec()?;
    let deadline = Instant::now() + timeout;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .context("no reply in time")
    };
    if tcp {
        let mut stream = std::net::TcpStream::connect_timeout(&server, timeout)
            .context("connecting over TCP")?;
        stream.set_write_timeout(Some(left()?))?;
        let len = u16::try_from(wire.len())?.to_be_bytes();
        stream.write_all(&[&len[..], &wire].concat())?;
        let mut len = [0u8; 2];
        stream.set_read_timeout(Some(left()?))?;
        stream.read_exact(&mut len).context("reading the reply")?;
        let mut reply = vec![0; usize::from(u16::from_be_bytes(len))];
        stream.set_read_timeout(Some(left()?))?;
        stream.read_exact(&mut reply).context("reading the reply")?;
        check_reply(&reply, id)
    } else {
        let local: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        }
        .parse()?;
        let socket = std::net::UdpSocket::bind(local)?;
        socket.connect(server)?;
        socket.send(&wire).context("sending over UDP")?;
        let mut buf = [0u8; 4096];
        // A stray datagram (another id) is skipped, not taken for the reply.
        loop {
            socket.set_read_timeout(Some(left()?))?;
            let n = socket.recv(&mut buf).context("waiting for the reply")?;
            if let Ok(rcode) = check_reply(&buf[..n], id) {
                return Ok(rcode);
            }
        }
    }
}

/// A reply to our question: our id, the response bit, and our question echoed.
fn check_reply(reply: &[u8], id: u16) -> anyhow::Result<ResponseCode> {
    let m = Message::from_vec(reply).context("the reply is not a DNS message")?;
    let echoed = m.queries.first().is_some_and(|q| {
        q.query_class() == DNSClass::CH && q.name().to_ascii().eq_ignore_ascii_case("id.server.")
    });
    if m.metadata.id != id || m.metadata.message_type != MessageType::Response || !echoed {
        bail!("the reply does not answer the question");
    }
    Ok(m.metadata.response_code)
}

/// An id that differs between runs, without a random number generator.
fn probe_id() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (nanos ^ std::process::id()) as u16
}

fn parse_upstream(text: &str) -> anyhow::Result<Upstream> {
    if text == "system" {
        return Ok(Upstream::System);
    }
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Ok(Upstream::Addr(a));
    }
    let ip: IpAddr = text
        .parse()
        .with_context(|| format!("--upstream `{text}`: write system, IP or IP:PORT"))?;
    Ok(Upstream::Addr(SocketAddr::new(ip, 53)))
}

fn init_tracing(format: LogFormat, aws_records: bool) {
    use tracing_subscriber::filter::{EnvFilter, filter_fn};
    use tracing_subscriber::fmt;
    use tracing_subscriber::prelude::*;
    let target = vpc_resolver::server::AWS_TARGET;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ours = filter_fn(move |m| m.target() != target);
    let main = match format {
        LogFormat::Text => fmt::layer().with_writer(std::io::stderr).boxed(),
        LogFormat::Json => fmt::layer()
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .boxed(),
    };
    // AWS records are printed bare (no time, level or target), so each line is one JSON object.
    let records = aws_records.then(|| {
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .without_time()
            .with_level(false)
            .with_target(false)
            .with_filter(filter_fn(move |m| m.target() == target))
    });
    tracing_subscriber::registry()
        .with(main.with_filter(ours).with_filter(filter))
        .with(records)
        .init();
}

async fn serve(config: ServerConfig) -> anyhow::Result<ExitCode> {
    let server = match Server::start(config).await {
        Ok(s) => s,
        Err(vpc_resolver::server::ServeError::Topology(LoadError::Invalid(diags))) => {
            for d in &diags.0 {
                eprintln!("{d}");
            }
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    // Handlers first: a supervisor may signal as soon as it reads the "listening" lines.
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    for a in server.udp_addrs() {
        println!("listening on udp {a}");
    }
    for a in server.tcp_addrs() {
        println!("listening on tcp {a}");
    }
    for a in server.doh_addrs() {
        println!("listening on doh {a}");
    }
    if let Some(a) = server.metrics_addr() {
        println!("listening on http {a}");
        println!("metrics on http://{a}/metrics");
    }
    let reload = server.reloader();
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the topology");
                let request = reload();
                tracing::debug!(request, "reload queued");
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    tracing::info!("shutting down: draining queries in flight");
    server.shutdown(Duration::from_secs(3)).await;
    Ok(ExitCode::SUCCESS)
}
