//! The HTML report in a real browser: headless Chromium driven through ChromeDriver (the
//! WebDriver protocol, spoken here over HTTP). The report of a failing check and of a real run
//! load with no console error and no network request, show the failing operation and the
//! fault windows; screenshots land in target/report-screenshots/ for a person to look at.
//! The job summary goes where GITHUB_STEP_SUMMARY says.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

mod common;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A stale read under a partition: p0 writes 1 to x, then p1 reads nothing.
const STALE: &str = r#"{"process":0,"type":"invoke","f":"write","key":"x","value":1,"time":1000000}
{"process":0,"type":"ok","f":"write","key":"x","value":1,"time":2000000}
{"process":"nemesis","type":"info","f":"partition","value":{"action":"start"},"time":3000000}
{"process":1,"type":"invoke","f":"read","key":"x","value":null,"time":5000000}
{"process":1,"type":"ok","f":"read","key":"x","value":null,"time":6000000}
{"process":"nemesis","type":"info","f":"partition","value":{"action":"heal"},"time":8000000}
"#;

fn browser_present() -> bool {
    let found = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .find(|p| !Path::new(p).exists())
        .map_or(Ok(()), |p| {
            Err(format!(
                "{p} is missing (Debian's chromium and chromium-driver)"
            ))
        });
    common::server_present("chromium", found)
}

/// ChromeDriver on a free port, killed on drop.
struct Driver {
    child: Child,
    url: String,
    http: reqwest::blocking::Client,
}

impl Driver {
    /// Starts ChromeDriver, again on another port if it exits at once (a port another test
    /// took between our check and its bind).
    fn start() -> Driver {
        for _ in 0..3 {
            if let Some(driver) = Self::start_once() {
                return driver;
            }
        }
        panic!("chromedriver exited at once three times");
    }

    /// ChromeDriver answering on a free port; `None` if it exited before it answered.
    fn start_once() -> Option<Driver> {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::blocking::Client::new(),
        };
        let started = Instant::now();
        while driver
            .http
            .get(format!("{}/status", driver.url))
            .send()
            .is_err()
        {
            if driver.child.try_wait().ok().flatten().is_some() {
                return None;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "chromedriver did not answer within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(driver)
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .timeout(Duration::from_secs(60));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request.send().unwrap().json().unwrap();
        assert!(answer["value"].get("error").is_none(), "{path}: {answer}");
        answer["value"].clone()
    }

    /// A headless Chromium session that keeps its console and network logs.
    fn session(&self) -> String {
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1300,1800",
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
            "goog:loggingPrefs": {"browser": "ALL", "performance": "ALL"},
        }}});
        let value = self.call(reqwest::Method::POST, "/session", Some(capabilities));
        value["sessionId"].as_str().unwrap().to_string()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the browser saw of the page at `path`: the page's own facts (from `script`), the
/// console's errors, the URLs it requested; a screenshot saved as `name`.
struct Seen {
    facts: Value,
    console_errors: Vec<String>,
    requests: Vec<String>,
}

fn open(path: &Path, name: &str) -> Seen {
    let driver = Driver::start();
    let session = driver.session();
    let s = |p: &str| format!("/session/{session}{p}");
    let url = format!("file://{}", path.canonicalize().unwrap().display());
    driver.call(reqwest::Method::POST, &s("/url"), Some(json!({"url": url})));
    let script = r#"
        const failing = document.getElementById("failing-op");
        let visible = false;
        if (failing) {
            const r = failing.getBoundingClientRect(), style = getComputedStyle(failing);
            visible = r.width > 0 && r.height > 0 && style.visibility !== "hidden" && style.display !== "none";
        }
        return {
            failing: !!failing, visible,
            bands: document.querySelectorAll("rect.band.fault").length,
            verdict: document.getElementById("verdict")?.textContent,
            plots: document.querySelectorAll("svg.latency").length,
            bars: document.querySelectorAll("rect.bar").length,
        };"#;
    let facts = driver.call(
        reqwest::Method::POST,
        &s("/execute/sync"),
        Some(json!({"script": script, "args": []})),
    );
    let log = |kind: &str| {
        driver.call(
            reqwest::Method::POST,
            &s("/se/log"),
            Some(json!({"type": kind})),
        )
    };
    let console_errors = (log("browser")
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter())
    .filter(|e| e["level"] == "SEVERE")
    .map(|e| e["message"].to_string())
    .collect();
    let requests = (log("performance")
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter())
    .filter_map(|e| serde_json::from_str::<Value>(e["message"].as_str()?).ok())
    .filter(|m| m["message"]["method"] == "Network.requestWillBeSent")
    .filter_map(|m| {
        m["message"]["params"]["request"]["url"]
            .as_str()
            .map(str::to_string)
    })
    .collect();
    let png = driver.call(reqwest::Method::GET, &s("/screenshot"), None);
    let png = base64::engine::general_purpose::STANDARD
        .decode(png.as_str().unwrap())
        .unwrap();
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/report-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    std::fs::write(shots.join(format!("{name}.png")), png).unwrap();
    driver.call(
        reqwest::Method::DELETE,
        &format!("/session/{session}"),
        None,
    );
    Seen {
        facts,
        console_errors,
        requests,
    }
}

