//! The common shape of every checker's result (DESIGN §3).

use serde::{Deserialize, Serialize};

/// One of three outcomes; never two. UNKNOWN is its own outcome, not a PASS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Validity {
    /// The property holds.
    Pass,
    /// The property does not hold, and the verdict names the operations that show it.
    Fail,
    /// The checker could not decide (a timeout, a resource bound, input it cannot judge).
    Unknown,
}

impl Validity {
    /// FAIL if any part fails, else UNKNOWN if any is unknown, else PASS (empty: PASS).
    pub fn combine(parts: impl IntoIterator<Item = Validity>) -> Validity {
        parts
            .into_iter()
            .fold(Validity::Pass, |acc, v| match (acc, v) {
                (Validity::Fail, _) | (_, Validity::Fail) => Validity::Fail,
                (Validity::Unknown, _) | (_, Validity::Unknown) => Validity::Unknown,
                _ => Validity::Pass,
            })
    }

    /// `PASS`, `FAIL` or `UNKNOWN`.
    pub fn as_str(self) -> &'static str {
        match self {
            Validity::Pass => "PASS",
            Validity::Fail => "FAIL",
            Validity::Unknown => "UNKNOWN",
        }
    }
}

/// What every checker returns (DESIGN §3): which checker, the outcome, one line for a person,
/// the explanation a person reads when it is not PASS, and the checker's structured report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Verdict {
    /// The outcome.
    pub valid: Validity,
    /// Which checker gave it (`linearizability`, ...).
    pub checker: String,
    /// One line for a person.
    pub summary: String,
    /// Why it is not PASS, a few lines for a person naming the operations that show it
    /// (empty when the summary says everything).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub explanation: String,
    /// The checker's full report.
    #[serde(default)]
    pub details: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::Validity::*;
    use super::*;

    #[test]
    fn fail_beats_unknown_beats_pass() {
        assert_eq!(Validity::combine([]), Pass);
        assert_eq!(Validity::combine([Pass, Unknown, Pass]), Unknown);
        assert_eq!(Validity::combine([Unknown, Fail, Pass]), Fail);
    }
}
