//! Clusters on other machines, for real on one machine: three network namespaces on a bridge
//! stand in for hosts, each running Debian's OpenSSH server with a throwaway host key and a
//! key authorised for the test. `faultline cluster check` reaches them through the system's
//! ssh client and names what each lacks.

use std::path::{Path, PathBuf};
use std::process::Command;

use faultline_targets::etcd::netns::{self, Namespaces};

mod common;

/// Root, `ip`, `nft`, and OpenSSH's server and client: a failure under `CI=true`.
fn fixture_possible() -> bool {
    let found = if !nix::unistd::geteuid().is_root() {
        Err("the SSH fixture makes network namespaces: run the tests as root".to_string())
    } else if !Path::new("/usr/sbin/sshd").exists() {
        Err("/usr/sbin/sshd is missing (Debian's openssh-server)".to_string())
    } else if Command::new("ssh").arg("-V").output().is_err() {
        Err("ssh is missing (Debian's openssh-client)".to_string())
    } else {
        netns::available()
    };
    common::server_present("sshd in network namespaces", found)
}

/// Three "hosts": namespaces with an sshd each (but for the nodes in `down`); the node in
/// `no_nft` has a PATH without /usr/sbin, so `nft` is not found there. Stops its sshds on drop.
struct Hosts {
    namespaces: Namespaces,
    dir: tempfile::TempDir,
}

