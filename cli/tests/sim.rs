//! The simulation runtime end to end: `run --runtime sim` replays a seed byte for byte and
//! judges as a process run does, the determinism guard, `hunt` finding, replaying and
//! shrinking a planted bug, and schedule files replayed on the simulator and on processes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn faultline() -> Command {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
}

fn run(args: &[&str]) -> Output {
    faultline().args(args).output().expect("faultline runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn latest(out: &Path) -> PathBuf {
    std::fs::canonicalize(out.join("latest")).expect("results/latest points at the run")
}

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The W=1,R=1 quorum store under partitions, simulated: stale reads, so FAIL.
const WEAK_QUORUM: &[&str] = &[
    "run",
    "--runtime",
    "sim",
    "--workload",
    "register",
    "--set",
    "n=3,r=1,w=1",
    "--nemesis",
    "partition",
    "--time-limit",
    "10s",
    "--seed",
    "1",
];

#[test]
fn a_simulated_seed_gives_the_same_history_bytes_twice() {
    let out = tempfile::tempdir().unwrap();
    let mut histories = Vec::new();
    for _ in 0..2 {
        let mut args = WEAK_QUORUM.to_vec();
        args.extend(["--out", out.path().to_str().unwrap()]);
        let output = run(&args);
        assert_eq!(output.status.code(), Some(1), "{}", text(&output));
        let dir = latest(out.path());
        let record = json(&dir.join("run.json"));
        assert_eq!(record["runtime"], "sim");
        let verdict = json(&dir.join("verdict.json"));
        assert_eq!(verdict["verdict"], "FAIL");
        assert!(text(&output).contains("simulated 10."), "{}", text(&output));
        histories.push(std::fs::read(dir.join("history.jsonl")).unwrap());
    }
    assert!(histories[0].len() > 10_000, "a real history was recorded");
    assert!(
        histories[0] == histories[1],
        "the same seed, the same bytes"
    );
    // The history holds the partitions with their virtual times, and nothing of the wall clock.
    let history = String::from_utf8(histories[0].clone()).unwrap();
    assert!(history.contains("\"f\":\"partition\""));
    let last: Value = serde_json::from_str(history.lines().last().unwrap()).unwrap();
    assert!(
        last["time"].as_u64().unwrap() >= 10_000_000_000,
        "virtual nanoseconds"
    );
}

#[test]
fn every_bundled_system_runs_simulated_and_the_guard_finds_them_deterministic() {
    let out = tempfile::tempdir().unwrap();
    for (target, settings, workload) in [
        ("bundled:raft", "", "cas"),
        ("bundled:quorum", "mode=abd", "register"),
        ("bundled:saga", "", "checkout"),
        ("bundled:twopc", "", "checkout"),
    ] {
        let output = run(&[
            "run",
            "--runtime",
            "sim",
            "--target",
            target,
            "--set",
            settings,
            "--workload",
            workload,
            "--nemesis",
            "partition,kill,pause,clock,packet,crash",
            "--time-limit",
            "5s",
            "--seed",
            "7",
            "--check-determinism",
            "--out",
            out.path().to_str().unwrap(),
        ]);
        let said = text(&output);
        assert_eq!(output.status.code(), Some(0), "{target}: {said}");
        assert!(
            said.contains("deterministic: a second run of seed 7"),
            "{target}: {said}"
        );
    }
}

#[test]
fn the_simulator_takes_bundled_targets_only() {
    let output = run(&["run", "--runtime", "sim", "--target", "http://127.0.0.1:1"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output).contains("only bundled targets"),
        "{}",
        text(&output)
    );
    let output = run(&["run", "--check-determinism"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).contains("--runtime sim"), "{}", text(&output));
}

/// The lines of `said` after `prefix`.
fn lines_after<'a>(said: &'a str, prefix: &str) -> Vec<&'a str> {
    said.lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .map(str::trim)
        .collect()
}

