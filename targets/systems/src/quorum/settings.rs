//! The quorum system's settings (`--set n=3,r=2,w=2,...`), with defaults, parsing and the
//! checks that refuse impossible combinations before anything starts.

use serde::{Deserialize, Serialize};

/// How replicas choose between versions of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resolution {
    /// Last writer wins, by the coordinator's wall clock (which clock skew breaks).
    Lww,
    /// Vector clocks: concurrent versions are kept as siblings.
    Vclock,
}

/// What a read does about replicas that answered with older versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadRepair {
    /// Nothing.
    Off,
    /// Sends them the newest version after answering.
    Async,
    /// Sends them the newest version and waits for their acks before answering.
    Blocking,
}

/// The protocol reads and writes follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Dynamo: write to N and wait for W, read R and return the newest.
    Dynamo,
    /// Multi-writer ABD: a write first reads the highest tag from R replicas, a read writes
    /// what it returns back to W replicas before answering. Linearizable for read and write
    /// when R + W > N.
    Abd,
}

/// Every setting of a quorum cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Nodes in the cluster.
    pub nodes: u32,
    /// Replicas per key.
    pub n: u32,
    /// Replies a read waits for.
    pub r: u32,
    /// Acks a write waits for.
    pub w: u32,
    /// Virtual nodes per node on the ring.
    pub vnodes: u32,
    /// How versions are compared.
    pub resolution: Resolution,
    /// What reads do about stale replicas.
    pub read_repair: ReadRepair,
    /// Whether writes may land on fallback nodes, with hints, when owners do not answer.
    pub sloppy: bool,
    /// Dynamo or ABD.
    pub mode: Mode,
    /// How long a coordinator waits for a quorum, in milliseconds.
    pub timeout_ms: u64,
}

impl Settings {
    /// The defaults for a cluster of `nodes` nodes.
    pub fn new(nodes: u32) -> Self {
        Settings {
            nodes,
            n: 3.min(nodes),
            r: 2.min(nodes),
            w: 2.min(nodes),
            vnodes: 64,
            resolution: Resolution::Lww,
            read_repair: ReadRepair::Off,
            sloppy: false,
            mode: Mode::Dynamo,
            timeout_ms: 1000,
        }
    }

    /// The keys `--set` accepts, with their ranges, for messages and `--help`.
    pub const KEYS: &'static str = "n (1..=nodes, default 3), r (1..=n, default 2), \
        w (1..=n, default 2), vnodes (1..=1024, default 64), resolution (lww|vclock), \
        read-repair (off|async|blocking), sloppy (true|false), mode (dynamo|abd), \
        timeout-ms (10..=60000, default 1000)";

