//! Raft's own safety properties (Figure 3 of the Raft paper), judged from what the nodes of a
//! bundled Raft cluster noted while they ran: which terms each led, and which entry each applied
//! at each index.
//!
//! - Election Safety: at most one leader per term.
//! - State Machine Safety: if a node applied an entry at an index, no node ever applies a
//!   different entry at that index.
//!
//! Clients may never read the divergence a broken Raft leaves behind (the entry lost may be
//! one nobody reads before it is overwritten); these checks see it where it happens. Applied
//! entries are matched to the client operations that wrote them, so a violation names them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::history::{History, Status};
use crate::verdict::{Validity, Verdict};

/// The checker's name in verdicts.
pub const CHECKER: &str = "raft-safety";

/// Something a Raft node noted: one line of its notes file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Note {
    /// It became the leader of this term.
    Led {
        /// The term.
        led: u64,
    },
    /// It applied this entry at this index.
    Applied {
        /// The log index.
        applied: u64,
        /// The entry's term.
        term: u64,
        /// The entry's command, as the node logs it.
        command: Value,
    },
}

/// One node's notes.
#[derive(Clone, Debug)]
pub struct NodeNotes {
    /// The node's name (`n1`).
    pub node: String,
    /// What it noted, in order; `None` if it left no notes (the check cannot be made).
    pub notes: Option<Vec<Note>>,
}

/// Parses a notes file of `node` (`name` for messages): one JSON note per line.
pub fn parse_notes(name: &str, text: &str) -> Result<Vec<Note>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| {
                format!(
                    "{name}:{}: not a Raft note ({{\"led\": term}} or {{\"applied\": index, \"term\": t, \"command\": …}}): {e}",
                    i + 1
                )
            })
        })
        .collect()
}

/// The notes of every node in `nodes` from directory `notes_dir` (`<node>.jsonl` each), if
/// the directory exists; a node whose file is missing has `None`.
pub fn read_notes(
    notes_dir: &std::path::Path,
    nodes: &[String],
) -> Result<Option<Vec<NodeNotes>>, String> {
    if !notes_dir.is_dir() {
        return Ok(None);
    }
    let mut all = Vec::new();
    for name in nodes {
        let path = notes_dir.join(format!("{name}.jsonl"));
        let notes = match std::fs::read_to_string(&path) {
            Ok(text) => Some(parse_notes(&path.display().to_string(), &text)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
        };
        all.push(NodeNotes {
            node: name.clone(),
            notes,
        });
    }
    Ok(Some(all))
}

/// An applied entry as a violation shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AppliedEntry {
    /// The node that applied it.
    pub node: String,
    /// The entry's term.
    pub term: u64,
    /// Its command.
    pub command: Value,
    /// The client operation that asked for it (its index in the history), if one is found.
    pub op: Option<usize>,
    /// How that operation completed (`ok`, `info`, `fail`).
    pub op_status: Option<String>,
}

/// A broken safety property.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "property", rename_all = "kebab-case")]
pub enum Violation {
    /// Two or more nodes led one term.
    ElectionSafety {
        /// The term.
        term: u64,
        /// The nodes that led it.
        leaders: Vec<String>,
    },
    /// Two nodes applied different entries at one index.
    StateMachineSafety {
        /// The log index.
        index: u64,
        /// The entry applied there first (in the order the notes were read).
        first: AppliedEntry,
        /// A different entry applied there.
        other: AppliedEntry,
    },
}

/// What the Raft safety checks found.
#[derive(Clone, Debug, Serialize)]
pub struct RaftReport {
    /// PASS, FAIL, or UNKNOWN when a node left no notes.
    pub validity: Validity,
    /// Terms that had a leader.
    pub terms_led: usize,
    /// Distinct log indexes applied anywhere.
    pub indexes_applied: usize,
    /// Why the checks could not be made, if they could not.
    pub unknown: Option<String>,
    /// Every violation found (one per term and per index).
    pub violations: Vec<Violation>,
}

