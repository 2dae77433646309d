//! `exec:` targets: client programs in any language behind the JSON-lines protocol. A test
//! client (Python) shows the protocol's edges — a missing or late hello, too few operations,
//! malformed lines, wrong ids, hangs, exits, heavy stderr — end in completed operations and
//! replaced programs, never a hang or an orphan; its answers reach the checker (one program
//! with one memory is linearizable, four with four memories are not). The bash client of
//! examples/clients gives the verdicts the native http:// target gives on bundled quorum
//! clusters under partitions.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod common;

/// A client that keeps one register per key in its own memory, and misbehaves as `--set
/// mode=…` says.
const TEST_CLIENT: &str = r#"
import json, os, sys, time
mode = os.environ.get("FAULTLINE_SET_MODE", "good")
if mode == "no-hello":
    print('{"id":1,"type":"ok"}', flush=True)
elif mode == "late-hello":
    time.sleep(25)
elif mode == "few-ops":
    print('{"type":"hello","ops":["read"]}', flush=True)
else:
    print('{"type":"hello","ops":["read","write","cas","txn"]}', flush=True)
memory, n = {}, 0
for line in sys.stdin:
    op = json.loads(line)
    n += 1
    if mode == "stderr":
        sys.stderr.write("x" * 100000 + "\n")
    if mode == "chaos":
        n = op["id"]
        if n % 11 == 3:
            print("oops, not an answer", flush=True)
            continue
        if n % 11 == 5:
            print(json.dumps({"id": op["id"] + 1, "type": "ok"}), flush=True)
            continue
        if n % 11 == 7:
            time.sleep(60)
        if n % 11 == 9:
            sys.exit(3)
    answer = {"id": op["id"], "type": "ok", "value": None}
    if op["f"] == "read":
        answer["value"] = memory.get(op["key"])
    elif op["f"] == "write":
        memory[op["key"]] = op["value"]
    elif op["f"] == "cas":
        if memory.get(op["key"]) == op["value"][0]:
            memory[op["key"]] = op["value"][1]
        else:
            answer = {"id": op["id"], "type": "fail", "error": "mismatch"}
    elif op["f"] == "txn":
        done = []
        for f, k, v in op["value"]:
            k = "txn-%s" % k
            if f == "r":
                done.append([f, k[4:], memory.get(k)])
            elif f == "append":
                memory[k] = memory.get(k, []) + [v]
                done.append([f, k[4:], v])
            else:
                memory[k] = v
                done.append([f, k[4:], v])
        answer["value"] = done
    print(json.dumps(answer), flush=True)
"#;

fn faultline() -> Command {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
}

/// The test client in `dir`; its path.
fn test_client(dir: &Path) -> PathBuf {
    let path = dir.join("client.py");
    std::fs::write(&path, TEST_CLIENT).unwrap();
    path
}

/// `faultline run` of the test client in `mode` with `args`, results under `dir/out`.
fn run_client(dir: &Path, mode: &str, args: &[&str]) -> Output {
    let client = test_client(dir);
    faultline()
        .args(["run", "--target"])
        .arg(format!("exec:python3 {}", client.display()))
        .args(["--set", &format!("mode={mode}"), "--out"])
        .arg(dir.join("out"))
        .args(args)
        .output()
        .unwrap()
}

