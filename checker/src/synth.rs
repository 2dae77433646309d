//! Synthetic histories that are linearizable by construction, for tests and benchmarks.
//!
//! Clients run operations on a set of atomic registers. Each operation gets an interval and a
//! linearization point inside it; applying the operations in the order of their points to real
//! registers gives every output, so the recorded history is linearizable. Some operations end
//! `info` (the client then takes a fresh process number); half of those took effect. Written
//! values are unique per key, so a changed read is easy to make provably wrong.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Write};

use serde_json::{Value, json};

use crate::history::{Event, EventKind, Process};

/// What to generate.
#[derive(Clone, Debug)]
pub struct SynthConfig {
    /// Operations in total.
    pub ops: usize,
    /// Distinct keys (`k0`, `k1`, ...).
    pub keys: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Share of operations that end `info`.
    pub info_rate: f64,
    /// Whether to issue `cas` besides `read` and `write`.
    pub cas: bool,
    /// Seed of every random choice; equal seeds give equal histories.
    pub seed: u64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            ops: 1000,
            keys: 10,
            clients: 8,
            info_rate: 0.01,
            cas: true,
            seed: 1,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
    Cas,
}

/// One generated operation.
#[derive(Clone, Debug)]
struct SynthOp {
    process: u64,
    key: u32,
    kind: Kind,
    /// Written value, or the new value of a cas.
    value: u64,
    /// The expected value of a cas.
    expect: Option<u64>,
    call: u64,
    ret: u64,
    point: u64,
    info: bool,
    /// Whether an `info` operation took effect.
    applied: bool,
    /// A read's result, or whether a cas succeeded.
    read: Option<u64>,
    cas_ok: bool,
}

/// A generated history.
#[derive(Clone, Debug)]
pub struct Synth {
    ops: Vec<SynthOp>,
}

/// xorshift64*: small, fast and seedable; good enough to scatter test histories.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// Generates a history linearizable by construction.
pub fn generate(config: &SynthConfig) -> Synth {
    let mut rng = Rng::new(config.seed);
    let clients = config.clients.max(1);
    let keys = config.keys.max(1);
    let mut free_at: BinaryHeap<Reverse<(u64, usize)>> =
        (0..clients).map(|c| Reverse((rng.below(100), c))).collect();
    let mut process: Vec<u64> = (0..clients as u64).collect();
    let mut next_process = clients as u64;
    let mut last_written: Vec<Option<u64>> = vec![None; keys];
    let mut ops = Vec::with_capacity(config.ops);
    for value in 1..=config.ops as u64 {
        let Reverse((call, client)) = free_at.pop().expect("one entry per client");
        let key = rng.below(keys as u64) as u32;
        let roll = rng.below(10);
        let kind = if roll < 5 {
            Kind::Read
        } else if roll < 8 || !config.cas {
            Kind::Write
        } else {
            Kind::Cas
        };
        let expect = (kind == Kind::Cas).then(|| last_written[key as usize].unwrap_or(0));
        if kind != Kind::Read {
            last_written[key as usize] = Some(value);
        }
        let duration = 50 + rng.below(1000);
        let ret = call + duration;
        let info = rng.chance(config.info_rate);
        ops.push(SynthOp {
            process: process[client],
            key,
            kind,
            value,
            expect,
            call,
            ret,
            point: call + rng.below(duration + 1),
            info,
            applied: !info || rng.chance(0.5),
            read: None,
            cas_ok: false,
        });
        if info {
            process[client] = next_process;
            next_process += 1;
        }
        free_at.push(Reverse((ret + 1 + rng.below(200), client)));
    }

    // Apply in linearization order to real registers (0 stands for the initial null).
    let mut order: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].applied).collect();
    order.sort_by_key(|&i| (ops[i].point, i));
    let mut registers = vec![0u64; keys];
    for i in order {
        let op = &mut ops[i];
        let register = &mut registers[op.key as usize];
        match op.kind {
            Kind::Read => op.read = Some(*register),
            Kind::Write => *register = op.value,
            Kind::Cas => {
                op.cas_ok = Some(*register) == op.expect;
                if op.cas_ok {
                    *register = op.value;
                }
            }
        }
    }
    Synth { ops }
}

