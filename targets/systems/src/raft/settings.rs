//! The Raft system's settings (`--set election-ms=...,bug=...`).

use serde::{Deserialize, Serialize};

/// A planted bug (all off by default): each a bug class found in real systems.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    /// Any node serves reads from its local state.
    StaleRead,
    /// The leader serves reads without confirming it still leads (etcd, Consul).
    NoReadIndex,
    /// The vote is not persisted: a restarted node can vote twice in one term.
    ForgetVote,
    /// The leader counts an entry committed before a majority has it.
    EarlyCommit,
    /// Entries of older terms are committed by counting replicas (Figure 8 of the paper).
    NoTermCheck,
}

impl Bug {
    /// Every bug, by name.
    pub const ALL: [(&'static str, Bug); 5] = [
        ("stale-read", Bug::StaleRead),
        ("no-read-index", Bug::NoReadIndex),
        ("forget-vote", Bug::ForgetVote),
        ("early-commit", Bug::EarlyCommit),
        ("no-term-check", Bug::NoTermCheck),
    ];
}

/// Every setting of a Raft cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Nodes in the cluster.
    pub nodes: u32,
    /// The shortest election timeout, in milliseconds; each timeout is random in [e, 2e).
    pub election_ms: u64,
    /// How often a leader sends heartbeats, in milliseconds.
    pub heartbeat_ms: u64,
    /// How long a client request may wait for commit before a 504, in milliseconds.
    pub timeout_ms: u64,
    /// Pre-vote and leader stickiness: a node asks whether it could win before it raises
    /// its term, and nodes that hear from a leader grant no votes.
    #[serde(default)]
    pub pre_vote: bool,
    /// The network's one-way latency between nodes, in milliseconds (a cluster spread over
    /// regions).
    #[serde(default)]
    pub link_ms: u64,
    /// The planted bug, if any.
    pub bug: Option<Bug>,
}

impl Settings {
    /// The defaults for a cluster of `nodes` nodes.
    pub fn new(nodes: u32) -> Self {
        Settings {
            nodes,
            election_ms: 300,
            heartbeat_ms: 50,
            timeout_ms: 1000,
            pre_vote: false,
            link_ms: 0,
            bug: None,
        }
    }

    /// The keys `--set` accepts.
    pub const KEYS: &'static str = "election-ms (50..=10000, default 300), heartbeat-ms \
        (10..=election-ms/2, default 50), timeout-ms (100..=60000, default 1000), pre-vote \
        (true|false, default false), link-ms (0..=5000, default 0), bug (stale-read|no-read-index|forget-vote|early-commit|no-term-check)";

    /// Applies `key=value` pairs, then checks the result.
    pub fn apply<'a>(mut self, pairs: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        for (key, value) in crate::key_values(pairs, Self::KEYS)? {
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("{key}={value}: expected a whole number"))
            };
            match key {
                "election-ms" => self.election_ms = number()?,
                "heartbeat-ms" => self.heartbeat_ms = number()?,
                "timeout-ms" => self.timeout_ms = number()?,
                "link-ms" => self.link_ms = number()?,
                "pre-vote" => {
                    self.pre_vote = value
                        .parse()
                        .map_err(|_| format!("pre-vote={value}: expected true or false"))?
                }
                "bug" => {
                    self.bug = Some(
                        Bug::ALL
                            .iter()
                            .find(|(name, _)| *name == value)
                            .map(|(_, b)| *b)
                            .ok_or_else(|| {
                                format!("bug={value}: expected one of {}", Self::KEYS)
                            })?,
                    )
                }
                other => {
                    return Err(format!(
                        "unknown setting `{other}` for raft; valid keys: {}",
                        Self::KEYS
                    ));
                }
            }
        }
        self.validate()?;
        Ok(self)
    }

    fn validate(&self) -> Result<(), String> {
        if self.nodes == 0 {
            return Err("a cluster needs at least 1 node".into());
        }
        if !(50..=10_000).contains(&self.election_ms) {
            return Err(format!(
                "election-ms={} must be between 50 and 10000",
                self.election_ms
            ));
        }
        if !(10..=self.election_ms / 2).contains(&self.heartbeat_ms) {
            return Err(format!(
                "heartbeat-ms={} must be between 10 and election-ms/2 ({})",
                self.heartbeat_ms,
                self.election_ms / 2
            ));
        }
        if self.link_ms > 5_000 {
            return Err(format!("link-ms={} must be at most 5000", self.link_ms));
        }
        if !(100..=60_000).contains(&self.timeout_ms) {
            return Err(format!(
                "timeout-ms={} must be between 100 and 60000",
                self.timeout_ms
            ));
        }
        Ok(())
    }
}

impl std::fmt::Display for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bug = self
            .bug
            .and_then(|b| Bug::ALL.iter().find(|(_, x)| *x == b).map(|(n, _)| *n))
            .unwrap_or("none");
        write!(
            f,
            "election-ms={} heartbeat-ms={} timeout-ms={} pre-vote={} link-ms={} bug={bug}",
            self.election_ms, self.heartbeat_ms, self.timeout_ms, self.pre_vote, self.link_ms
        )
    }
}
