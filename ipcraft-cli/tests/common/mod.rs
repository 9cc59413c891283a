//! The workspace's test helpers, plus what only the CLI crate's tests have:
//! the `ipcraft` binary and this crate's C peers.
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub use ipcraft_testkit::*;

/// The `ipcraft` binary built with these tests.
pub fn ipcraft() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ipcraft"))
}

/// `tests/c/<name>.c` of this crate, compiled with `cc` once per test binary.
pub fn c_program(name: &str) -> PathBuf {
    ipcraft_testkit::c_program(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/c")
            .join(format!("{name}.c")),
    )
}

/// Spawns `cmd` with stdin and stderr piped and returns it with the write
/// end of its stdin, for a test that feeds it over time.
pub fn spawn_fed(cmd: &mut Command) -> (std::process::Child, std::process::ChildStdin) {
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    (child, stdin)
}
