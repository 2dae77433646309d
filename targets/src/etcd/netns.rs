//! Network namespaces for local clusters of real processes (Linux, root): each member gets its
//! own namespace, joined by a veth pair to a bridge in the host's namespace, so partitions
//! and packet loss are real kernel-level drops made by nftables rules inside the member's
//! namespace.
//!
//! Names carry faultline's pid, so a run that crashed can be cleaned up by the next one
//! ([`clean_leftovers`]): namespaces `faultline-<tag>-n<i>`, bridge `flb<tag>`, host-side veth
//! `flv<tag>n<i>`, where `<tag>` is the pid (6 hex digits) and an instance number (2).
//! Everything is removed on [`Namespaces::remove`], also run on drop.

use std::io;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::systems::NodeId;

/// The nftables table faultline owns inside each member's namespace.
const TABLE: &str = "faultline";

static INSTANCES: AtomicU32 = AtomicU32::new(0);

/// Whether namespaces can be used here; `Err` says why not.
pub fn available() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("network namespaces need root".into());
    }
    for (tool, package) in [("ip", "iproute2"), ("nft", "nftables")] {
        let found = Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            return Err(format!(
                "`{tool}` is not installed (apt-get install {package})"
            ));
        }
    }
    Ok(())
}

/// Runs a command; the error carries its stderr.
fn run(program: &str, args: &[&str]) -> io::Result<String> {
    let out = Command::new(program).args(args).output()?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(io::Error::other(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Runs `nft -f -` inside namespace `ns` with `script` on stdin.
fn nft_in(ns: &str, script: &str) -> io::Result<()> {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "nft in {ns} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// A bridge and one namespace per member, with addresses `10.A.B.1` (the host, on the
/// bridge) and `10.A.B.(10+i)` (member `i`).
#[derive(Debug)]
pub struct Namespaces {
    tag: String,
    subnet: (u8, u8),
    count: usize,
    removed: bool,
}

impl Namespaces {
    /// Creates the bridge and `count` namespaces, each with a veth to the bridge and
    /// loopback up.
    pub fn create(count: usize) -> io::Result<Namespaces> {
        let pid = std::process::id() & 0xff_ffff;
        let instance = INSTANCES.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{pid:06x}{:02x}", instance & 0xff);
        let used = run("ip", &["-o", "-4", "addr", "show"])?;
        let subnet = (0..250u32)
            .map(|k| {
                let k = (pid + instance + k) % 250;
                (200 + (k % 50) as u8, (k / 50 * 50 + pid % 50) as u8)
            })
            .find(|(a, b)| !used.contains(&format!(" 10.{a}.{b}.")))
            .ok_or_else(|| io::Error::other("no free 10.x.y.0/24 subnet for the bridge"))?;
        let mut made = Namespaces {
            tag,
            subnet,
            count: 0,
            removed: false,
        };
        let bridge = made.bridge();
        run(
            "ip",
            &[
                "link",
                "add",
                &bridge,
                "type",
                "bridge",
                "forward_delay",
                "0",
            ],
        )?;
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/24", made.host_ip()),
                "dev",
                &bridge,
            ],
        )?;
        run("ip", &["link", "set", &bridge, "up"])?;
        for i in 0..count {
            let ns = made.netns(i);
            let host_side = format!("flv{}n{i}", made.tag);
            run("ip", &["netns", "add", &ns])?;
            made.count = i + 1;
            run(
                "ip",
                &[
                    "link", "add", &host_side, "type", "veth", "peer", "name", "eth0", "netns", &ns,
                ],
            )?;
            run("ip", &["link", "set", &host_side, "master", &bridge, "up"])?;
            let ip = format!("{}/24", made.node_ip(i));
            run("ip", &["-n", &ns, "addr", "add", &ip, "dev", "eth0"])?;
            run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
            run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
            made.set_rules(i as NodeId, &[], 0.0)?;
        }
        made.wait_reachable()?;
        Ok(made)
    }

    /// Waits until the host reaches every namespace: a connection to a port nobody listens on
    /// is refused at once, where a link still coming up drops it silently. (etcd gives a peer
    /// that does not answer a second at startup, per peer.)
    fn wait_reachable(&self) -> io::Result<()> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        for i in 0..self.count {
            let addr = std::net::SocketAddr::from((self.node_ip(i), 9));
            loop {
                match std::net::TcpStream::connect_timeout(
                    &addr,
                    std::time::Duration::from_millis(50),
                ) {
                    Ok(_) => break,
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => break,
                    Err(_) if std::time::Instant::now() < deadline => {}
                    Err(e) => {
                        return Err(io::Error::other(format!(
                            "namespace {} is not reachable at {}: {e}",
                            self.netns(i),
                            self.node_ip(i)
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// The tag in every name this instance made.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    fn bridge(&self) -> String {
        format!("flb{}", self.tag)
    }

    /// The host's address on the bridge.
    pub fn host_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet.0, self.subnet.1, 1)
    }

    /// Member `i`'s address.
    pub fn node_ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet.0, self.subnet.1, 10 + i as u8)
    }

    /// Member `i`'s namespace.
    pub fn netns(&self, i: usize) -> String {
        format!("faultline-{}-n{i}", self.tag)
    }

    /// Replaces member `i`'s rules: drop every packet from the members in `drop_from`, and
    /// the share `loss` of the packets it sends.
    pub fn set_rules(&self, i: NodeId, drop_from: &[NodeId], loss: f64) -> io::Result<()> {
        let mut input = String::new();
        if !drop_from.is_empty() {
            let ips: Vec<String> = drop_from
                .iter()
                .map(|&j| self.node_ip(j as usize).to_string())
                .collect();
            input = format!("ip saddr {{ {} }} drop", ips.join(", "));
        }
        let mut output = String::new();
        let per_mille = (loss.clamp(0.0, 1.0) * 1000.0).round() as u32;
        if per_mille > 0 {
            output = format!("oifname \"eth0\" numgen random mod 1000 < {per_mille} drop");
        }
        let script = format!(
            "table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n\
             chain input {{\ntype filter hook input priority 0; policy accept;\n{input}\n}}\n\
             chain output {{\ntype filter hook output priority 0; policy accept;\n{output}\n}}\n\
             }}\n"
        );
        nft_in(&self.netns(i as usize), &script)
    }

    /// Member `i`'s rules as nftables lists them.
    pub fn rules(&self, i: usize) -> io::Result<String> {
        run(
            "ip",
            &[
                "netns",
                "exec",
                &self.netns(i),
                "nft",
                "list",
                "table",
                "inet",
                TABLE,
            ],
        )
    }

    /// The command that runs `program` inside member `i`'s namespace.
    pub fn command(&self, i: usize, program: &std::path::Path) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.netns(i)]).arg(program);
        command
    }

    /// Removes the namespaces (killing what still runs in them), their links and the
    /// bridge. Idempotent.
    pub fn remove(&mut self) {
        if self.removed {
            return;
        }
        self.removed = true;
        for i in 0..self.count {
            // Deleting the host's end deletes both at once; a namespace's veth would
            // otherwise linger for a moment after the namespace is gone.
            let _ = run("ip", &["link", "del", &format!("flv{}n{i}", self.tag)]);
            remove_netns(&self.netns(i));
        }
        let _ = run("ip", &["link", "del", &self.bridge()]);
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        self.remove();
    }
}

fn remove_netns(ns: &str) {
    if let Ok(pids) = run("ip", &["netns", "pids", ns]) {
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let _ = run("ip", &["netns", "del", ns]);
}

/// The pid in a tag, if its process is gone.
fn dead_owner(tag: &str) -> bool {
    let Some(pid) = tag.get(..6).and_then(|p| u32::from_str_radix(p, 16).ok()) else {
        return false;
    };
    crate::leftovers::is_dead(pid)
}

/// Removes the namespaces, bridges and veths left by faultline runs whose process is gone;
/// returns what was removed.
pub fn clean_leftovers() -> Vec<String> {
    let mut removed = Vec::new();
    if let Ok(list) = run("ip", &["netns", "list"]) {
        for ns in list.lines().filter_map(|l| l.split_whitespace().next()) {
            let Some(tag) = ns.strip_prefix("faultline-") else {
                continue;
            };
            if dead_owner(tag) {
                remove_netns(ns);
                removed.push(format!("namespace {ns}"));
            }
        }
    }
    if let Ok(links) = run("ip", &["-o", "link", "show"]) {
        for link in links.lines().filter_map(|l| l.split(": ").nth(1)) {
            let link = link.split('@').next().unwrap_or(link);
            let tag = link.strip_prefix("flb").or(link.strip_prefix("flv"));
            if tag.is_some_and(dead_owner) && run("ip", &["link", "del", link]).is_ok() {
                removed.push(format!("link {link}"));
            }
        }
    }
    removed
}

/// Every namespace and link faultline made that exists now (for tests and cleanup checks).
pub fn existing() -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(list) = run("ip", &["netns", "list"]) {
        found.extend(
            list.lines()
                .filter_map(|l| l.split_whitespace().next())
                .filter(|ns| ns.starts_with("faultline-"))
                .map(|ns| format!("namespace {ns}")),
        );
    }
    if let Ok(links) = run("ip", &["-o", "link", "show"]) {
        found.extend(
            links
                .lines()
                .filter_map(|l| l.split(": ").nth(1))
                .map(|l| l.split('@').next().unwrap_or(l))
                .filter(|l| l.starts_with("flb") || l.starts_with("flv"))
                .map(|l| format!("link {l}")),
        );
    }
    found
}
