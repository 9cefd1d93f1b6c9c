//! `vpc-resolver check` as a user runs it: every topology in zones/ passes; every planted-error topology in
//! tests/broken/ fails with exactly the `FILE:LINE:COL: message` lines listed in its header; an unknown key anywhere
//! in the default topology is named; the README's YAML examples are valid.
//!
//! Header syntax of a broken file: `# expect: [FILE:]LINE:COL: SUBSTRING` (FILE for another file of the same run),
//! `# with: FILE` to check it together with another file, `# part of: FILE` for a file only checked with another.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::serve::TempDir;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Runs `vpc-resolver check FILES` from the repository root: (exit code, stdout).
fn check(files: &[PathBuf]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vpc-resolver"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("check")
        .args(files)
        .output()
        .expect("run vpc-resolver check");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

#[test]
fn every_topology_in_zones_passes() {
    let mut files = Vec::new();
    yaml_files(&repo("zones"), &mut files);
    assert!(files.len() >= 2, "{files:?}");
    for f in files {
        let rel = f
            .strip_prefix(repo(""))
            .expect("inside the repo")
            .to_path_buf();
        let (code, out) = check(std::slice::from_ref(&rel));
        assert_eq!(code, 0, "{}:\n{out}", rel.display());
        assert!(out.starts_with("ok: "), "{}: {out}", rel.display());
    }
}

/// `(file name, line, col, message)` of one diagnostic line.
fn parse_diag(line: &str) -> Option<(String, usize, usize, String)> {
    let mut parts = line.splitn(4, ':');
    let file = parts.next()?;
    let l = parts.next()?.parse().ok()?;
    let c = parts.next()?.parse().ok()?;
    let msg = parts.next()?.trim_start();
    let name = Path::new(file).file_name()?.to_string_lossy().to_string();
    Some((name, l, c, msg.to_string()))
}

#[test]
fn planted_errors_are_reported_exactly() {
    let mut files = Vec::new();
    yaml_files(&repo("tests/broken"), &mut files);
    files.sort();
    let mut checked = 0;
    let mut failures = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read");
        if text.lines().any(|l| l.starts_with("# part of:")) {
            continue;
        }
        let own = f.file_name().expect("name").to_string_lossy().to_string();
        let mut run = vec![f.strip_prefix(repo("")).expect("in repo").to_path_buf()];
        let mut expected = Vec::new();
        for line in text.lines() {
            if let Some(other) = line.strip_prefix("# with: ") {
                run.push(Path::new("tests/broken").join(other.trim()));
            } else if let Some(e) = line.strip_prefix("# expect: ") {
                let e = if e.starts_with(|c: char| c.is_ascii_digit()) {
                    format!("{own}:{e}")
                } else {
                    e.to_string()
                };
                expected.push(
                    parse_diag(&e).unwrap_or_else(|| panic!("{own}: bad expect line `{line}`")),
                );
            }
        }
        assert!(!expected.is_empty(), "{own}: no `# expect:` lines");
        checked += 1;
        let (code, out) = check(&run);
        if code != 1 {
            failures.push(format!("{own}: exit {code} (expected 1):\n{out}"));
            continue;
        }
        let got: Vec<_> = out
            .lines()
            .map(|l| parse_diag(l).unwrap_or_else(|| panic!("{own}: not FILE:LINE:COL: `{l}`")))
            .collect();
        let mut unmatched: Vec<_> = got.clone();
        for want in &expected {
            match unmatched.iter().position(|g| {
                g.0 == want.0 && g.1 == want.1 && g.2 == want.2 && g.3.contains(&want.3)
            }) {
                Some(i) => {
                    unmatched.remove(i);
                }
                None => failures.push(format!(
                    "{own}: missing {}:{}:{}: {}\n  got:\n{out}",
                    want.0, want.1, want.2, want.3
                )),
            }
        }
        for extra in unmatched {
            failures.push(format!(
                "{own}: unexpected {}:{}:{}: {}",
                extra.0, extra.1, extra.2, extra.3
            ));
        }
    }
    assert!(checked >= 10, "only {checked} broken files");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every mapping of a YAML value, by path of keys and indexes.
fn mapping_paths(
    v: &serde_norway::Value,
    path: Vec<serde_norway::Value>,
    out: &mut Vec<Vec<serde_norway::Value>>,
) {
    match v {
        serde_norway::Value::Mapping(m) => {
            out.push(path.clone());
            for (k, child) in m {
                let mut p = path.clone();
                p.push(k.clone());
                mapping_paths(child, p, out);
            }
        }
        serde_norway::Value::Sequence(s) => {
            for (i, child) in s.iter().enumerate() {
                let mut p = path.clone();
                p.push(serde_norway::Value::from(i as u64));
                mapping_paths(child, p, out);
            }
        }
        _ => {}
    }
}

fn at_path<'v>(
    v: &'v mut serde_norway::Value,
    path: &[serde_norway::Value],
) -> &'v mut serde_norway::Value {
    path.iter().fold(v, |node, seg| match (node, seg) {
        (serde_norway::Value::Sequence(s), serde_norway::Value::Number(n)) => {
            &mut s[n.as_u64().expect("index") as usize]
        }
        (serde_norway::Value::Mapping(m), key) => m.get_mut(key).expect("key"),
        _ => panic!("bad path"),
    })
}

