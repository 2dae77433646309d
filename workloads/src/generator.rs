//! Workloads: which operations clients send, generated from one seeded RNG.

use std::fmt;
use std::str::FromStr;

use faultline_checker::causal::Consistency;
use faultline_checker::txn::{TxnKind, TxnOptions};
use faultline_checker::{Checker, ModelKind, Options};
use faultline_targets::client::Op;

use crate::txn::{TxnKeys, TxnShape};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

/// A workload (DESIGN §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Reads and writes on a few keys; each written value unique per key. Checked for
    /// linearizability with the kv model.
    Register,
    /// Reads, writes and compare-and-sets on a few keys. Checked for linearizability.
    Cas,
    /// Adds of unique elements, then a read of the whole set through every node. Checked by the
    /// set checker: no acknowledged add lost.
    Set,
    /// Sessions writing unique values and reading across keys. Checked for causal consistency
    /// (CC, CM, CCv) and the session guarantees.
    Causal,
    /// Orders placed on a checkout system, retried with their idempotency key; checked by the
    /// saga checker on the final state ([`crate::checkout`]).
    Checkout,
    /// Transactions appending unique values to lists and reading them whole. Checked by the
    /// transactional checker.
    ListAppend,
    /// Transactions writing unique values to registers and reading them. Checked by the
    /// transactional checker.
    RwRegister,
    /// Maelstrom's `echo`: each reply carries the request's payload back.
    Echo,
    /// Maelstrom's `unique-ids`: every generated id distinct.
    UniqueIds,
    /// Maelstrom's `broadcast`: messages broadcast to every node, reads along the way and a
    /// final read through every node; checked by the set checker.
    Broadcast,
    /// Maelstrom's `g-set`: a grow-only set, checked as `broadcast` is.
    GSet,
    /// Maelstrom's `g-counter`: non-negative adds, final reads within the counter's bounds.
    GCounter,
    /// Maelstrom's `pn-counter`: adds of either sign, checked as `g-counter` is.
    PnCounter,
}

impl Workload {
    /// Every workload.
    pub const ALL: [Workload; 13] = [
        Workload::Register,
        Workload::Cas,
        Workload::Set,
        Workload::Causal,
        Workload::Checkout,
        Workload::ListAppend,
        Workload::RwRegister,
        Workload::Echo,
        Workload::UniqueIds,
        Workload::Broadcast,
        Workload::GSet,
        Workload::GCounter,
        Workload::PnCounter,
    ];

    /// Maelstrom's names for the workloads it shares with the rest (`lin-kv` is `cas`).
    const ALIASES: [(&'static str, Workload); 3] = [
        ("lin-kv", Workload::Cas),
        ("txn-list-append", Workload::ListAppend),
        ("txn-rw-register", Workload::RwRegister),
    ];

    /// Whether only Maelstrom nodes take its requests.
    pub fn maelstrom_only(self) -> bool {
        matches!(
            self,
            Workload::Echo
                | Workload::UniqueIds
                | Workload::Broadcast
                | Workload::GSet
                | Workload::GCounter
                | Workload::PnCounter
        )
    }

    /// Whether it ends with a read of the whole set or counter through every node.
    pub fn reads_whole_at_end(self) -> bool {
        matches!(
            self,
            Workload::Broadcast | Workload::GSet | Workload::GCounter | Workload::PnCounter
        )
    }

    /// The target operations its runs send (exec client programs must offer them): set adds
    /// are writes of one key per element, read back one by one at the end.
    pub fn ops_needed(self) -> &'static [&'static str] {
        match self {
            Workload::Register | Workload::Causal | Workload::Set => &["read", "write"],
            Workload::Cas => &["read", "write", "cas"],
            Workload::ListAppend | Workload::RwRegister => &["txn"],
            Workload::Checkout => &["checkout"],
            Workload::Echo => &["echo"],
            Workload::UniqueIds => &["generate"],
            Workload::Broadcast | Workload::GSet | Workload::GCounter | Workload::PnCounter => {
                &["add", "read"]
            }
        }
    }

    /// Whether its operations are transactions.
    pub fn is_transactional(self) -> bool {
        matches!(self, Workload::ListAppend | Workload::RwRegister)
    }

