//! What `--target` names, parsed and checked, and what that target can do: the one place a new
//! kind of target is added.
//!
//! [`Target::parse`] turns `bundled:raft`, `local:etcd`, `etcd://h:p,…` or `http://h:p,…` (with
//! `--set` settings) into a [`Target`] before anything starts; its methods say what the target
//! can do — whether faultline starts it, whether it names its leader, takes orders, or keeps
//! notes for a safety checker — from the bundled systems' table ([`crate::systems::SYSTEMS`]).

use std::path::PathBuf;

use crate::cluster::{ClusterSpec, check_spec};
use crate::etcd::{EtcdSettings, EtcdSpec, Network, find_etcd, resolve_network};
use crate::exec::ExecTarget;
use crate::maelstrom::MaelstromTarget;
use crate::mariadb::{MariaSettings, find_binaries};
use crate::postgres::{PgSettings, PgSpec, find_bin_dir};
use crate::systems::{SystemInfo, system_info};

/// Where the operations go.
#[derive(Clone, Debug)]
pub enum Target {
    /// A reference cluster faultline starts.
    Bundled(ClusterSpec),
    /// A faultline KV protocol server at these URLs.
    Http(Vec<String>),
    /// An etcd cluster someone else runs, at these client URLs.
    Etcd(Vec<String>, EtcdSettings),
    /// A real etcd cluster faultline starts (its network resolved).
    LocalEtcd(EtcdSpec),
    /// A PostgreSQL server faultline starts.
    LocalPostgres(PgSpec),
    /// A PostgreSQL server someone else runs, at this URL.
    Postgres(String, PgSettings),
    /// A MariaDB server faultline starts.
    LocalMariadb(MariaSettings),
    /// A MariaDB (or MySQL) server someone else runs, at this URL.
    Mysql(String, MariaSettings),
    /// The user's client program, speaking the exec protocol, for a system anywhere.
    Exec(ExecTarget),
    /// Maelstrom-protocol node binaries faultline starts, with faultline as their network.
    Maelstrom(MaelstromTarget),
}

/// What parsing a target needs besides its text.
#[derive(Clone, Debug)]
pub struct TargetContext {
    /// `--nodes`: how many nodes a cluster faultline starts has (unless the system fixes it).
    pub nodes: u32,
    /// `--etcd-bin`: the etcd binary for `local:etcd`.
    pub etcd_bin: Option<PathBuf>,
    /// The `faultline` executable that runs bundled nodes.
    pub exe: PathBuf,
    /// `--pg-bin`: the directory of PostgreSQL's server binaries for `local:postgres`.
    pub pg_bin: Option<PathBuf>,
    /// `--nodes-addr`: the nodes of the cluster an `exec:` client program talks to.
    pub nodes_addr: Vec<String>,
}

/// A parsed target, and a notice for the user when a choice was made for them.
#[derive(Clone, Debug)]
pub struct Parsed {
    /// The target.
    pub target: Target,
    /// Said once on the terminal (`local:etcd` on loopback without root, ...).
    pub notice: Option<String>,
}

