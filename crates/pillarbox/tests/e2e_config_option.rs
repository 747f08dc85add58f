//! `--config/-c` before or after the subcommand, and `PILLARBOX_CONFIG` when it
//! is not given, for the management commands.

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{binary, transcript};

/// A directory with a config whose users file is `<dir>/users` (absent at first).
fn config_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    common::write_users_config(dir.path());
    dir
}

/// Runs the binary with `args`, `env` set and `stdin` as standard input.
fn run(args: &[&str], env: &[(&str, &Path)], stdin: &str) -> Output {
    let mut cmd = Command::new(binary());
    cmd.args(args)
        .env_remove("PILLARBOX_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run pillarbox");
    let mut input = child.stdin.take().expect("stdin");
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    child.wait_with_output().expect("wait pillarbox")
}

#[test]
fn users_add_accepts_config_after_the_subcommand() {
    let dir = config_dir();
    let config = dir.path().join("pillarbox.toml");
    let cfg = config.to_str().expect("utf-8 path");
    let out = run(
        &[
            "users",
            "add",
            "--config",
            cfg,
            "bob@example.test",
            "--password-stdin",
        ],
        &[],
        "secret\n",
    );
    assert!(out.status.success(), "{}", transcript(&out));
    let users = fs::read_to_string(dir.path().join("users")).expect("the users file");
    assert!(users.starts_with("bob@example.test:"), "{users}");

    let out = run(&["users", "list", "-c", cfg], &[], "");
    assert!(out.status.success(), "{}", transcript(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("bob@example.test"),
        "{}",
        transcript(&out)
    );
}

#[test]
fn users_list_reads_pillarbox_config_when_no_config_is_given() {
    let dir = config_dir();
    let config = dir.path().join("pillarbox.toml");
    let cfg = config.to_str().expect("utf-8 path");
    let out = run(
        &[
            "--config",
            cfg,
            "users",
            "add",
            "carol@example.test",
            "--password-stdin",
        ],
        &[],
        "secret\n",
    );
    assert!(out.status.success(), "{}", transcript(&out));
    let out = run(&["users", "list"], &[("PILLARBOX_CONFIG", &config)], "");
    assert!(out.status.success(), "{}", transcript(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("carol@example.test"),
        "{}",
        transcript(&out)
    );
}

#[test]
fn config_on_the_command_line_wins_over_pillarbox_config() {
    let dir = config_dir();
    let config = dir.path().join("pillarbox.toml");
    let cfg = config.to_str().expect("utf-8 path");
    let missing = dir.path().join("missing.toml");
    let out = run(
        &["mailbox", "list", "--config", cfg],
        &[("PILLARBOX_CONFIG", &missing)],
        "",
    );
    assert!(out.status.success(), "{}", transcript(&out));
    let out = run(&["mailbox", "list"], &[("PILLARBOX_CONFIG", &missing)], "");
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains(&missing.display().to_string()),
        "a missing PILLARBOX_CONFIG file is named:\n{}",
        transcript(&out)
    );
}
