//! A reader for the subset of EDN that Jepsen histories use: maps, vectors, lists, sets,
//! keywords, strings, integers, floats, nil, booleans, symbols, `;` comments, `#_` discards and
//! tagged values (read as the value they tag).
//!
//! It reads one form at a time and remembers the line each form started on, so a history can be
//! a single vector of op maps (`history.edn`) or one map per line, and errors can name lines.

use serde_json::Value;

/// An EDN value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Edn {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// `:name`, without the colon.
    Keyword(String),
    Symbol(String),
    /// Vectors, lists and sets.
    Seq(Vec<Edn>),
    Map(Vec<(Edn, Edn)>),
}

impl Edn {
    /// Looks up a keyword key in a map.
    pub(crate) fn get(&self, key: &str) -> Option<&Edn> {
        match self {
            Edn::Map(entries) => entries.iter().find_map(|(k, v)| match k {
                Edn::Keyword(name) if name == key => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    /// The value as JSON: keywords and symbols become strings, maps objects with text keys.
    pub(crate) fn to_json(&self) -> Value {
        match self {
            Edn::Nil => Value::Null,
            Edn::Bool(b) => Value::Bool(*b),
            Edn::Int(i) => Value::from(*i),
            Edn::Float(f) => Value::from(*f),
            Edn::Str(s) | Edn::Keyword(s) | Edn::Symbol(s) => Value::String(s.clone()),
            Edn::Seq(items) => Value::Array(items.iter().map(Edn::to_json).collect()),
            Edn::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.as_text(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// Text of a scalar, as used for names and keys.
    pub(crate) fn as_text(&self) -> String {
        match self {
            Edn::Str(s) | Edn::Keyword(s) | Edn::Symbol(s) => s.clone(),
            Edn::Int(i) => i.to_string(),
            other => other.to_json().to_string(),
        }
    }
}

/// A reading error.
#[derive(Debug, PartialEq)]
pub(crate) struct EdnError {
    /// The 1-based line where the problem was found.
    pub(crate) line: usize,
    pub(crate) message: String,
    /// The input ended in the middle of a form.
    pub(crate) at_eof: bool,
}

/// Reads forms one after another from a text.
pub(crate) struct EdnReader<'a> {
    text: &'a [u8],
    pos: usize,
    line: usize,
}

impl<'a> EdnReader<'a> {
    /// A reader positioned at the start of `text`, whose first line is `first_line`.
    pub(crate) fn new(text: &'a str, first_line: usize) -> Self {
        EdnReader {
            text: text.as_bytes(),
            pos: 0,
            line: first_line,
        }
    }

    /// The current line.
    pub(crate) fn line(&self) -> usize {
        self.line
    }

    /// Skips whitespace, commas and comments; returns the next byte without consuming it.
    pub(crate) fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.text.get(self.pos) {
            match b {
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                b' ' | b'\t' | b'\r' | b',' => self.pos += 1,
                b';' => {
                    while self.text.get(self.pos).is_some_and(|&c| c != b'\n') {
                        self.pos += 1;
                    }
                }
                _ => return Some(b),
            }
        }
        None
    }

    /// Consumes one byte (after [`peek`](Self::peek) returned it).
    pub(crate) fn bump(&mut self) {
        self.pos += 1;
    }

    fn error(&self, message: impl Into<String>) -> EdnError {
        EdnError {
            line: self.line,
            message: message.into(),
            at_eof: false,
        }
    }

    fn eof(&self, expected: &str) -> EdnError {
        EdnError {
            line: self.line,
            message: format!("the input ends where {expected} was expected"),
            at_eof: true,
        }
    }

    /// Reads the next form, or `None` at the end of the input.
    pub(crate) fn next_form(&mut self) -> Option<Result<Edn, EdnError>> {
        self.peek()?;
        Some(self.form())
    }

    fn form(&mut self) -> Result<Edn, EdnError> {
        let Some(b) = self.peek() else {
            return Err(self.eof("a value"));
        };
        match b {
            b'{' => {
                self.bump();
                let items = self.seq_until(b'}', "`}` closing a map")?;
                if items.len() % 2 != 0 {
                    return Err(self.error("a map has a key without a value"));
                }
                let mut entries = Vec::with_capacity(items.len() / 2);
                let mut items = items.into_iter();
                while let (Some(k), Some(v)) = (items.next(), items.next()) {
                    entries.push((k, v));
                }
                Ok(Edn::Map(entries))
            }
            b'[' => {
                self.bump();
                Ok(Edn::Seq(self.seq_until(b']', "`]` closing a vector")?))
            }
            b'(' => {
                self.bump();
                Ok(Edn::Seq(self.seq_until(b')', "`)` closing a list")?))
            }
            b'"' => {
                self.bump();
                self.string()
            }
            b'#' => {
                self.bump();
                match self.text.get(self.pos) {
                    Some(b'{') => {
                        self.bump();
                        Ok(Edn::Seq(self.seq_until(b'}', "`}` closing a set")?))
                    }
                    Some(b'_') => {
                        self.bump();
                        self.form()?;
                        self.form()
                    }
                    Some(_) => {
                        // A tagged element such as #inst "..." or #jepsen.history.Op{...}:
                        // read the tag, then the value it tags.
                        self.atom();
                        self.form()
                    }
                    None => Err(self.eof("a tag or set after `#`")),
                }
            }
            b'}' | b']' | b')' => {
                Err(self.error(format!("unexpected `{}`: it closes nothing", char::from(b))))
            }
            b'\\' => {
                self.bump();
                let text = self.atom();
                Ok(Edn::Str(text.to_string()))
            }
            b':' => {
                self.bump();
                let name = self.atom();
                if name.is_empty() {
                    return Err(self.error("a keyword needs a name after `:`"));
                }
                Ok(Edn::Keyword(name.to_string()))
            }
            _ => {
                let token = self.atom();
                if token.is_empty() {
                    return Err(self.error(format!("unexpected character {:?}", char::from(b))));
                }
                Ok(parse_atom(token).unwrap_or_else(|| Edn::Symbol(token.to_string())))
            }
        }
    }

    fn seq_until(&mut self, close: u8, expected: &str) -> Result<Vec<Edn>, EdnError> {
        let mut items = Vec::new();
        loop {
            match self.peek() {
                None => return Err(self.eof(expected)),
                Some(b) if b == close => {
                    self.bump();
                    return Ok(items);
                }
                Some(_) => items.push(self.form()?),
            }
        }
    }

    /// A token up to the next delimiter.
    fn atom(&mut self) -> &'a str {
        let start = self.pos;
        while let Some(&b) = self.text.get(self.pos) {
            if b.is_ascii_whitespace() || b"{}[]()\",;".contains(&b) {
                break;
            }
            self.pos += 1;
        }
        // The text came from a &str and we only split at ASCII bytes.
        std::str::from_utf8(&self.text[start..self.pos]).unwrap_or_default()
    }

    fn string(&mut self) -> Result<Edn, EdnError> {
        let mut out = Vec::new();
        loop {
            let Some(&b) = self.text.get(self.pos) else {
                return Err(self.eof("`\"` closing a string"));
            };
            self.pos += 1;
            match b {
                b'"' => break,
                b'\n' => {
                    self.line += 1;
                    out.push(b);
                }
                b'\\' => {
                    let Some(&e) = self.text.get(self.pos) else {
                        return Err(self.eof("an escaped character"));
                    };
                    self.pos += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'u' => {
                            let hex = self
                                .text
                                .get(self.pos..self.pos + 4)
                                .and_then(|h| std::str::from_utf8(h).ok())
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .and_then(char::from_u32)
                                .ok_or_else(|| self.error("expected 4 hex digits after \\u"))?;
                            self.pos += 4;
                            out.extend_from_slice(hex.to_string().as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                _ => out.push(b),
            }
        }
        String::from_utf8(out)
            .map(Edn::Str)
            .map_err(|_| self.error("a string is not valid UTF-8"))
    }
}

fn parse_atom(token: &str) -> Option<Edn> {
    match token {
        "nil" => return Some(Edn::Nil),
        "true" => return Some(Edn::Bool(true)),
        "false" => return Some(Edn::Bool(false)),
        _ => {}
    }
    let first = token.as_bytes()[0];
    let numeric = first.is_ascii_digit()
        || ((first == b'-' || first == b'+')
            && token.len() > 1
            && token.as_bytes()[1].is_ascii_digit());
    if !numeric {
        return None;
    }
    let digits = token.trim_end_matches(['N', 'M']);
    if let Ok(i) = digits.parse::<i64>() {
        return Some(Edn::Int(i));
    }
    digits.parse::<f64>().ok().map(Edn::Float)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &str) -> Result<Vec<Edn>, EdnError> {
        let mut reader = EdnReader::new(text, 1);
        let mut out = Vec::new();
        while let Some(form) = reader.next_form() {
            out.push(form?);
        }
        Ok(out)
    }

    #[test]
    fn reads_the_history_subset() {
        let forms = read_all(
            "; a comment\n{:process 0, :type :invoke, :f :cas, :value [1 2] :ok? true}\n\
             (1 -2 3.5 nil false) #{:a} #_ ignored \"s\\\"q\" #inst \"2020\"",
        )
        .unwrap();
        assert_eq!(forms.len(), 5);
        assert_eq!(forms[0].get("process"), Some(&Edn::Int(0)));
        assert_eq!(forms[0].get("f"), Some(&Edn::Keyword("cas".into())));
        assert_eq!(
            forms[0].get("value"),
            Some(&Edn::Seq(vec![Edn::Int(1), Edn::Int(2)]))
        );
        assert_eq!(forms[0].get("ok?"), Some(&Edn::Bool(true)));
        assert_eq!(
            forms[1],
            Edn::Seq(vec![
                Edn::Int(1),
                Edn::Int(-2),
                Edn::Float(3.5),
                Edn::Nil,
                Edn::Bool(false)
            ])
        );
        assert_eq!(forms[2], Edn::Seq(vec![Edn::Keyword("a".into())]));
        assert_eq!(forms[3], Edn::Str("s\"q".into()));
        assert_eq!(forms[4], Edn::Str("2020".into()));
    }

    #[test]
    fn errors_name_the_line_and_eof() {
        let err = read_all("{:a 1}\n{:a 2\n").unwrap_err();
        assert!(err.at_eof);
        assert_eq!(err.line, 3);
        let err = read_all("{:a 1}\n{:a]}").unwrap_err();
        assert!(!err.at_eof);
        assert_eq!(err.line, 2);
        assert!(err.message.contains("closes nothing"), "{}", err.message);
        let err = read_all("{:a}").unwrap_err();
        assert!(err.message.contains("without a value"), "{}", err.message);
    }
}
