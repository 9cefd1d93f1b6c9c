//! vpc-resolver: a DNS server that answers the way the Route 53 VPC Resolver answers a client in a given place.
//!
//! The same engine the `vpc-resolver` binary runs is a library, so a test suite can describe an AWS network in
//! YAML (or build it in code), ask what a client inside a VPC would get, or run a real DNS server on a free port
//! for the code under test.
//!
//! - [`topology::parse_str`] turns YAML text into a validated [`topology::Topology`] (every default filled in);
//!   [`topology::load`] reads files; [`import::import_aws`] builds one from an account's AWS CLI output.
//! - [`resolve_once`] (or [`engine::Engine`] for many questions) decides one question without sockets:
//!   the view, the answer or where it would be forwarded, and the trace of why.
//! - [`server::Server::start`] serves UDP and TCP on the addresses given (port 0 picks a free one);
//!   the [`server::RunningServer`] it returns tells its bound addresses, takes a new topology with
//!   [`set_topology`](server::RunningServer::set_topology) and stops with
//!   [`shutdown`](server::RunningServer::shutdown).
//!
//! # Examples
//!
//! What an instance in the VPC gets for the EC2 API name, with an interface endpoint and private DNS:
//!
//! ```
//! use std::net::IpAddr;
//! use hickory_proto::rr::RecordType;
//! use vpc_resolver::{answer_addresses, resolve_once, topology};
//!
//! let topology = topology::parse_str(
//!     "
//! region: us-east-1
//! vpcs:
//!   - id: vpc-0a0b0c0d0e0f00001
//!     cidr: 10.0.0.0/16
//!     subnets: [ { id: subnet-0aaa000000000000a, az: a, cidr: 10.0.1.0/24 } ]
//! endpoints:
//!   - { service: ec2, enis: [ { subnet: subnet-0aaa000000000000a, ip: 10.0.1.25 } ] }
//! ",
//! )?;
//! let client: IpAddr = "10.0.7.7".parse()?;
//! let decision = resolve_once(&topology, client, "ec2.us-east-1.amazonaws.com", RecordType::A)?;
//! assert_eq!(decision.view.name, "vpc-0a0b0c0d0e0f00001");
//! assert_eq!(answer_addresses(&decision), ["10.0.1.25".parse::<IpAddr>()?]);
//!
//! // A source in no VPC, network or `allow` list may not ask (spec "Who may ask"): REFUSED, as the server does.
//! let outside = resolve_once(&topology, "203.0.113.9".parse()?, "ec2.us-east-1.amazonaws.com", RecordType::A)?;
//! assert!(matches!(outside.outcome, vpc_resolver::engine::Outcome::Refused { .. }));
//! assert!(answer_addresses(&outside).is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A server on a free port, with a topology change while it runs: see `examples/embed.rs`
//! (`cargo run --example embed`); the pure engine alone: `examples/pure.rs`.

// Only the command line (`cli.rs`) prints to stdout.
#![warn(clippy::print_stdout)]

pub mod catalog;
pub mod engine;
pub mod explain;
mod hash;
pub mod import;
/// The engine's former name, kept for library users.
pub use engine as resolve;
pub mod server;
pub mod topology;
pub mod upstream;
pub mod wire;

use std::net::IpAddr;
use std::str::FromStr;

use hickory_proto::ProtoError;
use hickory_proto::rr::{Name, RData, RecordType};

use engine::{Client, Decision, Engine, Outcome};
use topology::Topology;

/// Decides one question from `source` without sockets: which view answers, the answer (or where it would be
/// forwarded) and the trace of why. Compiles the topology each call; keep an [`Engine`] for many questions.
///
/// # Errors
///
/// `name` is not a domain name.
///
/// # Examples
///
/// ```
/// use hickory_proto::rr::RecordType;
/// use vpc_resolver::{resolve::Outcome, resolve_once, topology};
///
/// let topology = topology::default_topology().expect("the embedded topology is valid");
/// // The embedded lab maps loopback clients into its VPC, and forwards corp.example.com by a rule.
/// let decision = resolve_once(&topology, "127.0.0.1".parse()?, "host.corp.example.com", RecordType::A)?;
/// assert!(matches!(&decision.outcome, Outcome::Forward { route, .. } if route.rule.is_some()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn resolve_once(
    topology: &Topology,
    source: IpAddr,
    name: &str,
    qtype: RecordType,
) -> Result<Decision, ProtoError> {
    let mut qname = Name::from_str(name)?;
    qname.set_fqdn(true);
    Ok(Engine::new(topology.clone()).resolve(Client::from(source), &qname, qtype))
}

/// The A and AAAA addresses a decision answers with, in answer order (empty for NXDOMAIN, NODATA, forwards and
/// refusals). CNAMEs in the chain are skipped.
///
/// # Examples
///
/// ```
/// use hickory_proto::rr::RecordType;
/// use vpc_resolver::{answer_addresses, resolve_once, topology};
///
/// let topology = topology::default_topology().expect("the embedded topology is valid");
/// let decision = resolve_once(&topology, "127.0.0.1".parse()?, "www.lab.internal", RecordType::A)?;
/// assert_eq!(answer_addresses(&decision), ["10.0.1.100".parse::<std::net::IpAddr>()?]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn answer_addresses(decision: &Decision) -> Vec<IpAddr> {
    let Outcome::Answer { answers, .. } = &decision.outcome else {
        return Vec::new();
    };
    answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}
