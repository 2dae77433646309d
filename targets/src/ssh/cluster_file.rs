//! The cluster file (`--cluster cluster.toml`): how to reach each node of a cluster on other
//! machines over SSH, where its clients connect, and the shell commands that start, stop,
//! kill, pause, resume and skew it — Jepsen's control node and nodes, written down.
//!
//! ```toml
//! [ssh]
//! user = "root"                 # optional; default: the current user
//! port = 22                     # optional
//! identity = "/path/to/key"     # optional
//! options = ["StrictHostKeyChecking=no"]   # optional, passed as -o
//! [[nodes]]
//! name = "n1"
//! host = "10.0.0.11"            # where ssh connects (and where partition rules point)
//! address = "10.0.0.11:2379"    # what the target's client connects to
//! [commands]                    # each runs on a node, with FAULTLINE_NODE and FAULTLINE_NODES set
//! start = "systemctl start etcd"
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// How to reach the nodes.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshOptions {
    /// The user ssh logs in as (default: the current user).
    pub user: Option<String>,
    /// The port sshd listens on (default: 22).
    pub port: Option<u16>,
    /// The private key (default: ssh's own choice).
    pub identity: Option<PathBuf>,
    /// More `-o` options.
    #[serde(default)]
    pub options: Vec<String>,
}

/// One node.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Its name (`n1`).
    pub name: String,
    /// Where ssh connects, and the address partition rules name.
    pub host: String,
    /// What the target's client connects to (`host:port`).
    pub address: Option<String>,
}

/// The shell commands run on a node (each with `FAULTLINE_NODE` and `FAULTLINE_NODES` set).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Commands {
    /// Once per node before the run.
    pub setup: Option<String>,
    /// Starts the system on the node (and restarts it after a kill).
    pub start: Option<String>,
    /// Stops it.
    pub stop: Option<String>,
    /// Kills it (SIGKILL).
    pub kill: Option<String>,
    /// Pauses it (SIGSTOP).
    pub pause: Option<String>,
    /// Resumes it (SIGCONT).
    pub resume: Option<String>,
    /// Offsets its clock by `FAULTLINE_OFFSET_MS`; without it clock faults are refused.
    pub clock: Option<String>,
    /// Removes its data.
    pub wipe: Option<String>,
    /// Files copied back into the run directory.
    #[serde(default)]
    pub logs: Vec<String>,
}

impl Commands {
    /// Every command given, by name.
    pub fn given(&self) -> Vec<(&'static str, &str)> {
        [
            ("setup", &self.setup),
            ("start", &self.start),
            ("stop", &self.stop),
            ("kill", &self.kill),
            ("pause", &self.pause),
            ("resume", &self.resume),
            ("clock", &self.clock),
            ("wipe", &self.wipe),
        ]
        .into_iter()
        .filter_map(|(name, c)| c.as_deref().map(|c| (name, c)))
        .collect()
    }
}

/// A parsed, checked cluster file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// How to reach the nodes.
    #[serde(default)]
    pub ssh: SshOptions,
    /// The nodes, in order.
    pub nodes: Vec<Node>,
    /// The lifecycle commands.
    #[serde(default)]
    pub commands: Commands,
}

impl ClusterFile {
    /// Reads and checks the file at `path`; errors name the file, and the line for a syntax
    /// or field error.
    pub fn read(path: &Path) -> Result<ClusterFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--cluster {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("--cluster {}: {e}", path.display()))
    }

    /// Parses and checks a cluster file's text.
    pub fn parse(text: &str) -> Result<ClusterFile, String> {
        let file: ClusterFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| 1 + text[..s.start].matches('\n').count());
            let at = line.map_or_else(String::new, |l| format!("line {l}: "));
            format!("{at}{}", e.message())
        })?;
        if file.nodes.is_empty() {
            return Err("no [[nodes]]: give each node a name and a host".into());
        }
        for (i, node) in file.nodes.iter().enumerate() {
            if node.name.is_empty() || node.host.is_empty() {
                return Err(format!("node {} needs a name and a host", i + 1));
            }
            if file.nodes[..i].iter().any(|n| n.name == node.name) {
                return Err(format!("two nodes are named {}", node.name));
            }
            let port = node
                .address
                .as_deref()
                .map(|a| a.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()));
            if port == Some(None) {
                return Err(format!(
                    "node {}: address {:?} is not host:port",
                    node.name,
                    node.address.as_deref().unwrap_or("")
                ));
            }
        }
        Ok(file)
    }

    /// The nodes' client addresses, in order, when every node gives one.
    pub fn addresses(&self) -> Option<Vec<String>> {
        self.nodes.iter().map(|n| n.address.clone()).collect()
    }

    /// The nodes' names, space-separated (`FAULTLINE_NODES`).
    pub fn names(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[ssh]
user = "root"
port = 2222
identity = "/keys/id"
options = ["StrictHostKeyChecking=no"]

[[nodes]]
name = "n1"
host = "10.0.0.11"
address = "10.0.0.11:2379"

[[nodes]]
name = "n2"
host = "10.0.0.12"
address = "10.0.0.12:2379"

[commands]
start = "systemctl start etcd"
kill = "pkill -9 etcd"
logs = ["/var/log/etcd.log"]
"#;

    #[test]
    fn the_documented_shape_parses() {
        let f = ClusterFile::parse(FILE).unwrap();
        assert_eq!(f.ssh.port, Some(2222));
        assert_eq!(f.names(), "n1 n2");
        assert_eq!(f.addresses().unwrap(), ["10.0.0.11:2379", "10.0.0.12:2379"]);
        assert_eq!(
            f.commands.given(),
            [("start", "systemctl start etcd"), ("kill", "pkill -9 etcd")]
        );
        assert_eq!(f.commands.logs, ["/var/log/etcd.log"]);
    }

    #[test]
    fn mistakes_are_named_with_their_line() {
        let typo = FILE.replace("host = \"10.0.0.12\"", "hots = \"10.0.0.12\"");
        let e = ClusterFile::parse(&typo).unwrap_err();
        assert!(e.contains("line 15") && e.contains("hots"), "{e}");
        let twice = FILE.replace("name = \"n2\"", "name = \"n1\"");
        assert!(
            ClusterFile::parse(&twice)
                .unwrap_err()
                .contains("two nodes are named n1")
        );
        let port = FILE.replace("10.0.0.12:2379", "10.0.0.12");
        assert!(
            ClusterFile::parse(&port)
                .unwrap_err()
                .contains("not host:port")
        );
        assert!(ClusterFile::parse("[ssh]\n").unwrap_err().contains("nodes"));
        let bad = ClusterFile::parse("[[nodes]\nname = 1").unwrap_err();
        assert!(bad.starts_with("line 1"), "{bad}");
    }
}
