//! Which checkers judge a run, shared by `faultline run` and `faultline check <run-dir>`: the
//! ones its workload names, plus Raft's safety checks where the run kept a bundled Raft
//! cluster's notes. The evidence a run keeps beside its history is read here; what each
//! checker makes of it is the checker crate's business ([`Checker`]).

use std::path::Path;

use faultline_checker::raft::{self, NodeNotes};
use faultline_checker::saga::SagaFacts;
use faultline_checker::txn::{Assumption, Model};
use faultline_checker::{Checker, Evidence, History, check_all};
use faultline_results::Judged;
use faultline_workloads::Workload;

use crate::plan::RunRecord;

/// Where a checkout run keeps the facts the saga checker judges.
pub(crate) const SAGA_FACTS: &str = "saga.json";

/// Where a bundled Raft run keeps its nodes' notes (one `<node>.jsonl` each), which the
/// Raft safety checker judges.
pub(crate) const RAFT_NOTES: &str = "raft-notes";

/// The evidence a run directory kept beside its history.
#[derive(Default)]
struct Kept {
    saga: Option<SagaFacts>,
    raft_notes: Option<Vec<NodeNotes>>,
}

impl Kept {
    /// Reads what `dir` kept; a file that is there but unreadable is an error, one that is not
    /// there is missing evidence (the checker that needs it says UNKNOWN).
    fn read(dir: &Path, record: &RunRecord) -> Result<Kept, String> {
        let saga_path = dir.join(SAGA_FACTS);
        let saga = match std::fs::read_to_string(&saga_path) {
            Ok(text) => Some(serde_json::from_str(&text).map_err(|e| {
                format!("{}: not the saga checker's facts: {e}", saga_path.display())
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("{}: cannot read: {e}", saga_path.display())),
        };
        Ok(Kept {
            saga,
            raft_notes: raft::read_notes(&dir.join(RAFT_NOTES), &record.nodes)?,
        })
    }
}

/// Runs the checkers a run's `workload` names on `history`, recorded in the run directory
/// `dir` (whose `run.json` is `record`), and Raft's safety checks where the run kept a bundled
/// Raft cluster's notes.
pub(crate) fn judge(history: &History, record: &RunRecord, dir: &Path) -> Result<Judged, String> {
    let kept = Kept::read(dir, record)?;
    let consistency = match &record.consistency {
        Some(name) => Some(name.parse().map_err(|e| format!("run.json: {e}"))?),
        None => None,
    };
    let assume = record
        .assume
        .iter()
        .map(|a| a.parse().map_err(|e| format!("run.json: {e}")))
        .collect::<Result<Vec<Assumption>, String>>()?;
    let checkers = checkers_of(
        record.workload,
        kept.raft_notes.is_some(),
        consistency,
        &assume,
    );
    let evidence = Evidence {
        history,
        saga: kept.saga.as_ref(),
        raft_notes: kept.raft_notes.as_deref(),
    };
    judge_with(&checkers, &evidence).map_err(|e| format!("history.jsonl:{e}"))
}

/// Runs `checkers` on `evidence`.
pub(crate) fn judge_with(
    checkers: &[Checker],
    evidence: &Evidence<'_>,
) -> Result<Judged, faultline_checker::model::ModelError> {
    check_all(checkers, evidence).map(|verdicts| Judged { verdicts })
}

/// The checkers a run of `workload` on a target that keeps Raft notes (or not) is judged by;
/// a transactional workload's verdict is for `consistency` (strict-serializable when `None`).
pub(crate) fn checkers_of(
    workload: Workload,
    raft_notes: bool,
    consistency: Option<Model>,
    assume: &[Assumption],
) -> Vec<Checker> {
    let mut checkers = workload.checkers();
    for checker in &mut checkers {
        if let Checker::Transactional(options) = checker {
            if let Some(model) = consistency {
                options.consistency = model;
            }
            options.assume = assume.to_vec();
        }
    }
    if raft_notes {
        checkers.push(Checker::RaftSafety);
    }
    checkers
}
