//! Counters for Prometheus and the `/healthz` `/readyz` endpoints. Lock-free on the query path: fixed arrays of
//! atomics indexed by small label sets; per-view counts take a read lock on a map built per topology.

use std::fmt::Write as _;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use hickory_proto::op::ResponseCode;

use super::handler::Protocol;
use crate::hash::FastMap;
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
    views: RwLock<FastMap<String, AtomicU64>>,
    latency: [AtomicU64; 11],
    latency_sum_us: AtomicU64,
    refused_acl: AtomicU64,
    /// [dropped, slipped]
    rate_limited: [AtomicU64; 2],
    reload_ok: AtomicU64,
    reload_failed: AtomicU64,
    prepared_hits: AtomicU64,
    generation: AtomicU64,
    /// DNS Firewall ALERT and BLOCK matches: (rule group, action) -> count.
    firewall: RwLock<FastMap<(String, &'static str), AtomicU64>>,
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

    /// Counts a DNS Firewall ALERT or BLOCK match of `rule_group`.
    pub(crate) fn firewall_match(&self, rule_group: &str, action: &'static str) {
        let key = (rule_group.to_string(), action);
        if let Ok(map) = self.firewall.read()
            && let Some(n) = map.get(&key)
        {
            n.fetch_add(1, Relaxed);
            return;
        }
        if let Ok(mut map) = self.firewall.write() {
            map.entry(key).or_default().fetch_add(1, Relaxed);
        }
    }

    /// Counts an answer replayed from the prepared table (the fast path).
    pub(crate) fn prepared_hit(&self) {
        self.prepared_hits.fetch_add(1, Relaxed);
    }

    /// The topology generation now serving.
    pub(crate) fn set_generation(&self, generation: u64) {
        self.generation.store(generation, Relaxed);
    }

    /// Drops the per-view series of views the new topology no longer has (`public` always stays).
    pub(crate) fn retain_views<'a>(&self, names: impl Iterator<Item = &'a str>) {
        let keep: std::collections::HashSet<&str> = names.chain(["public"]).collect();
        if let Ok(mut views) = self.views.write() {
            views.retain(|name, _| keep.contains(name.as_str()));
        }
    }

    /// Prometheus text exposition format (version 0.0.4): HELP and TYPE for every family, label values escaped.
    pub fn render(&self, forwarder: &Forwarder) -> String {
        let mut s = String::new();
        self.render_queries(&mut s);
        self.render_latency(&mut s);
        family(
            &mut s,
            "vpc_resolver_refused_total",
            "counter",
            "Queries refused by access control.",
        );
        sample(
            &mut s,
            "vpc_resolver_refused_total",
            &[("reason", "acl")],
            self.refused_acl.load(Relaxed),
        );
        family(
            &mut s,
            "vpc_resolver_rate_limited_total",
            "counter",
            "UDP responses withheld by rate limiting: dropped, or sent truncated (slip).",
        );
        for (i, action) in ["drop", "slip"].iter().enumerate() {
            sample(
                &mut s,
                "vpc_resolver_rate_limited_total",
                &[("action", action)],
                self.rate_limited[i].load(Relaxed),
            );
        }
        family(
            &mut s,
            "vpc_resolver_prepared_answers_total",
            "counter",
            "Answers replayed from the prepared table without running the engine.",
        );
        sample(
            &mut s,
            "vpc_resolver_prepared_answers_total",
            &[],
            self.prepared_hits.load(Relaxed),
        );
        family(
            &mut s,
            "vpc_resolver_reloads_total",
            "counter",
            "Topology loads after startup, by result.",
        );
        sample(
            &mut s,
            "vpc_resolver_reloads_total",
            &[("result", "ok")],
            self.reload_ok.load(Relaxed),
        );
        sample(
            &mut s,
            "vpc_resolver_reloads_total",
            &[("result", "failed")],
            self.reload_failed.load(Relaxed),
        );
        family(
            &mut s,
            "vpc_resolver_topology_generation",
            "gauge",
            "Generation of the topology serving: 1 at start, the number of the reload request that loaded it after.",
        );
        sample(
            &mut s,
            "vpc_resolver_topology_generation",
            &[],
            self.generation.load(Relaxed).max(1),
        );
        family(
            &mut s,
            "vpc_resolver_cache_entries",
            "gauge",
            "Entries in the forwarding cache.",
        );
        sample(
            &mut s,
            "vpc_resolver_cache_entries",
            &[],
            forwarder.cache_len() as u64,
        );
        self.render_firewall(&mut s);
        render_upstreams(&mut s, forwarder);
        s
    }

    fn render_firewall(&self, s: &mut String) {
        family(
            s,
            "vpc_resolver_firewall_matches_total",
            "counter",
            "DNS Firewall rule matches with action ALERT or BLOCK, by rule group.",
        );
        if let Ok(map) = self.firewall.read() {
            let mut rows: Vec<_> = map.iter().collect();
            rows.sort_by(|a, b| a.0.cmp(b.0));
            for ((group, action), n) in rows {
                sample(
                    s,
                    "vpc_resolver_firewall_matches_total",
                    &[("rule_group", group), ("action", action)],
                    n.load(Relaxed),
                );
            }
        }
    }

    fn render_queries(&self, s: &mut String) {
        family(
            s,
            "vpc_resolver_queries_total",
            "counter",
            "Answered queries by decision kind, rcode and protocol.",
        );
        for (k, kind) in KINDS.iter().enumerate() {
            for r in 0..7 {
                for (p, proto) in ["udp", "tcp", "https"].iter().enumerate() {
                    let n = self.queries[k][r][p].load(Relaxed);
                    if n > 0 {
                        let rcode = RCODES.get(r).copied().unwrap_or("OTHER");
                        let labels = [("kind", *kind), ("rcode", rcode), ("proto", proto)];
                        sample(s, "vpc_resolver_queries_total", &labels, n);
                    }
                }
            }
        }
        family(
            s,
            "vpc_resolver_view_queries_total",
            "counter",
            "Queries by view.",
        );
        if let Ok(views) = self.views.read() {
            let mut names: Vec<_> = views.iter().collect();
            names.sort_by(|a, b| a.0.cmp(b.0));
            for (view, n) in names {
                sample(
                    s,
                    "vpc_resolver_view_queries_total",
                    &[("view", view)],
                    n.load(Relaxed),
                );
            }
        }
    }

    fn render_latency(&self, s: &mut String) {
        family(
            s,
            "vpc_resolver_query_duration_seconds",
            "histogram",
            "Time from receipt to reply.",
        );
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += self.latency[i].load(Relaxed);
            let le = (*b as f64 / 1e6).to_string();
            sample(
                s,
                "vpc_resolver_query_duration_seconds_bucket",
                &[("le", &le)],
                cumulative,
            );
        }
        cumulative += self.latency[BUCKETS.len()].load(Relaxed);
        sample(
            s,
            "vpc_resolver_query_duration_seconds_bucket",
            &[("le", "+Inf")],
            cumulative,
        );
        let _ = writeln!(
            s,
            "vpc_resolver_query_duration_seconds_sum {}",
            self.latency_sum_us.load(Relaxed) as f64 / 1e6
        );
        sample(
            s,
            "vpc_resolver_query_duration_seconds_count",
            &[],
            cumulative,
        );
    }
}

