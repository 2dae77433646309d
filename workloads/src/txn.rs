//! The transactional workloads' generator (list-append, rw-register): transactions of a few
//! micro-operations over a set of active keys picked with an exponential distribution (a few
//! hot keys), values unique per key, and each key retired after a number of writes so that
//! reads stay short — as Elle's generator does.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

/// How transactions are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnShape {
    /// Micro-operations per transaction, at least and at most.
    pub len: (usize, usize),
    /// Writes (appends) after which a key retires and a fresh key takes its place.
    pub max_writes_per_key: u64,
}

impl Default for TxnShape {
    fn default() -> Self {
        TxnShape {
            len: (1, 4),
            max_writes_per_key: 256,
        }
    }
}

impl TxnShape {
    /// Parses `--txn-len`: `N` or `MIN..MAX`.
    pub fn parse_len(text: &str) -> Result<(usize, usize), String> {
        let (min, max) = text.split_once("..").unwrap_or((text, text));
        let number = |s: &str| {
            s.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("--txn-len {text}: expected N or MIN..MAX, each at least 1"))
        };
        let (min, max) = (number(min)?, number(max)?);
        if min > max {
            return Err(format!("--txn-len {text}: {min} is more than {max}"));
        }
        Ok((min, max))
    }
}

/// The active keys and the next value of each.
#[derive(Debug)]
pub(crate) struct TxnKeys {
    /// Per slot: the key now in it and the writes it has had.
    slots: Vec<(u64, u64)>,
    next_key: u64,
    shape: TxnShape,
}

impl TxnKeys {
    pub(crate) fn new(keys: usize, shape: TxnShape) -> Self {
        let keys = keys.max(1);
        TxnKeys {
            slots: (0..keys as u64).map(|k| (k, 0)).collect(),
            next_key: keys as u64,
            shape,
        }
    }

    /// A slot, low ones more often: exponential with a mean of a quarter of the slots.
    fn pick(&self, rng: &mut ChaCha8Rng) -> usize {
        let u: f64 = rng.random_range(f64::EPSILON..1.0);
        let scale = (self.slots.len() as f64 / 4.0).max(0.5);
        ((-u.ln() * scale) as usize).min(self.slots.len() - 1)
    }

    /// A transaction's micro-operations (reads with null values), `write` naming the write
    /// micro-operation (`append` or `w`). For rw-register (`w`), half the writes of a key the
    /// transaction has not read yet come right after a read of it (read-modify-write, when the
    /// length allows): a register's versions are ordered only where a transaction read one and
    /// wrote the next, so without such pairs a checker sees little of the version order.
    pub(crate) fn next(&mut self, rng: &mut ChaCha8Rng, write: &str) -> Vec<Value> {
        let (min, max) = self.shape.len;
        let n = rng.random_range(min..=max);
        let mut ops = Vec::with_capacity(n);
        let mut read = Vec::new();
        while ops.len() < n {
            let slot = self.pick(rng);
            let (key, writes) = self.slots[slot];
            if rng.random_bool(0.5) {
                ops.push(json!(["r", key, null]));
                read.push(key);
                continue;
            }
            if write == "w" && ops.len() + 2 <= n && !read.contains(&key) && rng.random_bool(0.5) {
                ops.push(json!(["r", key, null]));
                read.push(key);
            }
            // Values are unique per key: a key's n-th write writes n.
            ops.push(json!([write, key, writes + 1]));
            self.slots[slot].1 += 1;
            if self.slots[slot].1 >= self.shape.max_writes_per_key {
                self.slots[slot] = (self.next_key, 0);
                self.next_key += 1;
            }
        }
        ops
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn values_are_unique_keys_retire_and_lengths_hold() {
        let shape = TxnShape {
            len: (2, 3),
            max_writes_per_key: 5,
        };
        let mut keys = TxnKeys::new(4, shape);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut written = std::collections::HashSet::new();
        let mut per_key: std::collections::HashMap<u64, u64> = Default::default();
        let mut hot = [0usize; 4];
        for _ in 0..2000 {
            let txn = keys.next(&mut rng, "append");
            assert!((2..=3).contains(&txn.len()));
            for op in txn {
                let key = op[1].as_u64().unwrap();
                if op[0] == "append" {
                    assert!(
                        written.insert((key, op[2].as_u64().unwrap())),
                        "unique per key"
                    );
                    *per_key.entry(key).or_default() += 1;
                }
            }
            hot[keys.pick(&mut rng)] += 1;
        }
        assert!(
            per_key.values().all(|&w| w <= 5),
            "a key retires after 5 writes"
        );
        assert!(per_key.len() > 4, "fresh keys replaced retired ones");
        assert!(hot[0] > hot[3], "low slots are hotter: {hot:?}");
    }

    #[test]
    fn register_writes_often_follow_a_read_of_their_key() {
        let mut keys = TxnKeys::new(8, TxnShape::default());
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let (mut writes, mut read_first) = (0, 0);
        for _ in 0..2000 {
            let txn = keys.next(&mut rng, "w");
            assert!((1..=4).contains(&txn.len()), "{txn:?}");
            for (i, op) in txn.iter().enumerate() {
                if op[0] == "w" {
                    writes += 1;
                    if i > 0 && txn[i - 1][0] == "r" && txn[i - 1][1] == op[1] {
                        read_first += 1;
                    }
                }
            }
        }
        // Half the writes that fit after a read of their key get one: well over a fifth.
        assert!(
            read_first * 5 > writes,
            "{read_first} of {writes} writes follow a read of their key"
        );
    }

    #[test]
    fn txn_len_parses() {
        assert_eq!(TxnShape::parse_len("1..4"), Ok((1, 4)));
        assert_eq!(TxnShape::parse_len("3"), Ok((3, 3)));
        assert!(TxnShape::parse_len("4..1").is_err());
        assert!(TxnShape::parse_len("0").is_err());
    }
}
