//! The bundled reference systems, each a node state machine with no I/O (DESIGN §4.1).
//!
//! A node receives inputs (a client request, a peer message, a tick) with the time read by its
//! runtime, and returns [`Output`]s: messages to send, replies to give, records to persist. It
//! never reads a clock, opens a socket or touches a file; the process runtime in
//! `faultline-targets` does all of that, so the same node code runs in unit tests, under a
//! simulated network, and as a real process.
//!
//! This crate depends on no async runtime, network or clock, and its `clippy.toml` forbids
//! `Instant::now`, `SystemTime::now`, sleeping and unseeded randomness: whatever a node does
//! is a function of its inputs, its settings and its seed.

pub mod checkout;
pub mod faults;
pub mod kv;
pub mod orders;
pub mod quorum;
pub mod raft;
pub mod saga;
pub mod sim;
pub mod twopc;

pub use kv::{ClientReply, ClientRequest, NodeId, Now, RequestId, TxnState, run_txn};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Splits `--set` strings (each may hold several `key=value` pairs, comma-separated) into
/// trimmed pairs; `keys` describes the valid keys for the error.
pub fn key_values<'a>(
    pairs: impl IntoIterator<Item = &'a str>,
    keys: &str,
) -> Result<Vec<(&'a str, &'a str)>, String> {
    pairs
        .into_iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or_else(|| format!("`{pair}` is not key=value; valid keys: {keys}"))
        })
        .collect()
}

/// What a bundled system is and can do, as the harness needs to know it: one row of
/// [`SYSTEMS`]. Adding a system is a row here and a [`SystemSettings`] variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SystemInfo {
    /// Its name in `bundled:NAME` and `--system NAME`.
    pub name: &'static str,
    /// Its node count when the system fixes it (a checkout is a coordinator and three
    /// services); `None` takes `--nodes`.
    pub fixed_nodes: Option<u32>,
    /// Whether it can tell the harness which node leads (for the `leader` partition shape).
    pub names_leader: bool,
    /// Whether it takes checkout orders (`POST /orders`) rather than the KV protocol.
    pub takes_orders: bool,
    /// Whether it runs transactions (`POST /txn`).
    pub runs_transactions: bool,
    /// Whether its nodes write notes of their own invariants (who led, what was applied) for
    /// a checker of the system's own safety.
    pub writes_notes: bool,
    /// The kinds of its nodes' messages (what `--crash-points send:KIND` can name).
    pub message_kinds: &'static [&'static str],
    /// The kinds of its nodes' log records (what `--crash-points persist:KIND` can name).
    pub record_kinds: &'static [&'static str],
}

/// Every bundled system.
pub const SYSTEMS: &[SystemInfo] = &[
    SystemInfo {
        name: "quorum",
        runs_transactions: true,
        message_kinds: <quorum::Message as Kinded>::KINDS,
        record_kinds: <quorum::Record as Kinded>::KINDS,
        fixed_nodes: None,
        names_leader: false,
        takes_orders: false,
        writes_notes: false,
    },
    SystemInfo {
        name: "raft",
        runs_transactions: true,
        message_kinds: <raft::Message as Kinded>::KINDS,
        record_kinds: <raft::Record as Kinded>::KINDS,
        fixed_nodes: None,
        names_leader: true,
        takes_orders: false,
        writes_notes: true,
    },
    SystemInfo {
        name: "saga",
        runs_transactions: false,
        message_kinds: <saga::Message as Kinded>::KINDS,
        record_kinds: <saga::Record as Kinded>::KINDS,
        fixed_nodes: Some(4),
        names_leader: false,
        takes_orders: true,
        writes_notes: false,
    },
    SystemInfo {
        name: "twopc",
        runs_transactions: false,
        message_kinds: <twopc::Message as Kinded>::KINDS,
        record_kinds: <twopc::Record as Kinded>::KINDS,
        fixed_nodes: Some(4),
        names_leader: false,
        takes_orders: true,
        writes_notes: false,
    },
];

/// The row of the system called `name`, or an error that lists the bundled systems.
pub fn system_info(name: &str) -> Result<&'static SystemInfo, String> {
    SYSTEMS.iter().find(|s| s.name == name).ok_or_else(|| {
        let names: Vec<&str> = SYSTEMS.iter().map(|s| s.name).collect();
        format!(
            "unknown system `{name}`; bundled systems: {}",
            names.join(", ")
        )
    })
}

/// The resolved settings of a bundled system.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum SystemSettings {
    /// The quorum store's.
    Quorum(quorum::Settings),
    /// Raft's.
    Raft(raft::Settings),
    /// The saga checkout's.
    Saga(saga::Settings),
    /// The two-phase commit checkout's (the same settings).
    TwoPc(saga::Settings),
}

impl SystemSettings {
    /// Parses `key=value` pairs for `system` on a cluster of `nodes`, checking them.
    pub fn parse<'a>(
        system: &str,
        nodes: u32,
        pairs: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, String> {
        match system {
            "quorum" => quorum::Settings::new(nodes)
                .apply(pairs)
                .map(SystemSettings::Quorum),
            "raft" => raft::Settings::new(nodes)
                .apply(pairs)
                .map(SystemSettings::Raft),
            "saga" => saga::Settings::new(system)
                .apply(pairs)
                .map(SystemSettings::Saga),
            "twopc" => saga::Settings::new(system)
                .apply(pairs)
                .map(SystemSettings::TwoPc),
            other => Err(system_info(other)
                .err()
                .unwrap_or_else(|| format!("no settings for the system `{other}`"))),
        }
    }

