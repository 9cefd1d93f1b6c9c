//! The YAML topology loader on arbitrary bytes: it returns a topology or diagnostics that each name the file and
//! a position, and never panics or hangs (libFuzzer's -timeout catches a hang).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpc_resolver::topology;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    if let Err(diags) = topology::parse(&[("fuzz.yaml".to_string(), text)]) {
        assert!(!diags.0.is_empty(), "an error without a diagnostic");
        for d in &diags.0 {
            assert_eq!(&*d.file, "fuzz.yaml", "{d}");
            assert!(d.line >= 1 && d.col >= 1, "no position: {d}");
            assert!(
                !d.message.is_empty(),
                "an empty message at {}:{}",
                d.line,
                d.col
            );
        }
    }
});
