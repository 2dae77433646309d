//! The text register: a `kv` key that sees `append`. Its state is the string itself, because
//! appends build strings no operation names; an absent key reads as `""`.

use std::sync::Arc;

use serde_json::Value;

use super::{Model, ModelError, ModelKind, Outcome, Semantics, cas_input, unknown_operation};
use crate::history::Operation;

/// A text state with a polynomial hash of its bytes kept up to date as it grows, so hashing a
/// state is O(1) however long appends make it. Equal texts have equal hashes.
#[derive(Clone, Debug)]
pub(crate) struct Text {
    text: Arc<str>,
    hash: u64,
}

/// The base of the polynomial hash (odd, so powers never vanish mod 2^64).
const BASE: u64 = 0x100_0000_01b3;

impl Text {
    fn new(text: Arc<str>) -> Self {
        let hash = text
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(BASE).wrapping_add(u64::from(b)));
        Text { text, hash }
    }

    /// This text followed by `suffix`; `shift` is `BASE` to the power of the suffix's length.
    fn append(&self, suffix: &Text, shift: u64) -> Text {
        let mut text = String::with_capacity(self.text.len() + suffix.text.len());
        text.push_str(&self.text);
        text.push_str(&suffix.text);
        Text {
            text: Arc::from(text),
            hash: self.hash.wrapping_mul(shift).wrapping_add(suffix.hash),
        }
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && (Arc::ptr_eq(&self.text, &other.text) || self.text == other.text)
    }
}

impl Eq for Text {}

impl std::hash::Hash for Text {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u64(self.hash);
    }
}

/// A string register with `append`.
#[derive(Debug)]
pub(crate) struct TextRegister {
    initial: Text,
}

/// A compiled text operation.
#[derive(Debug, Clone)]
pub(crate) enum TextOp {
    /// A read that returned this text; `None` matches any (Knossos' nil).
    Read(Option<Text>),
    Write(Text),
    /// Append `suffix`; `shift` is `BASE` to the power of its length.
    Append {
        suffix: Text,
        shift: u64,
    },
    Cas {
        expect: Text,
        new: Text,
        outcome: Outcome,
    },
}

fn text(op: &Operation, value: &Value) -> Result<Text, ModelError> {
    match value {
        Value::Null => Ok(Text::new(Arc::from(""))),
        Value::String(s) => Ok(Text::new(Arc::from(s.as_str()))),
        other => Err(ModelError::new(
            op,
            format!("a key that sees `append` holds strings, but this operation has {other}"),
        )),
    }
}

impl TextRegister {
    /// Compiles one key's operations.
    pub(crate) fn build(
        ops: &[&Operation],
        initial: &Value,
        semantics: Semantics,
    ) -> Result<(Self, Vec<TextOp>), ModelError> {
        let initial = match initial {
            Value::Null => Arc::from(""),
            Value::String(s) => Arc::from(s.as_str()),
            other => {
                return Err(ModelError {
                    line: ops.first().map_or(0, |op| op.line),
                    message: format!(
                        "keys that see `append` hold strings, but --initial is {other}"
                    ),
                });
            }
        };
        let compiled = ops
            .iter()
            .map(|op| {
                Ok(match op.f.as_str() {
                    "read" | "get" => {
                        if semantics == Semantics::Knossos && op.output.is_null() {
                            TextOp::Read(None)
                        } else {
                            TextOp::Read(Some(text(op, &op.output)?))
                        }
                    }
                    "write" | "put" => TextOp::Write(text(op, &op.input)?),
                    "append" => {
                        let suffix = text(op, &op.input)?;
                        let shift = (0..suffix.text.len()).fold(1u64, |p, _| p.wrapping_mul(BASE));
                        TextOp::Append { suffix, shift }
                    }
                    "cas" => {
                        let (expect, new) = cas_input(op)?;
                        TextOp::Cas {
                            expect: text(op, expect)?,
                            new: text(op, new)?,
                            outcome: Outcome::of(op),
                        }
                    }
                    _ => return Err(unknown_operation(ModelKind::Kv, op)),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((
            TextRegister {
                initial: Text::new(initial),
            },
            compiled,
        ))
    }
}

impl Model for TextRegister {
    type Op = TextOp;
    type State = Text;

    fn init(&self) -> Text {
        self.initial.clone()
    }

    fn step(&self, state: &Text, op: &TextOp) -> Option<Text> {
        match op {
            TextOp::Read(None) => Some(state.clone()),
            TextOp::Read(Some(v)) => (v == state).then(|| state.clone()),
            TextOp::Write(v) => Some(v.clone()),
            TextOp::Append { suffix, shift } => Some(state.append(suffix, *shift)),
            TextOp::Cas {
                expect,
                new,
                outcome,
            } => match outcome {
                Outcome::Ok => (state == expect).then(|| new.clone()),
                Outcome::Mismatch => (state != expect).then(|| state.clone()),
                Outcome::Unknown if state == expect => Some(new.clone()),
                Outcome::Unknown => Some(state.clone()),
            },
        }
    }

    fn observes_now(&self, state: &Text, op: &TextOp) -> bool {
        match op {
            TextOp::Read(None) => true,
            TextOp::Read(Some(v)) => v == state,
            TextOp::Cas {
                expect,
                outcome: Outcome::Mismatch,
                ..
            } => expect != state,
            _ => false,
        }
    }

    fn only_observes(&self, op: &TextOp) -> bool {
        matches!(
            op,
            TextOp::Read(_)
                | TextOp::Cas {
                    outcome: Outcome::Mismatch,
                    ..
                }
        )
    }

    fn describe(&self, state: &Text) -> String {
        super::shorten(Value::String(state.text.to_string()).to_string(), 80)
    }

    fn heap_bytes(&self, state: &Text) -> usize {
        state.text.len() + 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Status;
    use serde_json::json;

    fn op(f: &str, input: Value, output: Value) -> Operation {
        Operation {
            id: 0,
            process: 0,
            f: f.into(),
            key: Some("k".into()),
            input,
            output,
            call: 0,
            ret: Some(1),
            status: Status::Ok,
            line: 3,
        }
    }

    #[test]
    fn appends_concatenate_and_absent_reads_empty() {
        let ops = [
            op("get", json!(null), json!("")),
            op("append", json!("x 1 y"), json!(null)),
            op("append", json!("x 2 y"), json!(null)),
            op("get", json!(null), json!("x 1 yx 2 y")),
            op("put", json!("z"), json!(null)),
        ];
        let refs: Vec<&Operation> = ops.iter().collect();
        let (m, c) = TextRegister::build(&refs, &json!(null), Semantics::Strict).unwrap();
        let s0 = m.init();
        assert!(m.step(&s0, &c[0]).is_some());
        let s1 = m.step(&s0, &c[1]).unwrap();
        assert!(m.step(&s1, &c[0]).is_none());
        let s2 = m.step(&s1, &c[2]).unwrap();
        assert!(m.step(&s2, &c[3]).is_some());
        assert_eq!(&*m.step(&s2, &c[4]).unwrap().text, "z");
        assert_eq!(
            s2,
            Text::new(Arc::from("x 1 yx 2 y")),
            "appends keep the hash of the whole text"
        );
        assert_eq!(m.describe(&s2), "\"x 1 yx 2 y\"");
    }

    #[test]
    fn non_text_values_are_errors() {
        let ops = [op("append", json!(3), json!(null))];
        let refs: Vec<&Operation> = ops.iter().collect();
        let err = TextRegister::build(&refs, &json!(null), Semantics::Strict).unwrap_err();
        assert_eq!(err.line, 3);
    }
}