    /// The system's name.
    pub fn system(&self) -> &'static str {
        match self {
            SystemSettings::Quorum(_) => "quorum",
            SystemSettings::Raft(_) => "raft",
            SystemSettings::Saga(_) => "saga",
            SystemSettings::TwoPc(_) => "twopc",
        }
    }

    /// The quorum store's settings, if this is one.
    pub fn quorum(&self) -> Option<&quorum::Settings> {
        match self {
            SystemSettings::Quorum(s) => Some(s),
            SystemSettings::Raft(_) | SystemSettings::Saga(_) | SystemSettings::TwoPc(_) => None,
        }
    }
}

impl std::fmt::Display for SystemSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SystemSettings::Quorum(s) => s.fmt(f),
            SystemSettings::Raft(s) => s.fmt(f),
            SystemSettings::Saga(s) | SystemSettings::TwoPc(s) => s.fmt(f),
        }
    }
}

/// What a node asks its runtime to do. Outputs are drained in order, and the order is the
/// contract: a `Persist` must be durable before any later `Send` or `Reply` leaves the node.
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub enum Output<M, R> {
    /// Send `msg` to peer `to`.
    Send {
        /// The destination node.
        to: NodeId,
        /// The message.
        msg: M,
    },
    /// Answer client request `id`.
    Reply {
        /// The request being answered.
        id: RequestId,
        /// The answer.
        reply: ClientReply,
    },
    /// Write `record` to durable storage (and sync it) before acting on later outputs.
    Persist(R),
    /// A fact for the harness's checks of the system's own invariants (who led which term,
    /// what was applied where): appended, unsynced, to the node's notes file. Not state; a
    /// node never reads it back.
    Note(serde_json::Value),
}

/// A message or record that names its kind — what crash points match (`send:VoteGranted`,
/// `persist:Entries`), whatever its serialised form.
pub trait Kinded {
    /// Every kind there is, for checking `--crash-points` and for help.
    const KINDS: &'static [&'static str];
    /// This value's kind, one of [`Kinded::KINDS`].
    fn kind(&self) -> &'static str;
}

/// Implements [`Kinded`] for an enum whose kinds are its variants' names; the match is
/// exhaustive, so a new variant must be listed.
macro_rules! kinded {
    ($ty:ty { $($variant:ident),* $(,)? }) => {
        impl $crate::Kinded for $ty {
            const KINDS: &'static [&'static str] = &[$(stringify!($variant)),*];
            fn kind(&self) -> &'static str {
                match self {
                    $(Self::$variant { .. } => stringify!($variant),)*
                }
            }
        }
    };
}
pub(crate) use kinded;

/// The variant name serde gives `value` (`{"VoteGranted":…}` or `"Ping"`): test harnesses
/// check that every kind a node sends or logs is the name its serialised form carries.
#[cfg(test)]
pub(crate) fn serde_variant(value: &impl Serialize) -> String {
    match serde_json::to_value(value).expect("messages serialise") {
        serde_json::Value::String(name) => name,
        serde_json::Value::Object(map) if map.len() == 1 => map.keys().next().unwrap().clone(),
        other => panic!("not an enum variant: {other}"),
    }
}

/// A reference-system node as its runtime drives it.
pub trait Node: Send + 'static {
    /// Messages between nodes.
    type Message: Serialize + DeserializeOwned + Kinded + Clone + Send + std::fmt::Debug + 'static;
    /// Records of durable state; a node restarted on its records recovers what it persisted.
    type Record: Serialize + DeserializeOwned + Kinded + Clone + Send + 'static;

    /// A client request arrived.
    fn handle_client(&mut self, now: Now, id: RequestId, request: ClientRequest);
    /// An order request arrived (`POST /orders`, `GET /orders/{id}`); `Some` answers at once,
    /// `None` means a reply will come out of [`Node::poll_output`]. Key-value systems refuse.
    fn handle_order(
        &mut self,
        now: Now,
        id: RequestId,
        request: orders::OrderRequest,
    ) -> Option<ClientReply> {
        let _ = (now, id, request);
        Some(ClientReply::Refused(
            "this system speaks the KV protocol; it takes no orders".into(),
        ))
    }
    /// A peer's message arrived.
    fn handle_peer(&mut self, now: Now, from: NodeId, msg: Self::Message);
    /// Time passed: the node acts on every deadline that has come. The runtime calls it when
    /// the deadline [`Node::poll_timeout`] gave passes (earlier or more often is harmless:
    /// nothing happens before a deadline).
    fn handle_tick(&mut self, now: Now);
    /// The next deadline, in milliseconds of the monotonic clock (`Now::mono_ms`), at which
    /// [`Node::handle_tick`] must be called; `None` when no timer is armed. Asked after every
    /// input, so a runtime (or a simulator) sleeps until then instead of polling.
    fn poll_timeout(&self) -> Option<u64>;
    /// The next thing to do, until `None`.
    fn poll_output(&mut self) -> Option<Output<Self::Message, Self::Record>>;
    /// The node's state for `GET /admin/state`.
    fn describe(&self) -> serde_json::Value;
    /// What this node itself holds for `key` (for `GET /admin/state?key=`).
    fn describe_key(&self, key: &str) -> serde_json::Value;
}
