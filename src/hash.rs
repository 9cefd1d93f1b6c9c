//! The hashers of the tables keyed by names or questions. [`WordHash`], for the tables only the topology or the
//! engine's own fixed answers fill (a client cannot grow a chain there): a multiply-rotate hash over 8-byte words
//! (the FxHash construction, as in rustc's own tables); FNV-1a's one multiply per byte was a serial chain of about
//! 40 multiplies per name, and a prepared lookup hashes its key twice. Deterministic: the basis is fixed.
//! [`SeededFnv`], for the forwarder's cache, which names from clients fill: FNV-1a from a per-process basis. A
//! word hash has collisions that hold for every seed (flip a word's top bit and the next word's bit 4), FNV-1a,
//! which folds in one byte at a time below the multiply, has none so simple.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

/// An odd constant with well-spread bits (rustc-hash 2's multiplier).
const K: u64 = 0xf135_7aea_2e62_a9c5;

#[derive(Default)]
pub(crate) struct WordHash(u64);

impl WordHash {
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for WordHash {
    fn finish(&self) -> u64 {
        // The product's high bits depend on every input bit; hashbrown indexes buckets by the low ones.
        self.0.rotate_left(26)
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut word = [0; 8];
            word.copy_from_slice(w);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            // The length in the top byte (always zero padding here) keeps "a" and "a\0" apart.
            let mut word = [0; 8];
            word[..rest.len()].copy_from_slice(rest);
            word[7] = rest.len() as u8;
            self.mix(u64::from_le_bytes(word));
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.mix(u64::from(n));
    }
    fn write_u16(&mut self, n: u16) {
        self.mix(u64::from(n));
    }
    fn write_u32(&mut self, n: u32) {
        self.mix(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }
    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }
}

pub(crate) struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// FNV-1a from a seeded basis.
#[derive(Clone, Copy)]
pub(crate) struct SeededFnv(u64);

impl SeededFnv {
    pub(crate) fn new(seed: u64) -> Self {
        Self(0xcbf2_9ce4_8422_2325 ^ seed)
    }
}

impl BuildHasher for SeededFnv {
    type Hasher = Fnv;
    fn build_hasher(&self) -> Fnv {
        Fnv(self.0)
    }
}

pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<WordHash>>;
pub(crate) type FastSet<K> = HashSet<K, BuildHasherDefault<WordHash>>;

/// The hash of `bytes` from the fixed basis.
pub(crate) fn of(bytes: &[u8]) -> u64 {
    let mut h = WordHash::default();
    h.write(bytes);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_every_byte_count() {
        let name = b"\x03nx1\x03ec2\x09us-east-1\x09amazonaws\x03com\x00";
        let mut seen = std::collections::HashSet::new();
        for end in 0..=name.len() {
            assert!(seen.insert(of(&name[..end])), "prefix of {end} bytes");
        }
        assert_ne!(of(b"a"), of(b"a\0"));
        assert_ne!(of(b"abcdefgh"), of(b"abcdefgh\0"));
        let mut one = name.to_vec();
        for i in 0..one.len() {
            one[i] ^= 0x20;
            assert!(seen.insert(of(&one)), "byte {i} changed");
            one[i] ^= 0x20;
        }
    }

    #[test]
    fn buckets_spread_names_that_share_a_suffix() {
        // 4,096 names under one zone into 256 buckets by the low bits, as hashbrown picks them.
        let mut buckets = [0u32; 256];
        for i in 0..4096 {
            let name = format!("\x06nx{i:04}\x03ec2\x09us-east-1\x09amazonaws\x03com\x00");
            buckets[(of(name.as_bytes()) & 255) as usize] += 1;
        }
        let fullest = buckets.iter().max().unwrap();
        assert!(*fullest < 40, "fullest bucket {fullest} of an expected 16");
    }
}
