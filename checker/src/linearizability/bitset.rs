//! The set of linearized operations, with a hash kept up to date as bits flip.

/// A fixed-size bitset over operation indices and the XOR of a random key per set bit.
#[derive(Clone, Debug)]
pub(super) struct LinearizedSet {
    words: Vec<u64>,
    hash: u64,
}

/// A well-mixed 64-bit key for operation `i` (splitmix64), so XOR of keys is a good hash.
fn key(i: usize) -> u64 {
    let mut z = (i as u64)
        .wrapping_add(1)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl LinearizedSet {
    pub(super) fn new(n: usize) -> Self {
        LinearizedSet {
            words: vec![0; n.div_ceil(64)],
            hash: 0,
        }
    }

    /// Adds `i`, which must not be in the set.
    pub(super) fn insert(&mut self, i: usize) {
        self.words[i / 64] |= 1 << (i % 64);
        self.hash ^= key(i);
    }

    /// Whether `i` is in the set.
    pub(super) fn contains(&self, i: usize) -> bool {
        self.words[i / 64] & (1 << (i % 64)) != 0
    }

    /// Removes `i`, which must be in the set.
    pub(super) fn remove(&mut self, i: usize) {
        self.words[i / 64] &= !(1 << (i % 64));
        self.hash ^= key(i);
    }

    pub(super) fn hash(&self) -> u64 {
        self.hash
    }

    pub(super) fn words(&self) -> &[u64] {
        &self.words
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_members_not_order() {
        let mut a = LinearizedSet::new(130);
        let mut b = LinearizedSet::new(130);
        a.insert(3);
        a.insert(129);
        b.insert(129);
        b.insert(64);
        b.insert(3);
        b.remove(64);
        assert_eq!(a.hash(), b.hash());
        assert_eq!(a.words(), b.words());
        a.remove(3);
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.words(), &[0, 0, 2]);
    }
}
