//! faultline's nemesis (DESIGN §6): the faults, the seeded schedule that decides them, and the
//! backend that applies them to a bundled cluster.
//!
//! Deciding is pure and deterministic ([`Schedule`] from a seed gives [`Fault`]s with every
//! node chosen); applying is I/O ([`BundledBackend`]: the nodes' admin endpoint and signals).
//! [`run`] alternates faults and heals until told to stop, reports every event to a callback
//! (which records it in the history), and leaves the active fault healed.
//!
//! # Brief overview
//!
//! - [`Kind`], [`Shape`], [`Fault`]: the vocabulary.
//! - [`Schedule`]: seed → wait, fault, hold, heal, and again.
//! - [`BundledBackend`]: applies and heals faults on a [`faultline_targets::cluster::Cluster`];
//!   [`BundledBackend::heal_all`] leaves no node partitioned, skewed, degraded, paused or dead.

mod bundled;
mod fault;
mod schedule;

pub use bundled::BundledBackend;
pub use fault::{ClockMode, Fault, Kind, NodeId, Shape, name};
pub use schedule::{Schedule, Step};

use serde_json::Value;
use tokio::sync::watch;

/// Sleeps for `d`, or until `stop` fires; returns whether it fired.
async fn sleep_or_stop(d: std::time::Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        r = stop.wait_for(|s| *s) => r.is_ok(),
    }
}

/// Runs the schedule against the backend until `stop` fires, reporting each event as
/// (fault kind, what was done); the fault active at the stop is healed before returning.
pub async fn run(
    schedule: &mut Schedule,
    backend: &mut BundledBackend,
    mut report: impl FnMut(&str, Value),
    mut stop: watch::Receiver<bool>,
) -> Result<(), String> {
    loop {
        let step = schedule.next_step();
        if sleep_or_stop(step.wait, &mut stop).await {
            return Ok(());
        }
        let fault = backend.apply(&step.fault).await?;
        report(fault.kind().name(), fault.describe());
        let stopped = sleep_or_stop(step.hold, &mut stop).await;
        backend.heal(&fault).await?;
        report(fault.kind().name(), fault.describe_heal());
        if stopped {
            return Ok(());
        }
    }
}