/// What the nodes' notes say, gathered: who led each term, the first entry applied at each
/// index, the first other entry applied there, and the nodes that left no notes.
struct Gathered<'a> {
    leaders: BTreeMap<u64, Vec<String>>,
    applied: BTreeMap<u64, (String, u64, &'a Value)>,
    diverged: BTreeMap<u64, (String, u64, &'a Value)>,
    missing: Vec<String>,
}

fn gather(nodes: &[NodeNotes]) -> Gathered<'_> {
    let mut gathered = Gathered {
        leaders: BTreeMap::new(),
        applied: BTreeMap::new(),
        diverged: BTreeMap::new(),
        missing: Vec::new(),
    };
    for node in nodes {
        let Some(notes) = &node.notes else {
            gathered.missing.push(node.node.clone());
            continue;
        };
        for note in notes {
            match note {
                Note::Led { led } => {
                    let names = gathered.leaders.entry(*led).or_default();
                    if !names.contains(&node.node) {
                        names.push(node.node.clone());
                    }
                }
                Note::Applied {
                    applied: index,
                    term,
                    command,
                } => match gathered.applied.get(index) {
                    None => {
                        gathered
                            .applied
                            .insert(*index, (node.node.clone(), *term, command));
                    }
                    Some((_, t, c)) if (*t, *c) == (*term, command) => {}
                    Some(_) => {
                        gathered
                            .diverged
                            .entry(*index)
                            .or_insert_with(|| (node.node.clone(), *term, command));
                    }
                },
            }
        }
    }
    gathered
}

/// Checks Election Safety and State Machine Safety over every node's notes; `history` (when
/// given) names the client operations behind the entries of a violation.
pub fn check(nodes: &[NodeNotes], history: Option<&History>) -> RaftReport {
    let Gathered {
        leaders,
        applied,
        diverged,
        missing,
    } = gather(nodes);
    let writers = history.map(writers).unwrap_or_default();
    let entry = |(node, term, command): &(String, u64, &Value)| {
        let op = writer_key(command).and_then(|k| writers.get(&k));
        AppliedEntry {
            node: node.clone(),
            term: *term,
            command: (*command).clone(),
            op: op.map(|(id, _)| *id),
            op_status: op.map(|(_, status)| status.clone()),
        }
    };
    let mut violations: Vec<Violation> = leaders
        .iter()
        .filter(|(_, names)| names.len() > 1)
        .map(|(term, names)| Violation::ElectionSafety {
            term: *term,
            leaders: names.clone(),
        })
        .collect();
    violations.extend(
        diverged
            .iter()
            .map(|(index, other)| Violation::StateMachineSafety {
                index: *index,
                first: entry(&applied[index]),
                other: entry(other),
            }),
    );
    let unknown = (!missing.is_empty()).then(|| {
        format!(
            "{} left no notes (who led, what was applied), so Raft's safety cannot be judged",
            missing.join(", ")
        )
    });
    let validity = if !violations.is_empty() {
        Validity::Fail
    } else if unknown.is_some() {
        Validity::Unknown
    } else {
        Validity::Pass
    };
    RaftReport {
        validity,
        terms_led: leaders.len(),
        indexes_applied: applied.len(),
        unknown,
        violations,
    }
}

/// The (operation, key, value) a write or cas command sets, to find its client operation.
fn writer_key(command: &Value) -> Option<(String, String)> {
    let (kind, fields) = command.as_object()?.iter().next()?;
    let op = match kind.as_str() {
        "Write" => "write",
        "Cas" => "cas",
        _ => return None,
    };
    let key = fields.get("key")?.as_str()?;
    Some((format!("{op} {key}"), fields.get("value")?.to_string()))
}

