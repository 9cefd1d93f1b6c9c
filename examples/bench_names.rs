//! Lists what the benchmarks in `benches/` query, read from a topology through the library (so endpoint ids, vpce
//! suffixes and ENI placement are the ones the server derives, not re-guessed in a script).
//!
//! `cargo run --release --example bench_names [TOPOLOGY]...` (no TOPOLOGY: the embedded default). Prints one
//! tab-separated line per item, for the VPC whose view loopback clients get (the one listing 127.0.0.1 among its
//! `clients`; else the first):
//! `zone NAME` (a zone the server answers locally in that VPC's view), then `WORKLOAD NAME TYPE` with WORKLOAD one
//! of `private`, `nxdomain`, `nodata`, `vpce`, `phz`.

use std::collections::BTreeSet;
use std::process::ExitCode;

use vpc_resolver::catalog;
use vpc_resolver::topology::{self, EndpointKind, IpType, LoadError, Topology};

fn main() -> ExitCode {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    let topo = if paths.is_empty() {
        topology::default_topology().map_err(LoadError::Invalid)
    } else {
        topology::load(&paths)
    };
    match topo {
        Ok(t) => {
            print!("{}", names(&t));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench_names: {e}");
            ExitCode::from(1)
        }
    }
}

fn fqdn(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.').to_lowercase())
}

fn names(t: &Topology) -> String {
    let loopback: std::net::IpAddr = std::net::Ipv4Addr::LOCALHOST.into();
    let vpc = t
        .vpcs
        .iter()
        .position(|v| v.clients.iter().any(|c| c.contains(&loopback)))
        .unwrap_or(0);
    let mut zones = BTreeSet::new();
    let mut lines = Vec::new();
    for e in t
        .endpoints
        .iter()
        .filter(|e| e.vpc == vpc && e.kind == EndpointKind::Interface)
    {
        let domain = catalog::vpce_domain(&e.service.endpoint_service_id, &t.region);
        zones.insert(fqdn(&domain));
        lines.push(format!(
            "vpce\t{}\tA",
            fqdn(&format!("{}.{domain}", e.name_prefix()))
        ));
        let azs: BTreeSet<&str> = e.enis.iter().map(|eni| eni.az.as_str()).collect();
        for az in azs {
            let zonal = format!("{}-{az}.{domain}", e.name_prefix());
            lines.push(format!("vpce\t{}\tA", fqdn(&zonal)));
        }
        // Inbound-only private DNS (S3 next to a gateway endpoint) is not visible to clients inside the VPC.
        if !e.private_dns || e.inbound_only {
            continue;
        }
        for dns_name in &e.service.private_dns_names {
            // Wildcard names (`*.execute-api…`) are left out: not every peer can express a wildcard the same way.
            if dns_name.starts_with("*.") {
                continue;
            }
            zones.insert(fqdn(dns_name));
            lines.push(format!("private\t{}\tA", fqdn(dns_name)));
            if e.dns_record_ip_type == IpType::Ipv4 {
                lines.push(format!("nodata\t{}\tAAAA", fqdn(dns_name)));
            }
            lines.push(format!("nxdomain\tnx-bench.{}\tA", fqdn(dns_name)));
        }
    }
    for z in t.hosted_zones.iter().filter(|z| z.vpcs.contains(&vpc)) {
        let zone = fqdn(&z.name.to_string());
        zones.insert(zone.clone());
        for r in &z.records {
            // A CNAME is asked as A, as clients do: the answer is the chain.
            let qtype = match r.rtype.to_string().as_str() {
                "CNAME" => "A".to_string(),
                t => t.to_string(),
            };
            lines.push(format!("phz\t{}\t{qtype}", fqdn(&r.name.to_string())));
        }
        lines.push(format!("nxdomain\tnx-bench.{zone}\tA"));
    }
    let mut out = String::new();
    for z in zones {
        out.push_str(&format!("zone\t{z}\n"));
    }
    for l in lines {
        out.push_str(&l);
        out.push('\n');
    }
    out
}
