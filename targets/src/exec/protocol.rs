//! The exec client protocol's messages (JSON lines on the client program's stdin and
//! stdout), without I/O: the hello a program starts with, the operation faultline sends, and
//! the answer it reads back.
//!
//! ```text
//! client → {"type":"hello","ops":["read","write","cas"]}
//! faultline → {"id":7,"f":"read","key":"k1","value":null,"node":"n1"}
//! client → {"id":7,"type":"ok","value":3}
//! faultline → {"id":8,"f":"cas","key":"k1","value":[3,4],"node":"n2"}
//! client → {"id":8,"type":"fail","error":"mismatch"}
//! faultline → {"id":9,"f":"txn","value":[["r",1,null],["append",1,5]],"node":"n1"}
//! client → {"id":9,"type":"ok","value":[["r",1,[2,3]],["append",1,5]]}
//! ```

use serde::Serialize;
use serde_json::{Map, Value};

use crate::client::{Completion, Op};

/// The operations a client program can name in its hello.
pub const OPS: [&str; 4] = ["read", "write", "cas", "txn"];

/// Parses the hello line: the operations the program can do.
pub fn parse_hello(line: &str) -> Result<Vec<String>, String> {
    let shown = shorten(line);
    let hello: Value = serde_json::from_str(line)
        .map_err(|e| format!("the first line `{shown}` is not JSON ({e}); expected {HELLO}"))?;
    if hello["type"] != "hello" {
        return Err(format!(
            "the first line `{shown}` is not a hello; expected {HELLO}"
        ));
    }
    let ops = hello["ops"]
        .as_array()
        .ok_or_else(|| format!("the hello `{shown}` has no \"ops\" list; expected {HELLO}"))?;
    let mut names = Vec::with_capacity(ops.len());
    for op in ops {
        match op.as_str() {
            Some(name) if OPS.contains(&name) => names.push(name.to_string()),
            _ => {
                return Err(format!(
                    "the hello `{shown}` names {op}; the operations are {}",
                    OPS.join(", ")
                ));
            }
        }
    }
    Ok(names)
}

const HELLO: &str = r#"{"type":"hello","ops":["read","write",...]}"#;

/// The name of the operation `op` asks the program for.
pub fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Read { .. } => "read",
        Op::Write { .. } => "write",
        Op::Cas { .. } => "cas",
        Op::Txn { .. } => "txn",
        Op::Add { .. } => "add",
        Op::ReadAll => "read",
        Op::Echo { .. } => "echo",
        Op::Generate => "generate",
    }
}

/// One operation as a line for the program (without the newline).
pub fn request(id: u64, op: &Op, node: Option<&str>) -> String {
    #[derive(Serialize)]
    struct Request<'a> {
        id: u64,
        f: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        key: Option<&'a str>,
        value: Value,
        #[serde(skip_serializing_if = "Option::is_none")]
        node: Option<&'a str>,
    }
    let (key, value) = match op {
        Op::Read { key } => (Some(key.as_str()), Value::Null),
        Op::Write { key, value } => (Some(key.as_str()), value.clone()),
        Op::Cas { key, expect, value } => (
            Some(key.as_str()),
            Value::Array(vec![expect.clone(), value.clone()]),
        ),
        Op::Txn { ops } => (None, Value::Array(ops.clone())),
        Op::Add { value } | Op::Echo { value } => (None, value.clone()),
        Op::ReadAll | Op::Generate => (None, Value::Null),
    };
    let request = Request {
        id,
        f: op_name(op),
        key,
        value,
        node,
    };
    serde_json::to_string(&request).expect("a request serializes")
}

/// What a line from the program says about operation `id`.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// The operation's completion.
    Done(Completion),
    /// Not a well-formed answer to `id`: why, naming the line.
    Malformed(String),
}

