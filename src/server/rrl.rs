//! Response rate limiting for UDP, after BIND's RRL: at most N responses per second per client network (/24 for
//! IPv4, /56 for IPv6 by default). Beyond that, every `slip`-th response goes out empty with TC=1, so a real client
//! retries over TCP (where a forged source cannot follow), and the rest are dropped.
//!
//! The state is a fixed table of atomics indexed by a keyed hash of the network: no lock, no allocation, and a
//! bounded footprint whatever the number of sources. Two networks sharing a slot just restart each other's count,
//! which errs towards answering.

use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::topology::RateLimit;

/// 16 Ki slots of 8 bytes: 128 KiB, far more networks than a resolver sees in one second.
const SLOTS: usize = 1 << 14;
const COUNT_BITS: u32 = 24;
const SECOND_BITS: u32 = 16;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const SECOND_MASK: u64 = (1 << SECOND_BITS) - 1;

/// What to do with one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Send,
    /// Send an empty truncated reply instead.
    Slip,
    Drop,
}

/// The shared counters; the policy (`RateLimit`) comes with each call so a reload can change it.
pub(super) struct Table {
    /// Each slot: network tag (24 bits) | second (16 bits) | responses counted in that second (24 bits).
    slots: Box<[AtomicU64]>,
    hasher: RandomState,
    epoch: Instant,
}

impl Default for Table {
    fn default() -> Self {
        Self {
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            hasher: RandomState::new(),
            epoch: Instant::now(),
        }
    }
}

/// The client's network under the policy's prefix lengths; IPv4-mapped IPv6 counts as IPv4.
fn network(ip: IpAddr, policy: &RateLimit) -> IpNet {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpNet::V4(
            Ipv4Net::new(v4, policy.ipv4_prefix.min(32))
                .map_or_else(|_| Ipv4Net::from(v4), |n| n.trunc()),
        ),
        IpAddr::V6(v6) => IpNet::V6(
            Ipv6Net::new(v6, policy.ipv6_prefix.min(128))
                .map_or_else(|_| Ipv6Net::from(v6), |n| n.trunc()),
        ),
    }
}

impl Table {
    /// Counts one response to `ip` and says whether to send it.
    pub(super) fn check(&self, ip: IpAddr, policy: &RateLimit) -> Verdict {
        self.check_at(ip, policy, self.epoch.elapsed().as_secs())
    }

    fn check_at(&self, ip: IpAddr, policy: &RateLimit, now_secs: u64) -> Verdict {
        let ip = ip.to_canonical();
        if policy.exempt.iter().any(|n| n.contains(&ip)) {
            return Verdict::Send;
        }
        let hash = self.hasher.hash_one(network(ip, policy));
        let slot = &self.slots[(hash as usize) % SLOTS];
        let tag = (hash >> 40) & ((1 << (64 - COUNT_BITS - SECOND_BITS)) - 1);
        let second = now_secs & SECOND_MASK;
        let mut current = slot.load(Ordering::Relaxed);
        let count = loop {
            let same = current >> (COUNT_BITS + SECOND_BITS) == tag
                && (current >> COUNT_BITS) & SECOND_MASK == second;
            let count = if same {
                ((current & COUNT_MASK) + 1).min(COUNT_MASK)
            } else {
                1
            };
            let next = tag << (COUNT_BITS + SECOND_BITS) | second << COUNT_BITS | count;
            match slot.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break count,
                Err(actual) => current = actual,
            }
        };
        let allowed = u64::from(policy.responses_per_second);
        if count <= allowed {
            return Verdict::Send;
        }
        let over = count - allowed;
        if policy.slip > 0 && over % u64::from(policy.slip) == 0 {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(rps: u32, slip: u32) -> RateLimit {
        RateLimit {
            exempt: Vec::new(),
            slip,
            ..RateLimit::new(rps)
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn limits_per_network_with_slip() {
        let t = Table::default();
        let p = policy(3, 2);
        let verdicts: Vec<_> = (0..8)
            .map(|i| t.check_at(ip(&format!("192.0.2.{i}")), &p, 7))
            .collect();
        use Verdict::*;
        assert_eq!(verdicts, [Send, Send, Send, Drop, Slip, Drop, Slip, Drop]);
        // Another /24 has its own budget; the next second starts over.
        assert_eq!(t.check_at(ip("192.0.3.1"), &p, 7), Send);
        assert_eq!(t.check_at(ip("192.0.2.1"), &p, 8), Send);
    }

    #[test]
    fn slip_zero_drops_all_and_exempt_is_never_limited() {
        let t = Table::default();
        let mut p = policy(1, 0);
        assert_eq!(t.check_at(ip("198.51.100.1"), &p, 1), Verdict::Send);
        for _ in 0..5 {
            assert_eq!(t.check_at(ip("198.51.100.2"), &p, 1), Verdict::Drop);
        }
        p.exempt = vec!["198.51.100.0/24".parse().unwrap()];
        assert_eq!(t.check_at(ip("198.51.100.3"), &p, 1), Verdict::Send);
    }

    #[test]
    fn ipv6_groups_by_56_and_mapped_ipv4_is_ipv4() {
        let t = Table::default();
        let p = policy(1, 1);
        assert_eq!(t.check_at(ip("2001:db8:0:1::1"), &p, 1), Verdict::Send);
        // Same /56, different /64.
        assert_eq!(t.check_at(ip("2001:db8:0:2::1"), &p, 1), Verdict::Slip);
        assert_eq!(t.check_at(ip("2001:db8:0:100::1"), &p, 1), Verdict::Send);
        assert_eq!(t.check_at(ip("203.0.113.5"), &p, 1), Verdict::Send);
        assert_eq!(t.check_at(ip("::ffff:203.0.113.6"), &p, 1), Verdict::Slip);
    }

    #[test]
    fn loopback_is_exempt_by_default() {
        let t = Table::default();
        let p = RateLimit::new(1);
        for _ in 0..10 {
            assert_eq!(t.check_at(ip("127.0.0.1"), &p, 1), Verdict::Send);
            assert_eq!(t.check_at(ip("::1"), &p, 1), Verdict::Send);
        }
    }
}
