//! `maelstrom:` targets: Maelstrom-protocol node binaries as the cluster, faultline as their
//! network. The example nodes of examples/maelstrom and small test nodes show the protocol's
//! edges — init, msg_id/in_reply_to matching, error codes, a node that dies at start, prints
//! garbage or never answers — and the faults biting: a send-once broadcast loses messages
//! under partitions where a retrying gossip does not, a forward-to-one-leader store serves
//! stale reads, a g-counter on seq-kv stays within its bounds.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod common;

fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/maelstrom")
        .join(name);
    format!("maelstrom:python3 {}", path.display())
}

/// `faultline run --target target --format json` with `args`, results under `dir`.
fn run(dir: &Path, target: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["run", "--target", target, "--format", "json", "--out"])
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

fn verdict(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)))
}

/// The one run directory under `dir`.
fn run_dir(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir() && !p.ends_with("latest"))
        .expect("a run directory")
}

/// The history's completions of `f`: (type, value, error).
fn completions(dir: &Path, f: &str) -> Vec<(String, Value, String)> {
    let history = std::fs::read_to_string(run_dir(dir).join("history.jsonl")).unwrap();
    history
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["f"] == f && e["type"] != "invoke" && e["process"] != "nemesis")
        .map(|e| {
            let error = e["error"].as_str().unwrap_or("").to_string();
            (
                e["type"].as_str().unwrap().to_string(),
                e["value"].clone(),
                error,
            )
        })
        .collect()
}

/// A test node in `dir` running `body` (Python; `node` is examples/maelstrom's Node); its target.
fn test_node(dir: &Path, name: &str, body: &str) -> String {
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/maelstrom");
    let script = format!(
        "import sys\nsys.path.insert(0, {:?})\nfrom node import Node\nnode = Node()\n{body}\nnode.run()\n",
        lib.display().to_string()
    );
    let path = dir.join(name);
    std::fs::write(&path, script).unwrap();
    format!("maelstrom:python3 {}", path.display())
}

#[test]
fn echo_replies_are_matched_to_their_requests() {
    if !common::python_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &example("echo.py"),
        &[
            "--nodes",
            "3",
            "--workload",
            "echo",
            "--clients",
            "8",
            "--rate",
            "400",
            "--time-limit",
            "3s",
        ],
    );
    let v = verdict(&out);
    assert_eq!(v["verdict"], "PASS", "{v}");
    let echoes = completions(dir.path(), "echo");
    assert!(echoes.len() > 500, "{} echoes", echoes.len());
    assert!(
        echoes
            .iter()
            .all(|(kind, value, _)| kind == "ok"
                && value.as_str().unwrap().starts_with("Please echo"))
    );
    // Init and the replies went through the router, and every node kept its log.
    let network = &v["network"];
    assert!(
        network["with_clients"].as_u64().unwrap() >= 2 * echoes.len() as u64,
        "{network}"
    );
    for n in ["n1", "n2", "n3"] {
        assert!(
            run_dir(dir.path())
                .join("nodes")
                .join(format!("{n}.log"))
                .exists()
        );
    }
}