    /// The name on the command line and in `run.json`.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Register => "register",
            Workload::Cas => "cas",
            Workload::Set => "set",
            Workload::Causal => "causal",
            Workload::Checkout => "checkout",
            Workload::ListAppend => "list-append",
            Workload::RwRegister => "rw-register",
            Workload::Echo => "echo",
            Workload::UniqueIds => "unique-ids",
            Workload::Broadcast => "broadcast",
            Workload::GSet => "g-set",
            Workload::GCounter => "g-counter",
            Workload::PnCounter => "pn-counter",
        }
    }

    /// The checkers that judge it.
    pub fn checkers(self) -> Vec<Checker> {
        match self {
            Workload::Register | Workload::Cas => vec![Checker::Linearizability(Options {
                model: Some(ModelKind::Kv),
                ..Options::default()
            })],
            Workload::Set => vec![Checker::Set],
            Workload::Broadcast | Workload::GSet => vec![Checker::SetEverywhere],
            Workload::GCounter | Workload::PnCounter => vec![Checker::Counter],
            Workload::Echo => vec![Checker::Echo],
            Workload::UniqueIds => vec![Checker::UniqueIds],
            Workload::Causal => vec![Checker::Causal(Consistency::All)],
            Workload::Checkout => vec![Checker::Saga],
            Workload::ListAppend | Workload::RwRegister => {
                vec![Checker::Transactional(TxnOptions {
                    kind: Some(if self == Workload::ListAppend {
                        TxnKind::ListAppend
                    } else {
                        TxnKind::RwRegister
                    }),
                    ..TxnOptions::default()
                })]
            }
        }
    }
}

impl FromStr for Workload {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        (Workload::ALL.into_iter().map(|w| (w.name(), w)))
            .chain(Workload::ALIASES)
            .find(|(name, _)| *name == s)
            .map(|(_, w)| w)
            .ok_or_else(|| {
                format!(
                    "unknown workload `{s}`; expected register, cas, set, causal, checkout, \
                     list-append or rw-register, or for maelstrom: targets echo, unique-ids, \
                     broadcast, g-set, g-counter, pn-counter, lin-kv, txn-list-append or \
                     txn-rw-register"
                )
            })
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One operation: what the history records and what is sent to the target.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadOp {
    /// The history's `f`.
    pub f: &'static str,
    /// The history's `key`.
    pub key: String,
    /// The history's invoke `value`.
    pub value: Value,
    /// The request sent.
    pub op: Op,
}

/// Produces a workload's operations.
#[derive(Debug)]
pub struct Generator {
    workload: Workload,
    keys: usize,
    rng: ChaCha8Rng,
    /// Per key: the next value to write (values are unique per key) and the last written.
    next_value: Vec<u64>,
    last_written: Vec<Option<u64>>,
    next_element: u64,
    txn_keys: TxnKeys,
}

/// The key a set element is stored under.
pub(crate) fn element_key(element: u64) -> String {
    format!("set-{element}")
}

impl Generator {
    /// A generator over `keys` keys, seeded with `seed` (ChaCha8).
    pub fn new(workload: Workload, keys: usize, seed: u64) -> Self {
        let keys = keys.max(1);
        Generator {
            workload,
            keys,
            rng: ChaCha8Rng::seed_from_u64(seed),
            next_value: vec![1; keys],
            last_written: vec![None; keys],
            next_element: 0,
            txn_keys: TxnKeys::new(keys, TxnShape::default()),
        }
    }

    /// The same generator, making transactions of `shape` (list-append, rw-register).
    pub fn with_txn_shape(mut self, shape: TxnShape) -> Self {
        self.txn_keys = TxnKeys::new(self.keys, shape);
        self
    }

    /// A node for the next operation of a client that is not bound to one.
    pub fn pick_node(&mut self, nodes: usize) -> usize {
        self.rng.random_range(0..nodes.max(1))
    }

    /// Elements added so far (set workload): `0..elements()`.
    pub fn elements(&self) -> u64 {
        self.next_element
    }

