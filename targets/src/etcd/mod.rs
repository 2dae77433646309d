//! Real etcd as a target: the `etcd://` adapter over etcd's v3 JSON gateway ([`EtcdClient`]),
//! and `local:etcd`, a real etcd cluster faultline starts itself ([`EtcdCluster`]), in network
//! namespaces when it runs as root ([`netns`]).

mod client;
mod local;
pub mod netns;

pub use client::{EtcdClient, completion, request};
pub use local::{EtcdCluster, EtcdSpec, Network, find_etcd, resolve_network, wait_serving};

use serde::Serialize;

/// Settings of an etcd target (`--set serializable=true,election-ms=500,...`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EtcdSettings {
    /// Reads with etcd's serializable mode (served locally, possibly stale).
    pub serializable: bool,
    /// etcd's `--election-timeout`, in milliseconds (local clusters).
    pub election_ms: u64,
    /// etcd's `--heartbeat-interval`, in milliseconds (local clusters).
    pub heartbeat_ms: u64,
    /// How local members reach each other; `None` picks namespaces when they work.
    #[serde(serialize_with = "network_name")]
    pub network: Option<Network>,
}

fn network_name<S: serde::Serializer>(n: &Option<Network>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(n.map_or("auto", Network::name))
}

impl Default for EtcdSettings {
    fn default() -> Self {
        EtcdSettings {
            serializable: false,
            election_ms: 500,
            heartbeat_ms: 50,
            network: None,
        }
    }
}

impl EtcdSettings {
    /// The keys a local etcd cluster accepts.
    pub const LOCAL_KEYS: &'static str = "serializable (true|false, default false), election-ms \
        (100..=10000, default 500), heartbeat-ms (10..=election-ms/5, default 50), network \
        (auto|netns|loopback, default auto: netns when root)";
    /// The keys an `etcd://` target accepts.
    pub const REMOTE_KEYS: &'static str = "serializable (true|false, default false)";

    /// Applies `key=value` pairs; `local` allows the keys of a cluster faultline starts.
    pub fn apply<'a>(
        mut self,
        pairs: impl IntoIterator<Item = &'a str>,
        local: bool,
    ) -> Result<Self, String> {
        let keys = if local {
            Self::LOCAL_KEYS
        } else {
            Self::REMOTE_KEYS
        };
        for (key, value) in crate::systems::key_values(pairs, keys)? {
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("{key}={value}: expected a whole number"))
            };
            match key {
                "serializable" => {
                    self.serializable = match value {
                        "true" => true,
                        "false" => false,
                        _ => return Err(format!("serializable={value}: expected true or false")),
                    }
                }
                "election-ms" if local => self.election_ms = number()?,
                "heartbeat-ms" if local => self.heartbeat_ms = number()?,
                "network" if local => {
                    self.network = match value {
                        "auto" => None,
                        "netns" => Some(Network::Namespaces),
                        "loopback" => Some(Network::Loopback),
                        _ => {
                            return Err(format!(
                                "network={value}: expected auto, netns or loopback"
                            ));
                        }
                    }
                }
                other => {
                    return Err(format!(
                        "unknown setting `{other}` for this etcd target; valid keys: {keys}"
                    ));
                }
            }
        }
        if !(100..=10_000).contains(&self.election_ms) {
            return Err(format!(
                "election-ms={} must be between 100 and 10000",
                self.election_ms
            ));
        }
        if !(10..=self.election_ms / 5).contains(&self.heartbeat_ms) {
            return Err(format!(
                "heartbeat-ms={} must be between 10 and election-ms/5 ({}), as etcd requires",
                self.heartbeat_ms,
                self.election_ms / 5
            ));
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_and_refuse_what_does_not_apply() {
        let s = EtcdSettings::default()
            .apply(
                ["serializable=true,election-ms=1000", "network=loopback"],
                true,
            )
            .unwrap();
        assert!(s.serializable);
        assert_eq!(s.election_ms, 1000);
        assert_eq!(s.network, Some(Network::Loopback));
        let remote = EtcdSettings::default().apply(["election-ms=1000"], false);
        assert!(remote.unwrap_err().contains("valid keys: serializable"));
        let bad = EtcdSettings::default().apply(["heartbeat-ms=200"], true);
        assert!(bad.unwrap_err().contains("election-ms/5"));
        let bad = EtcdSettings::default().apply(["serializable=maybe"], true);
        assert!(bad.unwrap_err().contains("true or false"));
    }
}
