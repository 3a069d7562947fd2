//! Helpers for spindel's cross-crate and multi-process tests: find the built `spindel` binary,
//! run it, and read what it printed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The `spindel` binary under test: `$SPINDEL_BIN`, else the one cargo built next to this test
/// (`cargo test --workspace` builds it).
pub fn spindel_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SPINDEL_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/spindel
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|p| p.join("spindel"))
        .expect("target dir");
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (it builds the binary) or set SPINDEL_BIN",
        bin.display()
    );
    bin
}

/// What one run of the binary printed.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts success and returns stdout parsed as one JSON document.
    pub fn json(&self) -> serde_json::Value {
        assert_eq!(self.code, 0, "expected success, got {self:?}");
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {:?}", self.stdout))
    }

    /// Asserts exit code `code` and exactly one line on stderr containing `needle`.
    pub fn fails(&self, code: i32, needle: &str) {
        assert_eq!(self.code, code, "exit code for {self:?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "stderr must be one line: {:?}", self.stderr);
        assert!(lines[0].starts_with("error:"), "stderr: {:?}", self.stderr);
        assert!(
            lines[0].contains(needle),
            "stderr {:?} does not name {needle:?}",
            self.stderr
        );
    }
}

/// Runs `spindel ARGS` with no stdin.
pub fn spindel(args: &[&str]) -> Run {
    spindel_env(args, &[])
}

/// Runs `spindel ARGS` with extra environment variables.
pub fn spindel_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(spindel_bin());
    cmd.args(args)
        .stdin(Stdio::null())
        .env_remove("SPINDEL_DATA_DIR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run::from(cmd.output().expect("run spindel"))
}

/// Runs `spindel ARGS` with `input` on stdin.
pub fn spindel_stdin(args: &[&str], input: &str) -> Run {
    let mut child = Command::new(spindel_bin())
        .args(args)
        .env_remove("SPINDEL_DATA_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn spindel");
    // The command may exit before reading its input (an early error): a broken pipe is fine.
    if let Err(e) = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
    {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
    }
    Run::from(child.wait_with_output().expect("wait spindel"))
}

/// A path as `&str` for argument lists.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
