//! faultline's nemesis (DESIGN §6): the faults, the seeded schedule that decides them, and the
//! backends that apply them.
//!
//! Deciding is pure and deterministic ([`Schedule`] from a seed gives [`Fault`]s with every
//! node chosen); applying is I/O, in a [`Backend`]. [`run`] alternates faults and heals until
//! told to stop, reports every event to a callback (which records it in the history), and
//! leaves the active fault healed.
//!
//! # Brief overview
//!
//! - [`Kind`], [`Shape`], [`Fault`]: the vocabulary.
//! - [`Schedule`]: seed → wait, fault, hold, heal, and again.
//! - [`BundledBackend`]: faultline's reference clusters (admin endpoint and signals).
//! - [`LocalEtcdBackend`]: a local etcd cluster (namespaces and nftables, proxies, signals).
//! - [`ServerBackend`]: a local database server, PostgreSQL or MariaDB (signals).
//! - [`ProxyBackend`]: TCP proxies in front of a URL target's nodes (packet faults).
//! - [`SimBackend`]: a bundled system in the simulator, in virtual time.
//! - [`MaelstromBackend`]: Maelstrom-protocol nodes, with faultline as their network.
//! - [`SshBackend`]: a cluster on other machines, through nftables and lifecycle commands
//!   over ssh (a cluster file).
//! - [`CommandBackend`]: the user's own shell commands, for clusters on other machines.
//! - [`AnyBackend`]: whichever of these a run uses.

mod bundled;
mod command;
mod desired;
mod fault;
mod local_etcd;
mod maelstrom;
mod processes;
mod proxy;
mod schedule;
mod server;
mod sim;
mod ssh;
mod strobe;

pub use bundled::BundledBackend;
pub use command::{CommandBackend, ENVIRONMENT};
pub use fault::{ClockMode, Fault, Kind, NodeId, Shape, name};
pub use local_etcd::LocalEtcdBackend;
pub use maelstrom::{MaelstromBackend, SharedCluster};
pub use proxy::ProxyBackend;
pub use schedule::{PlannedStep, Schedule, ScheduleFile, Step};
pub use server::{LocalMariadbBackend, LocalPostgresBackend, LocalServer, ServerBackend};
pub use sim::SimBackend;
pub use ssh::SshBackend;

use std::future::Future;

/// Why only bundled targets take crash faults.
const CRASH_NEEDS_BUNDLED: &str = "crash points need faultline's own node runtime: only \
    bundled targets can crash right after a log write or a message";

use serde_json::{Value, json};
use tokio::sync::watch;

/// Applies faults to a target and heals them.
pub trait Backend: Send {
    /// The kinds it cannot apply, each with the reason (checked before a run starts).
    fn unsupported(&self, kinds: &[Kind]) -> Vec<(Kind, String)>;
    /// Starts `fault`; returns it as applied (choices the backend made or could not honour
    /// are resolved in it).
    fn apply(&mut self, fault: &Fault) -> impl Future<Output = Result<Fault, String>> + Send;
    /// Heals `fault`.
    fn heal(&mut self, fault: &Fault) -> impl Future<Output = Result<(), String>> + Send;
    /// Heals everything it ever started. Idempotent.
    fn heal_all(&mut self) -> impl Future<Output = Result<(), String>> + Send;
}

/// One of the backends, chosen at run time.
pub enum AnyBackend {
    /// Faultline's reference clusters.
    Bundled(BundledBackend),
    /// A local etcd cluster.
    LocalEtcd(LocalEtcdBackend),
    /// A local PostgreSQL server.
    LocalPostgres(LocalPostgresBackend),
    /// A local MariaDB server.
    LocalMariadb(LocalMariadbBackend),
    /// Proxies in front of a URL target.
    Proxy(ProxyBackend),
    /// The user's commands (packet faults through proxies when no packet command is given).
    Command(CommandBackend, Option<ProxyBackend>),
    /// Maelstrom nodes and the router between them.
    Maelstrom(MaelstromBackend),
    /// A cluster on other machines, over ssh.
    Ssh(Box<SshBackend>),
    /// A simulated bundled cluster.
    Sim(SimBackend),
}