fn value_json(v: u64) -> Value {
    if v == 0 { Value::Null } else { json!(v) }
}

impl Synth {
    /// The events in time order, numbered from line 1.
    pub fn events(&self) -> Vec<Event> {
        let mut stamped: Vec<(u64, usize, bool)> = Vec::with_capacity(2 * self.ops.len());
        for (i, op) in self.ops.iter().enumerate() {
            stamped.push((op.call, i, false));
            stamped.push((op.ret, i, true));
        }
        stamped.sort_unstable_by_key(|&(t, i, done)| (t, done, i));
        stamped
            .into_iter()
            .enumerate()
            .map(|(line, (time, i, done))| self.event(i, time, done, line + 1))
            .collect()
    }

    fn event(&self, i: usize, time: u64, done: bool, line: usize) -> Event {
        let op = &self.ops[i];
        let f = match op.kind {
            Kind::Read => "read",
            Kind::Write => "write",
            Kind::Cas => "cas",
        };
        let input = match op.kind {
            Kind::Read => Value::Null,
            Kind::Write => json!(op.value),
            Kind::Cas => json!([value_json(op.expect.unwrap_or(0)), op.value]),
        };
        let (kind, value, mismatch) = match (done, op.info, op.kind) {
            (false, _, _) => (EventKind::Invoke, input, false),
            (true, true, _) => (EventKind::Info, input, false),
            (true, false, Kind::Read) => (EventKind::Ok, value_json(op.read.unwrap_or(0)), false),
            (true, false, Kind::Cas) if !op.cas_ok => (EventKind::Fail, input, true),
            (true, false, _) => (EventKind::Ok, input, false),
        };
        Event {
            time,
            process: Process::Client(op.process),
            kind,
            f: f.to_string(),
            key: Some(format!("k{}", op.key)),
            value,
            error: mismatch.then(|| "mismatch".to_string()),
            mismatch,
            line,
        }
    }

    /// Makes one read provably stale: a read of key `k` that began after two acknowledged
    /// writes of `k`, the second invoked after the first returned, now returns the first's
    /// value. Returns the read's position among the operations (its invocation is the
    /// history's `2 * position`-th event or so), or `None` if no read qualifies.
    pub fn plant_stale_read(&mut self) -> Option<usize> {
        let acknowledged = |op: &SynthOp| op.kind == Kind::Write && !op.info;
        for r in (0..self.ops.len()).rev() {
            let read = &self.ops[r];
            if read.kind != Kind::Read || read.info {
                continue;
            }
            let before: Vec<&SynthOp> = (self.ops.iter())
                .filter(|w| w.key == read.key && acknowledged(w) && w.ret < read.call)
                .collect();
            let pair = before.iter().find_map(|a| {
                let b = before.iter().find(|b| a.ret < b.call)?;
                Some((a.value, b.value))
            });
            if let Some((old, _newer)) = pair {
                self.ops[r].read = Some(old);
                return Some(r);
            }
        }
        None
    }

    /// Operation `i`'s process and invocation time, to find it in the history.
    pub fn who_and_when(&self, i: usize) -> (u64, u64) {
        (self.ops[i].process, self.ops[i].call)
    }

    /// Writes the history as faultline JSONL.
    pub fn write_jsonl(&self, out: &mut impl Write) -> io::Result<()> {
        write_events(&self.events(), out)
    }
}