fn history(dir: &Path) -> Vec<Value> {
    let run = std::fs::canonicalize(dir.join("out/latest")).unwrap();
    std::fs::read_to_string(run.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Processes whose command line names `path`, once those killed as faultline exited are gone
/// (at most 5 s: a loaded machine may take a moment to end them).
fn processes_naming(path: &Path) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let found = processes_naming_now(path);
        if found.is_empty() || std::time::Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn processes_naming_now(path: &Path) -> Vec<String> {
    common::processes_naming(&path.display().to_string())
}

#[test]
fn answers_reach_the_checker() {
    if !common::python_present() {
        return;
    }
    let args = ["--workload", "cas", "--time-limit", "2s", "--seed", "1"];
    // One program, one memory: a linearizable register per key.
    let one = tempfile::tempdir().unwrap();
    let output = run_client(
        one.path(),
        "good",
        &[&args[..], &["--clients", "1"]].concat(),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let events = history(one.path());
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "ok" && e["f"] == "read" && e["value"].is_u64()),
        "reads return what was written"
    );
    // Four programs, four memories: reads miss the other programs' writes.
    let four = tempfile::tempdir().unwrap();
    let output = run_client(
        four.path(),
        "good",
        &[&args[..], &["--clients", "4"]].concat(),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let run = std::fs::canonicalize(four.path().join("out/latest")).unwrap();
    let run_json: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(run_json["settings"]["mode"], "good", "{run_json}");
    for n in 0..4 {
        assert!(
            run.join(format!("clients/{n}.log")).exists(),
            "client {n}'s log"
        );
    }
}

#[test]
fn every_workload_runs_through_a_program() {
    if !common::python_present() {
        return;
    }
    // One program with one memory: whatever the workload, its history is consistent.
    for (workload, checker) in [
        ("set", "set"),
        ("causal", "causal"),
        ("list-append", "transactional"),
        ("rw-register", "transactional"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let output = run_client(
            dir.path(),
            "good",
            &[
                "--workload",
                workload,
                "--clients",
                "1",
                "--time-limit",
                "2s",
                "--format",
                "json",
            ],
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{workload}: {stderr}");
        let verdict: Value = serde_json::from_slice(&output.stdout).unwrap();
        let judged = &verdict["checkers"][0];
        assert_eq!(judged["checker"], checker, "{workload}: {verdict}");
        assert_eq!(judged["valid"], "PASS", "{workload}: {judged}");
    }
}

#[test]
fn broken_programs_are_replaced_and_every_operation_completes() {
    if !common::python_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = run_client(
        dir.path(),
        "chaos",
        &[
            "--workload",
            "register",
            "--clients",
            "2",
            "--rate",
            "100",
            "--op-timeout",
            "500ms",
            "--time-limit",
            "4s",
            "--seed",
            "2",
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "a verdict, whatever it is: {stderr}"
    );
    assert!(stderr.contains("is restarted"), "{stderr}");
    assert!(stderr.contains("exec clients were restarted"), "{stderr}");
    let events = history(dir.path());
    let invoked = events.iter().filter(|e| e["type"] == "invoke").count();
    let completed = events
        .iter()
        .filter(|e| e["type"] != "invoke" && e["process"] != "nemesis")
        .count();
    assert!(invoked >= 12, "{invoked} operations");
    assert_eq!(invoked, completed, "every operation completes");
    let errors: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "info")
        .filter_map(|e| e["error"].as_str())
        .collect();
    for why in [
        "the line `oops, not an answer` is not a JSON object",
        "was asked",
        "no answer in time",
        "it exited (exit status: 3)",
    ] {
        assert!(
            errors.iter().any(|e| e.contains(why)),
            "an info names `{why}`: {errors:?}"
        );
    }
    let run = std::fs::canonicalize(dir.path().join("out/latest")).unwrap();
    let log = std::fs::read_to_string(run.join("clients/0.log")).unwrap();
    assert!(
        log.contains("--- faultline: exec client 0 is restarted"),
        "{log}"
    );
    assert!(
        processes_naming(dir.path()).is_empty(),
        "no program outlives the run: {:?}",
        processes_naming(dir.path())
    );
}

#[test]
fn a_program_writing_much_to_stderr_does_not_stall() {
    if !common::python_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = run_client(
        dir.path(),
        "stderr",
        &["--clients", "1", "--time-limit", "2s", "--rate", "200"],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let events = history(dir.path());
    assert!(events.iter().all(|e| e["type"] != "info"), "no timeouts");
    let run = std::fs::canonicalize(dir.path().join("out/latest")).unwrap();
    let size = std::fs::metadata(run.join("clients/0.log")).unwrap().len();
    assert!(size > 10_000_000, "its stderr is kept: {size} bytes");
}

#[test]
fn programs_that_cannot_serve_the_workload_are_refused_with_the_reason() {
    if !common::python_present() {
        return;
    }
    for (mode, workload, says) in [
        (
            "no-hello",
            "register",
            r#"the first line `{"id":1,"type":"ok"}` is not a hello"#,
        ),
        ("late-hello", "register", "no hello line in time"),
        (
            "few-ops",
            "cas",
            "offers read (its hello); the workload needs write, cas",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let output = run_client(dir.path(), mode, &["--workload", workload]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(4), "{mode}: {stderr}");
        assert!(stderr.contains(says), "{mode}: {stderr}");
        assert!(
            processes_naming(dir.path()).is_empty(),
            "{mode}: {:?}",
            processes_naming(dir.path())
        );
    }
    let output = faultline()
        .args(["run", "--target", "exec:/nonexistent/client", "--out"])
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("cannot start `/nonexistent/client`"),
        "{stderr}"
    );
    let output = faultline()
        .args(["run", "--target", "exec:true", "--nemesis", "kill"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--nodes-addr"), "{stderr}");
}

/// A `--nemesis-cmd` pair that partitions a bundled cluster through its nodes' admin API:
/// each node stops hearing from the nodes cut off from it; the heal clears every node.
const PARTITION: &str = r#"read -r -a names <<<"$FAULTLINE_NODES"; read -r -a hosts <<<"$FAULTLINE_HOSTS"
for i in "${!names[@]}"; do
  from=""
  for cut in $FAULTLINE_CUTS; do [ "${cut#*>}" = "${names[$i]}" ] && from="$from\"${cut%>*}\","; done
  curl -sf -X POST -d "{\"drop_from\":[${from%,}]}" "http://${hosts[$i]}/admin/faults" >/dev/null || exit 1
done"#;
const HEAL: &str = r#"for h in $FAULTLINE_HOSTS; do curl -sf -X POST -d '{}' "http://$h/admin/faults" >/dev/null || exit 1; done"#;

/// The verdict of a register run against `target` (with `extra` flags) under partitions.
fn verdict_under_partitions(target: &str, extra: &[String], seed: &str) -> Value {
    let out = tempfile::tempdir().unwrap();
    let script = out.path().join("partition.sh");
    std::fs::write(&script, PARTITION).unwrap();
    let output = faultline()
        .args(["run", "--target", target, "--workload", "register"])
        .args(extra)
        .args(["--nemesis", "partition", "--nemesis-interval", "1s"])
        .arg("--nemesis-cmd")
        .arg(format!("partition=bash {}", script.display()))
        .arg("--nemesis-cmd")
        .arg(format!("heal={HEAL}"))
        .args([
            "--time-limit",
            "8s",
            "--seed",
            seed,
            "--format",
            "json",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{target}: {e}: {}", String::from_utf8_lossy(&output.stderr)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shell_client_judges_as_the_native_client_does() {
    let kv_sh = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/clients/kv.sh");
    for (settings, expected) in [("n=3,w=1,r=1", "FAIL"), ("n=3,w=2,r=2,mode=abd", "PASS")] {
        let cluster = common::start_cluster(3, settings).await;
        let urls = cluster.urls();
        let hosts: Vec<&str> = urls
            .iter()
            .map(|u| u.trim_start_matches("http://"))
            .collect();
        let native = format!("http://{}", hosts.join(","));
        let exec = format!("exec:{}", kv_sh.display());
        let nodes = vec!["--nodes-addr".to_string(), hosts.join(",")];
        let (native, exec) = tokio::task::spawn_blocking(move || {
            (
                verdict_under_partitions(&native, &[], "3"),
                verdict_under_partitions(&exec, &nodes, "3"),
            )
        })
        .await
        .unwrap();
        for (who, verdict) in [("http://", &native), ("exec: kv.sh", &exec)] {
            let lin = &verdict["checkers"][0];
            assert_eq!(lin["valid"], expected, "{settings} through {who}: {lin}");
        }
    }
}
