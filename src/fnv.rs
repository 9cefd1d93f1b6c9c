//! FNV-1a, the hasher of every table keyed by names or questions. Keys are short byte strings and only the topology
//! or the engine's own answers insert them, so a client cannot grow a chain; SipHash cost more than the rest of a
//! lookup. The basis is fixed (deterministic tables) unless a seed is given (the shared cache, see there).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

const BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(BASIS)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(PRIME);
        }
    }
}

/// FNV-1a from a seeded basis.
#[derive(Clone, Copy)]
pub(crate) struct SeededFnv(u64);

impl SeededFnv {
    pub(crate) fn new(seed: u64) -> Self {
        Self(BASIS ^ seed)
    }
}

impl BuildHasher for SeededFnv {
    type Hasher = Fnv;
    fn build_hasher(&self) -> Fnv {
        Fnv(self.0)
    }
}

pub(crate) type FnvMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;
pub(crate) type FnvSet<K> = HashSet<K, BuildHasherDefault<Fnv>>;

/// FNV-1a of `bytes` from the fixed basis.
pub(crate) fn hash(bytes: &[u8]) -> u64 {
    let mut h = Fnv::default();
    h.write(bytes);
    h.finish()
}