impl Target {
    /// Parses and checks `--target` with its `--set` settings; nothing is started. Errors say
    /// which flag was wrong and what is expected.
    pub fn parse(target: &str, settings: &[String], cx: &TargetContext) -> Result<Parsed, String> {
        let plain = |target| {
            Ok(Parsed {
                target,
                notice: None,
            })
        };
        if let Some(command) = target.strip_prefix("exec:") {
            return plain(Target::Exec(ExecTarget::parse(
                command,
                settings,
                &cx.nodes_addr,
            )?));
        }
        if let Some(command) = target.strip_prefix("maelstrom:") {
            return plain(Target::Maelstrom(MaelstromTarget::parse(
                command, settings, cx.nodes,
            )?));
        }
        if !cx.nodes_addr.is_empty() {
            return Err(format!(
                "--nodes-addr names the nodes of an exec: target; {target} is not one"
            ));
        }
        if let Some(system) = target.strip_prefix("bundled:") {
            return plain(Target::Bundled(bundled(target, system, settings, cx)?));
        }
        if target == "local:etcd" {
            return local_etcd(settings, cx).map_err(|e| format!("{target}: {e}"));
        }
        if target == "local:postgres" {
            let settings = PgSettings::default()
                .apply(settings.iter().map(String::as_str), true)
                .map_err(|e| format!("{target}: {e}"))?;
            find_bin_dir(cx.pg_bin.as_deref()).map_err(|e| format!("{target}: {e}"))?;
            return plain(Target::LocalPostgres(PgSpec {
                bin_dir: cx.pg_bin.clone(),
                settings,
            }));
        }
        if target == "local:mariadb" || target.starts_with("mysql://") {
            let settings = MariaSettings::default()
                .apply(settings.iter().map(String::as_str))
                .map_err(|e| format!("{target}: {e}"))?;
            if target == "local:mariadb" {
                find_binaries().map_err(|e| format!("{target}: {e}"))?;
                return plain(Target::LocalMariadb(settings));
            }
            return plain(Target::Mysql(target.to_string(), settings));
        }
        if target.starts_with("postgres://") || target.starts_with("postgresql://") {
            let settings = PgSettings::default()
                .apply(settings.iter().map(String::as_str), false)
                .map_err(|e| format!("{target}: {e}"))?;
            return plain(Target::Postgres(target.to_string(), settings));
        }
        if let Some(rest) = target.strip_prefix("etcd://") {
            let settings = EtcdSettings::default()
                .apply(settings.iter().map(String::as_str), false)
                .map_err(|e| format!("{target}: {e}"))?;
            return plain(Target::Etcd(host_ports(target, rest, "http")?, settings));
        }
        let https = target.strip_prefix("https://");
        if let Some(rest) = target.strip_prefix("http://").or(https) {
            if !settings.is_empty() {
                return Err(format!(
                    "{target}: settings configure bundled and etcd targets only; this target is a URL"
                ));
            }
            let scheme = if https.is_some() { "https" } else { "http" };
            return plain(Target::Http(host_ports(target, rest, scheme)?));
        }
        Err(format!(
            "--target {target}: expected bundled:quorum, bundled:raft, bundled:saga, bundled:twopc, \
             local:etcd, etcd://host:port[,host:port...], http://host:port[,host:port...], \
             local:postgres, postgres://user:pass@host:port/db, local:mariadb, \
             mysql://user:pass@host:port/db, 'exec:COMMAND ARGS...' or 'maelstrom:COMMAND ARGS...'"
        ))
    }

    /// The bundled system's row, for a bundled target.
    fn system(&self) -> Option<&'static SystemInfo> {
        match self {
            Target::Bundled(spec) => system_info(&spec.system).ok(),
            _ => None,
        }
    }

    /// Whether faultline starts the target itself (and so can break it from inside).
    pub fn started_by_faultline(&self) -> bool {
        matches!(
            self,
            Target::Bundled(_)
                | Target::LocalEtcd(_)
                | Target::LocalPostgres(_)
                | Target::LocalMariadb(_)
                | Target::Maelstrom(_)
        )
    }

    /// Whether faultline can ask the target who leads (for the `leader` partition shape).
    pub fn names_leader(&self) -> bool {
        matches!(self, Target::LocalEtcd(_)) || self.system().is_some_and(|s| s.names_leader)
    }

    /// Whether the target takes checkout orders rather than the KV protocol.
    pub fn takes_orders(&self) -> bool {
        self.system().is_some_and(|s| s.takes_orders)
    }

    /// Whether the target runs transactions (`POST /txn`): a bundled system whose table row
    /// says so, or a URL target (trusted to speak the protocol), or a client program (whose
    /// hello says).
    pub fn runs_transactions(&self) -> bool {
        matches!(
            self,
            Target::Http(_)
                | Target::Exec(_)
                | Target::LocalPostgres(_)
                | Target::Postgres(..)
                | Target::Etcd(..)
                | Target::LocalEtcd(_)
                | Target::LocalMariadb(_)
                | Target::Mysql(..)
                | Target::Maelstrom(_)
        ) || self.system().is_some_and(|s| s.runs_transactions)
    }

    /// Whether the target is a database that runs transactions and nothing else.
    pub fn is_database(&self) -> bool {
        matches!(
            self,
            Target::LocalPostgres(_)
                | Target::Postgres(..)
                | Target::LocalMariadb(_)
                | Target::Mysql(..)
        )
    }

    /// The transactional model the target promises, by the checker's name: a database's
    /// configured isolation level; `None` for targets that promise one per workload.
    pub fn claimed_model(&self) -> Option<&'static str> {
        match self {
            Target::LocalPostgres(spec) => Some(spec.settings.isolation.model()),
            Target::Postgres(_, settings) => Some(settings.isolation.model()),
            Target::LocalMariadb(settings) | Target::Mysql(_, settings) => {
                Some(settings.isolation.model())
            }
            _ => None,
        }
    }

    /// Whether the target's nodes keep notes of their own invariants for a safety checker.
    pub fn writes_notes(&self) -> bool {
        self.system().is_some_and(|s| s.writes_notes)
    }

    /// The network a local etcd cluster runs on, if this is one.
    pub fn etcd_network(&self) -> Option<Network> {
        match self {
            Target::LocalEtcd(spec) => Some(spec.settings.network.unwrap_or(Network::Loopback)),
            _ => None,
        }
    }
}

