//! The topology loader and `import aws` on mutated inputs (deterministic, so a failure replays): never a panic,
//! and every topology diagnostic names the file and a position. The fuzz targets (fuzz/) search the same
//! properties without bounds; this keeps them checked on every test run.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use vpc_resolver::import::{Document, Options, import_aws};
use vpc_resolver::topology;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that matter to YAML and JSON syntax, and a few that break UTF-8 or numbers.
const INTERESTING: &[u8] = b":-[]{},\"'#&*!|>%@`\n\t 0123456789.eE+/\\\x00\xff";

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(5) {
            0 if at < v.len() => v[at] = INTERESTING[rng.below(INTERESTING.len())],
            1 => v.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
            2 if at < v.len() => {
                let end = (at + 1 + rng.below(40)).min(v.len());
                v.drain(at..end);
            }
            3 if !v.is_empty() => {
                // Duplicate a slice elsewhere: repeats keys, nests structures.
                let from = rng.below(v.len());
                let end = (from + 1 + rng.below(60)).min(v.len());
                let piece = v[from..end].to_vec();
                v.splice(at..at, piece);
            }
            _ => v.truncate(at),
        }
    }
    v
}

fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

#[test]
fn topology_loader_survives_mutations_with_positioned_errors() {
    let mut seeds = files("zones/scenarios", "yaml");
    seeds.extend(files("zones", "yaml"));
    seeds.extend(files("tests/broken", "yaml"));
    assert!(seeds.len() >= 5, "{seeds:?}");
    let mut rng = Rng(0x5eed_0001);
    let mut rejected = 0;
    for seed in &seeds {
        let bytes = std::fs::read(seed).expect("read");
        for round in 0..300 {
            let input = mutate(&mut rng, &bytes);
            let text = String::from_utf8_lossy(&input).into_owned();
            let got = catch_unwind(AssertUnwindSafe(|| {
                topology::parse(&[("fuzz.yaml".to_string(), text.clone())])
            }));
            let Ok(result) = got else {
                panic!(
                    "the loader panicked on a mutation of {} (round {round}):\n{text}",
                    seed.display()
                );
            };
            if let Err(diags) = result {
                rejected += 1;
                assert!(
                    !diags.0.is_empty(),
                    "rejected without a diagnostic:\n{text}"
                );
                for d in &diags.0 {
                    assert!(
                        &*d.file == "fuzz.yaml" && d.line >= 1 && d.col >= 1,
                        "a diagnostic without a position: {d:?}\n{text}"
                    );
                }
            }
        }
    }
    assert!(
        rejected > 0,
        "no mutation was rejected: the mutator does nothing"
    );
}

#[test]
fn import_aws_survives_mutations() {
    let fixtures = files("tests/fixtures/aws", "json");
    assert!(fixtures.len() >= 5, "{fixtures:?}");
    let docs: Vec<Document> = fixtures
        .iter()
        .map(|p| Document {
            name: p.display().to_string(),
            text: std::fs::read_to_string(p).expect("read"),
        })
        .collect();
    assert!(
        import_aws(&docs, &Options::default()).is_ok(),
        "the fixtures import"
    );
    let mut rng = Rng(0x5eed_0002);
    for round in 0..2000 {
        let mut mutated = docs.clone();
        let i = rng.below(mutated.len());
        let bytes = mutate(&mut rng, mutated[i].text.as_bytes());
        mutated[i].text = String::from_utf8_lossy(&bytes).into_owned();
        let got = catch_unwind(AssertUnwindSafe(|| {
            import_aws(&mutated, &Options::default())
        }));
        assert!(
            got.is_ok(),
            "import panicked on round {round}, a mutation of {}:\n{}",
            mutated[i].name,
            mutated[i].text
        );
    }
}
