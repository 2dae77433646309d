//! Maelstrom's messages, without I/O (maelstrom's `doc/protocol.md`): one JSON object per
//! line, `{"src":"n1","dest":"n2","body":{"type":…,"msg_id":…,"in_reply_to":…,…}}`, and what an
//! error body means for the operation that got it.
//!
//! Nodes are `n1`, `n2`, …; faultline's clients are `c1`, `c2`, … (`c0` is faultline itself,
//! sending `init` and `topology`); services are named `lin-kv`, `seq-kv`, `lww-kv`, `lin-tso`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::client::Completion;

/// The body of a message: a JSON object with at least a string `type`.
pub type Body = Map<String, Value>;

/// One message on the network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who sent it.
    pub src: String,
    /// Who it is for.
    pub dest: String,
    /// What it says.
    pub body: Body,
}

/// Error codes after which the operation certainly did not happen (the protocol's table):
/// node-not-found, not-supported, temporarily-unavailable, malformed-request, abort,
/// key-does-not-exist, key-already-exists, precondition-failed, txn-conflict. Every other
/// code — timeout (0), crash (13), and a node's own codes (1000 and up) — is indefinite.
pub const DEFINITE: [u64; 9] = [1, 10, 11, 12, 14, 20, 21, 22, 30];

/// key-does-not-exist.
pub const KEY_MISSING: u64 = 20;
/// precondition-failed (a cas whose `from` did not match).
pub const PRECONDITION_FAILED: u64 = 22;

impl Message {
    /// Parses one line a node printed; the error says what is wrong with it.
    pub fn parse(line: &str) -> Result<Message, String> {
        let message: Message = serde_json::from_str(line)
            .map_err(|e| format!("`{}` is not a Maelstrom message ({e})", shorten(line)))?;
        if !message.body.get("type").is_some_and(Value::is_string) {
            return Err(format!(
                "`{}` has a body without a string \"type\"",
                shorten(line)
            ));
        }
        Ok(message)
    }

    /// The message as one line, without the newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a message is JSON")
    }

    /// Its body's `type`.
    pub fn kind(&self) -> &str {
        self.body.get("type").and_then(Value::as_str).unwrap_or("")
    }

    /// Its body's `in_reply_to`, if it is a reply.
    pub fn in_reply_to(&self) -> Option<u64> {
        self.body.get("in_reply_to").and_then(Value::as_u64)
    }
}

/// A request body of `kind` with `msg_id` and the given fields.
pub fn request(
    kind: &str,
    msg_id: u64,
    fields: impl IntoIterator<Item = (&'static str, Value)>,
) -> Body {
    let mut body = Body::new();
    body.insert("type".into(), Value::from(kind));
    body.insert("msg_id".into(), Value::from(msg_id));
    for (k, v) in fields {
        body.insert(k.into(), v);
    }
    body
}

/// An error body with `code` and `text`, in reply to `msg_id`.
pub fn error(code: u64, text: &str, in_reply_to: Option<u64>) -> Body {
    let mut body = Body::new();
    body.insert("type".into(), Value::from("error"));
    body.insert("code".into(), Value::from(code));
    body.insert("text".into(), Value::from(text));
    if let Some(id) = in_reply_to {
        body.insert("in_reply_to".into(), Value::from(id));
    }
    body
}

/// The error code of an error body (`None` if it is not one).
pub fn error_code(body: &Body) -> Option<u64> {
    (body.get("type").and_then(Value::as_str) == Some("error"))
        .then(|| body.get("code").and_then(Value::as_u64).unwrap_or(13))
}

/// How an operation that got error body `body` ended: `fail` for a definite code, `info`
/// otherwise; a precondition failure is the history's cas `mismatch`.
pub fn error_completion(body: &Body) -> Completion {
    let code = error_code(body).unwrap_or(13);
    let text = body.get("text").and_then(Value::as_str).unwrap_or("");
    let error = if code == PRECONDITION_FAILED {
        "mismatch".to_string()
    } else {
        format!(
            "error {code} ({}){}",
            code_name(code),
            if text.is_empty() {
                String::new()
            } else {
                format!(": {text}")
            }
        )
    };
    if DEFINITE.contains(&code) {
        Completion::Fail { error }
    } else {
        Completion::Info { error }
    }
}

/// The protocol's name of an error code.
pub fn code_name(code: u64) -> &'static str {
    match code {
        0 => "timeout",
        1 => "node-not-found",
        10 => "not-supported",
        11 => "temporarily-unavailable",
        12 => "malformed-request",
        13 => "crash",
        14 => "abort",
        20 => "key-does-not-exist",
        21 => "key-already-exists",
        22 => "precondition-failed",
        30 => "txn-conflict",
        c if c >= 1000 => "the node's own",
        _ => "unknown",
    }
}

/// At most 200 characters of `line`, for error messages.
pub fn shorten(line: &str) -> String {
    match line.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_line_parses_and_prints_back() {
        let line =
            r#"{"src":"n1","dest":"c2","body":{"type":"read_ok","in_reply_to":4,"value":3}}"#;
        let m = Message::parse(line).unwrap();
        assert_eq!((m.kind(), m.in_reply_to()), ("read_ok", Some(4)));
        assert_eq!(Message::parse(&m.to_line()).unwrap(), m);
    }

    #[test]
    fn garbage_and_bodies_without_a_type_are_refused() {
        assert!(
            Message::parse("hello")
                .unwrap_err()
                .contains("not a Maelstrom message")
        );
        let untyped = r#"{"src":"n1","dest":"c2","body":{"value":3}}"#;
        assert!(Message::parse(untyped).unwrap_err().contains("\"type\""));
    }

    #[test]
    fn definite_codes_fail_and_the_rest_are_unknown() {
        let body = |code: u64| error(code, "why", Some(1));
        for code in DEFINITE {
            assert!(
                matches!(error_completion(&body(code)), Completion::Fail { .. }),
                "{code}"
            );
        }
        for code in [0, 13, 1000, 4242] {
            assert!(
                matches!(error_completion(&body(code)), Completion::Info { .. }),
                "{code}"
            );
        }
        assert_eq!(
            error_completion(&body(22)),
            Completion::Fail {
                error: "mismatch".into()
            }
        );
        let Completion::Info { error } = error_completion(&body(0)) else {
            unreachable!()
        };
        assert_eq!(error, "error 0 (timeout): why");
        let no_code = json!({"type": "error"});
        assert!(matches!(
            error_completion(no_code.as_object().unwrap()),
            Completion::Info { .. }
        ));
    }
}
