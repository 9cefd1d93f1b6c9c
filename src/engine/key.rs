//! Domain names as table keys: the lowercase wire form (RFC 1035 §3.1), hashed with `crate::hash`. A lookup hashes the
//! bytes once and a walk over a name's parents slices one buffer, where `LowerName` keys cost a new name and a
//! SipHash of it for every label (the NXDOMAIN path walked them all).

use hickory_proto::rr::Name;

/// A table key: a name's lowercase wire form, root label included.
pub(crate) type Key = Box<[u8]>;

/// The root's key.
pub(crate) const ROOT: &[u8] = b"\0";

pub(crate) fn key(name: &Name) -> Key {
    Wire::new(name).suffix(0).into()
}

/// The parents of a key, nearest first, the root last.
pub(crate) fn parents(key: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let len = usize::from(*key.get(at)?);
        if len == 0 {
            return None;
        }
        at += 1 + len;
        key.get(at..)
    })
}

/// A name in lowercase wire form and where each of its labels starts, to look up the name and its parents
/// without allocating.
pub(crate) struct Wire {
    buf: [u8; Name::MAX_LENGTH + 1],
    len: usize,
    starts: [u8; 128],
    labels: usize,
}

impl Wire {
    pub(crate) fn new(name: &Name) -> Self {
        let mut w = Self {
            buf: [0; Name::MAX_LENGTH + 1],
            len: 0,
            starts: [0; 128],
            labels: 0,
        };
        for label in name.iter() {
            // A `Name` is at most 255 octets, so this never stops early; if it did the key would only miss.
            if w.len + 1 + label.len() >= w.buf.len() || w.labels == w.starts.len() {
                break;
            }
            w.starts[w.labels] = w.len as u8;
            w.labels += 1;
            w.buf[w.len] = label.len() as u8;
            for (to, from) in w.buf[w.len + 1..].iter_mut().zip(label) {
                *to = from.to_ascii_lowercase();
            }
            w.len += 1 + label.len();
        }
        w.len += 1; // the root label
        w
    }

    /// Labels, the root not counted.
    pub(crate) fn labels(&self) -> usize {
        self.labels
    }

    /// The name without its first `skip` labels (the root when `skip` is `labels()` or more).
    pub(crate) fn suffix(&self, skip: usize) -> &[u8] {
        let from = if skip < self.labels {
            usize::from(self.starts[skip])
        } else {
            self.len - 1
        };
        &self.buf[from..self.len]
    }

    /// The key of `*.` + the name without its first `skip` labels (RFC 4592 source of synthesis), in `out`.
    pub(crate) fn wildcard<'b>(
        &self,
        skip: usize,
        out: &'b mut [u8; Name::MAX_LENGTH + 3],
    ) -> &'b [u8] {
        let parent = self.suffix(skip);
        out[0] = 1;
        out[1] = b'*';
        out[2..2 + parent.len()].copy_from_slice(parent);
        &out[..2 + parent.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_are_the_lowercase_wire_forms_of_the_parents() {
        let name = Name::from_ascii("Nx1.EC2.us-east-1.amazonaws.com.").unwrap();
        let w = Wire::new(&name);
        assert_eq!(w.labels(), 5);
        assert_eq!(
            w.suffix(0),
            &*key(&Name::from_ascii("nx1.ec2.us-east-1.amazonaws.com.").unwrap())
        );
        assert_eq!(w.suffix(3), b"\x09amazonaws\x03com\x00");
        assert_eq!(w.suffix(5), b"\x00");
        assert_eq!(w.suffix(9), b"\x00");
        let mut buf = [0; Name::MAX_LENGTH + 3];
        assert_eq!(w.wildcard(4, &mut buf), b"\x01*\x03com\x00");
        assert_eq!(Wire::new(&Name::root()).suffix(0), b"\x00");
        let up: Vec<&[u8]> = parents(w.suffix(2)).collect();
        assert_eq!(
            up,
            [&b"\x09amazonaws\x03com\x00"[..], b"\x03com\x00", b"\x00"]
        );
    }
}
