//! `pillarbox check-config FILE` (and `serve`) on good and misspelt configs.

mod common;

use common::{binary, run_client, transcript, Config, TestDir, CLIENT_TIMEOUT};
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn check_config(path: &Path) -> Output {
    let mut cmd = Command::new(binary());
    cmd.arg("check-config").arg(path);
    run_client(cmd, None, CLIENT_TIMEOUT, "build the pillarbox binary")
}

/// Writes the default test config with `from` replaced by `to` (once).
fn misspelt(dir: &TestDir, from: &str, to: &str) -> std::path::PathBuf {
    let text = fs::read_to_string(&dir.config_path).expect("read config");
    assert!(text.contains(from), "test config has no {from:?}:\n{text}");
    let path = dir.path().join("misspelt.toml");
    fs::write(&path, text.replacen(from, to, 1)).expect("write config");
    path
}

fn assert_refused_naming(output: &Output, key: &str, path: &Path) {
    let text = transcript(output);
    assert!(
        !output.status.success(),
        "a config with `{key}` must be refused:\n{text}"
    );
    assert!(
        text.contains(key),
        "the message should name the key `{key}`:\n{text}"
    );
    assert!(
        text.contains(&path.display().to_string()),
        "the message should name the file {}:\n{text}",
        path.display()
    );
}

#[test]
fn check_config_accepts_a_good_file_and_prints_it() {
    let dir = TestDir::new(&Config::default());
    let output = check_config(&dir.config_path);
    let text = transcript(&output);
    assert!(output.status.success(), "{text}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("mx.example.test"),
        "the effective config should show the hostname:\n{text}"
    );
    assert!(stdout.contains("example.test"), "{text}");
}

#[test]
fn check_config_names_a_misspelt_top_level_key_and_the_file() {
    let dir = TestDir::new(&Config::default());
    let path = misspelt(&dir, "hostname =", "hostnme =");
    assert_refused_naming(&check_config(&path), "hostnme", &path);
}

#[test]
fn check_config_names_a_misspelt_limits_key_and_the_file() {
    let dir = TestDir::new(&Config::default().limit("message_size", "\"10KiB\""));
    let path = misspelt(&dir, "message_size =", "mesage_size =");
    assert_refused_naming(&check_config(&path), "mesage_size", &path);
}

#[test]
fn check_config_names_a_missing_file() {
    let dir = TestDir::new(&Config::default());
    let path = dir.path().join("does-not-exist.toml");
    let output = check_config(&path);
    let text = transcript(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
}

#[test]
fn serve_refuses_a_misspelt_config_without_starting() {
    let dir = TestDir::new(&Config::default());
    let path = misspelt(&dir, "catch_all =", "catchall =");
    let mut cmd = Command::new(binary());
    cmd.arg("serve").arg("--config").arg(&path);
    let output = run_client(cmd, None, CLIENT_TIMEOUT, "build the pillarbox binary");
    assert_refused_naming(&output, "catchall", &path);
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("ready"),
        "{}",
        transcript(&output)
    );
}