/// Reads the program's answer to operation `id` (`op`).
pub fn parse_answer(line: &str, id: u64, op: &Op) -> Answer {
    let shown = shorten(line);
    let bad = |why: &str| Answer::Malformed(format!("the line `{shown}` {why}"));
    let Ok(Value::Object(mut answer)) = serde_json::from_str::<Value>(line) else {
        return bad("is not a JSON object");
    };
    match answer.get("id").and_then(Value::as_u64) {
        Some(got) if got == id => {}
        Some(got) => return bad(&format!("answers operation {got}; {id} was asked")),
        None => return bad("has no numeric \"id\""),
    }
    let error = || {
        answer
            .get("error")
            .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_string))
            .unwrap_or_else(|| "the client gave no reason".into())
    };
    match answer.get("type").and_then(Value::as_str) {
        Some("ok") => {}
        Some("fail") => return Answer::Done(Completion::Fail { error: error() }),
        Some("info") => return Answer::Done(Completion::Info { error: error() }),
        _ => return bad("has no \"type\" of ok, fail or info"),
    }
    let value = answer.remove("value").unwrap_or(Value::Null);
    if let Op::Txn { ops } = op {
        let fits = value.as_array().is_some_and(|done| done.len() == ops.len());
        if !fits {
            return bad(&format!(
                "completes a transaction of {} micro-operations without a list of as many",
                ops.len()
            ));
        }
    }
    let mut meta = match answer.remove("meta") {
        Some(Value::Object(meta)) => meta,
        Some(other) => Map::from_iter([("meta".to_string(), other)]),
        None => Map::new(),
    };
    if let Some(node) = answer.remove("node") {
        meta.insert("node".into(), node);
    }
    Answer::Done(Completion::Ok {
        value,
        meta: (!meta.is_empty()).then_some(Value::Object(meta)),
    })
}

/// A line as an error message shows it: at most 200 characters.
pub fn shorten(line: &str) -> String {
    let line = line.trim_end();
    match line.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read() -> Op {
        Op::Read { key: "k1".into() }
    }

    #[test]
    fn requests_have_a_fixed_shape() {
        assert_eq!(
            request(7, &read(), Some("n1")),
            r#"{"id":7,"f":"read","key":"k1","value":null,"node":"n1"}"#
        );
        let cas = Op::Cas {
            key: "k".into(),
            expect: json!(3),
            value: json!(4),
        };
        assert_eq!(
            request(8, &cas, None),
            r#"{"id":8,"f":"cas","key":"k","value":[3,4]}"#
        );
        let txn = Op::Txn {
            ops: vec![json!(["r", 1, null])],
        };
        assert_eq!(
            request(9, &txn, None),
            r#"{"id":9,"f":"txn","value":[["r",1,null]]}"#
        );
    }

    #[test]
    fn hellos_are_checked() {
        assert_eq!(
            parse_hello(r#"{"type":"hello","ops":["read","write"]}"#),
            Ok(vec!["read".to_string(), "write".to_string()])
        );
        assert!(parse_hello("hello").unwrap_err().contains("not JSON"));
        assert!(
            parse_hello(r#"{"id":1,"type":"ok"}"#)
                .unwrap_err()
                .contains("not a hello")
        );
        assert!(
            parse_hello(r#"{"type":"hello","ops":["read","scan"]}"#)
                .unwrap_err()
                .contains("\"scan\"")
        );
    }

    #[test]
    fn answers_map_to_completions() {
        assert_eq!(
            parse_answer(r#"{"id":7,"type":"ok","value":3,"node":"n2"}"#, 7, &read()),
            Answer::Done(Completion::Ok {
                value: json!(3),
                meta: Some(json!({"node": "n2"}))
            })
        );
        assert_eq!(
            parse_answer(r#"{"id":7,"type":"fail","error":"mismatch"}"#, 7, &read()),
            Answer::Done(Completion::Fail {
                error: "mismatch".into()
            })
        );
        assert_eq!(
            parse_answer(r#"{"id":7,"type":"info"}"#, 7, &read()),
            Answer::Done(Completion::Info {
                error: "the client gave no reason".into()
            })
        );
        for (line, why) in [
            ("3", "not a JSON object"),
            (
                r#"{"id":6,"type":"ok"}"#,
                "answers operation 6; 7 was asked",
            ),
            (r#"{"type":"ok"}"#, "no numeric \"id\""),
            (r#"{"id":7,"type":"done"}"#, "no \"type\""),
        ] {
            match parse_answer(line, 7, &read()) {
                Answer::Malformed(text) => assert!(text.contains(why), "{text}"),
                other => panic!("{line}: {other:?}"),
            }
        }
        let txn = Op::Txn {
            ops: vec![json!(["r", 1, null]), json!(["append", 1, 2])],
        };
        assert!(matches!(
            parse_answer(r#"{"id":1,"type":"ok","value":[["r",1,[]]]}"#, 1, &txn),
            Answer::Malformed(_)
        ));
    }

    #[test]
    fn long_lines_are_shortened() {
        let long = "x".repeat(1000);
        assert_eq!(shorten(&long).chars().count(), 201);
    }
}
