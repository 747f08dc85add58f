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

/// A config whose `[tls]` names `cert` and `key` (a pair that need not exist).
fn with_tls(dir: &TestDir, cert: &Path, key: &Path) -> std::path::PathBuf {
    let mut text = fs::read_to_string(&dir.config_path).expect("read config");
    text.push_str(&format!(
        "\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    ));
    let path = dir.path().join("with-tls.toml");
    fs::write(&path, text).expect("write config");
    path
}

fn assert_refused_naming_key_and_paths(output: &Output, key: &str, paths: &[&Path]) {
    let text = transcript(output);
    assert!(!output.status.success(), "must be refused:\n{text}");
    assert!(text.contains(key), "should name `{key}`:\n{text}");
    for path in paths {
        assert!(
            text.contains(&path.display().to_string()),
            "should name {}:\n{text}",
            path.display()
        );
    }
}

#[test]
fn check_config_names_tls_cert_and_the_path_of_a_missing_certificate() {
    let dir = TestDir::new(&Config::default());
    let cert = dir.path().join("missing-cert.pem");
    let key = dir.path().join("missing-key.pem");
    let path = with_tls(&dir, &cert, &key);
    let output = check_config(&path);
    assert_refused_naming_key_and_paths(&output, "tls.cert", &[&path, &cert]);
    assert_refused_naming_key_and_paths(&output, "tls.key", &[&key]);
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains(": ok"),
        "{}",
        transcript(&output)
    );
}

#[test]
fn check_config_names_tls_key_when_the_key_file_is_not_pem() {
    let dir = TestDir::new(&Config::default());
    let pair = rcgen::generate_simple_self_signed(vec!["mx.example.test".to_string()])
        .expect("generate a certificate");
    let cert = dir.path().join("cert.pem");
    fs::write(&cert, pair.cert.pem()).expect("write cert");
    let key = dir.path().join("key.pem");
    fs::write(&key, "this is not a key\n").expect("write key");
    let path = with_tls(&dir, &cert, &key);
    assert_refused_naming_key_and_paths(&check_config(&path), "tls.key", &[&path, &key]);
}

#[test]
fn check_config_accepts_a_readable_certificate_and_key() {
    let dir = TestDir::new(&Config::default());
    let pair = rcgen::generate_simple_self_signed(vec!["mx.example.test".to_string()])
        .expect("generate a certificate");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    fs::write(&cert, pair.cert.pem()).expect("write cert");
    fs::write(&key, pair.key_pair.serialize_pem()).expect("write key");
    let output = check_config(&with_tls(&dir, &cert, &key));
    assert!(output.status.success(), "{}", transcript(&output));
}

#[test]
fn check_config_accepts_an_absent_users_file_and_refuses_a_directory_in_its_place() {
    let dir = TestDir::new(&Config::default());
    let users = dir.path().join("users");
    fs::remove_file(&users).expect("remove the users file");
    let output = check_config(&dir.config_path);
    assert!(
        output.status.success(),
        "an absent users file is an empty directory:\n{}",
        transcript(&output)
    );
    fs::create_dir(&users).expect("a directory where the users file should be");
    assert_refused_naming_key_and_paths(
        &check_config(&dir.config_path),
        "users.file",
        &[&dir.config_path, &users],
    );
}

#[test]
fn serve_with_a_missing_certificate_names_tls_cert_and_the_path_without_starting() {
    let dir = TestDir::new(&Config::default());
    let cert = dir.path().join("missing-cert.pem");
    let key = dir.path().join("missing-key.pem");
    let path = with_tls(&dir, &cert, &key);
    let mut cmd = Command::new(binary());
    cmd.arg("serve").arg("--config").arg(&path);
    let output = run_client(cmd, None, CLIENT_TIMEOUT, "build the pillarbox binary");
    assert_refused_naming_key_and_paths(&output, "tls.cert", &[&path, &cert]);
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("ready"),
        "{}",
        transcript(&output)
    );
}

#[test]
fn check_config_takes_its_file_from_config_after_the_subcommand() {
    let dir = TestDir::new(&Config::default());
    let mut cmd = Command::new(binary());
    cmd.arg("check-config")
        .arg("--config")
        .arg(&dir.config_path);
    let output = run_client(cmd, None, CLIENT_TIMEOUT, "build the pillarbox binary");
    assert!(output.status.success(), "{}", transcript(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("mx.example.test"),
        "{}",
        transcript(&output)
    );
}

#[test]
fn check_config_takes_its_file_from_pillarbox_config() {
    let dir = TestDir::new(&Config::default());
    let mut cmd = Command::new(binary());
    cmd.arg("check-config")
        .env("PILLARBOX_CONFIG", &dir.config_path);
    let output = run_client(cmd, None, CLIENT_TIMEOUT, "build the pillarbox binary");
    assert!(output.status.success(), "{}", transcript(&output));
}

#[test]
fn check_config_file_wins_over_pillarbox_config() {
    let dir = TestDir::new(&Config::default());
    let mut cmd = Command::new(binary());
    cmd.arg("check-config")
        .arg(&dir.config_path)
        .env("PILLARBOX_CONFIG", dir.path().join("elsewhere.toml"));
    let output = run_client(cmd, None, CLIENT_TIMEOUT, "build the pillarbox binary");
    assert!(output.status.success(), "{}", transcript(&output));
}

#[test]
fn check_config_warns_of_an_undeliverable_abuse_address_until_an_alias_covers_it() {
    let dir = TestDir::new(&Config {
        catch_all: false,
        ..Config::default()
    });
    let output = check_config(&dir.config_path);
    let text = transcript(&output);
    assert!(output.status.success(), "a warning, not a refusal:\n{text}");
    for domain in ["example.test", "other.test"] {
        assert!(
            text.contains(&format!("warning: abuse@{domain} is not deliverable")),
            "{text}"
        );
    }
    // postmaster is always taken (RFC 5321 4.5.1).
    assert!(!text.contains("postmaster@example.test is not"), "{text}");
    fs::create_dir_all(&dir.data_dir).expect("data dir");
    fs::write(
        dir.data_dir.join("aliases"),
        "abuse@example.test postmaster\nabuse@other.test postmaster\n",
    )
    .expect("write aliases");
    let output = check_config(&dir.config_path);
    let text = transcript(&output);
    assert!(output.status.success(), "{text}");
    assert!(!text.contains("warning:"), "{text}");
}