impl Backend for AnyBackend {
    fn unsupported(&self, kinds: &[Kind]) -> Vec<(Kind, String)> {
        match self {
            AnyBackend::Bundled(b) => b.unsupported(kinds),
            AnyBackend::LocalEtcd(b) => b.unsupported(kinds),
            AnyBackend::LocalPostgres(b) => b.unsupported(kinds),
            AnyBackend::LocalMariadb(b) => b.unsupported(kinds),
            AnyBackend::Proxy(b) => b.unsupported(kinds),
            AnyBackend::Maelstrom(b) => b.unsupported(kinds),
            AnyBackend::Ssh(b) => b.unsupported(kinds),
            AnyBackend::Sim(b) => b.unsupported(kinds),
            AnyBackend::Command(b, proxies) => b
                .unsupported(kinds)
                .into_iter()
                .filter(|(k, _)| !(*k == Kind::Packet && proxies.is_some()))
                .collect(),
        }
    }

    async fn apply(&mut self, fault: &Fault) -> Result<Fault, String> {
        match self {
            AnyBackend::Bundled(b) => b.apply(fault).await,
            AnyBackend::LocalEtcd(b) => b.apply(fault).await,
            AnyBackend::LocalPostgres(b) => b.apply(fault).await,
            AnyBackend::LocalMariadb(b) => b.apply(fault).await,
            AnyBackend::Proxy(b) => b.apply(fault).await,
            AnyBackend::Maelstrom(b) => b.apply(fault).await,
            AnyBackend::Ssh(b) => b.apply(fault).await,
            AnyBackend::Sim(b) => b.apply(fault).await,
            AnyBackend::Command(b, Some(p)) if !b.handles(fault.kind()) => p.apply(fault).await,
            AnyBackend::Command(b, _) => b.apply(fault).await,
        }
    }

    async fn heal(&mut self, fault: &Fault) -> Result<(), String> {
        match self {
            AnyBackend::Bundled(b) => b.heal(fault).await,
            AnyBackend::LocalEtcd(b) => b.heal(fault).await,
            AnyBackend::LocalPostgres(b) => b.heal(fault).await,
            AnyBackend::LocalMariadb(b) => b.heal(fault).await,
            AnyBackend::Proxy(b) => b.heal(fault).await,
            AnyBackend::Maelstrom(b) => b.heal(fault).await,
            AnyBackend::Ssh(b) => b.heal(fault).await,
            AnyBackend::Sim(b) => b.heal(fault).await,
            AnyBackend::Command(b, Some(p)) if !b.handles(fault.kind()) => p.heal(fault).await,
            AnyBackend::Command(b, _) => b.heal(fault).await,
        }
    }

    async fn heal_all(&mut self) -> Result<(), String> {
        match self {
            AnyBackend::Bundled(b) => b.heal_all().await,
            AnyBackend::LocalEtcd(b) => b.heal_all().await,
            AnyBackend::LocalPostgres(b) => b.heal_all().await,
            AnyBackend::LocalMariadb(b) => b.heal_all().await,
            AnyBackend::Proxy(b) => b.heal_all().await,
            AnyBackend::Maelstrom(b) => b.heal_all().await,
            AnyBackend::Ssh(b) => b.heal_all().await,
            AnyBackend::Sim(b) => b.heal_all().await,
            AnyBackend::Command(b, proxies) => {
                let commands = b.heal_all().await;
                if let Some(p) = proxies {
                    p.heal_all().await?;
                }
                commands
            }
        }
    }
}

