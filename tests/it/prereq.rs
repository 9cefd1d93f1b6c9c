//! Missing prerequisites: under `CI=true` a test that lacks a tool fails, naming what to install; elsewhere it
//! prints a notice and returns, so a developer without podman or moto can still run the rest.

/// Whether this is a CI run (`CI` set, and not to `0` or `false`).
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Reports that `what` is missing; panics in CI. Callers return right after it.
pub(crate) fn missing(what: &str, install: &str) {
    assert!(!in_ci(), "{what} is required in CI: {install}");
    eprintln!("SKIPPED (outside CI only): {what} is missing: {install}");
}

/// [`missing`] for a message that already names what to install; returns `true` for `ok || !absent(..)` chains.
pub(crate) fn absent(what: &str) -> bool {
    assert!(!in_ci(), "required in CI: {what}");
    eprintln!("SKIPPED (outside CI only): {what}");
    true
}
