//! The transactional checker against simulated databases (the idea of Jepsen's history.sim):
//! seeded stores with no concurrency control, read committed, snapshot isolation without and
//! with first-committer-wins, and serializable optimistic concurrency control. Each level's
//! histories must show no anomaly the level forbids, and over many seeds the anomalies it
//! permits; and on small histories the verdict must agree with a brute-force search for a
//! serial order.

use std::collections::{BTreeMap, BTreeSet};

use faultline_checker::format;
use faultline_checker::txn::{self, Model, TxnOptions, TxnReport};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Level {
    /// Every micro-operation acts on the shared state at once; nothing is ever rolled back.
    NoConcurrencyControl,
    /// Writes are buffered and applied at commit; reads see what is committed.
    ReadCommitted,
    /// Reads from a snapshot taken at the start; writes applied at commit, never refused.
    SnapshotNoFirstCommitter,
    /// Snapshot isolation: a commit whose writes conflict with a later commit aborts.
    SnapshotIsolation,
    /// Optimistic concurrency control validating reads and writes: serializable.
    Serializable,
}

/// One transaction a simulated client runs.
struct Running {
    process: u64,
    mops: Vec<(bool, u32, i64)>,
    done: Vec<Value>,
    next: usize,
    snapshot: BTreeMap<u32, Vec<i64>>,
    buffer: BTreeMap<u32, Vec<i64>>,
    read_keys: BTreeSet<u32>,
    start: u64,
}

/// A transaction's micro-operations as invoked: appends, and reads of null.
fn invoked(mops: &[(bool, u32, i64)]) -> Value {
    let ops: Vec<Value> = mops
        .iter()
        .map(|&(w, k, v)| {
            if w {
                json!(["append", k, v])
            } else {
                json!(["r", k, null])
            }
        })
        .collect();
    json!(ops)
}

/// A history of `txns` transactions over `keys` keys from `clients` concurrent clients.
fn simulate(level: Level, seed: u64, txns: usize, keys: u32, clients: u64) -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut committed: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
    let mut last_commit: BTreeMap<u32, u64> = BTreeMap::new();
    let mut clock = 0u64;
    let mut next_value = 1i64;
    let mut started = 0;
    let mut running: Vec<Option<Running>> = (0..clients).map(|_| None).collect();
    let mut events = Vec::new();
    let mut time = 0u64;
    let mut event = |process: u64, kind: &str, value: Value, time: &mut u64| {
        *time += 1;
        events.push(
            json!({"time": *time, "process": process, "type": kind, "f": "txn", "value": value})
                .to_string(),
        );
    };
    while started < txns || running.iter().any(Option::is_some) {
        let c = rng.random_range(0..clients) as usize;
        match &mut running[c] {
            None if started < txns => {
                started += 1;
                let n = rng.random_range(1..=4);
                // Stores that apply buffered appends at commit onto whatever is committed
                // then cannot show a transaction its own appends in place: those read a key
                // only before appending to it.
                let reads_own = !matches!(
                    level,
                    Level::ReadCommitted | Level::SnapshotNoFirstCommitter
                );
                let mut mops: Vec<(bool, u32, i64)> = Vec::new();
                for _ in 0..n {
                    let key = rng.random_range(0..keys);
                    let appended = mops.iter().any(|&(w, k, _)| w && k == key);
                    if rng.random_bool(0.5) || (appended && !reads_own) {
                        next_value += 1;
                        mops.push((true, key, next_value));
                    } else {
                        mops.push((false, key, 0));
                    }
                }
                event(c as u64, "invoke", invoked(&mops), &mut time);
                running[c] = Some(Running {
                    process: c as u64,
                    mops,
                    done: Vec::new(),
                    next: 0,
                    snapshot: committed.clone(),
                    buffer: BTreeMap::new(),
                    read_keys: BTreeSet::new(),
                    start: clock,
                });
            }
            None => {}
            Some(t) if t.next < t.mops.len() => {
                let (write, key, value) = t.mops[t.next];
                t.next += 1;
                let own = t.buffer.get(&key).cloned().unwrap_or_default();
                if write {
                    match level {
                        Level::NoConcurrencyControl => {
                            committed.entry(key).or_default().push(value)
                        }
                        _ => t.buffer.entry(key).or_default().push(value),
                    }
                    t.done.push(json!(["append", key, value]));
                } else {
                    t.read_keys.insert(key);
                    let base = match level {
                        Level::NoConcurrencyControl | Level::ReadCommitted => {
                            committed.get(&key).cloned().unwrap_or_default()
                        }
                        _ => t.snapshot.get(&key).cloned().unwrap_or_default(),
                    };
                    let seen: Vec<i64> = base.into_iter().chain(own).collect();
                    t.done.push(json!(["r", key, seen]));
                }
            }
            Some(t) => {
                let conflict = |k: &u32| last_commit.get(k).is_some_and(|&at| at > t.start);
                let abort = match level {
                    Level::SnapshotIsolation => t.buffer.keys().any(conflict),
                    Level::Serializable => t.buffer.keys().chain(t.read_keys.iter()).any(conflict),
                    _ => false,
                };
                let process = t.process;
                if abort {
                    event(process, "fail", invoked(&t.mops), &mut time);
                } else {
                    clock += 1;
                    for (key, values) in std::mem::take(&mut t.buffer) {
                        committed.entry(key).or_default().extend(values);
                        last_commit.insert(key, clock);
                    }
                    let done = std::mem::take(&mut t.done);
                    event(process, "ok", json!(done), &mut time);
                }
                running[c] = None;
            }
        }
    }
    events.join("\n")
}