/// Asks `leader` who leads every 100 ms for up to 5 s: nobody does during an election.
async fn until_someone_leads<F, Fut>(mut leader: F) -> Option<NodeId>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<NodeId>>,
{
    for _ in 0..50 {
        if let Some(node) = leader().await {
            return Some(node);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    None
}

/// The node named most often among `named` (one name per node that answered), if any.
fn most_named(named: impl IntoIterator<Item = NodeId>, nodes: usize) -> Option<NodeId> {
    let mut votes = vec![0usize; nodes];
    for node in named {
        votes[node as usize] += 1;
    }
    let (best, count) = votes.iter().enumerate().max_by_key(|(_, c)| **c)?;
    (*count > 0).then_some(best as NodeId)
}

/// A `leader` partition whose leader is not chosen yet, resolved: asks `leader` who leads
/// (for up to 5 s) and cuts that node off — or nobody, if no node leads all that time (the
/// cluster is between leaders; there is no leader to isolate). `None` for any other fault.
async fn resolve_leader<F, Fut>(fault: &Fault, nodes: usize, leader: F) -> Option<Fault>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<NodeId>>,
{
    match fault {
        Fault::Partition {
            shape: Shape::Leader,
            groups,
            ..
        } if groups.is_empty() => Some(match until_someone_leads(leader).await {
            Some(alone) => Fault::leader_cut_off(alone, nodes),
            None => Fault::no_leader_to_cut_off(),
        }),
        _ => None,
    }
}

/// Sleeps for `d`, or until `stop` fires; returns whether it fired.
async fn sleep_or_stop(d: std::time::Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        biased;
        _ = tokio::time::sleep(d) => false,
        r = stop.wait_for(|s| *s) => r.is_ok(),
    }
}

/// Runs the schedule against the backend until `stop` fires, reporting each event as
/// (fault kind, what was done); the fault active at the stop is healed before returning.
/// A fault that cannot be applied or healed is reported too (`"action": "error"`) and ends
/// the nemesis with that error.
pub async fn run<B: Backend>(
    schedule: &mut Schedule,
    backend: &mut B,
    mut report: impl FnMut(&str, Value),
    mut stop: watch::Receiver<bool>,
) -> Result<(), String> {
    loop {
        let Some(step) = schedule.upcoming() else {
            // A replayed schedule is over: no more faults until the stop.
            let _ = stop.wait_for(|s| *s).await;
            return Ok(());
        };
        if sleep_or_stop(step.wait, &mut stop).await {
            return Ok(());
        }
        let kind = step.fault.kind().name();
        let fault = match backend.apply(&step.fault).await {
            Ok(fault) => fault,
            Err(e) => {
                report(
                    kind,
                    json!({"action": "error", "during": "start", "error": e}),
                );
                return Err(e);
            }
        };
        report(kind, fault.describe());
        let stopped = sleep_or_stop(step.hold, &mut stop).await;
        if let Err(e) = backend.heal(&fault).await {
            report(
                kind,
                json!({"action": "error", "during": "heal", "error": e}),
            );
            return Err(e);
        }
        report(kind, fault.describe_heal());
        if stopped {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leader_is_the_node_most_name() {
        assert_eq!(most_named([2, 2, 1], 3), Some(2));
        assert_eq!(most_named([], 3), None);
    }

    #[tokio::test]
    async fn a_leader_partition_cuts_off_who_leads() {
        let leader = Fault::Partition {
            shape: Shape::Leader,
            one_way: false,
            groups: Vec::new(),
            cuts: Vec::new(),
        };
        let resolved = resolve_leader(&leader, 3, || async { Some(1) }).await;
        assert_eq!(resolved, Some(Fault::leader_cut_off(1, 3)));
        let kill = Fault::Kill { nodes: vec![0] };
        assert_eq!(resolve_leader(&kill, 3, || async { Some(1) }).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn with_no_leader_for_5_s_a_leader_partition_cuts_nobody_off() {
        let leader = Fault::Partition {
            shape: Shape::Leader,
            one_way: false,
            groups: Vec::new(),
            cuts: Vec::new(),
        };
        let nobody = resolve_leader(&leader, 3, || async { None }).await.unwrap();
        let Fault::Partition { groups, cuts, .. } = &nobody else {
            panic!("{nobody:?}")
        };
        assert!(groups.is_empty() && cuts.is_empty());
        assert_eq!(nobody.describe()["cut_off"], "nobody: no node led for 5 s");
    }
}
