//! The text a person reads when a history is not linearizable (or could not be decided):
//! the model line, then per failing key the operation no linearization places, the end of the
//! longest linearizable prefix with the state after each step, and the states the model
//! could be in. Bounded, whatever the history's size.

use std::fmt::Write as _;

use super::stale::StaleRead;
use super::{KeyFailure, LinearizabilityReport, LinearizedOp, describe_op};
use crate::history::Operation;
use crate::verdict::Validity;

/// How many operations of a failure's linearizable prefix the text explanation shows (the
/// last ones, nearest the failure); the report's details have them all.
pub const PREFIX_SHOWN: usize = 10;

fn op_line(op: &Operation) -> String {
    let ret = op.ret.map_or("∞".to_string(), |r| r.to_string());
    format!(
        "{}  (line {}, t {}..{})",
        describe_op(op),
        op.line,
        op.call,
        ret
    )
}

/// The failure of a key whose read `stale` proved stale: the read, and as its prefix the
/// write it saw (if not the initial value) and the overwrite, each with the value after it.
pub(super) fn stale_failure(
    key: Option<String>,
    ops: &[&Operation],
    stale: StaleRead,
) -> KeyFailure {
    let (read, overwrite) = (ops[stale.read], ops[stale.overwrite]);
    let value = |op: &Operation| super::reduce::written(op).cloned().unwrap_or_default();
    let seen = match stale.write {
        Some(w) => format!("{} was written only by {}", read.output, op_line(ops[w])),
        None => format!(
            "{} is the initial value, and no operation writes it",
            read.output
        ),
    };
    let proof = format!(
        "    {seen};\n    then {} wrote {}: it was invoked after that{} and returned before the \
         read was invoked,\n    so the value read had been overwritten before the read began",
        op_line(overwrite),
        value(overwrite),
        if stale.write.is_some() {
            " write returned"
        } else {
            ""
        },
    );
    let prefix = stale
        .write
        .into_iter()
        .chain([stale.overwrite])
        .map(|i| LinearizedOp {
            op: ops[i].clone(),
            state: value(ops[i]).to_string(),
        })
        .collect();
    KeyFailure {
        key,
        op: read.clone(),
        prefix,
        prefix_from: None,
        states_before: vec![value(overwrite).to_string()],
        states_complete: false,
        proof: Some(proof),
    }
}

/// Why one key is not linearizable, for a person. Bounded: at most [`PREFIX_SHOWN`] prefix
/// operations and the capped list of states.
fn explain_failure(failure: &KeyFailure) -> String {
    let mut out = String::new();
    let key = failure
        .key
        .as_ref()
        .map_or("the single object".to_string(), |k| format!("key {k:?}"));
    if let (Some(proof), true) = (&failure.proof, failure.prefix.is_empty()) {
        let _ = writeln!(
            out,
            "  {key}: no linearization places this operation (proved without a search):"
        );
        let _ = writeln!(out, "    {}", op_line(&failure.op));
        let _ = writeln!(out, "  because:\n{proof}");
        return out;
    }
    let _ = writeln!(out, "  {key}: no linearization places this operation:");
    let _ = writeln!(out, "    {}", op_line(&failure.op));
    if let Some(from) = &failure.prefix_from {
        let _ = writeln!(
            out,
            "  searched from line {}, where every linearization of the operations before has \
             ended with\n    {}  ⇒ {}",
            from.op.line,
            op_line(&from.op),
            from.state
        );
    }
    let n = failure.prefix.len();
    if n == 0 {
        let _ = writeln!(
            out,
            "  no operation could be linearized before it had to take effect."
        );
    } else {
        let _ = writeln!(
            out,
            "  longest linearizable prefix found: {n} operation(s){}; state after each:",
            if n > PREFIX_SHOWN {
                format!(", the last {PREFIX_SHOWN} shown")
            } else {
                String::new()
            }
        );
        for step in &failure.prefix[n.saturating_sub(PREFIX_SHOWN)..] {
            let _ = writeln!(out, "    {}  ⇒ {}", op_line(&step.op), step.state);
        }
    }
    let _ = writeln!(
        out,
        "  states the model could be in just before it{}: {}",
        if failure.states_complete {
            ""
        } else {
            " (not all listed)"
        },
        if failure.states_before.is_empty() {
            "none found".to_string()
        } else {
            failure.states_before.join(", ")
        }
    );
    if let Some(proof) = &failure.proof {
        let _ = writeln!(out, "  proved without a search:\n{proof}");
    }
    out
}

/// The explanation of a whole report: the model line, then each failing key or the reasons
/// it is unknown.
pub(super) fn explain_report(report: &LinearizabilityReport) -> String {
    let mut out = format!(
        "  model {}{}, {} semantics; {} operations on {} key(s)\n",
        report.model,
        if report.model_inferred {
            " (inferred from the operations; --model overrides)"
        } else {
            ""
        },
        serde_json::to_value(report.semantics)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        report.operations,
        report.keys
    );
    if report.info_dropped + report.info_bounded > 0 {
        let _ = writeln!(
            out,
            "  info writes: {} bounded by their first observer's return, {} dropped (nothing \
             could have observed them)",
            report.info_bounded, report.info_dropped
        );
    }
    match report.validity {
        Validity::Fail => {
            for failure in &report.failures {
                out.push_str(&explain_failure(failure));
            }
        }
        Validity::Unknown => {
            for reason in &report.unknown_reasons {
                let _ = writeln!(out, "  unknown: {reason}");
            }
        }
        Validity::Pass => {}
    }
    out
}
