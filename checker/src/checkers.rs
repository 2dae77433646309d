//! The one checker contract: every checker faultline has is a [`Checker`], judges the same
//! [`Evidence`] and returns [`Verdict`]s of one shape.
//!
//! A caller (the command line's `judge`) builds the list of checkers a workload names, gathers
//! the evidence a run kept (its history, and for some systems facts read beside it), and
//! iterates: no caller knows which checker takes what. Missing evidence is UNKNOWN with the
//! reason, never a guess.

use crate::causal::{self, Consistency};
use crate::history::History;
use crate::linearizability::{self, Options};
use crate::model::ModelError;
use crate::raft::{self, NodeNotes};
use crate::saga::{self, SagaFacts};
use crate::set;
use crate::txn::{self, TxnOptions};
use crate::verdict::{Validity, Verdict};
use crate::{counter, echo};

/// What a run left for the checkers to judge.
#[derive(Clone, Copy, Debug)]
pub struct Evidence<'a> {
    /// The recorded history.
    pub history: &'a History,
    /// A checkout run's final facts (orders, services' totals), if the run kept them.
    pub saga: Option<&'a SagaFacts>,
    /// A bundled Raft cluster's notes, one entry per node, if the run kept them.
    pub raft_notes: Option<&'a [NodeNotes]>,
}

impl<'a> Evidence<'a> {
    /// Evidence that is just a history.
    pub fn history(history: &'a History) -> Self {
        Evidence {
            history,
            saga: None,
            raft_notes: None,
        }
    }
}

/// Every checker, with its options.
#[derive(Clone, Debug)]
pub enum Checker {
    /// Linearizability against a model (DESIGN §3.1): one verdict.
    Linearizability(Options),
    /// The causal models and session guarantees `Consistency` names (DESIGN §3.2): one verdict
    /// per model or guarantee.
    Causal(Consistency),
    /// Transactional isolation (DESIGN §3.4): the anomalies of list-append or rw-register
    /// transactions, and the models they rule out.
    Transactional(TxnOptions),
    /// No acknowledged add lost from a set (DESIGN §3.3).
    Set,
    /// No acknowledged element missing from any node's final read (Maelstrom's broadcast and
    /// g-set).
    SetEverywhere,
    /// Every final read of a counter within the bounds of its adds (DESIGN §3.3).
    Counter,
    /// Every echo came back unchanged (Maelstrom's echo).
    Echo,
    /// No id generated twice (Maelstrom's unique-ids).
    UniqueIds,
    /// Every order all-done or all-undone, nothing stuck, conservation, no double charge
    /// (DESIGN §3.3); judges [`Evidence::saga`].
    Saga,
    /// Raft's Election Safety and State Machine Safety over the nodes' own notes; judges
    /// [`Evidence::raft_notes`].
    RaftSafety,
}

impl Checker {
    /// The names of the verdicts this checker gives, in order.
    pub fn verdict_names(&self) -> &'static [&'static str] {
        match self {
            Checker::Linearizability(_) => &["linearizability"],
            Checker::Causal(consistency) => causal::checker_names(*consistency),
            Checker::Transactional(_) => &["transactional"],
            Checker::Set | Checker::SetEverywhere => &["set"],
            Checker::Counter => &["counter"],
            Checker::Echo => &["echo"],
            Checker::UniqueIds => &["unique-ids"],
            Checker::Saga => &["saga"],
            Checker::RaftSafety => &[raft::CHECKER],
        }
    }

    /// Judges `evidence`. An error means the history cannot be judged by this checker at all
    /// (an operation its model does not know), naming the line.
    pub fn check(&self, evidence: &Evidence<'_>) -> Result<Vec<Verdict>, ModelError> {
        Ok(match self {
            Checker::Linearizability(options) => {
                vec![linearizability::check(evidence.history, options)?.verdict()]
            }
            Checker::Causal(consistency) => causal::check(evidence.history, *consistency),
            Checker::Transactional(options) => {
                vec![txn::check(evidence.history, options)?.verdict()]
            }
            Checker::Set => vec![set::check(evidence.history).verdict()],
            Checker::SetEverywhere => vec![set::check_everywhere(evidence.history).verdict()],
            Checker::Counter => vec![counter::check(evidence.history).verdict()],
            Checker::Echo => vec![echo::check_echo(evidence.history).verdict()],
            Checker::UniqueIds => vec![echo::check_unique_ids(evidence.history).verdict()],
            Checker::Saga => vec![match evidence.saga {
                Some(facts) => saga::check(facts).verdict(),
                None => self.missing("the run kept no final facts of its orders"),
            }],
            Checker::RaftSafety => vec![match evidence.raft_notes {
                Some(nodes) => raft::check(nodes, Some(evidence.history)).verdict(),
                None => self.missing("the run kept no notes of the Raft nodes"),
            }],
        })
    }

    /// UNKNOWN: the evidence this checker judges is missing.
    fn missing(&self, why: &str) -> Verdict {
        Verdict {
            valid: Validity::Unknown,
            checker: self.verdict_names()[0].to_string(),
            summary: format!("cannot judge: {why}"),
            explanation: String::new(),
            details: serde_json::Value::Null,
        }
    }
}

/// Runs every checker on `evidence`, verdicts in order.
pub fn check_all(
    checkers: &[Checker],
    evidence: &Evidence<'_>,
) -> Result<Vec<Verdict>, ModelError> {
    let mut verdicts = Vec::new();
    for checker in checkers {
        verdicts.extend(checker.check(evidence)?);
    }
    Ok(verdicts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format;

    fn history(text: &str) -> History {
        format::read_str(text, None).unwrap().history
    }

    #[test]
    fn every_checker_answers_in_the_names_it_declares() {
        let h = history(concat!(
            "{\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"key\":\"x\",\"value\":1}\n",
            "{\"process\":0,\"type\":\"ok\",\"f\":\"write\",\"key\":\"x\",\"value\":1}\n",
            "{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"x\",\"value\":null}\n",
            "{\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"key\":\"x\",\"value\":1}\n",
        ));
        let checkers = [
            Checker::Linearizability(Options::default()),
            Checker::Causal(Consistency::All),
            Checker::Saga,
            Checker::RaftSafety,
        ];
        let verdicts = check_all(&checkers, &Evidence::history(&h)).unwrap();
        let names: Vec<&str> = verdicts.iter().map(|v| v.checker.as_str()).collect();
        let declared: Vec<&str> = checkers
            .iter()
            .flat_map(|c| c.verdict_names().iter().copied())
            .collect();
        assert_eq!(names, declared);
        assert_eq!(verdicts[0].valid, Validity::Pass);
        // No facts, no notes: UNKNOWN with the reason, never a guess.
        let saga = &verdicts[verdicts.len() - 2];
        assert_eq!(saga.valid, Validity::Unknown);
        assert!(saga.summary.contains("no final facts"), "{}", saga.summary);
        assert_eq!(verdicts.last().unwrap().valid, Validity::Unknown);
    }

    #[test]
    fn a_failing_verdict_carries_its_explanation() {
        let h = history(concat!(
            "{\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":1}\n",
            "{\"process\":0,\"type\":\"ok\",\"f\":\"write\",\"value\":1}\n",
            "{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"value\":null}\n",
            "{\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"value\":2}\n",
        ));
        let checker = Checker::Linearizability(Options::default());
        let verdicts = checker.check(&Evidence::history(&h)).unwrap();
        assert_eq!(verdicts[0].valid, Validity::Fail);
        assert!(
            verdicts[0]
                .explanation
                .contains("no linearization places this operation"),
            "{}",
            verdicts[0].explanation
        );
    }
}
