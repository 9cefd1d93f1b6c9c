//! The integration test binary: one crate, one module per behaviour.

mod cases; // data-driven decision tests: tests/cases/*.case through the pure engine
