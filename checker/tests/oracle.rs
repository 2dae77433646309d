//! The WGL checker against a brute-force oracle: on small random concurrent histories of every
//! model (up to 9 operations, 2–4 processes, `info` and `fail` included), both semantics, the
//! verdicts must agree.
//!
//! The oracle is written independently of the checker's models: it steps plain JSON values and
//! tries every order consistent with real time, letting each `info` operation either happen
//! (anywhere after its call) or not happen at all.

use std::collections::{BTreeMap, VecDeque};

use faultline_checker::history::{Event, EventKind, Process, pair};
use faultline_checker::{History, ModelKind, Operation, Options, Semantics, Status, Validity};
use proptest::prelude::*;
use serde_json::{Value, json};

/// The state of one object in the oracle.
#[derive(Clone, Debug)]
enum RefState {
    Value(Value),
    Set(Vec<Value>),
    Queue(VecDeque<Value>),
}

fn takes_part(op: &Operation, semantics: Semantics) -> bool {
    match op.status {
        Status::Ok => true,
        Status::Fail => false,
        Status::Mismatch => semantics == Semantics::Strict,
        Status::Info => !matches!(op.f.as_str(), "read" | "get"),
    }
}

/// Text comparison for keys that see appends: absent reads as "".
fn same(a: &Value, b: &Value, text: bool) -> bool {
    let norm = |v: &Value| {
        if text && v.is_null() {
            json!("")
        } else {
            v.clone()
        }
    };
    norm(a) == norm(b)
}

fn sorted(v: &Value) -> Vec<Value> {
    let mut items: Vec<Value> = v.as_array().cloned().unwrap_or_default();
    items.sort_by_key(|a| a.to_string());
    items.dedup();
    items
}

/// One step of the reference semantics; `None` if illegal.
fn ref_step(
    state: &RefState,
    op: &Operation,
    semantics: Semantics,
    text: bool,
) -> Option<RefState> {
    let knossos_any = semantics == Semantics::Knossos && op.output.is_null();
    let unknown = op.status == Status::Info;
    match (state, op.f.as_str()) {
        (RefState::Value(v), "read" | "get") => {
            (knossos_any || same(v, &op.output, text)).then(|| state.clone())
        }
        (RefState::Value(_), "write" | "put") => Some(RefState::Value(op.input.clone())),
        (RefState::Value(v), "append") => {
            let base = v.as_str().unwrap_or("");
            Some(RefState::Value(json!(format!(
                "{base}{}",
                op.input.as_str().unwrap()
            ))))
        }
        (RefState::Value(v), "cas") => {
            let (e, n) = (&op.input[0], &op.input[1]);
            let matches = same(v, e, text);
            match op.status {
                Status::Mismatch => (!matches).then(|| state.clone()),
                _ if matches => Some(RefState::Value(n.clone())),
                _ if unknown => Some(state.clone()),
                _ => None,
            }
        }
        (RefState::Set(items), "add") => {
            let mut next = items.clone();
            next.push(op.input.clone());
            next.sort_by_key(|a| a.to_string());
            next.dedup();
            Some(RefState::Set(next))
        }
        (RefState::Set(items), "read") => {
            (knossos_any || *items == sorted(&op.output)).then(|| state.clone())
        }
        (RefState::Queue(q), "enqueue") => {
            let mut next = q.clone();
            next.push_back(op.input.clone());
            Some(RefState::Queue(next))
        }
        (RefState::Queue(q), "dequeue") => {
            let mut next = q.clone();
            let front = next.pop_front();
            if unknown {
                return Some(RefState::Queue(next));
            }
            match front {
                None => op.output.is_null().then(|| state.clone()),
                Some(v) => (v == op.output).then_some(RefState::Queue(next)),
            }
        }
        _ => panic!("the generator made an operation the oracle does not know: {op:?}"),
    }
}