fn render_upstreams(s: &mut String, forwarder: &Forwarder) {
    let health = forwarder.target_health();
    let families: [(&str, &str, &str); 4] = [
        (
            "vpc_resolver_upstream_queries_total",
            "counter",
            "Queries sent to each upstream target.",
        ),
        (
            "vpc_resolver_upstream_failures_total",
            "counter",
            "Queries to each upstream target that timed out or failed.",
        ),
        (
            "vpc_resolver_upstream_held_down",
            "gauge",
            "1 while a target is held down after failures (RFC 9520), else 0.",
        ),
        (
            "vpc_resolver_upstream_rtt_seconds",
            "gauge",
            "Round-trip time of the last answer from each target.",
        ),
    ];
    for (i, (name, kind, help)) in families.iter().enumerate() {
        family(s, name, kind, help);
        for t in &health {
            let target = t.addr.to_string();
            let labels = [("target", target.as_str())];
            match i {
                0 => sample(s, name, &labels, t.queries),
                1 => sample(s, name, &labels, t.failures),
                2 => sample(s, name, &labels, u64::from(t.held_down)),
                _ => {
                    if let Some(rtt) = t.last_rtt {
                        let _ = writeln!(s, "{name}{} {}", label_set(&labels), rtt.as_secs_f64());
                    }
                }
            }
        }
    }
}

