//! faultline's workloads and runner: what operations to send, and the loop that sends them
//! from concurrent clients and records every event into `history.jsonl`.
//!
//! This crate never decides a verdict (that is `faultline-checker`'s job) and never starts a
//! target (the caller hands it a [`faultline_targets::client::Client`]).
//!
//! # Brief overview
//!
//! - [`Workload`] names the operations (`register`, `cas`, `set`) and the checkers that judge them;
//!   [`Generator`] produces its operations from a seeded RNG.
//! - [`Recorder`] appends events to the history as they happen, flushing at least every 100 ms.
//! - [`run`] drives `clients` concurrent clients at `rate` for a time or an operation count.
//! - [`checkout`] places orders on a checkout system and gathers the saga checker's facts.

pub mod checkout;
mod generator;
mod recorder;
mod runner;
mod txn;

pub use generator::{Generator, Workload, WorkloadOp};
pub use recorder::{Counts, EventLine, Recorder, Who};
pub use runner::{RunConfig, RunSummary, final_reads, final_whole_reads, run};
pub use txn::TxnShape;
