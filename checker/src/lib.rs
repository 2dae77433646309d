//! faultline's checkers: the history model and the consistency checkers that judge it.
//!
//! This crate is pure computation: it reads history files and decides verdicts. It never opens
//! a socket, never blocks on a network, and prints nothing; callers render its results.
//!
//! # Brief overview
//!
//! - [`format::read_path`] reads a history file (faultline JSONL, Jepsen log, Jepsen EDN) into
//!   a [`History`] of paired [`Operation`]s.
//! - [`linearizability::check`] decides whether a history is linearizable with respect to a
//!   [`ModelKind`], and returns a [`LinearizabilityReport`]: PASS, FAIL with an explanation per
//!   failing key, or UNKNOWN with the reason.
//! - [`causal::check`] decides causal consistency (CC, CM, CCv) and the session guarantees.
//! - [`set::check`] judges a set history (no acknowledged add lost), [`stats::stats`] measures
//!   throughput, latency and ok/fail/info shares.
//! - [`txn::check`] judges transactions (list-append, rw-register) for isolation anomalies and
//!   says which consistency models they rule out (the Elle class).
//! - [`saga::check`] judges a checkout: every order all-done or all-undone, nothing stuck,
//!   stock and money conserved, no step applied twice.
//! - [`Checker`] is the one contract over all of them: each judges the same [`Evidence`] (a
//!   history, and the facts some systems leave beside it) and returns [`Verdict`]s of one
//!   shape — checker, validity, summary, explanation, structured details.
//!
//! ```
//! use faultline_checker::{format, linearizability, Options, Validity};
//!
//! let text = r#"{"process":0,"type":"invoke","f":"write","value":1}
//! {"process":0,"type":"ok","f":"write","value":1}
//! {"process":1,"type":"invoke","f":"read","value":null}
//! {"process":1,"type":"ok","f":"read","value":1}
//! "#;
//! let history = format::read_str(text, None).unwrap().history;
//! let report = linearizability::check(&history, &Options::default()).unwrap();
//! assert_eq!(report.validity, Validity::Pass);
//! ```

pub mod causal;
mod checkers;
pub mod counter;
pub mod echo;
pub mod format;
pub mod history;
pub mod linearizability;
pub mod model;
pub mod raft;
pub mod saga;
pub mod set;
pub mod stats;
#[cfg(feature = "synth")]
pub mod synth;
pub mod txn;
mod verdict;

pub use checkers::{Checker, Evidence, check_all};

pub use history::{History, Operation, Status};
pub use linearizability::{LinearizabilityReport, Options};
pub use model::{ModelKind, Semantics};
pub use verdict::{Validity, Verdict};
