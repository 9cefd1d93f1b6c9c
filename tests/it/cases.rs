//! Runs every `tests/cases/*.case` file through the pure decision engine (no sockets).
//!
//! A case file names a topology, then blocks of `from SRC [to LOCAL] query NAME TYPE`, an `expect` line and the
//! expected answer records in zone-file form (compared as sorted sets):
//! `expect NOERROR|NXDOMAIN|NODATA|REFUSED|SERVFAIL`, or `expect FORWARD upstream|RULE_ID [TARGET...] [from SOURCE]`.
//! `view NAME` after `expect` checks the view too; `aa` or `no-aa` the authoritative-answer flag; `authority RECORD`
//! lines (or `authority -` for none) the authority section, as a sorted set like the answers. `allow: CIDR...` after the topology line admits more sources, as
//! `serve --allow` does (the internet's view is asked from documentation addresses that must be allowed first).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, Record, RecordType};
use ipnet::IpNet;
use vpc_resolver::engine::{Client, Engine, Forwarding, Options, Outcome};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

struct Case {
    line: usize,
    client: Client,
    qname: Name,
    qtype: RecordType,
    expect: Vec<String>,
    view: Option<String>,
    records: Vec<String>,
    aa: Option<bool>,
    /// `None`: not checked.
    authority: Option<Vec<String>>,
}

fn parse_cases(text: &str) -> (String, Vec<IpNet>, Vec<Case>) {
    let mut topology = String::new();
    let mut allow = Vec::new();
    let mut cases: Vec<Case> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split(" #").next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[0] {
            "topology:" => topology = words[1].to_string(),
            "allow:" => allow.extend(words[1..].iter().map(|w| w.parse::<IpNet>().unwrap())),
            "from" => {
                let src: IpAddr = words[1].parse().unwrap();
                let (local, rest) = if words[2] == "to" {
                    (Some(words[3].parse().unwrap()), &words[4..])
                } else {
                    (None, &words[2..])
                };
                assert_eq!(rest[0], "query", "line {}: expected `query`", n + 1);
                cases.push(Case {
                    line: n + 1,
                    client: Client { src, local },
                    qname: Name::from_str(rest[1]).unwrap(),
                    qtype: RecordType::from_str(rest[2]).unwrap(),
                    expect: Vec::new(),
                    view: None,
                    records: Vec::new(),
                    aa: None,
                    authority: None,
                });
            }
            "expect" => {
                cases.last_mut().unwrap().expect =
                    words[1..].iter().map(|s| s.to_string()).collect()
            }
            "view" => cases.last_mut().unwrap().view = Some(words[1].to_string()),
            "aa" | "no-aa" => cases.last_mut().unwrap().aa = Some(words[0] == "aa"),
            "authority" => {
                let list = cases
                    .last_mut()
                    .unwrap()
                    .authority
                    .get_or_insert_with(Vec::new);
                if words[1] != "-" {
                    list.push(words[1..].join(" ").to_lowercase());
                }
            }
            _ => cases
                .last_mut()
                .unwrap()
                .records
                .push(words.join(" ").to_lowercase()),
        }
    }
    (topology, allow, cases)
}

fn check_case_file(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let (topology, allow, cases) = parse_cases(&text);
    let topo = vpc_resolver::topology::load(&[repo(&topology)])
        .unwrap_or_else(|e| panic!("{}: {e}", topology));
    let options = Options {
        allow,
        ..Options::default()
    };
    let resolver = Engine::with_options(topo, &options).unwrap();
    let mut failures = Vec::new();
    let file = path.file_name().unwrap().to_string_lossy().to_string();
    for case in cases {
        let d = resolver.resolve(case.client, &case.qname, case.qtype);
        let what = format!("{file}:{}: {} {}", case.line, case.qname, case.qtype);
        if let Some(view) = &case.view
            && &d.view.name != view
        {
            failures.push(format!("{what}: view {} (expected {view})", d.view.name));
        }
        let (got, records): (Vec<String>, Vec<Record>) = match &d.outcome {
            Outcome::Answer { rcode, answers, .. } => {
                let code = match *rcode {
                    ResponseCode::NoError if answers.is_empty() => "NODATA".to_string(),
                    ResponseCode::NoError => "NOERROR".to_string(),
                    ResponseCode::NXDomain => "NXDOMAIN".to_string(),
                    other => format!("{other:?}").to_uppercase(),
                };
                (vec![code], answers.clone())
            }
            Outcome::Forward { route, answers, .. } => {
                let mut v = vec![
                    "FORWARD".to_string(),
                    route
                        .rule
                        .as_deref()
                        .map_or_else(|| "upstream".into(), str::to_string),
                ];
                if route.rule.is_some() {
                    v.extend(route.listed.iter().map(|t| match t {
                        Forwarding::Target(a) => a.to_string(),
                        Forwarding::System => "system".into(),
                    }));
                    if let Some(s) = route.source {
                        v.push("from".into());
                        v.push(s.to_string());
                    }
                }
                (v, answers.clone())
            }
            Outcome::Refused { .. } => (vec!["REFUSED".into()], vec![]),
            Outcome::ServFail { .. } => (vec!["SERVFAIL".into()], vec![]),
        };
        if got != case.expect {
            failures.push(format!(
                "{what}: got `{}`, expected `{}`\n    trace: {:?}",
                got.join(" "),
                case.expect.join(" "),
                d.trace.iter().map(|s| &s.text).collect::<Vec<_>>()
            ));
            continue;
        }
        let (aa, authority) = match &d.outcome {
            Outcome::Answer {
                authoritative,
                authority,
                ..
            } => (*authoritative, authority.clone()),
            _ => (false, Vec::new()),
        };
        if let Some(want) = case.aa
            && want != aa
        {
            failures.push(format!("{what}: AA flag {aa}, expected {want}"));
        }
        if let Some(want) = &case.authority {
            let mut got: Vec<String> = authority
                .iter()
                .map(|r| vpc_resolver::explain::record_line(r).to_lowercase())
                .collect();
            got.sort();
            let mut want = want.clone();
            want.sort();
            if got != want {
                failures.push(format!("{what}: authority {got:?}, expected {want:?}"));
            }
        }
        let mut got_records: Vec<String> = records
            .iter()
            .map(|r| vpc_resolver::explain::record_line(r).to_lowercase())
            .collect();
        got_records.sort();
        let mut want = case.records.clone();
        want.sort();
        if got_records != want {
            failures.push(format!(
                "{what}: answer\n      {}\n    expected\n      {}",
                got_records.join("\n      "),
                want.join("\n      ")
            ));
        }
    }
    failures
}

#[test]
fn case_files() {
    let mut failures = Vec::new();
    let mut n = 0;
    for entry in std::fs::read_dir(repo("tests/cases")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "case") {
            n += 1;
            failures.extend(check_case_file(&path));
        }
    }
    assert!(n > 0, "no case files found");
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}