    /// The next operation.
    pub fn next_op(&mut self) -> WorkloadOp {
        if self.workload.is_transactional() {
            let write = if self.workload == Workload::ListAppend {
                "append"
            } else {
                "w"
            };
            let ops = self.txn_keys.next(&mut self.rng, write);
            return WorkloadOp {
                f: "txn",
                key: String::new(),
                value: Value::Array(ops.clone()),
                op: Op::Txn { ops },
            };
        }
        if let Some(op) = self.maelstrom_op() {
            return op;
        }
        if self.workload == Workload::Set {
            let e = self.next_element;
            self.next_element += 1;
            return WorkloadOp {
                f: "add",
                key: "set".into(),
                value: json!(e),
                op: Op::Write {
                    key: element_key(e),
                    value: json!(e),
                },
            };
        }
        let k = self.rng.random_range(0..self.keys);
        let key = format!("k{k}");
        let roll = self.rng.random_range(0..10);
        let read = if self.workload == Workload::Cas {
            roll < 4
        } else {
            roll < 5
        };
        if read {
            return WorkloadOp {
                f: "read",
                key: key.clone(),
                value: Value::Null,
                op: Op::Read { key },
            };
        }
        let value = self.next_value[k];
        self.next_value[k] += 1;
        let cas = self.workload == Workload::Cas && roll >= 7;
        let expect = self.last_written[k].map_or(Value::Null, |v| json!(v));
        self.last_written[k] = Some(value);
        if cas {
            WorkloadOp {
                f: "cas",
                key: key.clone(),
                value: json!([expect, value]),
                op: Op::Cas {
                    key,
                    expect,
                    value: json!(value),
                },
            }
        } else {
            WorkloadOp {
                f: "write",
                key: key.clone(),
                value: json!(value),
                op: Op::Write {
                    key,
                    value: json!(value),
                },
            }
        }
    }
}

impl Generator {
    /// The next operation of a Maelstrom-only workload (`None` for the others): mostly adds,
    /// one read of the whole value in five.
    fn maelstrom_op(&mut self) -> Option<WorkloadOp> {
        let op = |f, key: &str, value: Value, op| WorkloadOp {
            f,
            key: key.into(),
            value,
            op,
        };
        let n = self.next_element;
        let key = match self.workload {
            Workload::Echo => {
                self.next_element += 1;
                let value = json!(format!("Please echo {n}"));
                return Some(op("echo", "", value.clone(), Op::Echo { value }));
            }
            Workload::UniqueIds => return Some(op("generate", "", Value::Null, Op::Generate)),
            Workload::Broadcast | Workload::GSet => "set",
            Workload::GCounter | Workload::PnCounter => "counter",
            _ => return None,
        };
        if self.rng.random_range(0..5) == 0 {
            return Some(op("read", key, Value::Null, Op::ReadAll));
        }
        let value = match self.workload {
            Workload::GCounter => json!(self.rng.random_range(0..=5)),
            Workload::PnCounter => json!(self.rng.random_range(-5..=5)),
            _ => {
                self.next_element += 1;
                json!(n)
            }
        };
        Some(op("add", key, value.clone(), Op::Add { value }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_unique_per_key_and_seeds_replay() {
        let ops = |seed| {
            let mut g = Generator::new(Workload::Cas, 3, seed);
            (0..500).map(|_| g.next_op()).collect::<Vec<_>>()
        };
        let a = ops(7);
        assert_eq!(a, ops(7));
        assert_ne!(a, ops(8));
        let mut written = std::collections::HashSet::new();
        for op in &a {
            let v = match op.f {
                "write" => op.value.clone(),
                "cas" => op.value[1].clone(),
                _ => continue,
            };
            assert!(written.insert((op.key.clone(), v)), "a value written twice");
        }
        assert!(a.iter().any(|o| o.f == "cas") && a.iter().any(|o| o.f == "read"));
    }

    #[test]
    fn maelstrom_workloads_add_unique_elements_and_read_whole() {
        let mut g = Generator::new(Workload::Broadcast, 1, 3);
        let ops: Vec<WorkloadOp> = (0..200).map(|_| g.next_op()).collect();
        let adds: Vec<&Value> = ops
            .iter()
            .filter(|o| o.f == "add")
            .map(|o| &o.value)
            .collect();
        let unique: std::collections::HashSet<String> =
            adds.iter().map(|v| v.to_string()).collect();
        assert_eq!(unique.len(), adds.len());
        assert!(ops.iter().any(|o| o.op == Op::ReadAll && o.f == "read"));
        let mut g = Generator::new(Workload::PnCounter, 1, 3);
        let deltas: Vec<i64> = (0..200)
            .filter_map(|_| match g.next_op().op {
                Op::Add { value } => value.as_i64(),
                _ => None,
            })
            .collect();
        assert!(deltas.iter().any(|d| *d < 0) && deltas.iter().all(|d| (-5..=5).contains(d)));
        assert_eq!("lin-kv".parse::<Workload>(), Ok(Workload::Cas));
        assert_eq!(
            "txn-list-append".parse::<Workload>(),
            Ok(Workload::ListAppend)
        );
    }

    #[test]
    fn set_adds_unique_elements() {
        let mut g = Generator::new(Workload::Set, 1, 1);
        let first = g.next_op();
        let second = g.next_op();
        assert_eq!((first.f, first.value), ("add", json!(0)));
        assert_eq!(
            second.op,
            Op::Write {
                key: "set-1".into(),
                value: json!(1)
            }
        );
        assert_eq!(g.elements(), 2);
    }
}
