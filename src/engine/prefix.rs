//! Longest-prefix match over IP networks: one hash map per prefix length in use, probed from the longest down.
//!
//! A lookup costs one hash probe per distinct prefix length (at most 33 for IPv4, 129 for IPv6), however many
//! networks are stored, so choosing a view or admitting a source does not grow with the topology.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

/// Networks mapped to values; the most specific network containing an address wins, the first inserted among
/// equal networks.
#[derive(Debug, Clone)]
pub(crate) struct PrefixMap<T> {
    /// (prefix length, network bits -> value), longest first.
    v4: Vec<(u8, HashMap<u32, T>)>,
    v6: Vec<(u8, HashMap<u128, T>)>,
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

fn slot<K, T>(levels: &mut Vec<(u8, HashMap<K, T>)>, len: u8) -> &mut HashMap<K, T> {
    let at = match levels.iter().position(|(l, _)| *l <= len) {
        Some(i) if levels[i].0 == len => i,
        Some(i) => {
            levels.insert(i, (len, HashMap::new()));
            i
        }
        None => {
            levels.push((len, HashMap::new()));
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