/// A bundled system's cluster spec, checked; the seed is set when the run's seed is known.
fn bundled(
    target: &str,
    system: &str,
    settings: &[String],
    cx: &TargetContext,
) -> Result<ClusterSpec, String> {
    let info = system_info(system).map_err(|e| format!("{target}: {e}"))?;
    let spec = ClusterSpec {
        system: system.to_string(),
        nodes: info.fixed_nodes.unwrap_or(cx.nodes),
        settings: settings.to_vec(),
        data_dir: None,
        exe: cx.exe.clone(),
        seed: 0,
    };
    check_spec(&spec).map_err(|e| format!("{target}: {e}"))?;
    Ok(spec)
}

/// A local etcd cluster: its settings, a binary that exists, and the network it can have.
fn local_etcd(settings: &[String], cx: &TargetContext) -> Result<Parsed, String> {
    let mut settings = EtcdSettings::default().apply(settings.iter().map(String::as_str), true)?;
    if !(1..=9).contains(&cx.nodes) {
        return Err(format!(
            "--nodes {}: a local etcd cluster has 1 to 9 members",
            cx.nodes
        ));
    }
    find_etcd(cx.etcd_bin.as_deref()).map_err(|e| e.to_string())?;
    let (network, why) = resolve_network(settings.network)?;
    settings.network = Some(network);
    let notice = why.map(|why| {
        format!(
            "local:etcd on loopback ({why}): no partitions; kill, pause and packet faults \
             (through proxies) still work"
        )
    });
    Ok(Parsed {
        target: Target::LocalEtcd(EtcdSpec {
            nodes: cx.nodes,
            bin: cx.etcd_bin.clone(),
            data_dir: None,
            settings,
        }),
        notice,
    })
}

/// `scheme://host:port` for each comma-separated `host:port` of a URL target.
fn host_ports(target: &str, list: &str, scheme: &str) -> Result<Vec<String>, String> {
    let urls: Vec<String> = list
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|hp| {
            let hp = hp
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .trim_start_matches("etcd://");
            format!("{scheme}://{}", hp.trim_end_matches('/'))
        })
        .collect();
    if urls.is_empty() {
        return Err(format!("--target {target}: no host:port"));
    }
    Ok(urls)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> TargetContext {
        TargetContext {
            nodes: 5,
            etcd_bin: None,
            exe: PathBuf::from("faultline"),
            pg_bin: None,
            nodes_addr: Vec::new(),
        }
    }

    #[test]
    fn the_systems_table_says_what_each_target_can_do() {
        let parse = |t: &str| Target::parse(t, &[], &cx()).unwrap().target;
        let raft = parse("bundled:raft");
        assert!(raft.started_by_faultline() && raft.names_leader() && raft.writes_notes());
        assert!(!raft.takes_orders());
        let saga = parse("bundled:saga");
        assert!(saga.takes_orders() && !saga.names_leader());
        let Target::Bundled(spec) = &saga else {
            panic!("bundled")
        };
        assert_eq!(
            spec.nodes, 4,
            "a checkout is four nodes whatever --nodes says"
        );
        let url = parse("http://a:1,b:2/");
        assert!(!url.started_by_faultline() && !url.names_leader());
        let Target::Http(urls) = url else { panic!() };
        assert_eq!(urls, ["http://a:1", "http://b:2"]);
    }

    #[test]
    fn bad_targets_are_explained() {
        let err = |t: &str, s: &[&str]| {
            let settings: Vec<String> = s.iter().map(|s| s.to_string()).collect();
            Target::parse(t, &settings, &cx()).unwrap_err()
        };
        assert!(err("bundled:paxos", &[]).contains("bundled systems: quorum, raft, saga, twopc"));
        assert!(err("http://h:1", &["w=2"]).contains("settings configure bundled"));
        assert!(err("ftp://h", &[]).contains("expected bundled:quorum"));
        assert!(err("etcd://", &[]).contains("no host:port"));
    }
}
