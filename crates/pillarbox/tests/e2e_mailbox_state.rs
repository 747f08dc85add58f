//! `pillarbox mailbox --config FILE lock|unlock|disable|enable|list` against the real
//! binary: the state lands in `<data_dir>/state.sqlite` and each
//! command is a separate process, so every step also shows the state persisting.

mod common;

use common::{binary, run_client, transcript, Config, TestDir, CLIENT_TIMEOUT};
use std::process::{Command, Output};

fn mailbox(dir: &TestDir, args: &[&str]) -> Output {
    let mut cmd = Command::new(binary());
    cmd.arg("mailbox")
        .arg("--config")
        .arg(&dir.config_path)
        .args(args);
    run_client(cmd, None, CLIENT_TIMEOUT, "build the pillarbox binary")
}

/// Runs a command that must succeed and returns its stdout.
fn ok(dir: &TestDir, args: &[&str]) -> String {
    let output = mailbox(dir, args);
    assert!(
        output.status.success(),
        "pillarbox mailbox {args:?} failed:\n{}",
        transcript(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn mailbox_lock_is_listed_until_unlocked() {
    let dir = TestDir::new(&Config::default());
    let out = ok(
        &dir,
        &[
            "lock",
            "alice@example.test",
            "--reason",
            "migration",
            "--for",
            "2h",
        ],
    );
    assert!(out.starts_with("locked alice@example.test until "), "{out}");
    assert!(
        dir.data_dir.join("state.sqlite").is_file(),
        "the state lives in <data_dir>/state.sqlite"
    );

    let list = ok(&dir, &["list"]);
    let fields: Vec<&str> = list.trim_end().split('\t').collect();
    assert_eq!(fields.len(), 4, "one tab-separated line:\n{list}");
    assert_eq!(fields[0], "alice@example.test");
    assert_eq!(fields[1], "locked");
    assert!(fields[2].ends_with("+0000"), "an expiry date: {list}");
    assert_eq!(fields[3], "migration");

    assert_eq!(
        ok(&dir, &["unlock", "alice@example.test"]),
        "unlocked alice@example.test\n"
    );
    assert_eq!(ok(&dir, &["list"]), "");
}

#[test]
fn mailbox_user_without_domain_is_in_the_first_local_domain() {
    let dir = TestDir::new(&Config::default());
    ok(&dir, &["lock", "Bob", "--reason", "restore"]);
    assert_eq!(
        ok(&dir, &["list"]),
        "bob@example.test\tlocked\t-\trestore\n"
    );
}

#[test]
fn mailbox_disable_wins_over_lock_and_enable_undoes_it() {
    let dir = TestDir::new(&Config::default());
    ok(
        &dir,
        &["lock", "carol@other.test", "--reason", "maintenance"],
    );
    assert_eq!(
        ok(&dir, &["disable", "carol@other.test", "--reason", "left"]),
        "disabled carol@other.test: left\n"
    );
    assert_eq!(ok(&dir, &["list"]), "carol@other.test\tdisabled\t-\tleft\n");
    assert_eq!(
        ok(&dir, &["enable", "carol@other.test"]),
        "enabled carol@other.test\ncarol@other.test stays locked: maintenance\n"
    );
    assert_eq!(
        ok(&dir, &["list"]),
        "carol@other.test\tlocked\t-\tmaintenance\n"
    );
}

#[test]
fn mailbox_unlock_of_an_open_mailbox_says_so() {
    let dir = TestDir::new(&Config::default());
    assert_eq!(
        ok(&dir, &["unlock", "dave"]),
        "dave@example.test was not locked\n"
    );
}

#[test]
fn mailbox_lock_with_a_bad_duration_fails_naming_it() {
    let dir = TestDir::new(&Config::default());
    let output = mailbox(&dir, &["lock", "alice", "--reason", "x", "--for", "soon"]);
    let text = transcript(&output);
    assert!(!output.status.success(), "{text}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("soon"),
        "{text}"
    );
    assert_eq!(ok(&dir, &["list"]), "", "nothing was locked");
}

#[test]
fn mailbox_lock_without_reason_is_a_usage_error() {
    let dir = TestDir::new(&Config::default());
    let output = mailbox(&dir, &["lock", "alice"]);
    let text = transcript(&output);
    assert!(!output.status.success(), "{text}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--reason"),
        "{text}"
    );
}
