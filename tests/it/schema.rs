//! The committed JSON Schema for editors (`zones/topology.schema.json`) is the one the parser's types generate, and
//! the topology files that point editors at it still pass `check`.

use std::path::Path;

#[test]
fn committed_schema_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let committed = std::fs::read_to_string(root.join("zones/topology.schema.json"))
        .expect("zones/topology.schema.json exists");
    let generated =
        serde_json::to_string_pretty(vpc_resolver::topology::schema()).expect("json") + "\n";
    assert!(
        committed == generated,
        "zones/topology.schema.json is stale; regenerate it with: cargo run -- schema > zones/topology.schema.json"
    );
}

#[test]
fn modelines_point_at_the_schema() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("zones/default.yaml")];
    let mut scenarios: Vec<_> = std::fs::read_dir(root.join("zones/scenarios"))
        .expect("zones/scenarios")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    scenarios.sort();
    files.extend(scenarios);
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        let dir = file.parent().expect("dir");
        let line = text.lines().next().unwrap_or_default();
        let target = line
            .strip_prefix("# yaml-language-server: $schema=")
            .unwrap_or_else(|| {
                panic!(
                    "{} does not start with the yaml-language-server modeline",
                    file.display()
                )
            });
        assert!(
            dir.join(target).is_file(),
            "{}: {target} does not exist",
            file.display()
        );
        vpc_resolver::topology::load(&[&file])
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
}