/// An unknown key added to any one mapping of zones/default.yaml makes check fail, naming that key.
#[test]
fn unknown_key_in_any_mapping_is_rejected() {
    let text = std::fs::read_to_string(repo("zones/default.yaml")).expect("default.yaml");
    let value: serde_norway::Value = serde_norway::from_str(&text).expect("YAML");
    let mut paths = Vec::new();
    mapping_paths(&value, Vec::new(), &mut paths);
    assert!(paths.len() >= 6, "{} mappings", paths.len());
    let dir = TempDir::new("unknown-key");
    for path in &paths {
        let mut v = value.clone();
        let serde_norway::Value::Mapping(m) = at_path(&mut v, path) else {
            unreachable!("a mapping path")
        };
        m.insert("zz_not_a_field".into(), 1.into());
        let file = dir.write("t.yaml", &serde_norway::to_string(&v).expect("serialize"));
        let (code, out) = check(&[file]);
        assert_eq!(
            code, 1,
            "mapping at {path:?} accepted an unknown key:\n{out}"
        );
        assert!(
            out.contains("unknown field `zz_not_a_field`"),
            "mapping at {path:?}:\n{out}"
        );
        assert_eq!(
            out.lines().count(),
            1,
            "one problem only, at {path:?}:\n{out}"
        );
    }
}

/// The README's ```yaml blocks are complete topologies (unless their first line is `# not a complete topology`).
#[test]
fn readme_yaml_examples_are_valid() {
    let readme = std::fs::read_to_string(repo("README.md")).expect("README.md");
    let dir = TempDir::new("readme");
    let mut block: Option<(usize, String)> = None;
    let mut n = 0;
    for (i, line) in readme.lines().enumerate() {
        match &mut block {
            None if line.trim_start().starts_with("```yaml") => {
                block = Some((i + 2, String::new()))
            }
            None => {}
            Some((start, text)) if line.trim_start().starts_with("```") => {
                if !text.starts_with("# not a complete topology") {
                    n += 1;
                    let file = dir.write(&format!("readme-line-{start}.yaml"), text);
                    let (code, out) = check(&[file]);
                    assert_eq!(
                        code, 0,
                        "README.md: the yaml block at line {start} fails check:\n{out}"
                    );
                }
                block = None;
            }
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    assert!(
        block.is_none(),
        "README.md: a ```yaml block is never closed"
    );
    assert!(
        n >= 1,
        "README.md has no complete ```yaml topology to check"
    );
    eprintln!("{n} README yaml block(s) checked");
}
