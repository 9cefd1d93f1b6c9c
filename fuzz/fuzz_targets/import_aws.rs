//! `import aws` on arbitrary JSON: every input gives a topology or an error, never a panic. The input is split
//! into documents at NUL bytes and each is given the name of one of the AWS CLI commands the importer reads, so
//! mutations reach every document kind.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpc_resolver::import::{Document, Options, import_aws};

const NAMES: [&str; 9] = [
    "describe-vpcs.json",
    "describe-subnets.json",
    "describe-vpc-endpoints.json",
    "describe-network-interfaces.json",
    "describe-vpc-attribute-enableDnsSupport.json",
    "list-hosted-zones.json",
    "get-hosted-zone-Z0123456789ABCDEFGHIJ.json",
    "Z0123456789ABCDEFGHIJ.json",
    "list-resolver-endpoint-ip-addresses-rslvr-out-0123456789abcdef0.json",
];

fuzz_target!(|data: &[u8]| {
    let docs: Vec<Document> = data
        .split(|b| *b == 0)
        .take(NAMES.len())
        .enumerate()
        .map(|(i, part)| Document {
            name: NAMES[i].to_string(),
            text: String::from_utf8_lossy(part).into_owned(),
        })
        .collect();
    let _ = import_aws(&docs, &Options::default());
});
