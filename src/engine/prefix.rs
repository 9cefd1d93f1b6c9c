//! Longest-prefix match over IP networks: one hash map per prefix length in use, probed from the longest down.
//!
//! A lookup costs one hash probe per distinct prefix length (at most 33 for IPv4, 129 for IPv6), however many
//! networks are stored, so choosing a view or admitting a source does not grow with the topology.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

use ipnet::IpNet;

/// A multiplicative hash for integer keys. Only topology networks are ever inserted, so a chosen source address
/// can't grow a chain; SipHash cost more than the rest of the lookup.
#[derive(Default)]
pub(crate) struct IntHasher(u64);

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
    }
    fn write_u128(&mut self, n: u128) {
        self.write_u64(n as u64);
        self.write_u64((n >> 64) as u64);
    }
}

pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<IntHasher>>;

/// Networks mapped to values; the most specific network containing an address wins, the first inserted among
/// equal networks.
#[derive(Debug, Clone)]
pub(crate) struct PrefixMap<T> {
    /// (prefix length, network bits -> value), longest first.
    v4: Vec<(u8, FastMap<u32, T>)>,
    v6: Vec<(u8, FastMap<u128, T>)>,
}

impl<T> Default for PrefixMap<T> {
    fn default() -> Self {
        Self {
            v4: Vec::new(),
            v6: Vec::new(),
        }
    }
}

fn mask4(bits: u32, len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        bits & (u32::MAX << (32 - u32::from(len)))
    }
}

fn mask6(bits: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        bits & (u128::MAX << (128 - u32::from(len)))
    }
}

fn slot<K, T>(levels: &mut Vec<(u8, FastMap<K, T>)>, len: u8) -> &mut FastMap<K, T> {
    let at = match levels.iter().position(|(l, _)| *l <= len) {
        Some(i) if levels[i].0 == len => i,
        Some(i) => {
            levels.insert(i, (len, FastMap::default()));
            i
        }
        None => {
            levels.push((len, FastMap::default()));
            levels.len() - 1
        }
    };
    &mut levels[at].1
}

impl<T> PrefixMap<T> {
    /// Adds `net -> value` unless `net` is already present (the first entry stays).
    pub(crate) fn insert(&mut self, net: IpNet, value: T) {
        let len = net.prefix_len();
        match net {
            IpNet::V4(n) => {
                let key = mask4(u32::from(n.network()), len);
                slot(&mut self.v4, len).entry(key).or_insert(value);
            }
            IpNet::V6(n) => {
                let key = mask6(u128::from(n.network()), len);
                slot(&mut self.v6, len).entry(key).or_insert(value);
            }
        }
    }

    /// The value of the most specific network containing `ip`.
    pub(crate) fn get(&self, ip: IpAddr) -> Option<&T> {
        match ip.to_canonical() {
            IpAddr::V4(a) => {
                let bits = u32::from(a);
                self.v4
                    .iter()
                    .find_map(|(len, map)| map.get(&mask4(bits, *len)))
            }
            IpAddr::V6(a) => {
                let bits = u128::from(a);
                self.v6
                    .iter()
                    .find_map(|(len, map)| map.get(&mask6(bits, *len)))
            }
        }
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        self.get(ip).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_specific_wins_and_first_of_equals_stays() {
        let mut m = PrefixMap::default();
        m.insert("10.0.0.0/8".parse().unwrap(), 1);
        m.insert("10.1.0.0/16".parse().unwrap(), 2);
        m.insert("10.1.0.0/16".parse().unwrap(), 3);
        m.insert("0.0.0.0/0".parse().unwrap(), 0);
        m.insert("fd00::/8".parse().unwrap(), 6);
        assert_eq!(m.get("10.1.2.3".parse().unwrap()), Some(&2));
        assert_eq!(m.get("10.2.2.3".parse().unwrap()), Some(&1));
        assert_eq!(m.get("192.0.2.1".parse().unwrap()), Some(&0));
        assert_eq!(m.get("fd12::1".parse().unwrap()), Some(&6));
        assert_eq!(m.get("2001:db8::1".parse().unwrap()), None);
        // IPv4-mapped IPv6 sources count as IPv4.
        assert_eq!(m.get("::ffff:10.1.0.9".parse().unwrap()), Some(&2));
    }
}
