//! `--query-log-format aws`: each query as the JSON record Route 53 Resolver query logging writes, so log pipelines
//! can be tested against it. Field names and spellings follow AWS's record (version, account_id, region, vpc_id,
//! query_timestamp, query_name, query_type, query_class, rcode, answers, srcaddr, srcport, transport, srcids, and the
//! three firewall_* fields when an ALERT or BLOCK rule matched). The answers are read back from the reply that was
//! sent, so the record says exactly what the client got.
//!
//! Our choices where a topology has nothing to say: `account_id` is always `000000000000` (a topology has no
//! account), the public view has `vpc_id` `-`, and `transport` is `UDP`, `TCP` or `DoH`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::op::Message;
use serde_json::{Map, Value, json};

use super::handler::Protocol;
use super::metrics::rcode_name;
use crate::engine::FirewallMatch;
use crate::topology::Topology;
use crate::wire::Query;

/// Which query log `serve` writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QueryLogFormat {
    /// One `answered` event per query in the server's own log format (text or JSON).
    #[default]
    Native,
    /// One Route 53 Resolver query-log record (JSON) per query.
    Aws,
}

/// The tracing target of AWS records; the command line prints them bare, one JSON object per line.
pub const AWS_TARGET: &str = "vpc_resolver::aws_query_log";

/// What a record needs from the topology, looked up by address.
pub(crate) struct AwsLog {
    region: String,
    /// Instance addresses -> instance id (`srcids.instance`).
    instances: HashMap<IpAddr, String>,
    /// Inbound endpoint addresses -> endpoint id (`srcids.resolver_endpoint`).
    inbound: HashMap<IpAddr, String>,
}

/// One query as the handler saw it.
pub(crate) struct Seen<'a> {
    pub(crate) query: &'a Query<'a>,
    pub(crate) src: std::net::SocketAddr,
    pub(crate) local: Option<IpAddr>,
    pub(crate) protocol: Protocol,
    pub(crate) view: &'a str,
    pub(crate) reply: &'a [u8],
    pub(crate) firewall: Option<&'a FirewallMatch>,
}

impl AwsLog {
    pub(crate) fn new(topo: &Topology) -> Self {
        let mut instances = HashMap::new();
        for i in &topo.instances {
            instances.insert(IpAddr::V4(i.ip), i.id.clone());
            if let Some(v6) = i.ipv6 {
                instances.insert(IpAddr::V6(v6), i.id.clone());
            }
        }
        let inbound = topo
            .inbound_endpoints
            .iter()
            .flat_map(|e| e.ips.iter().map(|ip| (*ip, e.id.clone())))
            .collect();
        Self {
            region: topo.region.clone(),
            instances,
            inbound,
        }
    }

    /// The record for one answered query, as one line of JSON.
    pub(crate) fn record(&self, seen: &Seen<'_>, now: SystemTime) -> String {
        let reply = Message::from_vec(seen.reply).ok();
        let rcode = reply
            .as_ref()
            .map_or("SERVFAIL".into(), |m| rcode_name(m.metadata.response_code));
        let answers: Vec<Value> = reply
            .iter()
            .flat_map(|m| m.answers.iter())
            .map(|r| json!({"Rdata": r.data.to_string(), "Type": r.record_type().to_string(), "Class": r.dns_class.to_string()}))
            .collect();
        let mut srcids = Map::new();
        let src = seen.src.ip().to_canonical();
        if let Some(id) = self.instances.get(&src) {
            srcids.insert("instance".into(), id.clone().into());
        }
        if let Some(id) = seen.local.and_then(|l| self.inbound.get(&l.to_canonical())) {
            srcids.insert("resolver_endpoint".into(), id.clone().into());
        }
        let mut record = json!({
            "version": "1.100000",
            "account_id": "000000000000",
            "region": self.region,
            "vpc_id": if seen.view.starts_with("vpc-") { seen.view } else { "-" },
            "query_timestamp": rfc3339(now),
            "query_name": seen.query.name.to_string(),
            "query_type": seen.query.qtype.to_string(),
            "query_class": seen.query.qclass.to_string(),
            "rcode": rcode,
            "answers": answers,
            "srcaddr": src.to_string(),
            "srcport": seen.src.port().to_string(),
            "transport": match seen.protocol {
                Protocol::Udp => "UDP",
                Protocol::Tcp => "TCP",
                Protocol::Https => "DoH",
            },
            "srcids": srcids,
        });
        if let (Some(hit), Some(fields)) = (seen.firewall, record.as_object_mut())
            && hit.action != "ALLOW"
        {
            fields.insert(
                "firewall_rule_group_id".into(),
                hit.rule_group.clone().into(),
            );
            fields.insert("firewall_rule_action".into(), hit.action.into());
            fields.insert(
                "firewall_domain_list_id".into(),
                hit.domain_list.clone().into(),
            );
        }
        record.to_string()
    }
}

/// `2026-12-02T18:00:00Z`: UTC, to the second, as AWS writes `query_timestamp`.
fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_796_234_400);
        assert_eq!(rfc3339(t), "2026-12-02T18:00:00Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }
}