/// Every write and cas of `history` by (operation and key, value written): its id and status.
fn writers(history: &History) -> BTreeMap<(String, String), (usize, String)> {
    history
        .ops
        .iter()
        .filter_map(|op| {
            let key = op.key.as_deref()?;
            let written = match op.f.as_str() {
                "write" | "put" => op.input.clone(),
                "cas" => op.input.get(1)?.clone(),
                _ => return None,
            };
            let f = if op.f == "put" {
                "write"
            } else {
                op.f.as_str()
            };
            let status = match op.status {
                Status::Ok => "ok",
                Status::Fail => "fail",
                Status::Mismatch => "fail: mismatch",
                Status::Info => "info",
            };
            Some((
                (format!("{f} {key}"), written.to_string()),
                (op.id, status.to_string()),
            ))
        })
        .collect()
}

impl RaftReport {
    /// The verdict of the `raft-safety` checker.
    pub fn verdict(&self) -> Verdict {
        Verdict {
            valid: self.validity,
            checker: CHECKER.into(),
            summary: self.summary(),
            explanation: self.explanation(),
            details: serde_json::to_value(self).unwrap_or(Value::Null),
        }
    }

    /// One line for a person.
    pub fn summary(&self) -> String {
        if let Some(why) = &self.unknown {
            return format!("cannot judge: {why}");
        }
        let count = |f: fn(&Violation) -> bool| self.violations.iter().filter(|v| f(v)).count();
        let two_leaders = count(|v| matches!(v, Violation::ElectionSafety { .. }));
        let diverged = count(|v| matches!(v, Violation::StateMachineSafety { .. }));
        let seen = format!(
            "{} terms led, {} log indexes applied",
            self.terms_led, self.indexes_applied
        );
        if self.violations.is_empty() {
            format!("one leader per term and one entry per index: {seen}")
        } else {
            format!(
                "{two_leaders} terms with two leaders, {diverged} indexes where nodes applied different entries ({seen})"
            )
        }
    }

    /// The violations, for a person (at most 10 of each property).
    fn explanation(&self) -> String {
        let mut text = String::new();
        let mut shown = [0usize; 2];
        for v in &self.violations {
            let (slot, line) = match v {
                Violation::ElectionSafety { term, leaders } => (
                    0,
                    format!(
                        "  Election Safety: {} {} led term {term}\n",
                        leaders.join(" and "),
                        if leaders.len() == 2 { "both" } else { "all" }
                    ),
                ),
                Violation::StateMachineSafety {
                    index,
                    first,
                    other,
                } => (
                    1,
                    format!(
                        "  State Machine Safety: at log index {index}, {}\n    and {}\n",
                        describe(first),
                        describe(other)
                    ),
                ),
            };
            shown[slot] += 1;
            if shown[slot] <= 10 {
                text.push_str(&line);
            }
        }
        let hidden: usize = shown.iter().map(|n| n.saturating_sub(10)).sum();
        if hidden > 0 {
            text.push_str(&format!("  ... and {hidden} more\n"));
        }
        text
    }
}

