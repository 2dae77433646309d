//! Which checkers judge a run, shared by `faultline run` and `faultline check <run-dir>`.

use std::path::Path;

use faultline_checker::causal::Consistency;
use faultline_checker::{
    History, ModelKind, Options, Validity, causal as causal_checker, linearizability, raft, saga,
    set,
};
use faultline_results::Judged;
use faultline_workloads::Workload;

/// The workload a run directory's `run.json` names; `None` for anything that is not a run
/// directory.
pub(crate) fn run_workload(path: &Path) -> Result<Option<Workload>, String> {
    let run_json = path.join("run.json");
    if !path.is_dir() || !run_json.is_file() {
        return Ok(None);
    }
    let run = read_run_json(path)?;
    let name = run["workload"]
        .as_str()
        .ok_or_else(|| format!("{}: no \"workload\"", run_json.display()))?;
    name.parse()
        .map(Some)
        .map_err(|e| format!("{}: {e}", run_json.display()))
}

/// A run directory's `run.json`, parsed.
fn read_run_json(dir: &Path) -> Result<serde_json::Value, String> {
    let run_json = dir.join("run.json");
    let text = std::fs::read_to_string(&run_json)
        .map_err(|e| format!("{}: cannot read: {e}", run_json.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", run_json.display()))
}

/// Where a checkout run keeps the facts the saga checker judges.
pub(crate) const SAGA_FACTS: &str = "saga.json";

/// Where a bundled Raft run keeps its nodes' notes (one `<node>.jsonl` each), which the
/// Raft safety checker judges.
pub(crate) const RAFT_NOTES: &str = "raft-notes";

/// Runs the checkers `workload` names on `history` (recorded in the run directory `dir`),
/// and Raft's safety checks where the run kept a bundled Raft cluster's notes.
pub(crate) fn judge(history: &History, workload: Workload, dir: &Path) -> Result<Judged, String> {
    let mut judged = judge_workload(history, workload, dir)?;
    if let Some(nodes) = raft_notes(dir)? {
        let report = raft::check(&nodes, Some(history));
        judged
            .verdicts
            .push((report.verdict(), report.explanation()));
    }
    Ok(judged)
}

/// The notes of every node `run.json` lists, if the run directory has [`RAFT_NOTES`] (a node
/// whose file is missing has `None`).
fn raft_notes(dir: &Path) -> Result<Option<Vec<raft::NodeNotes>>, String> {
    let notes_dir = dir.join(RAFT_NOTES);
    if !notes_dir.is_dir() {
        return Ok(None);
    }
    let run_json = dir.join("run.json");
    let run = read_run_json(dir)?;
    let names = run["nodes"]
        .as_array()
        .ok_or_else(|| format!("{}: no \"nodes\" list", run_json.display()))?;
    let mut nodes = Vec::new();
    for name in names {
        let name = name
            .as_str()
            .ok_or_else(|| format!("{}: a node name is not a string", run_json.display()))?;
        let path = notes_dir.join(format!("{name}.jsonl"));
        let notes = match std::fs::read_to_string(&path) {
            Ok(text) => Some(raft::parse_notes(&path.display().to_string(), &text)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
        };
        nodes.push(raft::NodeNotes {
            node: name.to_string(),
            notes,
        });
    }
    Ok(Some(nodes))
}

fn judge_workload(history: &History, workload: Workload, dir: &Path) -> Result<Judged, String> {
    match workload {
        Workload::Checkout => {
            let path = dir.join(SAGA_FACTS);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("{SAGA_FACTS}: cannot read {}: {e}", path.display()))?;
            let facts: saga::SagaFacts = serde_json::from_str(&text)
                .map_err(|e| format!("{SAGA_FACTS}: not the saga checker's facts: {e}"))?;
            let report = saga::check(&facts);
            let explanation = report.explanation();
            Ok(Judged {
                verdicts: vec![(report.verdict(), explanation)],
                linearizability: None,
            })
        }
        Workload::Register | Workload::Cas => {
            let options = Options {
                model: Some(ModelKind::Kv),
                ..Options::default()
            };
            linearizability::check(history, &options)
                .map(Judged::from_linearizability)
                .map_err(|e| format!("history.jsonl:{e}"))
        }
        Workload::Causal => Ok(causal(history, Consistency::All)),
        Workload::Set => {
            let report = set::check(history);
            let verdict = report.verdict();
            let explanation = if verdict.valid == Validity::Pass {
                String::new()
            } else {
                format!("  set: {}\n", verdict.summary)
            };
            Ok(Judged {
                verdicts: vec![(verdict, explanation)],
                linearizability: None,
            })
        }
    }
}

/// The causal checkers `consistency` names, each with its explanation.
pub(crate) fn causal(history: &History, consistency: Consistency) -> Judged {
    let verdicts = causal_checker::check(history, consistency)
        .into_iter()
        .map(|v| (v, String::new()))
        .collect();
    Judged {
        verdicts,
        linearizability: None,
    }
}
