//! Counters for Prometheus and the `/healthz` `/readyz` endpoints. Lock-free on the query path: fixed arrays of
//! atomics indexed by small label sets; per-view counts take a read lock on a map built per topology.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use hickory_proto::op::ResponseCode;

use super::handler::Protocol;
use crate::upstream::Forwarder;

pub(crate) const KINDS: [&str; 10] = [
    "endpoint",
    "phz",
    "rule",
    "vpce-name",
    "ec2-internal",
    "ec2-reverse",
    "upstream",
    "dns-support-off",
    "chaos",
    "other",
];
const RCODES: [&str; 6] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
];
/// Latency buckets in microseconds.
const BUCKETS: [u64; 10] = [
    50, 100, 250, 500, 1_000, 5_000, 25_000, 100_000, 1_000_000, 3_000_000,
];

#[derive(Default)]
pub struct Metrics {
    /// [kind][rcode (last = other)][protocol]
    queries: [[[AtomicU64; 3]; 7]; 10],
    views: RwLock<HashMap<String, AtomicU64>>,
    latency: [AtomicU64; 11],
    latency_sum_us: AtomicU64,
    refused_acl: AtomicU64,
    /// [dropped, slipped]
    rate_limited: [AtomicU64; 2],
    reload_ok: AtomicU64,
    reload_failed: AtomicU64,
}

fn rcode_index(rcode: ResponseCode) -> usize {
    match rcode {
        ResponseCode::NoError => 0,
        ResponseCode::FormErr => 1,
        ResponseCode::ServFail => 2,
        ResponseCode::NXDomain => 3,
        ResponseCode::NotImp => 4,
        ResponseCode::Refused => 5,
        _ => 6,
    }
}

impl Metrics {
    pub(crate) fn answered(
        &self,
        view: &str,
        kind: &str,
        rcode: ResponseCode,
        protocol: Protocol,
        elapsed: Duration,
    ) {
        let k = KINDS
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(KINDS.len() - 1);
        self.queries[k][rcode_index(rcode)][protocol as usize].fetch_add(1, Relaxed);
        let us = elapsed.as_micros() as u64;
        let b = BUCKETS
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(BUCKETS.len());
        self.latency[b].fetch_add(1, Relaxed);
        self.latency_sum_us.fetch_add(us, Relaxed);
        if let Ok(views) = self.views.read()
            && let Some(c) = views.get(view)
        {
            c.fetch_add(1, Relaxed);
            return;
        }
        if let Ok(mut views) = self.views.write() {
            views
                .entry(view.to_string())
                .or_default()
                .fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn count_rcode(&self, rcode: ResponseCode, protocol: Protocol) {
        self.queries[KINDS.len() - 1][rcode_index(rcode)][protocol as usize].fetch_add(1, Relaxed);
    }

    pub(crate) fn refused(&self) {
        self.refused_acl.fetch_add(1, Relaxed);
    }

    pub(crate) fn rate_limited(&self, slipped: bool) {
        self.rate_limited[usize::from(slipped)].fetch_add(1, Relaxed);
    }

    pub(crate) fn reload(&self, ok: bool) {
        if ok {
            &self.reload_ok
        } else {
            &self.reload_failed
        }
        .fetch_add(1, Relaxed);
    }

    /// Prometheus text exposition format.
    pub fn render(&self, forwarder: &Forwarder) -> String {
        let mut s = String::new();
        s.push_str("# HELP vpc_resolver_queries_total Answered queries by decision kind, rcode and protocol.\n# TYPE vpc_resolver_queries_total counter\n");
        for (k, kind) in KINDS.iter().enumerate() {
            for r in 0..7 {
                for (p, proto) in ["udp", "tcp", "https"].iter().enumerate() {
                    let n = self.queries[k][r][p].load(Relaxed);
                    if n > 0 {
                        let rcode = RCODES.get(r).copied().unwrap_or("OTHER");
                        let _ = writeln!(
                            s,
                            "vpc_resolver_queries_total{{kind=\"{kind}\",rcode=\"{rcode}\",proto=\"{proto}\"}} {n}"
                        );
                    }
                }
            }
        }
        s.push_str("# HELP vpc_resolver_view_queries_total Queries by view.\n# TYPE vpc_resolver_view_queries_total counter\n");
        if let Ok(views) = self.views.read() {
            let mut names: Vec<_> = views.iter().collect();
            names.sort_by(|a, b| a.0.cmp(b.0));
            for (view, n) in names {
                let _ = writeln!(
                    s,
                    "vpc_resolver_view_queries_total{{view=\"{view}\"}} {}",
                    n.load(Relaxed)
                );
            }
        }
        s.push_str("# HELP vpc_resolver_query_duration_seconds Time from receipt to reply.\n# TYPE vpc_resolver_query_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += self.latency[i].load(Relaxed);
            let _ = writeln!(
                s,
                "vpc_resolver_query_duration_seconds_bucket{{le=\"{}\"}} {cumulative}",
                *b as f64 / 1e6
            );
        }
        cumulative += self.latency[BUCKETS.len()].load(Relaxed);
        let _ = writeln!(
            s,
            "vpc_resolver_query_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            s,
            "vpc_resolver_query_duration_seconds_sum {}",
            self.latency_sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(s, "vpc_resolver_query_duration_seconds_count {cumulative}");
        let _ = writeln!(
            s,
            "# TYPE vpc_resolver_refused_total counter\nvpc_resolver_refused_total{{reason=\"acl\"}} {}",
            self.refused_acl.load(Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP vpc_resolver_rate_limited_total UDP responses withheld by rate limiting: dropped, or sent truncated (slip).\n# TYPE vpc_resolver_rate_limited_total counter\nvpc_resolver_rate_limited_total{{action=\"drop\"}} {}\nvpc_resolver_rate_limited_total{{action=\"slip\"}} {}",
            self.rate_limited[0].load(Relaxed),
            self.rate_limited[1].load(Relaxed)
        );
        let _ = writeln!(
            s,
            "# TYPE vpc_resolver_reloads_total counter\nvpc_resolver_reloads_total{{result=\"ok\"}} {}\nvpc_resolver_reloads_total{{result=\"failed\"}} {}",
            self.reload_ok.load(Relaxed),
            self.reload_failed.load(Relaxed)
        );
        let _ = writeln!(
            s,
            "# TYPE vpc_resolver_cache_entries gauge\nvpc_resolver_cache_entries {}",
            forwarder.cache_len()
        );
        s.push_str("# TYPE vpc_resolver_upstream_queries_total counter\n# TYPE vpc_resolver_upstream_failures_total counter\n# TYPE vpc_resolver_upstream_rtt_seconds gauge\n# TYPE vpc_resolver_upstream_held_down gauge\n");
        for t in forwarder.target_health() {
            let target = t.addr;
            let _ = writeln!(
                s,
                "vpc_resolver_upstream_queries_total{{target=\"{target}\"}} {}",
                t.queries
            );
            let _ = writeln!(
                s,
                "vpc_resolver_upstream_failures_total{{target=\"{target}\"}} {}",
                t.failures
            );
            let _ = writeln!(
                s,
                "vpc_resolver_upstream_held_down{{target=\"{target}\"}} {}",
                u8::from(t.held_down)
            );
            if let Some(rtt) = t.last_rtt {
                let _ = writeln!(
                    s,
                    "vpc_resolver_upstream_rtt_seconds{{target=\"{target}\"}} {}",
                    rtt.as_secs_f64()
                );
            }
        }
        s
    }
}
