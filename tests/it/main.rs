//! The integration test binary: one crate, one module per behaviour.

mod cases; // data-driven decision tests: tests/cases/*.case through the pure engine
mod check; // `vpc-resolver check` on every topology in zones/ and the planted errors of tests/broken/
mod explain; // snapshots of `explain` for every row of the reference table
mod fidelity; // the fidelity scenario (firewall, EC2 names, DNS64, PHZ apex, DNSSEC) through dig
mod forwarding; // the forwarder against real dnsmasq/unbound peers and black holes
mod hybrid; // inbound/outbound endpoints, loops, and the two-site demo in network namespaces
mod import; // `import aws` end to end: moto and hand-written AWS JSON, check, serve, dig the names
mod invariants; // the engine is pure; only the command line prints
mod library; // the library API for test suites: parse, resolve_once, serve on :0, set_topology, shutdown
mod loaders; // the topology loader and `import aws` on mutated inputs: no panic, positioned errors
mod netns; // the glibc resolver (getent) in a network namespace against the real binary
mod onprem; // the hybrid lab with the data center listed nowhere: two namespaces, dig, dnspython, glibc, explain
mod paused; // the forwarder on tokio's paused clock through a scripted network: timings to the millisecond
mod peers; // helpers that start real DNS servers on loopback
mod prepared; // replayed (prepared) answers equal the full path byte for byte
mod prereq; // a missing tool fails the test in CI and skips it elsewhere
mod probe; // `vpc-resolver probe`, the container health check, against a server, silence and an echo
mod property; // explain equals what the binary sends, for drawn tuples in a network namespace
mod reload; // the reload worker, generations, and the bounded ops endpoint against the real binary
mod robust; // production operation: ACL, RRL, hostile input, dead upstreams, reloads, metrics, drain
mod schema; // the committed JSON Schema is the generated one; modelines point at it
mod serve; // the real binary through real sockets: dig, hickory, dnspython, dnsmasq peers
mod transport; // wildcard listeners (arrival address, reply source) and DoH with real clients in namespaces
