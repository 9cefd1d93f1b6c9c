//! The integration test binary: one crate, one module per behaviour.

mod cases; // data-driven decision tests: tests/cases/*.case through the pure engine
mod forwarding; // the forwarder against real dnsmasq/unbound peers and black holes
mod hybrid; // inbound/outbound endpoints, loops, and the two-site demo in network namespaces
mod peers; // helpers that start real DNS servers on loopback
