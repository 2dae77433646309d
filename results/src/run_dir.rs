//! The results directory of a run (DESIGN §7): `results/<utc>-<target>-<workload>/` with
//! `run.json`, `history.jsonl`, `verdict.json` and `junit.xml`, and `results/latest` pointing
//! at the newest run.

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use faultline_checker::{Validity, Verdict};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

/// One run's directory.
#[derive(Clone, Debug)]
pub struct RunDir {
    /// Where it is.
    pub path: PathBuf,
}

/// A name safe in a path: letters, digits, `.`, `-` and `_`; a run of anything else becomes one
/// `_`; at most 60 characters.
fn path_safe(text: &str) -> String {
    let mut safe = String::with_capacity(text.len());
    for c in text.chars() {
        let c = if c.is_ascii_alphanumeric() || ".-_".contains(c) {
            c
        } else {
            '_'
        };
        // One `_` for a run of unsafe characters, and a name that stays readable in a listing
        // (an exec: command line can be long).
        if !(c == '_' && safe.ends_with('_')) && safe.len() < 60 {
            safe.push(c);
        }
    }
    safe
}

impl RunDir {
    /// Creates `out/<utc>-<target>-<workload>/` (with a suffix if that exists already).
    pub fn create(out: &Path, target: &str, workload: &str) -> io::Result<RunDir> {
        let stamp: String = humantime::format_rfc3339_seconds(SystemTime::now())
            .to_string()
            .chars()
            .filter(|c| !matches!(c, '-' | ':'))
            .collect();
        let base = format!("{stamp}-{}-{}", path_safe(target), path_safe(workload));
        std::fs::create_dir_all(out)?;
        for attempt in 1.. {
            let name = if attempt == 1 {
                base.clone()
            } else {
                format!("{base}-{attempt}")
            };
            let path = out.join(name);
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(RunDir { path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        unreachable!("the loop returns")
    }

    /// Creates `parent/<name>/`, with `name` made safe for a path (must not exist yet).
    pub fn create_named(parent: &Path, name: &str) -> io::Result<RunDir> {
        std::fs::create_dir_all(parent)?;
        let path = parent.join(path_safe(name));
        std::fs::create_dir(&path)?;
        Ok(RunDir { path })
    }

    /// `history.jsonl`.
    pub fn history(&self) -> PathBuf {
        self.path.join("history.jsonl")
    }

    /// Writes `name` as pretty JSON.
    pub fn write_json(&self, name: &str, value: &impl serde::Serialize) -> io::Result<()> {
        let text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
        std::fs::write(self.path.join(name), text + "\n")
    }

    /// Points `<out>/latest` at this directory (a relative symlink).
    pub fn point_latest(&self, out: &Path) -> io::Result<()> {
        let link = out.join("latest");
        match std::fs::remove_file(&link) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let target = self.path.file_name().map(PathBuf::from).unwrap_or_default();
        std::os::unix::fs::symlink(target, link)
    }

    /// Writes `junit.xml`: a test case per checker; FAIL is a failure carrying the explanation,
    /// UNKNOWN is skipped with the reason.
    pub fn write_junit(&self, suite: &str, verdicts: &[Verdict]) -> io::Result<()> {
        std::fs::write(self.path.join("junit.xml"), junit(suite, verdicts)?)
    }
}

/// The JUnit XML of a run's verdicts, each with its text explanation.
pub fn junit(suite: &str, verdicts: &[Verdict]) -> io::Result<String> {
    let mut test_suite = TestSuite::new(suite);
    for verdict in verdicts {
        let status = match verdict.valid {
            Validity::Pass => TestCaseStatus::success(),
            Validity::Fail => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(verdict.summary.clone());
                s.set_description(verdict.explanation.clone());
                s
            }
            Validity::Unknown => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(verdict.summary.clone());
                s
            }
        };
        let mut case = TestCase::new(verdict.checker.clone(), status);
        case.set_classname(suite.to_string());
        test_suite.add_test_case(case);
    }
    let mut report = Report::new("faultline");
    report.add_test_suite(test_suite);
    report.to_string().map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_has_a_case_per_checker() {
        let verdict = |valid, checker: &str, explanation: &str| Verdict {
            valid,
            checker: checker.into(),
            summary: format!("{checker} summary"),
            explanation: explanation.into(),
            details: serde_json::Value::Null,
        };
        let xml = junit(
            "run",
            &[
                verdict(Validity::Pass, "a", ""),
                verdict(Validity::Fail, "b", "why b <failed>"),
                verdict(Validity::Unknown, "c", ""),
            ],
        )
        .unwrap();
        assert!(xml.contains(r#"tests="3""#), "{xml}");
        assert!(xml.contains(r#"failures="1""#), "{xml}");
        assert!(xml.contains(r#"<skipped message="c summary""#), "{xml}");
        assert!(xml.contains("why b &lt;failed&gt;"), "{xml}");
    }

    #[test]
    fn names_are_safe_and_short() {
        assert_eq!(path_safe("bundled:quorum"), "bundled_quorum");
        assert_eq!(
            path_safe("exec:python3 /x/redis_client.py"),
            "exec_python3_x_redis_client.py"
        );
        assert_eq!(path_safe(&"a".repeat(100)).len(), 60);
    }

    #[test]
    fn run_dirs_are_unique_and_latest_follows() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().to_path_buf();
        let a = RunDir::create(&out, "bundled:quorum", "cas").unwrap();
        let b = RunDir::create(&out, "bundled:quorum", "cas").unwrap();
        assert_ne!(a.path, b.path);
        assert!(
            a.path
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .ends_with("bundled_quorum-cas")
        );
        a.point_latest(&out).unwrap();
        b.point_latest(&out).unwrap();
        assert_eq!(
            std::fs::canonicalize(out.join("latest")).unwrap(),
            std::fs::canonicalize(&b.path).unwrap()
        );
    }
}
