//! vpc-resolver: a DNS server that answers the way the Route 53 VPC Resolver answers a client in a given place.

pub mod catalog;
pub mod explain;
pub mod import;
pub mod resolve;
pub mod server;
pub mod topology;
pub mod upstream;
pub mod wire;
