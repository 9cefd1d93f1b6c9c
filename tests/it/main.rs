//! The integration test binary: one crate, one module per behaviour.

mod cases; // data-driven decision tests: tests/cases/*.case through the pure engine
mod check; // `vpc-resolver check` on every topology in zones/ and the planted errors of tests/broken/
mod forwarding; // the forwarder against real dnsmasq/unbound peers and black holes
mod netns; // the glibc resolver (getent) in a network namespace against the real binary
mod peers; // helpers that start real DNS servers on loopback
mod serve; // the real binary through real sockets: dig, hickory, dnspython, dnsmasq peers