/// Tries every real-time-consistent order of `ops`; info operations may also not happen.
fn search(
    ops: &[&Operation],
    placed: &mut Vec<bool>,
    state: &RefState,
    s: Semantics,
    text: bool,
) -> bool {
    let must_place_remaining = ops
        .iter()
        .zip(placed.iter())
        .any(|(op, &p)| !p && op.status != Status::Info);
    if !must_place_remaining {
        return true;
    }
    for i in 0..ops.len() {
        if placed[i] {
            continue;
        }
        // i can go next only if nothing unplaced must precede it.
        let blocked = ops
            .iter()
            .zip(placed.iter())
            .any(|(o, &p)| !p && o.ret.is_some_and(|r| r < ops[i].call));
        if blocked {
            continue;
        }
        if let Some(next) = ref_step(state, ops[i], s, text) {
            placed[i] = true;
            let ok = search(ops, placed, &next, s, text);
            placed[i] = false;
            if ok {
                return true;
            }
        }
    }
    false
}

fn brute_force(history: &History, model: ModelKind, semantics: Semantics) -> Validity {
    let mut by_key: BTreeMap<Option<String>, Vec<&Operation>> = BTreeMap::new();
    for op in history.ops.iter().filter(|op| takes_part(op, semantics)) {
        by_key.entry(op.key.clone()).or_default().push(op);
    }
    let all_ok = by_key.values().all(|ops| {
        let text = ops.iter().any(|op| op.f == "append");
        let init = match model {
            ModelKind::Set => RefState::Set(Vec::new()),
            ModelKind::Queue => RefState::Queue(VecDeque::new()),
            _ => RefState::Value(Value::Null),
        };
        search(ops, &mut vec![false; ops.len()], &init, semantics, text)
    });
    if all_ok {
        Validity::Pass
    } else {
        Validity::Fail
    }
}

/// One generated operation before timing: (process slot, f, key, input, output, status, gap,
/// duration).
type Spec = (
    usize,
    String,
    Option<String>,
    Value,
    Value,
    Status,
    u64,
    u64,
);

fn small_value() -> impl Strategy<Value = Value> {
    prop_oneof![Just(Value::Null), (1..4i64).prop_map(|v| json!(v))]
}

fn op_spec(model: ModelKind, text: bool) -> BoxedStrategy<(String, Value, Value)> {
    let write = (1..4i64).prop_map(|v| ("write".to_string(), json!(v), Value::Null));
    let read = small_value().prop_map(|v| ("read".to_string(), Value::Null, v));
    let cas =
        (small_value(), 1..4i64).prop_map(|(e, n)| ("cas".to_string(), json!([e, n]), Value::Null));
    match model {
        ModelKind::Register => prop_oneof![write, read].boxed(),
        ModelKind::CasRegister => prop_oneof![write, read, cas].boxed(),
        ModelKind::Kv if text => {
            let texts = prop::sample::select(vec!["", "x", "y", "xy", "yx", "xx"]);
            prop_oneof![
                texts
                    .clone()
                    .prop_map(|t| ("get".to_string(), Value::Null, json!(t))),
                prop::sample::select(vec!["x", "y"]).prop_map(|t| (
                    "put".to_string(),
                    json!(t),
                    Value::Null
                )),
                prop::sample::select(vec!["x", "y"]).prop_map(|t| (
                    "append".to_string(),
                    json!(t),
                    Value::Null
                )),
            ]
            .boxed()
        }
        ModelKind::Kv => prop_oneof![write, read, cas].boxed(),
        ModelKind::Set => prop_oneof![
            (1..4i64).prop_map(|v| ("add".to_string(), json!(v), Value::Null)),
            prop::collection::vec(1..4i64, 0..4).prop_map(|v| (
                "read".to_string(),
                Value::Null,
                json!(v)
            )),
        ]
        .boxed(),
        ModelKind::Queue => prop_oneof![
            (1..4i64).prop_map(|v| ("enqueue".to_string(), json!(v), Value::Null)),
            small_value().prop_map(|v| ("dequeue".to_string(), Value::Null, v)),
        ]
        .boxed(),
    }
}