fn faultline() -> Command {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
}

fn assert_offline(seen: &Seen) {
    assert!(
        seen.console_errors.is_empty(),
        "console errors: {:?}",
        seen.console_errors
    );
    assert!(
        !seen.requests.is_empty(),
        "the performance log saw no request at all"
    );
    let fetched: Vec<&String> = seen
        .requests
        .iter()
        .filter(|u| !u.starts_with("file://"))
        .collect();
    assert!(fetched.is_empty(), "the page fetched: {fetched:?}");
}

#[test]
fn the_report_of_a_failing_check_shows_the_failing_operation_and_the_faults() {
    if !browser_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("stale.jsonl");
    std::fs::write(&history, STALE).unwrap();
    let summary = dir.path().join("summary.md");
    let out = faultline()
        .arg("check")
        .arg(&history)
        .arg("--html")
        .arg(dir.path().join("report.html"))
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.contains("| linearizability | **FAIL** |") && md.contains("report.html"),
        "{md}"
    );
    let seen = open(&dir.path().join("report.html"), "failing-check");
    assert_offline(&seen);
    assert_eq!(seen.facts["failing"], true, "{}", seen.facts);
    assert_eq!(seen.facts["visible"], true, "{}", seen.facts);
    assert_eq!(
        seen.facts["bands"], 3,
        "one fault window on each latency plot (read, write) and the rates: {}",
        seen.facts
    );
    assert_eq!(seen.facts["verdict"], "FAIL");
}

#[test]
fn the_report_of_a_run_loads_offline_with_its_fault_windows() {
    if !browser_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = faultline()
        .args([
            "run",
            "--workload",
            "register",
            "--set",
            "n=3,w=1,r=1",
            "--nemesis",
            "partition",
        ])
        .args([
            "--nemesis-interval",
            "1s",
            "--time-limit",
            "4s",
            "--nodes",
            "3",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run: PathBuf = dir.path().join("latest");
    let report = run.join("report.html");
    assert!(report.exists(), "{}", String::from_utf8_lossy(&out.stdout));
    let seen = open(&report, "run");
    assert_offline(&seen);
    assert!(seen.facts["bands"].as_u64().unwrap() >= 3, "{}", seen.facts);
    assert_eq!(
        seen.facts["plots"], 2,
        "read and write plots: {}",
        seen.facts
    );
    // `faultline report` rebuilds it.
    std::fs::remove_file(&report).unwrap();
    let rebuilt = faultline().arg("report").arg(&run).output().unwrap();
    assert!(
        rebuilt.status.success() && report.exists(),
        "{}",
        String::from_utf8_lossy(&rebuilt.stderr)
    );
}

#[test]
fn a_comparison_has_its_page_and_each_cell_its_report() {
    if !browser_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.md");
    let out = faultline()
        .args([
            "compare",
            "--workload",
            "register",
            "--nodes",
            "3",
            "--nemesis",
            "partition",
        ])
        .args([
            "--set",
            "n=3,w=1,r=1",
            "--set",
            "n=3,w=2,r=2",
            "--nemesis-interval",
            "1s",
        ])
        .args(["--time-limit", "2s", "--out"])
        .arg(dir.path())
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let comparison = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("compare.html").exists())
        .expect("compare.html written");
    let cells: Vec<PathBuf> = std::fs::read_dir(&comparison)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("verdict.json").exists())
        .collect();
    assert_eq!(cells.len(), 2);
    assert!(cells.iter().all(|c| c.join("report.html").exists()));
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.contains("n=3,w=1,r=1") && md.contains("compare.html"),
        "{md}"
    );
    let seen = open(&comparison.join("compare.html"), "compare");
    assert_offline(&seen);
    assert_eq!(
        seen.facts["bars"], 6,
        "three charts of two cells: {}",
        seen.facts
    );
}