fn family(s: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(s: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    let _ = writeln!(s, "{name}{} {value}", label_set(labels));
}

fn label_set(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// Label value escaping of the text format: backslash, double quote and line feed.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The rcode's mnemonic as DNS tools print it (`NOERROR`, `NXDOMAIN`), for logs; hickory's Display is prose.
pub(crate) fn rcode_name(rcode: ResponseCode) -> std::borrow::Cow<'static, str> {
    let name = match rcode {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::YXDomain => "YXDOMAIN",
        ResponseCode::YXRRSet => "YXRRSET",
        ResponseCode::NXRRSet => "NXRRSET",
        ResponseCode::NotAuth => "NOTAUTH",
        ResponseCode::NotZone => "NOTZONE",
        ResponseCode::BADVERS => "BADVERS",
        ResponseCode::BADCOOKIE => "BADCOOKIE",
        other => return format!("RCODE{}", u16::from(other)).into(),
    };
    name.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("x\ny"), "x\\ny");
    }

    #[test]
    fn every_family_has_help_and_type_and_views_are_pruned() {
        let m = Metrics::default();
        m.answered(
            "vpc-\"odd\"",
            "phz",
            ResponseCode::NoError,
            Protocol::Udp,
            Duration::from_micros(70),
        );
        m.answered(
            "vpc-gone",
            "phz",
            ResponseCode::NXDomain,
            Protocol::Tcp,
            Duration::from_micros(70),
        );
        m.retain_views(["vpc-\"odd\""].into_iter());
        m.firewall_match("rslvr-frg-0a0b0c0d0e0f00001", "ALERT");
        m.firewall_match("rslvr-frg-0a0b0c0d0e0f00001", "ALERT");
        let text = m.render(&Forwarder::new(Default::default()));
        assert!(
            text.contains(r#"vpc_resolver_firewall_matches_total{rule_group="rslvr-frg-0a0b0c0d0e0f00001",action="ALERT"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"vpc_resolver_view_queries_total{view="vpc-\"odd\""} 1"#),
            "{text}"
        );
        assert!(!text.contains("vpc-gone"), "{text}");
        let mut help = std::collections::HashSet::new();
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                help.insert(rest.split(' ').next().expect("name").to_string());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().expect("name").to_string());
            } else {
                let name = line.split(['{', ' ']).next().expect("name");
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|sfx| name.strip_suffix(sfx).filter(|f| typed.contains(*f)))
                    .unwrap_or(name);
                assert!(typed.contains(family), "{name} has no TYPE before it");
            }
        }
        assert_eq!(help, typed);
    }

    #[test]
    fn rcode_names_are_mnemonics() {
        assert_eq!(rcode_name(ResponseCode::NoError), "NOERROR");
        assert_eq!(rcode_name(ResponseCode::NXDomain), "NXDOMAIN");
        assert_eq!(rcode_name(ResponseCode::Unknown(3841)), "RCODE3841");
    }
}