impl Hosts {
    fn start(down: &[usize], no_nft: &[usize]) -> Hosts {
        let namespaces = Namespaces::create(3).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let keygen = |name: &str| {
            let status = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(dir.path().join(name))
                .status()
                .unwrap();
            assert!(status.success());
        };
        keygen("host_key");
        keygen("id");
        std::fs::copy(
            dir.path().join("id.pub"),
            dir.path().join("authorized_keys"),
        )
        .unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        for i in (0..3).filter(|i| !down.contains(i)) {
            let d = dir.path().display();
            let mut config = format!(
                "ListenAddress {}\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
                 PermitRootLogin yes\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
                 PidFile {d}/sshd-{i}.pid\n",
                namespaces.node_ip(i)
            );
            if no_nft.contains(&i) {
                config.push_str("SetEnv PATH=/usr/bin:/bin\n");
            }
            let path = dir.path().join(format!("sshd-{i}.conf"));
            std::fs::write(&path, config).unwrap();
            let status = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &namespaces.netns(i),
                    "/usr/sbin/sshd",
                    "-f",
                ])
                .arg(&path)
                .status()
                .unwrap();
            assert!(status.success(), "sshd in namespace {i} did not start");
        }
        Hosts { namespaces, dir }
    }

    /// A cluster file for the hosts with `commands` (TOML lines).
    fn cluster_file(&self, commands: &str) -> PathBuf {
        let mut text = format!(
            "[ssh]\nuser = \"root\"\nidentity = \"{}\"\noptions = [\"StrictHostKeyChecking=no\", \"UserKnownHostsFile=/dev/null\"]\n",
            self.dir.path().join("id").display()
        );
        for i in 0..3 {
            let ip = self.namespaces.node_ip(i);
            text.push_str(&format!(
                "\n[[nodes]]\nname = \"n{}\"\nhost = \"{ip}\"\naddress = \"{ip}:2379\"\n",
                i + 1
            ));
        }
        text.push_str(&format!("\n[commands]\n{commands}\n"));
        let path = self.dir.path().join("cluster.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Hosts {
    /// Runs nftables `script` in host `i`'s namespace.
    fn nft(&self, i: usize, script: &str) {
        let mut nft = Command::new("ip")
            .args(["netns", "exec", &self.namespaces.netns(i), "nft", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(nft.stdin.as_mut().unwrap(), script.as_bytes()).unwrap();
        drop(nft.stdin.take());
        assert!(nft.wait().unwrap().success(), "nft -f in namespace {i}");
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for i in 0..3 {
            let pid = std::fs::read_to_string(self.dir.path().join(format!("sshd-{i}.pid")));
            if let Ok(Ok(pid)) = pid.map(|p| p.trim().parse::<i32>()) {
                let pid = nix::unistd::Pid::from_raw(pid);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            }
        }
    }
}

#[test]
fn cluster_check_names_a_node_without_sshd_and_one_without_nft() {
    if !fixture_possible() {
        return;
    }
    let hosts = Hosts::start(&[1], &[2]);
    let file = hosts.cluster_file("start = \"sh -c true\"\nkill = \"no-such-program-here -9\"");
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["cluster", "check", "--cluster"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = |node: &str| {
        stdout
            .lines()
            .find(|l| l.contains(&format!(" {node} ")))
            .unwrap_or_else(|| panic!("no row for {node}:\n{stdout}"))
            .to_string()
    };
    let (n1, n2, n3) = (row("n1"), row("n2"), row("n3"));
    assert!(
        n1.contains("│ ok ") && n1.contains("kill: `no-such-program-here` not found"),
        "{n1}"
    );
    assert!(n2.contains("unreachable"), "{n2}");
    assert!(n3.contains("nft") && n3.contains("missing"), "{n3}");
    assert!(!n1.contains("missing"), "nft is there on n1: {n1}");
}

#[test]
fn a_broken_cluster_file_is_named_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cluster.toml");
    std::fs::write(&file, "[[nodes]]\nname = \"n1\"\nhots = \"10.0.0.1\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["cluster", "check", "--cluster"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cluster.toml") && stderr.contains("line 3") && stderr.contains("hots"),
        "{stderr}"
    );
}

/// Lifecycle commands that run one etcd member per namespace, found by its data directory
/// under `data` (the `[e]` keeps pkill from matching the shell that runs it); `setup` removes
/// whatever a killed run left (a member, running or paused, and its data). TOML literal
/// strings: what is between the single quotes reaches the node's shell as written.
fn etcd_commands(hosts: &Hosts, data: &Path) -> String {
    let d = data.display();
    let peers: Vec<String> = (0..3)
        .map(|i| format!("n{}=http://{}:2380", i + 1, hosts.namespaces.node_ip(i)))
        .collect();
    let me = format!("[e]tcd --name $FAULTLINE_NODE --data-dir {d}/$FAULTLINE_NODE ");
    let ip = r#"IP=$(ip -4 -o addr show eth0 | awk "{print \$4}" | cut -d/ -f1)"#;
    format!(
        "setup = 'pkill -9 -f \"{me}\"; rm -rf {d}/$FAULTLINE_NODE; mkdir -p {d}'\n\
         start = '{ip}; setsid nohup etcd --name $FAULTLINE_NODE --data-dir {d}/$FAULTLINE_NODE --listen-client-urls http://$IP:2379 --advertise-client-urls http://$IP:2379 --listen-peer-urls http://$IP:2380 --initial-advertise-peer-urls http://$IP:2380 --initial-cluster {} --initial-cluster-state new --election-timeout 500 --heartbeat-interval 50 >> {d}/$FAULTLINE_NODE.log 2>&1 < /dev/null &'\n\
         stop = 'pkill -CONT -f \"{me}\"; pkill -f \"{me}\"; sleep 1; pkill -9 -f \"{me}\"; true'\n\
         kill = 'pkill -9 -f \"{me}\"'\n\
         pause = 'pkill -STOP -f \"{me}\"'\n\
         resume = 'pkill -CONT -f \"{me}\"'\n\
         logs = ['{d}/$FAULTLINE_NODE.log']",
        peers.join(",")
    )
}

/// The etcd members running with data under `data`.
fn members(data: &Path) -> Vec<String> {
    let mut running = common::processes_naming(&format!("--data-dir {}/", data.display()));
    running.retain(|c| c.starts_with("etcd "));
    running
}

/// This run's or a dead run's nftables tables in the namespaces.
fn ssh_tables(hosts: &Hosts) -> Vec<String> {
    (0..3)
        .flat_map(|i| {
            let out = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &hosts.namespaces.netns(i),
                    "nft",
                    "list",
                    "tables",
                ])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.contains("faultline_ssh_"))
                .map(|l| format!("n{}: {l}", i + 1))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Three hosts with sshd, a cluster file whose commands run etcd on them, and its data
/// directory; `None` (a skip, a failure under `CI=true`) without root, sshd or etcd.
fn etcd_hosts() -> Option<(Hosts, PathBuf, PathBuf)> {
    let etcd = Command::new("etcd").arg("--version").output();
    if !fixture_possible() || !common::server_present("etcd", etcd.map_err(|e| e.to_string())) {
        return None;
    }
    let hosts = Hosts::start(&[], &[]);
    let data = hosts.dir.path().join("data");
    let file = hosts.cluster_file(&etcd_commands(&hosts, &data));
    Some((hosts, data, file))
}

#[test]
fn etcd_through_ssh_is_linearizable_under_faults_and_nothing_is_left() {
    let Some((hosts, data, file)) = etcd_hosts() else {
        return;
    };
    // A dead run's rules on n2: the next run removes them.
    hosts.nft(1, "add table inet faultline_ssh_4000000\n");
    let out_dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["run", "--target", "etcd://", "--cluster"])
        .arg(&file)
        .args([
            "--workload",
            "register",
            "--nemesis",
            "partition,kill,pause",
            "--nemesis-interval",
            "1s",
        ])
        .args([
            "--partition-shapes",
            "one,minority,majority",
            "--op-timeout",
            "500ms",
        ])
        .args([
            "--time-limit",
            "12s",
            "--rate",
            "100",
            "--seed",
            "1",
            "--format",
            "json",
            "--out",
        ])
        .arg(out_dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let verdict: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(
        verdict["checkers"][0]["valid"], "PASS",
        "{verdict}\n{stderr}"
    );
    assert!(
        stderr.contains("removed the rules a killed run left on n2"),
        "{stderr}"
    );
    assert_partitions_cut(&verdict, &stderr);
    assert_nothing_left(&hosts, &data);
    let run = std::fs::canonicalize(out_dir.path().join("latest")).unwrap();
    assert!(run.join("nodes/n1/n1.log").exists(), "no log copied back");
}

/// The partitions cut traffic: operations invoked during them were not all answered.
fn assert_partitions_cut(verdict: &serde_json::Value, stderr: &str) {
    let periods = verdict["stats"]["by_period"].as_array().unwrap();
    let partition = (periods.iter())
        .find(|p| p["period"] == "partition")
        .unwrap_or_else(|| panic!("no partition window: {periods:?}\n{stderr}"));
    let availability = partition["availability"].as_f64().unwrap();
    assert!(availability < 1.0, "{partition}\n{stderr}");
}

/// No rules and no etcd member are left on any host.
fn assert_nothing_left(hosts: &Hosts, data: &Path) {
    assert!(
        ssh_tables(hosts).is_empty(),
        "left: {:?}",
        ssh_tables(hosts)
    );
    assert!(
        members(data).is_empty(),
        "left running: {:?}",
        members(data)
    );
}

/// `faultline run` against the hosts' etcd with faults, in the background.
fn spawn_run(file: &Path, out: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["run", "--target", "etcd://", "--cluster"])
        .arg(file)
        .args([
            "--workload",
            "register",
            "--nemesis",
            "partition,pause",
            "--nemesis-interval",
            "1s",
        ])
        .args([
            "--nemesis-gap",
            "0s",
            "--time-limit",
            "60s",
            "--rate",
            "50",
            "--out",
        ])
        .arg(out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until three members run and faults have had time to start.
fn wait_for_faults(data: &Path) {
    let started = std::time::Instant::now();
    while members(data).len() < 3 && started.elapsed().as_secs() < 30 {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(members(data).len(), 3, "three members run");
    std::thread::sleep(std::time::Duration::from_secs(4));
}

#[test]
fn ctrl_c_and_kill_9_leave_nothing_behind_after_the_next_run() {
    let Some((hosts, data, file)) = etcd_hosts() else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    // Ctrl-C: healed, stopped, nothing left.
    let mut run = spawn_run(&file, out.path());
    wait_for_faults(&data);
    let pid = nix::unistd::Pid::from_raw(run.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    assert_eq!(run.wait().unwrap().code(), Some(130));
    assert!(
        ssh_tables(&hosts).is_empty(),
        "left after Ctrl-C: {:?}",
        ssh_tables(&hosts)
    );
    assert!(
        members(&data).is_empty(),
        "left after Ctrl-C: {:?}",
        members(&data)
    );
    // kill -9 mid-fault: the rules and the members stay; the next run removes the rules, and
    // its `setup` the members (paused or not).
    let mut run = spawn_run(&file, out.path());
    wait_for_faults(&data);
    run.kill().unwrap();
    run.wait().unwrap();
    let next = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["run", "--target", "etcd://", "--cluster"])
        .arg(&file)
        .args([
            "--workload",
            "register",
            "--nemesis",
            "partition",
            "--time-limit",
            "3s",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&next.stderr);
    assert!(matches!(next.status.code(), Some(0 | 1)), "{stderr}");
    assert!(
        ssh_tables(&hosts).is_empty(),
        "left after kill -9 and a run: {:?}",
        ssh_tables(&hosts)
    );
    assert!(
        members(&data).is_empty(),
        "left after kill -9 and a run: {:?}",
        members(&data)
    );
}
