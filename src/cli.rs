//! The command line: `serve`, `check`, `explain`, `services`, `schema`. The only module that prints to stdout.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use hickory_proto::rr::{Name, RecordType};
use ipnet::IpNet;
use vpc_resolver::catalog::Catalog;
use vpc_resolver::explain;
use vpc_resolver::resolve::{Client, Resolver};
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

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
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
        /// One log line per query (on by default with --log-format json).
        #[arg(long)]
        query_log: bool,
        /// Reload when a topology file changes (SIGHUP always reloads).
        #[arg(long)]
        watch: bool,
        /// Serve Prometheus metrics, /healthz and /readyz on this address.
        #[arg(long, value_name = "ADDR")]
        metrics: Option<SocketAddr>,
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
            watch,
            metrics,
        } => {
            init_tracing(log_format);
            let source = if topology.is_empty() {
                TopologySource::Embedded
            } else {
                TopologySource::Files(topology)
            };
            let upstream = if upstream.is_empty() {
                None
            } else {
                Some(
                    upstream
                        .iter()
                        .map(|u| parse_upstream(u))
                        .collect::<anyhow::Result<Vec<_>>>()?,
                )
            };
            let config = ServerConfig {
                source,
                listen,
                listen_topology,
                upstream,
                default_view,
                allow,
                rate_limit: rate_limit.map(RateLimit::new),
                query_log: query_log || matches!(log_format, LogFormat::Json),
                watch,
                metrics,
                ..ServerConfig::default()
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?;
            runtime.block_on(serve(config))
        }
        Command::Check { topology } => match topology::load(&topology) {
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
        },
        Command::Explain {
            name,
            rest,
            from,
            to,
            json,
        } => {
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
            let topology: Vec<PathBuf> = rest.map(PathBuf::from).collect();
            let topo = if topology.is_empty() {
                topology::default_topology().map_err(LoadError::Invalid)?
            } else {
                topology::load(&topology)?
            };
            let resolver = Resolver::new(topo);
            let qname =
                Name::from_str(&name).with_context(|| format!("`{name}` is not a domain name"))?;
            let qtype = RecordType::from_str(&qtype.to_uppercase())
                .map_err(|_| anyhow::anyhow!("`{qtype}` is not a record type"))?;
            let client = Client {
                src: from,
                local: to,
            };
            let decision = resolver.resolve(client, &qname, qtype);
            let explanation = explain::explain(&resolver, client, &qname, qtype, &decision);
            if json {
                println!("{}", serde_json::to_string_pretty(&explanation)?);
            } else {
                print!("{}", explanation.render());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Services { region, filter } => {
            if !vpc_resolver::catalog::is_known_region(&region) {
                bail!("unknown region `{region}`");
            }
            let mut out = std::io::stdout().lock();
            for s in Catalog::embedded().list(&region, filter.as_deref()) {
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
        } => {
            use vpc_resolver::import::{ImportError, Options, import_aws_paths};
            let options = Options {
                region,
                no_check,
                keep_reported,
            };
            let imported = match import_aws_paths(&inputs, &options) {
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
    }
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

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
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
    for a in server.udp_addrs() {
        println!("listening on udp {a}");
    }
    for a in server.tcp_addrs() {
        println!("listening on tcp {a}");
    }
    if let Some(a) = server.metrics_addr() {
        println!("metrics on http://{a}/metrics");
    }
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let reload = server.reloader();
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the topology");
                drop(reload());
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    tracing::info!("shutting down: draining queries in flight");
    server.shutdown(Duration::from_secs(3)).await;
    Ok(ExitCode::SUCCESS)
}