fn specs(model: ModelKind, text: bool, processes: usize) -> impl Strategy<Value = Vec<Spec>> {
    let keyed = model == ModelKind::Kv;
    let one = (
        0..processes,
        op_spec(model, text),
        prop::bool::weighted(0.5),
        prop::sample::select(vec![
            Status::Ok,
            Status::Ok,
            Status::Ok,
            Status::Info,
            Status::Fail,
            Status::Mismatch,
        ]),
        0..4u64,
        0..6u64,
    )
        .prop_map(
            move |(p, (f, input, output), second_key, status, gap, dur)| {
                let status = match status {
                    Status::Mismatch if f != "cas" => Status::Ok,
                    s => s,
                };
                let key = keyed.then(|| if second_key { "b" } else { "a" }.to_string());
                (p, f, key, input, output, status, gap, dur)
            },
        );
    prop::collection::vec(one, 1..=9)
}

/// Times the specs per process (each process runs one operation at a time; after `info` its
/// slot continues under a fresh process number) and pairs the events into a history.
fn build(specs: &[Spec]) -> History {
    let mut free_at = [0u64; 4];
    let mut process: Vec<u64> = (0..4).collect();
    let mut next_process = 4;
    let mut events: Vec<(u64, u8, Event)> = Vec::new();
    for (p, f, key, input, output, status, gap, dur) in specs {
        let call = free_at[*p] + gap;
        let ret = call + dur;
        let event = |time, kind, value: &Value| Event {
            time,
            process: Process::Client(process[*p]),
            kind,
            f: f.clone(),
            key: key.clone(),
            value: value.clone(),
            error: None,
            mismatch: *status == Status::Mismatch,
            line: 0,
        };
        events.push((call, 0, event(call, EventKind::Invoke, input)));
        let kind = match status {
            Status::Ok => EventKind::Ok,
            Status::Fail | Status::Mismatch => EventKind::Fail,
            Status::Info => EventKind::Info,
        };
        let value = if *status == Status::Ok { output } else { input };
        events.push((ret, 1, event(ret, kind, value)));
        free_at[*p] = ret + 1;
        if *status == Status::Info {
            process[*p] = next_process;
            next_process += 1;
        }
    }
    events.sort_by_key(|(t, order, _)| (*t, *order));
    pair(events.into_iter().map(|(_, _, e)| e)).expect("generated events pair")
}

fn agree(model: ModelKind, text: bool, specs: &[Spec]) -> Result<(), TestCaseError> {
    let history = build(specs);
    for semantics in [Semantics::Strict, Semantics::Knossos] {
        let options = Options {
            model: Some(model),
            semantics,
            ..Options::default()
        };
        let report = faultline_checker::linearizability::check(&history, &options)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let oracle = brute_force(&history, model, semantics);
        prop_assert_eq!(
            report.validity,
            oracle,
            "{:?} {:?} {} {:#?}",
            model,
            semantics,
            text,
            history.ops
        );
        if report.validity == Validity::Fail {
            let failure = &report.failures[0];
            prop_assert!(history.ops.contains(&failure.op));
        }
    }
    Ok(())
}

