//! The decision engine without sockets: what would an instance in a VPC, a client on premises and the internet
//! get for the same names? `cargo run --example pure`.

use std::net::IpAddr;

use hickory_proto::rr::RecordType;
use vpc_resolver::resolve::Outcome;
use vpc_resolver::{answer_addresses, resolve_once, topology};

const TOPOLOGY: &str = "
region: us-east-1
vpcs:
  - id: vpc-0a0b0c0d0e0f00001
    cidr: 10.0.0.0/16
    subnets:
      - { id: subnet-0aaa000000000000a, az: a, cidr: 10.0.1.0/24 }
      - { id: subnet-0bbb000000000000b, az: b, cidr: 10.0.2.0/24 }
endpoints:
  - id: vpce-0a1b2c3d4e5f60718
    service: sts
    dns_suffix: abcd1234
    enis:
      - { subnet: subnet-0aaa000000000000a, ip: 10.0.1.25 }
      - { subnet: subnet-0bbb000000000000b, ip: 10.0.2.25 }
hosted_zones:
  - { name: corp.internal, records: [ { name: db, type: A, value: 10.0.1.100 } ] }
allow: [203.0.113.0/24]   # the internet client below may ask (no source outside the VPC may, unless listed)
";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let topology = topology::parse_str(TOPOLOGY)?;
    let instance: IpAddr = "10.0.1.7".parse()?;
    let internet: IpAddr = "203.0.113.9".parse()?;
    for (who, src) in [("instance", instance), ("internet", internet)] {
        for name in [
            "sts.us-east-1.amazonaws.com",
            "vpce-0a1b2c3d4e5f60718-abcd1234-us-east-1a.sts.us-east-1.vpce.amazonaws.com",
            "db.corp.internal",
        ] {
            let decision = resolve_once(&topology, src, name, RecordType::A)?;
            let what = match &decision.outcome {
                Outcome::Answer { rcode, .. } => {
                    format!("{rcode} {:?}", answer_addresses(&decision))
                }
                Outcome::Forward { .. } => "forwarded upstream".to_string(),
                Outcome::Refused { reason } => format!("refused: {reason}"),
                Outcome::ServFail { reason } => format!("servfail: {reason}"),
            };
            println!(
                "{who:8} {name}: [{}] {what} (decided by {})",
                decision.view.name, decision.decided_by
            );
        }
    }
    let decision = resolve_once(
        &topology,
        instance,
        "sts.us-east-1.amazonaws.com",
        RecordType::A,
    )?;
    assert_eq!(answer_addresses(&decision).len(), 2);
    Ok(())
}
