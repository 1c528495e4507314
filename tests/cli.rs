//! The command line: check, route, and start-up failures worded for operators.
mod common;

use common::*;
use std::process::Command;

fn keyway() -> Command {
    Command::new(env!("CARGO_BIN_EXE_keyway"))
}

#[test]
fn check_accepts_the_shipped_config_and_rejects_bad_ones_with_the_line() {
    let ok = keyway()
        .args(["check", "--config", "config.toml"])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let dir = scratch_dir("cli");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[proxy]\nlisten = \"127.0.0.1:6380\"\n\n[[clusters]]\nname = \"main\"\nlb_policy = \"ring_hash\"\nendpoints = [\"127.0.0.1:7001\"]\ncolour = \"blue\"\n\n[routes]\ncatch_all = \"main\"\n",
    )
    .unwrap();
    let out = keyway()
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:8:") && err.contains("colour"),
        "{err}"
    );
    let missing = keyway()
        .args(["check", "--config", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn the_example_configurations_are_valid() {
    for f in ["examples/dual-write.toml", "examples/triple-write.toml"] {
        let out = keyway().args(["check", "--config", f]).output().unwrap();
        assert!(
            out.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn route_prints_cluster_and_endpoint_per_key() {
    let out = keyway()
        .args([
            "route",
            "--config",
            "config.toml",
            "a",
            "user:{avgo}:1",
            "user:{avgo}:2",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0][0], "a");
    assert!(lines
        .iter()
        .all(|l| l[1] == "main" && l[2].starts_with("127.0.0.1:700")));
    assert_eq!(lines[1][2], lines[2][2], "one hashtag, one endpoint");
}

#[test]
fn a_busy_listen_address_is_a_clear_error_not_a_panic() {
    let blocker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = blocker.local_addr().unwrap().port();
    let dir = scratch_dir("cli");
    let cfg = dir.join("busy.toml");
    std::fs::write(
        &cfg,
        format!("[proxy]\nlisten = \"127.0.0.1:{port}\"\ncores = 1\n\n[[clusters]]\nname = \"m\"\nlb_policy = \"maglev\"\nendpoints = [\"127.0.0.1:1\"]\n\n[routes]\ncatch_all = \"m\"\n"),
    )
    .unwrap();
    let out = keyway().arg("--config").arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