/// `n1 applied <command> of term 3 (op 17, ok)`.
fn describe(entry: &AppliedEntry) -> String {
    let op = match (&entry.op, &entry.op_status) {
        (Some(id), Some(status)) => format!(" (history op {id}, {status})"),
        _ => String::new(),
    };
    format!(
        "{} applied {} of term {}{op}",
        entry.node, entry.command, entry.term
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, lines: &[Value]) -> NodeNotes {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        NodeNotes {
            node: name.into(),
            notes: Some(parse_notes(name, &text).unwrap()),
        }
    }

    fn write(index: u64, term: u64, key: &str, value: i64) -> Value {
        json!({"applied": index, "term": term, "command": {"Write": {"key": key, "value": value, "idempotency_key": null}}})
    }

    #[test]
    fn a_healthy_cluster_passes_even_when_nodes_reapply_after_restarts() {
        let noop = json!({"applied": 1, "term": 1, "command": "Noop"});
        let nodes = [
            node(
                "n1",
                &[json!({"led": 1}), noop.clone(), write(2, 1, "x", 5)],
            ),
            // Restarted: applies the same entries again.
            node(
                "n2",
                &[noop.clone(), write(2, 1, "x", 5), noop, write(2, 1, "x", 5)],
            ),
            node("n3", &[json!({"led": 2})]),
        ];
        let report = check(&nodes, None);
        assert_eq!(report.validity, Validity::Pass, "{}", report.explanation());
        assert_eq!((report.terms_led, report.indexes_applied), (2, 2));
    }

    #[test]
    fn two_leaders_of_one_term_fail_election_safety() {
        let nodes = [
            node("n1", &[json!({"led": 4})]),
            node("n2", &[json!({"led": 3}), json!({"led": 4})]),
        ];
        let report = check(&nodes, None);
        assert_eq!(report.validity, Validity::Fail);
        assert_eq!(
            report.violations,
            [Violation::ElectionSafety {
                term: 4,
                leaders: vec!["n1".into(), "n2".into()]
            }]
        );
        assert!(report.explanation().contains("n1 and n2 both led term 4"));
    }

    #[test]
    fn different_entries_at_one_index_fail_and_name_the_client_operations() {
        let history = crate::format::read_str(concat!(
            r#"{"index":0,"time":1,"process":0,"type":"invoke","f":"write","key":"x","value":5}"#,
            "\n",
            r#"{"index":1,"time":2,"process":1,"type":"invoke","f":"cas","key":"x","value":[null,6]}"#,
            "\n",
            r#"{"index":2,"time":3,"process":0,"type":"ok","f":"write","key":"x","value":5}"#,
            "\n",
            r#"{"index":3,"time":4,"process":1,"type":"info","f":"cas","key":"x","value":[null,6]}"#,
            "\n",
        ), None)
        .unwrap()
        .history;
        let cas = json!({"applied": 2, "term": 1, "command": {"Cas": {"key": "x", "expect": null, "value": 6, "idempotency_key": null}}});
        let nodes = [
            node("n1", &[write(2, 1, "x", 5)]),
            node("n2", &[cas]),
            node("n3", &[write(2, 1, "x", 5)]),
        ];
        let report = check(&nodes, Some(&history));
        assert_eq!(report.validity, Validity::Fail);
        let [
            Violation::StateMachineSafety {
                index,
                first,
                other,
            },
        ] = report.violations.as_slice()
        else {
            panic!("{:?}", report.violations);
        };
        assert_eq!(*index, 2);
        assert_eq!((first.node.as_str(), first.op), ("n1", Some(0)));
        assert_eq!(first.op_status.as_deref(), Some("ok"));
        assert_eq!((other.node.as_str(), other.op), ("n2", Some(1)));
        assert_eq!(other.op_status.as_deref(), Some("info"));
        let text = report.explanation();
        assert!(text.contains("at log index 2, n1 applied"), "{text}");
        assert!(text.contains("(history op 1, info)"), "{text}");
    }

    #[test]
    fn same_command_of_another_term_is_a_different_entry() {
        let nodes = [
            node("n1", &[write(3, 2, "x", 5)]),
            node("n2", &[write(3, 4, "x", 5)]),
        ];
        assert_eq!(check(&nodes, None).validity, Validity::Fail);
    }

    #[test]
    fn a_node_without_notes_makes_it_unknown_but_a_violation_still_fails() {
        let silent = NodeNotes {
            node: "n3".into(),
            notes: None,
        };
        let fine = [node("n1", &[json!({"led": 1})]), silent.clone()];
        let report = check(&fine, None);
        assert_eq!(report.validity, Validity::Unknown);
        assert!(report.summary().contains("n3 left no notes"));
        let broken = [
            node("n1", &[json!({"led": 1})]),
            node("n2", &[json!({"led": 1})]),
            silent,
        ];
        assert_eq!(check(&broken, None).validity, Validity::Fail);
    }

    #[test]
    fn bad_lines_are_named_with_their_line() {
        let err = parse_notes("raft-notes/n2.jsonl", "{\"led\": 1}\n{\"oops\": 2}\n").unwrap_err();
        assert!(
            err.starts_with("raft-notes/n2.jsonl:2: not a Raft note"),
            "{err}"
        );
    }
}