#[test]
fn error_codes_are_definite_or_not_as_the_protocol_says() {
    if !common::python_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let target = test_node(
        dir.path(),
        "errors.py",
        r#"
CODES = {"read": 11, "write": 13, "cas": 22}
def answer(req):
    code = CODES[req["body"]["type"]]
    if req["body"]["type"] == "write" and req["body"]["msg_id"] % 2:
        code = 1001
    node.reply(req, {"type": "error", "code": code, "text": "told to"})
for kind in CODES:
    node.handler(kind)(answer)
"#,
    );
    let out = run(
        &dir.path().join("out"),
        &target,
        &[
            "--nodes",
            "2",
            "--workload",
            "lin-kv",
            "--rate",
            "200",
            "--time-limit",
            "2s",
        ],
    );
    assert!(
        out.status.code().is_some(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = dir.path().join("out");
    let reads = completions(&dir, "read");
    let writes = completions(&dir, "write");
    let cas = completions(&dir, "cas");
    assert!(!reads.is_empty() && !writes.is_empty() && !cas.is_empty());
    assert!(
        reads
            .iter()
            .all(|(k, _, e)| k == "fail" && e.contains("11 (temporarily-unavailable)")),
        "{reads:?}"
    );
    assert!(writes.iter().all(|(k, _, _)| k == "info"), "{writes:?}");
    assert!(
        writes.iter().any(|(_, _, e)| e.contains("13 (crash)"))
            && writes.iter().any(|(_, _, e)| e.contains("1001"))
    );
    assert!(
        cas.iter().all(|(k, _, e)| k == "fail" && e == "mismatch"),
        "{cas:?}"
    );
}

#[test]
fn a_node_that_dies_at_start_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        "maelstrom:sh -c 'echo cannot start >&2; exit 3'",
        &["--nodes", "2", "--workload", "echo", "--time-limit", "2s"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("node n1 did not start") || stderr.contains("node n2 did not start"),
        "{stderr}"
    );
    assert!(stderr.contains("exit status: 3"), "{stderr}");
    let log = std::fs::read_to_string(run_dir(dir.path()).join("nodes/n1.log")).unwrap();
    assert!(log.contains("cannot start"), "{log}");
}

#[test]
fn garbage_and_silence_end_operations_unknown() {
    if !common::python_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let garbage = test_node(
        dir.path(),
        "garbage.py",
        r#"
import sys
@node.handler("echo")
def echo(req):
    with node._out:
        sys.stdout.write("this is not JSON\n")
        sys.stdout.flush()
"#,
    );
    let silent = test_node(
        dir.path(),
        "silent.py",
        r#"
@node.handler("echo")
def echo(req):
    pass
"#,
    );
    for (target, why) in [
        (
            garbage,
            "n1 printed `this is not JSON` is not a Maelstrom message",
        ),
        (silent, "no reply within 300 ms"),
    ] {
        let out_dir = tempfile::tempdir().unwrap();
        let out = run(
            out_dir.path(),
            &target,
            &[
                "--nodes",
                "1",
                "--workload",
                "echo",
                "--rate",
                "20",
                "--time-limit",
                "2s",
                "--op-timeout",
                "300ms",
            ],
        );
        let v = verdict(&out);
        assert_eq!(v["verdict"], "UNKNOWN", "{v}");
        let echoes = completions(out_dir.path(), "echo");
        assert!(!echoes.is_empty());
        assert!(
            echoes
                .iter()
                .all(|(k, _, e)| k == "info" && e.contains(why)),
            "{echoes:?}"
        );
    }
}

/// The set verdict of a broadcast run of `node` under partitions.
fn broadcast_under_partitions(node: &str, seed: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &example(node),
        &[
            "--nodes",
            "5",
            "--workload",
            "broadcast",
            "--rate",
            "20",
            "--time-limit",
            "8s",
            "--nemesis",
            "partition",
            "--nemesis-interval",
            "1s",
            "--seed",
            seed,
        ],
    );
    verdict(&out)["checkers"][0].clone()
}

#[test]
fn a_send_once_broadcast_loses_messages_under_partitions_and_gossip_does_not() {
    if !common::python_present() {
        return;
    }
    let once = broadcast_under_partitions("broadcast_once.py", "1");
    assert_eq!(once["valid"], "FAIL", "{once}");
    assert!(
        !once["details"]["stale"].as_array().unwrap().is_empty(),
        "{once}"
    );
    let gossip = broadcast_under_partitions("broadcast_gossip.py", "1");
    assert_eq!(gossip["valid"], "PASS", "{gossip}");
    assert!(
        gossip["details"]["stable_latency_ms"]["1"]
            .as_f64()
            .unwrap()
            > 0.0,
        "{gossip}"
    );
}

#[test]
fn a_store_without_consensus_serves_stale_reads_under_partitions() {
    if !common::python_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &example("lin_kv_leader.py"),
        &[
            "--nodes",
            "3",
            "--workload",
            "lin-kv",
            "--rate",
            "100",
            "--time-limit",
            "8s",
            "--nemesis",
            "partition",
            "--nemesis-interval",
            "1s",
            "--seed",
            "1",
        ],
    );
    let v = verdict(&out);
    assert_eq!(v["checkers"][0]["valid"], "FAIL", "{v}");
    assert!(
        v["network"]["dropped"]["partition"].as_u64().unwrap() > 0,
        "{v}"
    );
}

