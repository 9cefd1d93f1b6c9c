//! The integration test binary: one crate, one module per behaviour.

mod cases; // data-driven decision tests: tests/cases/*.case through the pure engine
mod forwarding; // the forwarder against real dnsmasq/unbound peers and black holes
mod peers; // helpers that start real DNS servers on loopback
mod robust; // production operation: ACL, RRL, hostile input, dead upstreams, reloads, metrics, drain
