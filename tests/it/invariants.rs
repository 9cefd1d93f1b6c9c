//! ARCHITECTURE.md's invariants that a test can hold: the engine is pure (no runtime, logging, sockets, files or
//! clock in `src/engine/`), and only the command line prints (`clippy::print_stdout` is denied elsewhere).

use std::path::Path;

/// What the engine's sources must not name: a runtime, logging, sockets, the file system, the clock, printing.
const FORBIDDEN: [&str; 14] = [
    "tokio",
    "tracing",
    "UdpSocket",
    "TcpStream",
    "TcpListener",
    "std::fs",
    "std::io",
    "std::time",
    "Instant",
    "SystemTime",
    "println!",
    "eprintln!",
    "std::env",
    "std::thread",
];

#[test]
fn engine_is_pure() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine");
    let mut files = 0;
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("src/engine") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(&path).expect("source");
        for (n, line) in text.lines().enumerate() {
            // Doc and line comments may mention what the engine leaves to others.
            let code = line.split("//").next().unwrap_or("");
            for word in FORBIDDEN {
                if code.contains(word) {
                    found.push(format!("{}:{}: `{word}`", path.display(), n + 1));
                }
            }
        }
    }
    assert!(files >= 10, "only {files} engine sources found");
    assert!(
        found.is_empty(),
        "the engine must stay pure:\n{}",
        found.join("\n")
    );
}

#[test]
fn only_the_command_line_prints() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (file, allowed) in [
        ("src/lib.rs", false),
        ("src/main.rs", false),
        ("src/cli.rs", true),
    ] {
        let text = std::fs::read_to_string(root.join(file)).expect("source");
        let denies = text.contains("#![warn(clippy::print_stdout)]");
        let allows = text.contains("#![allow(clippy::print_stdout)]");
        assert_eq!(
            allows, allowed,
            "{file}: allow(clippy::print_stdout) only in cli.rs"
        );
        assert!(
            allowed || denies,
            "{file}: must warn on clippy::print_stdout (CI denies warnings)"
        );
    }
}
