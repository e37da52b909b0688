//! Helpers for riffle's end-to-end tests: where the repository, the shared conformance material
//! and the built `riffle` binary are. Missing prerequisites fail loudly rather than skipping.

#![warn(missing_docs)]

pub mod kafka;

use std::path::PathBuf;
use std::process::{Command, Output};

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shared material next to the repository (`../shared`).
pub fn shared_dir() -> PathBuf {
    let dir = repo_root().join("..").join("shared");
    assert!(
        dir.join("conformance/ksql/tests").is_dir(),
        "the shared conformance material is missing at {}: the tests need ../shared next to the repository",
        dir.display()
    );
    dir
}

/// The `riffle` binary built next to the test executable.
pub fn riffle_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("test executables live in <target>/<profile>/deps");
    let bin = dir.join(if cfg!(windows) {
        "riffle.exe"
    } else {
        "riffle"
    });
    assert!(
        bin.is_file(),
        "the riffle binary is missing at {}: build it first with `cargo build --bins` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// Runs the riffle binary in the repository root.
pub fn riffle(args: &[&str]) -> Output {
    Command::new(riffle_bin())
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("the riffle binary runs")
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}