/// Register histories as the `register` and `cas` workloads make them — every written value
/// unique — with many `info` operations and cas mismatches: the cases the `info` reductions
/// act on (bounding an observed write by its first observer, dropping an unobserved one).
fn unique_specs(processes: usize, cas: bool) -> impl Strategy<Value = Vec<Spec>> {
    let one = (
        0..processes,
        0..if cas { 3u8 } else { 2 },
        0..8usize,
        prop::sample::select(vec![
            Status::Ok,
            Status::Ok,
            Status::Info,
            Status::Info,
            Status::Mismatch,
            Status::Fail,
        ]),
        0..4u64,
        0..6u64,
    );
    prop::collection::vec(one, 1..=9).prop_map(|ops| {
        let written: Vec<i64> = (0..ops.len())
            .filter(|&i| ops[i].1 != 0)
            .map(|i| i as i64 + 1)
            .collect();
        let pick = |n: usize| {
            if n == 0 || written.is_empty() {
                Value::Null
            } else {
                json!(written[n % written.len()])
            }
        };
        ops.iter()
            .enumerate()
            .map(|(i, &(p, kind, seen, status, gap, dur))| {
                let (f, input, output) = match kind {
                    0 => ("read", Value::Null, pick(seen)),
                    1 => ("write", json!(i as i64 + 1), Value::Null),
                    _ => ("cas", json!([pick(seen), i as i64 + 1]), Value::Null),
                };
                let status = match status {
                    Status::Mismatch if f != "cas" => Status::Ok,
                    s => s,
                };
                (p, f.to_string(), None, input, output, status, gap, dur)
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn unique_value_registers_with_many_info_agree(s in unique_specs(3, true)) {
        agree(ModelKind::CasRegister, false, &s)?;
    }

    /// Read/write registers with unique values: decided by the zones, without a search.
    #[test]
    fn unique_value_read_write_registers_agree(s in unique_specs(4, false)) {
        agree(ModelKind::Register, false, &s)?;
    }

    #[test]
    fn register_agrees(p in 2..=4usize, s in specs(ModelKind::Register, false, 4)) {
        let s: Vec<Spec> = s.into_iter().map(|mut x| { x.0 %= p; x }).collect();
        agree(ModelKind::Register, false, &s)?;
    }

    #[test]
    fn cas_register_agrees(p in 2..=4usize, s in specs(ModelKind::CasRegister, false, 4)) {
        let s: Vec<Spec> = s.into_iter().map(|mut x| { x.0 %= p; x }).collect();
        agree(ModelKind::CasRegister, false, &s)?;
    }

    #[test]
    fn kv_agrees(p in 2..=4usize, s in specs(ModelKind::Kv, false, 4)) {
        let s: Vec<Spec> = s.into_iter().map(|mut x| { x.0 %= p; x }).collect();
        agree(ModelKind::Kv, false, &s)?;
    }

    #[test]
    fn kv_append_agrees(p in 2..=4usize, s in specs(ModelKind::Kv, true, 4)) {
        let s: Vec<Spec> = s.into_iter().map(|mut x| { x.0 %= p; x }).collect();
        agree(ModelKind::Kv, true, &s)?;
    }

    #[test]
    fn set_agrees(p in 2..=4usize, s in specs(ModelKind::Set, false, 4)) {
        let s: Vec<Spec> = s.into_iter().map(|mut x| { x.0 %= p; x }).collect();
        agree(ModelKind::Set, false, &s)?;
    }

    #[test]
    fn queue_agrees(p in 2..=4usize, s in specs(ModelKind::Queue, false, 4)) {
        let s: Vec<Spec> = s.into_iter().map(|mut x| { x.0 %= p; x }).collect();
        agree(ModelKind::Queue, false, &s)?;
    }
}

/// The generators must produce both verdicts, or the agreement above proves little.
#[test]
fn generators_produce_both_verdicts() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    for (model, text) in [
        (ModelKind::Register, false),
        (ModelKind::CasRegister, false),
        (ModelKind::Kv, true),
        (ModelKind::Set, false),
        (ModelKind::Queue, false),
    ] {
        let mut runner = TestRunner::deterministic();
        let (mut pass, mut fail) = (0, 0);
        for _ in 0..300 {
            let s = specs(model, text, 3)
                .new_tree(&mut runner)
                .unwrap()
                .current();
            match brute_force(&build(&s), model, Semantics::Strict) {
                Validity::Pass => pass += 1,
                _ => fail += 1,
            }
        }
        assert!(
            pass > 20 && fail > 20,
            "{model:?}: {pass} pass, {fail} fail"
        );
    }
}

#[test]
fn unique_value_histories_exercise_both_reductions_and_both_verdicts() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut pass, mut fail, mut dropped, mut bounded) = (0, 0, 0, 0);
    for _ in 0..300 {
        let s = unique_specs(3, true)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let options = Options {
            model: Some(ModelKind::CasRegister),
            ..Options::default()
        };
        let report = faultline_checker::linearizability::check(&build(&s), &options).unwrap();
        match report.validity {
            Validity::Pass => pass += 1,
            _ => fail += 1,
        }
        dropped += (report.info_dropped > 0) as usize;
        bounded += (report.info_bounded > 0) as usize;
    }
    assert!(
        pass > 20 && fail > 20 && dropped > 20 && bounded > 20,
        "{pass} pass, {fail} fail; {dropped} with a dropped info, {bounded} with a bounded one"
    );
}
