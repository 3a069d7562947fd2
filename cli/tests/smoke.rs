//! Smoke test of the built binary. It also makes `cargo test --workspace` build
//! `target/<profile>/spindel`, which the multi-process tests in `spindel-tests` run.

use std::process::Command;

#[test]
fn version_and_help() {
    let bin = env!("CARGO_BIN_EXE_spindel");
    let out = Command::new(bin)
        .arg("--version")
        .output()
        .expect("run spindel");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("spindel "));
    let out = Command::new(bin)
        .arg("--help")
        .output()
        .expect("run spindel");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("publish"));
}