/// A differentiated history of one sequentially consistent store: `sessions` sessions
/// interleaved at random, each operation a write of a fresh value (40%) or a read of the
/// latest value (60%) of one of `keys` keys. It passes every causal model and session
/// guarantee; for benchmarks of the causal checkers.
pub fn causal_events(ops: usize, sessions: usize, keys: usize, seed: u64) -> Vec<Event> {
    let mut rng = Rng::new(seed);
    let mut latest: Vec<Option<u64>> = vec![None; keys.max(1)];
    let mut events = Vec::with_capacity(2 * ops);
    for i in 0..ops {
        let session = rng.below(sessions.max(1) as u64);
        let key = rng.below(keys.max(1) as u64) as usize;
        let write = rng.below(10) < 4;
        let (f, input, output) = if write {
            let value = i as u64 + 1;
            latest[key] = Some(value);
            ("write", json!(value), json!(value))
        } else {
            (
                "read",
                Value::Null,
                latest[key].map_or(Value::Null, |v| json!(v)),
            )
        };
        for (kind, value, t) in [
            (EventKind::Invoke, input, 2 * i),
            (EventKind::Ok, output, 2 * i + 1),
        ] {
            events.push(Event {
                time: t as u64,
                process: Process::Client(session),
                kind,
                f: f.to_string(),
                key: Some(format!("k{key}")),
                value,
                error: None,
                mismatch: false,
                line: t + 1,
            });
        }
    }
    events
}

/// Writes events as faultline JSONL.
pub fn write_events(events: &[Event], out: &mut impl Write) -> io::Result<()> {
    for (index, e) in events.iter().enumerate() {
        let process = match e.process {
            Process::Client(p) => Value::from(p),
            Process::Nemesis => Value::from("nemesis"),
        };
        let kind = match e.kind {
            EventKind::Invoke => "invoke",
            EventKind::Ok => "ok",
            EventKind::Fail => "fail",
            EventKind::Info => "info",
        };
        let mut line = json!({
            "index": index, "time": e.time, "process": process, "type": kind,
            "f": e.f, "key": e.key, "value": e.value,
        });
        if let Some(error) = &e.error {
            line["error"] = json!(error);
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// A list-append history that is strict serializable by construction: `clients` clients run
/// `txns` transactions of 1–4 micro-operations (appends of fresh values and reads) over
/// `keys` active keys; each transaction takes effect atomically at a point inside its
/// interval, in the order of those points. A key retires after `max_appends` appends and a
/// fresh one takes its slot, so reads stay short (as Elle's generator does).
pub fn list_append_events(
    txns: usize,
    keys: usize,
    clients: usize,
    max_appends: usize,
    seed: u64,
) -> Vec<Event> {
    let mut rng = Rng::new(seed);
    let clients = clients.max(1);
    let keys = keys.max(1);
    // Each client's next transaction: (effect point, client, call).
    let mut next: BinaryHeap<Reverse<(u64, usize, u64)>> = (0..clients)
        .map(|c| {
            let call = rng.below(50);
            Reverse((call + 1 + rng.below(20), c, call))
        })
        .collect();
    let mut slots: Vec<u64> = (0..keys as u64).collect();
    let mut next_key = keys as u64;
    let mut lists: Vec<Vec<u64>> = vec![Vec::new(); keys];
    let mut value = 0u64;
    let mut events = Vec::with_capacity(2 * txns);
    for _ in 0..txns {
        let Reverse((point, client, call)) = next.pop().expect("one entry per client");
        let ret = point + 1 + rng.below(20);
        let n = 1 + rng.below(4);
        let mut invoke = Vec::with_capacity(n as usize);
        let mut done = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let slot = rng.below(keys as u64) as usize;
            let key = slots[slot];
            if rng.below(2) == 0 {
                value += 1;
                lists[slot].push(value);
                invoke.push(json!(["append", key, value]));
                done.push(json!(["append", key, value]));
                if lists[slot].len() >= max_appends.max(1) {
                    slots[slot] = next_key;
                    next_key += 1;
                    lists[slot].clear();
                }
            } else {
                invoke.push(json!(["r", key, null]));
                done.push(json!(["r", key, lists[slot]]));
            }
        }
        for (kind, value, time) in [
            (EventKind::Invoke, Value::Array(invoke), call),
            (EventKind::Ok, Value::Array(done), ret),
        ] {
            events.push(Event {
                time,
                process: Process::Client(client as u64),
                kind,
                f: "txn".to_string(),
                key: None,
                value,
                error: None,
                mismatch: false,
                line: 0,
            });
        }
        let call = ret + 1 + rng.below(20);
        next.push(Reverse((call + 1 + rng.below(20), client, call)));
    }
    events.sort_by_key(|e| e.time);
    events
}