#[test]
fn hunt_finds_a_planted_bug_replays_it_and_shrinks_its_schedule() {
    let out = tempfile::tempdir().unwrap();
    let output = run(&[
        "hunt",
        "--target",
        "bundled:quorum",
        "--set",
        "n=3,r=1,w=1",
        "--workload",
        "register",
        "--nemesis",
        "partition",
        "--seeds",
        "1..200",
        "--time-limit",
        "60s",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    let said = text(&output);
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(said.contains("FAIL at seed"), "{said}");
    // results/latest is the failing run, its schedules beside it.
    assert!(latest(out.path()).join("schedule-shrunk.json").is_file());
    assert!(latest(out.path()).join("report.html").is_file());
    assert!(
        said.contains("replayed: twice, the same verdict and the same"),
        "{said}"
    );
    // The replay command printed is one a person can run, and it fails the same way.
    let replays = lines_after(&said, "replay:");
    assert_eq!(
        replays.len(),
        2,
        "the seed's and the shrunk schedule's: {said}"
    );
    let words = shell_words(replays[0]);
    let mut args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    args.extend(["--out", out.path().to_str().unwrap()]);
    let again = run(&args);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    // The shrunk schedule has at most three faults and fails again when replayed.
    let shrunk = lines_after(&said, "shrunk:");
    assert_eq!(shrunk.len(), 1, "{said}");
    let words = shell_words(replays[1]);
    let file = &words[words.iter().position(|w| w == "--schedule").unwrap() + 1];
    let schedule = json(Path::new(file));
    let steps = schedule["steps"].as_array().unwrap();
    assert!(steps.len() <= 3, "{schedule}");
    assert!(steps.iter().all(|s| s["fault"]["kind"] == "partition"));
    let mut args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    args.extend(["--out", out.path().to_str().unwrap()]);
    let replayed = run(&args);
    assert_eq!(replayed.status.code(), Some(1), "{}", text(&replayed));
    let record = json(&latest(out.path()).join("run.json"));
    assert_eq!(record["schedule"], file.as_str());
}

#[test]
fn hunt_over_a_correct_system_finds_nothing() {
    let out = tempfile::tempdir().unwrap();
    let output = run(&[
        "hunt",
        "--target",
        "bundled:raft",
        "--swarm",
        "--seeds",
        "1..20",
        "--run-time",
        "3s",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    let said = text(&output);
    assert_eq!(output.status.code(), Some(0), "{said}");
    assert!(said.contains("no failure in 20 seeds (20 PASS"), "{said}");
}

#[test]
fn ctrl_c_stops_a_hunt_with_its_count_and_leaves_no_scratch() {
    let out = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let child = faultline()
        .args(["hunt", "--target", "bundled:raft", "--swarm"])
        .args(["--time-limit", "10m", "--out"])
        .arg(out.path())
        .env("TMPDIR", tmp.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The scratch directory appears once the hunt runs seeds (Ctrl-C is watched by then).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::read_dir(tmp.path()).unwrap().next().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the hunt never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let output = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(130), "{said}");
    assert!(said.starts_with("interrupted: no failure in "), "{said}");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().collect();
    assert!(left.is_empty(), "scratch left behind: {left:?}");
}

fn shell_words(line: &str) -> Vec<String> {
    shell_words::split(line).expect("the hunt prints commands a shell can read")
}

#[test]
fn a_schedule_file_replays_on_processes_too() {
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("schedule.json");
    std::fs::write(
        &file,
        r#"{"faultline_schedule": 1, "steps": [
            {"at_ms": 500, "hold_ms": 1000,
             "fault": {"kind": "partition", "shape": "halves", "one_way": false,
                       "groups": [[0], [1, 2]], "cuts": [[0, 1], [0, 2], [1, 0], [2, 0]]}}
        ]}"#,
    )
    .unwrap();
    let output = run(&[
        "run",
        "--workload",
        "register",
        "--nodes",
        "3",
        "--set",
        "n=3",
        "--schedule",
        file.to_str().unwrap(),
        "--time-limit",
        "3s",
        "--rate",
        "50",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "{}",
        text(&output)
    );
    let history = std::fs::read_to_string(latest(out.path()).join("history.jsonl")).unwrap();
    let partitions: Vec<Value> = history
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["f"] == "partition")
        .collect();
    assert_eq!(
        partitions.len(),
        2,
        "one start and one heal: {partitions:?}"
    );
    assert_eq!(
        partitions[0]["value"]["groups"],
        serde_json::json!([["n1"], ["n2", "n3"]])
    );
    let started_ms = partitions[0]["time"].as_u64().unwrap() / 1_000_000;
    assert!(
        (450..1500).contains(&started_ms),
        "started at {started_ms} ms"
    );
}

#[test]
fn a_broken_schedule_file_is_named_with_its_line() {
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("bad.json");
    std::fs::write(
        &file,
        "{\"faultline_schedule\": 1, \"steps\": [\n  {\"at_ms\": 1, \"hold_ms\": 1, \"fault\": {\"kind\": \"meteor\"}}\n]}",
    )
    .unwrap();
    let output = run(&[
        "run",
        "--runtime",
        "sim",
        "--schedule",
        file.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let said = text(&output);
    assert!(said.contains("bad.json: line 2"), "{said}");
    let file = out.path().join("big.json");
    std::fs::write(
        &file,
        r#"{"faultline_schedule": 1, "steps": [{"at_ms": 1, "hold_ms": 1, "fault": {"kind": "kill", "nodes": [7]}}]}"#,
    )
    .unwrap();
    let output = run(&[
        "run",
        "--runtime",
        "sim",
        "--nodes",
        "3",
        "--schedule",
        file.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("node index 7"), "{}", text(&output));
}

#[test]
fn compare_runs_its_cells_in_the_simulator() {
    let out = tempfile::tempdir().unwrap();
    let output = run(&[
        "compare",
        "--runtime",
        "sim",
        "--workload",
        "register",
        "--nemesis",
        "partition",
        "--set",
        "n=3,w=1,r=1",
        "--set",
        "n=3,w=2,r=2,mode=abd",
        "--time-limit",
        "10s",
        "--seed",
        "4",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    let said = text(&output);
    assert_eq!(output.status.code(), Some(0), "{said}");
    let table = said
        .lines()
        .find(|l| l.contains("n=3,w=1,r=1") && l.contains("FAIL 1/1"));
    assert!(table.is_some(), "W=1,R=1 fails: {said}");
    let abd = said
        .lines()
        .find(|l| l.contains("mode=abd") && l.contains("PASS 1/1"));
    assert!(abd.is_some(), "ABD passes: {said}");
}