    /// Applies `key=value` pairs (comma-separated, any number of strings) on top of these
    /// settings, then checks the result.
    pub fn apply<'a>(mut self, pairs: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        for (key, value) in crate::key_values(pairs, Self::KEYS)? {
            let number = |max: u64| -> Result<u64, String> {
                value
                    .parse::<u64>()
                    .ok()
                    .filter(|v| *v <= max)
                    .ok_or_else(|| format!("{key}={value}: expected a whole number up to {max}"))
            };
            let choice = |options: &[&str]| -> Result<String, String> {
                if options.contains(&value) {
                    Ok(value.to_string())
                } else {
                    Err(format!(
                        "{key}={value}: expected one of {}",
                        options.join(", ")
                    ))
                }
            };
            match key {
                "n" => self.n = number(u64::from(u32::MAX))? as u32,
                "r" => self.r = number(u64::from(u32::MAX))? as u32,
                "w" => self.w = number(u64::from(u32::MAX))? as u32,
                "vnodes" => self.vnodes = number(u64::from(u32::MAX))? as u32,
                "timeout-ms" | "timeout_ms" => self.timeout_ms = number(u64::MAX)?,
                "resolution" => {
                    self.resolution = match choice(&["lww", "vclock"])?.as_str() {
                        "lww" => Resolution::Lww,
                        _ => Resolution::Vclock,
                    }
                }
                "read-repair" | "read_repair" => {
                    self.read_repair = match choice(&["off", "async", "blocking"])?.as_str() {
                        "off" => ReadRepair::Off,
                        "async" => ReadRepair::Async,
                        _ => ReadRepair::Blocking,
                    }
                }
                "sloppy" => self.sloppy = choice(&["true", "false"])? == "true",
                "mode" => {
                    self.mode = match choice(&["dynamo", "abd"])?.as_str() {
                        "dynamo" => Mode::Dynamo,
                        _ => Mode::Abd,
                    }
                }
                other => {
                    return Err(format!(
                        "unknown setting `{other}`; valid keys: {}",
                        Self::KEYS
                    ));
                }
            }
        }
        self.validate()?;
        Ok(self)
    }

    /// Refuses impossible settings, naming the rule broken.
    pub fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if self.nodes == 0 {
            problems.push("a cluster needs at least 1 node".to_string());
        }
        if self.n == 0 || self.n > self.nodes {
            problems.push(format!(
                "n={} must be between 1 and the {} nodes",
                self.n, self.nodes
            ));
        }
        if self.r == 0 || self.r > self.n {
            problems.push(format!("r={} must be between 1 and n={}", self.r, self.n));
        }
        if self.w == 0 || self.w > self.n {
            problems.push(format!("w={} must be between 1 and n={}", self.w, self.n));
        }
        if !(1..=1024).contains(&self.vnodes) {
            problems.push(format!("vnodes={} must be between 1 and 1024", self.vnodes));
        }
        if !(10..=60_000).contains(&self.timeout_ms) {
            problems.push(format!(
                "timeout-ms={} must be between 10 and 60000",
                self.timeout_ms
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{}; valid keys: {}",
                problems.join("; "),
                Self::KEYS
            ))
        }
    }
}

impl std::fmt::Display for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let resolution = match self.resolution {
            Resolution::Lww => "lww",
            Resolution::Vclock => "vclock",
        };
        let read_repair = match self.read_repair {
            ReadRepair::Off => "off",
            ReadRepair::Async => "async",
            ReadRepair::Blocking => "blocking",
        };
        let mode = match self.mode {
            Mode::Dynamo => "dynamo",
            Mode::Abd => "abd",
        };
        write!(
            f,
            "n={} r={} w={} vnodes={} resolution={resolution} read-repair={read_repair} \
             sloppy={} mode={mode} timeout-ms={}",
            self.n, self.r, self.w, self.vnodes, self.sloppy, self.timeout_ms
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates() {
        let s = Settings::new(5)
            .apply([
                "n=3,r=1",
                "w=3",
                "resolution=vclock,read-repair=blocking,sloppy=true",
            ])
            .unwrap();
        assert_eq!((s.n, s.r, s.w), (3, 1, 3));
        assert_eq!(s.resolution, Resolution::Vclock);
        assert_eq!(s.read_repair, ReadRepair::Blocking);
        assert!(s.sloppy);
        let err = Settings::new(5).apply(["r=4"]).unwrap_err();
        assert!(err.contains("r=4 must be between 1 and n=3"), "{err}");
        let err = Settings::new(2).apply(["n=3"]).unwrap_err();
        assert!(
            err.contains("n=3 must be between 1 and the 2 nodes"),
            "{err}"
        );
        let err = Settings::new(5).apply(["quorum=3"]).unwrap_err();
        assert!(
            err.contains("unknown setting `quorum`") && err.contains("valid keys"),
            "{err}"
        );
        assert!(Settings::new(5).apply(["mode=paxos"]).is_err());
        assert_eq!(
            Settings::new(5).to_string(),
            "n=3 r=2 w=2 vnodes=64 resolution=lww read-repair=off sloppy=false mode=dynamo timeout-ms=1000"
        );
    }
}