#[test]
fn a_g_counter_on_seq_kv_stays_within_its_bounds_under_partitions_and_pauses() {
    if !common::python_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &example("g_counter.py"),
        &[
            "--nodes",
            "3",
            "--workload",
            "g-counter",
            "--rate",
            "50",
            "--time-limit",
            "6s",
            "--nemesis",
            "partition,pause",
            "--nemesis-interval",
            "1s",
            "--seed",
            "2",
        ],
    );
    let v = verdict(&out);
    let counter = &v["checkers"][0];
    assert_eq!(counter["valid"], "PASS", "{v}");
    assert_eq!(
        counter["details"]["final_reads"].as_array().unwrap().len(),
        3,
        "{counter}"
    );
    assert!(v["network"]["with_services"].as_u64().unwrap() > 0, "{v}");
}

#[test]
fn transactions_reach_the_transactional_checker() {
    if !common::python_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let target = test_node(
        dir.path(),
        "txn.py",
        r#"
import threading
lock, lists = threading.Lock(), {}
@node.handler("txn")
def txn(req):
    done = []
    with lock:
        for f, k, v in req["body"]["txn"]:
            if f == "r":
                done.append([f, k, list(lists[k]) if k in lists else None])
            else:
                lists.setdefault(k, []).append(v)
                done.append([f, k, v])
    node.reply(req, {"type": "txn_ok", "txn": done})
"#,
    );
    let out = run(
        &dir.path().join("out"),
        &target,
        &[
            "--nodes",
            "1",
            "--workload",
            "txn-list-append",
            "--rate",
            "200",
            "--time-limit",
            "3s",
        ],
    );
    let v = verdict(&out);
    let txn = &v["checkers"][0];
    assert_eq!(
        (txn["checker"].as_str(), txn["valid"].as_str()),
        (Some("transactional"), Some("PASS")),
        "{v}"
    );
    let committed = completions(&dir.path().join("out"), "txn");
    assert!(
        committed.len() > 300 && committed.iter().all(|(k, _, _)| k == "ok"),
        "{}",
        committed.len()
    );
}

/// The processes whose command line names `path`.
fn processes_running(path: &Path) -> Vec<String> {
    let mut running = common::processes_naming(&path.display().to_string());
    running.retain(|c| !c.contains("faultline"));
    running
}

#[test]
fn nodes_are_stopped_at_the_end_on_ctrl_c_and_after_a_kill() {
    if !common::python_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let target = test_node(
        dir.path(),
        "stays.py",
        r#"
@node.handler("echo")
def echo(req):
    node.reply(req, {"type": "echo_ok", "echo": req["body"]["echo"]})
"#,
    );
    let script = dir.path().join("stays.py");
    // A run with kills: the restarted nodes are stopped at the end too.
    let out = run(
        &dir.path().join("a"),
        &target,
        &[
            "--nodes",
            "3",
            "--workload",
            "echo",
            "--rate",
            "50",
            "--time-limit",
            "3s",
            "--nemesis",
            "kill",
            "--nemesis-interval",
            "500ms",
        ],
    );
    let v = verdict(&out);
    assert_eq!(v["verdict"], "PASS", "{v}");
    let history =
        std::fs::read_to_string(run_dir(&dir.path().join("a")).join("history.jsonl")).unwrap();
    assert!(history.contains(r#""f":"kill""#), "no kill in the history");
    assert!(
        processes_running(&script).is_empty(),
        "left running: {:?}",
        processes_running(&script)
    );
    // Ctrl-C.
    let mut child = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "run",
            "--target",
            &target,
            "--nodes",
            "3",
            "--workload",
            "echo",
            "--time-limit",
            "60s",
            "--out",
        ])
        .arg(dir.path().join("b"))
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while processes_running(&script).len() < 3 && started.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(processes_running(&script).len(), 3, "three nodes run");
    std::thread::sleep(std::time::Duration::from_secs(1));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert!(
        processes_running(&script).is_empty(),
        "left running after Ctrl-C: {:?}",
        processes_running(&script)
    );
}
