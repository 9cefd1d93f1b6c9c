//! Snapshot tests of `explain`: one snapshot per query of the reference's section 10 table
//! (tests/cases/reference-lab.case), in tests/snapshots/explain/. `UPDATE_SNAPSHOTS=1 cargo test explain`
//! rewrites them; review the diff before committing. Under CI a missing or changed snapshot fails.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use hickory_proto::rr::{Name, RecordType};
use vpc_resolver::engine::{Client, Engine, Options};
use vpc_resolver::explain;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// (snapshot name, client, name, type) for every query line, named after the row comment above it.
fn queries(case_file: &str) -> Vec<(String, Client, String, String)> {
    let text = std::fs::read_to_string(repo(case_file)).expect("case file");
    let mut row = String::from("0");
    let mut seen_in_row = 0;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(comment) = line.strip_prefix("# ") {
            if let Some(n) = comment
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .filter(|n| !n.is_empty())
            {
                row = n.to_string();
                seen_in_row = 0;
            }
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() != Some(&"from") {
            continue;
        }
        let src = words[1].parse().expect("source");
        let (local, rest) = if words[2] == "to" {
            (Some(words[3].parse().expect("local")), &words[4..])
        } else {
            (None, &words[2..])
        };
        let suffix = if seen_in_row == 0 {
            String::new()
        } else {
            format!("-{}", seen_in_row + 1)
        };
        seen_in_row += 1;
        out.push((
            format!("row-{:0>2}{suffix}", row),
            Client { src, local },
            rest[1].to_string(),
            rest[2].to_string(),
        ));
    }
    out
}

#[test]
fn explain_snapshots_of_the_reference_table() {
    let topo =
        vpc_resolver::topology::load(&[repo("zones/scenarios/reference-lab.yaml")]).expect("lab");
    // The case file's `allow:` line admits the internet's documentation addresses, as `--allow` would.
    let text = std::fs::read_to_string(repo("tests/cases/reference-lab.case")).expect("case file");
    let allow = text
        .lines()
        .filter_map(|l| l.strip_prefix("allow:"))
        .flat_map(|l| l.split_whitespace().map(|w| w.parse().expect("CIDR")))
        .collect();
    let options = Options {
        allow,
        ..Options::default()
    };
    let resolver = Engine::with_options(topo, &options).expect("engine");
    let dir = repo("tests/snapshots/explain");
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let mut failures = Vec::new();
    let list = queries("tests/cases/reference-lab.case");
    assert!(list.len() >= 35, "only {} queries", list.len());
    for (snap, client, qname, qtype) in list {
        let name = Name::from_str(&qname).expect("name");
        let qtype = RecordType::from_str(&qtype).expect("type");
        let decision = resolver.resolve(client, &name, qtype);
        let text = explain::explain(&resolver, client, &name, qtype, &decision).render();
        let path = dir.join(format!("{snap}.txt"));
        if update {
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::write(&path, &text).expect("write snapshot");
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(expected) if expected == text => {}
            Ok(expected) => failures.push(format!(
                "{snap}: explain output changed\n--- expected\n{expected}--- got\n{text}"
            )),
            Err(_) => failures.push(format!(
                "{snap}: no snapshot at {} (run with UPDATE_SNAPSHOTS=1)",
                path.display()
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