fn check(text: &str, model: Model) -> TxnReport {
    let history = format::read_str(text, None).unwrap().history;
    let options = TxnOptions {
        consistency: model,
        ..TxnOptions::default()
    };
    txn::check(&history, &options).unwrap()
}

fn found(report: &TxnReport) -> Vec<&str> {
    report.counts.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn a_serializable_store_shows_nothing() {
    for seed in 0..60 {
        let text = simulate(Level::Serializable, seed, 40, 4, 4);
        let report = check(&text, Model::StrictSerializable);
        assert!(
            report.anomalies.is_empty(),
            "seed {seed}: {}",
            report.explanation()
        );
        assert_eq!(report.validity, faultline_checker::Validity::Pass);
    }
}

/// Over `seeds`, every history of `level` is allowed by `model`, and the anomalies seen
/// include every one of `expected`.
fn level_allows(level: Level, model: Model, expected: &[&str]) {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for seed in 0..80 {
        let text = simulate(level, seed, 30, 3, 4);
        let report = check(&text, model);
        let names = found(&report);
        assert!(
            model.allows(&names),
            "{level:?} seed {seed}: {model} forbids what was found:\n{}",
            report.explanation()
        );
        seen.extend(names.iter().map(|n| n.to_string()));
    }
    for e in expected {
        assert!(seen.contains(*e), "{level:?}: never saw {e}; saw {seen:?}");
    }
}

#[test]
fn snapshot_isolation_allows_write_skew_and_nothing_it_forbids() {
    level_allows(
        Level::SnapshotIsolation,
        Model::SnapshotIsolation,
        &["G2-item"],
    );
}

#[test]
fn snapshot_reads_without_first_committer_wins_lose_updates() {
    level_allows(
        Level::SnapshotNoFirstCommitter,
        Model::ReadAtomic,
        &["lost-update"],
    );
}

#[test]
fn read_committed_allows_read_skew_and_nothing_it_forbids() {
    level_allows(
        Level::ReadCommitted,
        Model::ReadCommitted,
        &["G-single", "internal"],
    );
}

#[test]
fn no_concurrency_control_is_caught_reading_uncommitted_state() {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for seed in 0..40 {
        let report = check(
            &simulate(Level::NoConcurrencyControl, seed, 30, 3, 4),
            Model::ReadCommitted,
        );
        seen.extend(found(&report).iter().map(|n| n.to_string()));
    }
    assert!(
        seen.iter()
            .any(|a| ["G1c", "G1b", "G0"].contains(&a.as_str())),
        "{seen:?}"
    );
}

/// Whether some order of the committed transactions, run one at a time, gives every read
/// they made (the oracle: brute force over every permutation).
fn serializable_by_brute_force(text: &str) -> bool {
    let txns: Vec<Vec<Value>> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["type"] == "ok")
        .map(|e| e["value"].as_array().unwrap().clone())
        .collect();
    let mut order: Vec<usize> = (0..txns.len()).collect();
    permutations(&mut order, 0, &mut |order| {
        let mut state: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        order.iter().all(|&t| {
            txns[t].iter().all(|m| {
                let key = m[1].to_string();
                match m[0].as_str() {
                    Some("append") => {
                        state.entry(key).or_default().push(m[2].clone());
                        true
                    }
                    _ => state.get(&key).cloned().unwrap_or_default() == *m[2].as_array().unwrap(),
                }
            })
        })
    })
}

/// Calls `f` on every permutation of `items[at..]` until it returns true.
fn permutations(items: &mut Vec<usize>, at: usize, f: &mut dyn FnMut(&[usize]) -> bool) -> bool {
    if at == items.len() {
        return f(items);
    }
    for i in at..items.len() {
        items.swap(at, i);
        if permutations(items, at + 1, f) {
            return true;
        }
        items.swap(at, i);
    }
    false
}

/// On small histories the checker and the oracle agree: a cycle or anomaly serializability
/// forbids is reported exactly when no serial order gives the reads.
#[test]
fn the_checker_agrees_with_brute_force_serializability() {
    let mut disagreements = Vec::new();
    let mut unserializable = 0;
    for level in [
        Level::NoConcurrencyControl,
        Level::ReadCommitted,
        Level::SnapshotNoFirstCommitter,
        Level::SnapshotIsolation,
    ] {
        for seed in 0..150 {
            let text = simulate(level, seed, 7, 2, 3);
            let report = check(&text, Model::Serializable);
            let checker_says_not = !Model::Serializable.allows(&found(&report));
            let oracle_says_not = !serializable_by_brute_force(&text);
            unserializable += usize::from(oracle_says_not);
            if checker_says_not != oracle_says_not {
                disagreements.push(format!(
                    "{level:?} seed {seed}: checker {checker_says_not}, oracle {oracle_says_not}\n{text}\n{}",
                    report.explanation()
                ));
            }
        }
    }
    assert!(
        unserializable > 20,
        "the simulations must produce unserializable histories"
    );
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n\n"));
}
