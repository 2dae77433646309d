//! Helpers shared by the checker's integration tests.

use std::path::PathBuf;

/// `../shared/histories/<dir>` beside the workspace, if it holds `marker`. Where it is absent
/// (a user's clone) tests print a notice and pass; when `CI=true` its absence is a failure.
pub(crate) fn shared_histories(dir: &str, marker: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/histories")
        .join(dir);
    if path.join(marker).is_file() {
        return Some(path);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but {} is missing",
        path.display()
    );
    eprintln!("notice: skipping: {} not found", path.display());
    None
}
