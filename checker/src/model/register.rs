//! The integer register: `register`, `cas-register`, and `kv` keys without appends.

use serde_json::Value;

use super::{
    Interner, Model, ModelError, ModelKind, Outcome, Semantics, cas_input, unknown_operation,
};
use crate::history::Operation;

/// A register over interned values, with `cas` where the model kind allows it.
#[derive(Debug)]
pub(crate) struct Register {
    values: Interner,
    initial: u32,
}

/// A compiled register operation.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RegisterOp {
    /// A read that returned this value; `None` matches any value (Knossos' nil).
    Read(Option<u32>),
    /// A write; whether acknowledged or not, it sets the value when it takes effect.
    Write(u32),
    /// Compare-and-set.
    Cas {
        expect: u32,
        new: u32,
        outcome: Outcome,
    },
}

/// The value of every write no operation can tell apart: one no read returns and no cas
/// expects (see [`Register::build`]).
pub(crate) const UNOBSERVED: u32 = u32::MAX;

impl Register {
    /// Compiles one object's operations for `kind`; an operation `i` with `blind[i]` (its
    /// value nothing observes: no read returns it, no cas expects it, not even one that
    /// mismatched) writes [`UNOBSERVED`]: states that differ only in such a value cannot be
    /// told apart by any operation, so the search may treat them as one.
    pub(crate) fn build(
        kind: ModelKind,
        ops: &[&Operation],
        initial: &Value,
        semantics: Semantics,
        blind: &[bool],
    ) -> Result<(Self, Vec<RegisterOp>), ModelError> {
        let mut values = Interner::new();
        let initial = values.intern(initial);
        let compiled = ops
            .iter()
            .enumerate()
            .map(|(i, op)| {
                let blind = blind.get(i).copied().unwrap_or(false);
                let mut written = |v: &Value| {
                    if blind { UNOBSERVED } else { values.intern(v) }
                };
                Ok(match op.f.as_str() {
                    "read" | "get" if kind.operations().contains(&op.f.as_str()) => {
                        if semantics == Semantics::Knossos && op.output.is_null() {
                            RegisterOp::Read(None)
                        } else {
                            RegisterOp::Read(Some(values.intern(&op.output)))
                        }
                    }
                    "write" | "put" if kind.operations().contains(&op.f.as_str()) => {
                        RegisterOp::Write(written(&op.input))
                    }
                    "cas" if kind.operations().contains(&"cas") => {
                        let (expect, new) = cas_input(op)?;
                        let new = written(new);
                        RegisterOp::Cas {
                            expect: values.intern(expect),
                            new,
                            outcome: Outcome::of(op),
                        }
                    }
                    _ => return Err(unknown_operation(kind, op)),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((Register { values, initial }, compiled))
    }
}

impl Model for Register {
    type Op = RegisterOp;
    type State = u32;

    fn init(&self) -> u32 {
        self.initial
    }

    fn step(&self, &state: &u32, op: &RegisterOp) -> Option<u32> {
        match *op {
            RegisterOp::Read(None) => Some(state),
            RegisterOp::Read(Some(v)) => (v == state).then_some(state),
            RegisterOp::Write(v) => Some(v),
            RegisterOp::Cas {
                expect,
                new,
                outcome,
            } => match outcome {
                Outcome::Ok => (state == expect).then_some(new),
                Outcome::Mismatch => (state != expect).then_some(state),
                Outcome::Unknown => Some(if state == expect { new } else { state }),
            },
        }
    }

    fn only_observes(&self, op: &RegisterOp) -> bool {
        matches!(
            op,
            RegisterOp::Read(_)
                | RegisterOp::Cas {
                    outcome: Outcome::Mismatch,
                    ..
                }
        )
    }

    fn describe(&self, &state: &u32) -> String {
        if state == UNOBSERVED {
            return "(a value no operation observed)".into();
        }
        super::shorten(self.values.value(state).to_string(), 80)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Status;
    use serde_json::json;

    fn op(f: &str, input: Value, output: Value, status: Status) -> Operation {
        let mut op = Operation::test(f, input, output, status, 0, 1);
        op.ret = Some(1);
        op.line = 7;
        op
    }

    #[test]
    fn steps_follow_the_register_rules() {
        let ops = [
            op("read", json!(null), json!(null), Status::Ok),
            op("write", json!(1), json!(null), Status::Ok),
            op("cas", json!([1, 2]), json!(null), Status::Ok),
            op("cas", json!([1, 2]), json!(null), Status::Mismatch),
            op("cas", json!([1, 2]), json!(null), Status::Info),
            op("read", json!(null), json!(2), Status::Ok),
        ];
        let refs: Vec<&Operation> = ops.iter().collect();
        let (m, c) = Register::build(
            ModelKind::CasRegister,
            &refs,
            &json!(null),
            Semantics::Strict,
            &[],
        )
        .unwrap();
        let null = m.init();
        assert_eq!(m.step(&null, &c[0]), Some(null));
        let one = m.step(&null, &c[1]).unwrap();
        assert_eq!(m.step(&one, &c[0]), None, "a read of null sees only null");
        let two = m.step(&one, &c[2]).unwrap();
        assert_eq!(
            m.step(&null, &c[2]),
            None,
            "cas ok needs the expected value"
        );
        assert_eq!(
            m.step(&one, &c[3]),
            None,
            "a mismatch cannot see the expected value"
        );
        assert_eq!(m.step(&two, &c[3]), Some(two));
        assert_eq!(m.step(&one, &c[4]), Some(two));
        assert_eq!(m.step(&null, &c[4]), Some(null));
        assert_eq!(m.step(&two, &c[5]), Some(two));
        assert_eq!(m.describe(&two), "2");
    }

    #[test]
    fn knossos_nil_reads_match_anything() {
        let ops = [
            op("write", json!(1), json!(null), Status::Ok),
            op("read", json!(null), json!(null), Status::Ok),
        ];
        let refs: Vec<&Operation> = ops.iter().collect();
        let (m, c) = Register::build(
            ModelKind::Register,
            &refs,
            &json!(null),
            Semantics::Knossos,
            &[],
        )
        .unwrap();
        let one = m.step(&m.init(), &c[0]).unwrap();
        assert_eq!(m.step(&one, &c[1]), Some(one));
    }

    #[test]
    fn unknown_operations_are_errors_naming_the_line() {
        let ops = [op("cas", json!([1, 2]), json!(null), Status::Ok)];
        let refs: Vec<&Operation> = ops.iter().collect();
        let err = Register::build(
            ModelKind::Register,
            &refs,
            &json!(null),
            Semantics::Strict,
            &[],
        )
        .unwrap_err();
        assert_eq!(err.line, 7);
        assert!(
            err.message.contains("--model cas-register"),
            "{}",
            err.message
        );
        let ops = [op("cas", json!(3), json!(null), Status::Ok)];
        let refs: Vec<&Operation> = ops.iter().collect();
        let err = Register::build(ModelKind::Kv, &refs, &json!(null), Semantics::Strict, &[])
            .unwrap_err();
        assert!(err.message.contains("[expected, new]"), "{}", err.message);
    }
}
