//! Least privilege: `serve` started as root binds a port below 1024, drops
//! to `user`, delivers as that user, and leaves every file it created that
//! user's with the configured modes; a `user` that cannot be had is refused at
//! start; `pillarbox users` keeps the users file's owner, group and mode.
//!
//! The tests that start as root need root (CI runs as root); without it they
//! fail and say so.

mod common;

use std::fs;
use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{binary, sample_message, Config, TestDir};

/// The unprivileged account the server drops to.
const ACCOUNT: &str = "pillarbox-test";

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `id` of `ACCOUNT`: `-u` or `-g`; `None` when there is no such account.
fn id(flag: &str) -> Option<u32> {
    let out = Command::new("id").arg(flag).arg(ACCOUNT).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The account's uid and gid, creating it when missing (idempotent: a
/// concurrent creation counts as success).
fn account() -> (u32, u32) {
    assert!(
        is_root(),
        "this test starts the server as root; run it as root"
    );
    if id("-u").is_none() {
        let _ = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
            ])
            .arg(ACCOUNT)
            .status();
    }
    match (id("-u"), id("-g")) {
        (Some(u), Some(g)) => (u, g),
        _ => panic!("cannot create the account {ACCOUNT} with useradd"),
    }
}

/// A loopback port below 1024 that is free now (ports 25, 465 and 587 may be
/// Postfix's here, and tests run in parallel: each call starts at a spot of
/// its own, so two tests of this process do not find the same free port in
/// the moment between this check and their server's bind).
fn free_low_port() -> u16 {
    static CALLS: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let start = 700 + ((std::process::id() as u16 % 25) * 8 + call * 31) % 300;
    (start..1000)
        .chain(600..start)
        .find(|&p| TcpListener::bind(("127.0.0.1", p)).is_ok())
        .expect("a free port below 1024 on 127.0.0.1")
}

/// A test directory the account can reach, whose config makes the server
/// listen on `port` and run as `user`, with `extra` appended.
fn privileged_dir(user: &str, port: u16, extra: &str) -> TestDir {
    let dir = TestDir::new(&Config::default());
    // The temporary directory is root's 0700: the account must get through it.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let text = fs::read_to_string(&dir.config_path).expect("read config");
    let text = format!(
        "user = \"{user}\"\n{}\n{extra}",
        text.replace("127.0.0.1:0", &format!("127.0.0.1:{port}"))
    );
    fs::write(&dir.config_path, text).expect("write config");
    dir
}

/// The four fields of a `Uid:` or `Gid:` line of `/proc/<pid>/status`.
fn ids(pid: u32, field: &str) -> Vec<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap_or_else(|| panic!("no {field} line"))
        .split_whitespace()
        .map(|n| n.parse().expect("a number"))
        .collect()
}

/// Every path under `root` (itself included), never following a link.
fn tree(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_path_buf()];
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in fs::read_dir(&dir).expect("read_dir") {
            let entry = entry.expect("entry");
            let path = entry.path();
            if entry.file_type().expect("file type").is_dir() {
                todo.push(path.clone());
            }
            out.push(path);
        }
    }
    out
}

#[test]
fn serve_started_as_root_drops_to_user_delivers_and_leaves_its_files_owned_with_the_configured_modes(
) {
    let (uid, gid) = account();
    let port = free_low_port();
    let dir = privileged_dir(
        ACCOUNT,
        port,
        "[storage]\nfile_mode = \"0640\"\ndir_mode = \"0750\"\n",
    );
    let server = dir.start();
    assert_eq!(server.port, port, "{:?}", server.startup);

    assert_eq!(
        ids(server.pid, "Uid:"),
        vec![uid; 4],
        "real, effective, saved, fs uid"
    );
    assert_eq!(
        ids(server.pid, "Gid:"),
        vec![gid; 4],
        "real, effective, saved, fs gid"
    );
    let status = fs::read_to_string(format!("/proc/{}/status", server.pid)).expect("status");
    let groups = status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .expect("Groups line");
    assert!(
        groups.split_whitespace().all(|g| g == gid.to_string()),
        "supplementary groups {groups:?}, root's 0 among them?"
    );
    assert!(
        server.log().contains("privileges dropped"),
        "{}",
        server.log()
    );

    let mut smtp = server.session();
    smtp.expect("EHLO client.test", 250);
    let reply = smtp
        .send_mail(
            "bob@remote.test",
            &["alice@example.test"],
            &sample_message("privdrop", "alice@example.test"),
        )
        .expect("send");
    assert!(reply.starts_with("250"), "{reply:?}\n{}", server.log());
    smtp.expect("QUIT", 221);
    assert_eq!(dir.messages("alice@example.test").len(), 1);
    let maildir = dir.maildir("alice@example.test");
    assert!(maildir.join("maildirsize").is_file(), "quota file written");

    for path in tree(&dir.data_dir) {
        let meta = fs::symlink_metadata(&path).expect("lstat");
        assert_eq!(
            (meta.uid(), meta.gid()),
            (uid, gid),
            "{} is not {ACCOUNT}'s",
            path.display()
        );
        let mode = meta.mode() & 0o7777;
        if meta.is_dir() {
            assert_eq!(mode, 0o750, "{}: {mode:o}", path.display());
        } else {
            // The state database, the lock and the generated key keep their
            // own stricter modes; nothing is more open than configured.
            assert_eq!(mode & !0o640, 0, "{}: {mode:o}", path.display());
        }
    }
    let mut exact: Vec<PathBuf> = fs::read_dir(maildir.join("new"))
        .expect("new/")
        .map(|e| e.expect("entry").path())
        .collect();
    exact.push(maildir.join("maildirsize"));
    for path in exact {
        let mode = fs::metadata(&path).expect("stat").mode() & 0o7777;
        assert_eq!(mode, 0o640, "{}: {mode:o}", path.display());
    }
}

#[test]
fn a_second_start_as_user_still_delivers_into_the_maildirs_of_the_first() {
    let _ = account();
    let port = free_low_port();
    let dir = privileged_dir(ACCOUNT, port, "");
    for tag in ["first", "second"] {
        let mut server = dir.start();
        let mut smtp = server.session();
        smtp.expect("EHLO client.test", 250);
        let reply = smtp
            .send_mail(
                "bob@remote.test",
                &["alice@example.test"],
                &sample_message(tag, "alice@example.test"),
            )
            .expect("send");
        assert!(reply.starts_with("250"), "{reply:?}\n{}", server.log());
        smtp.expect("QUIT", 221);
        server.signal("TERM");
        assert!(
            server.wait_exit(Duration::from_secs(30)).is_some(),
            "server did not stop"
        );
    }
    assert_eq!(dir.messages("alice@example.test").len(), 2);
}

/// Runs `pillarbox serve --config FILE` expecting it to refuse to start;
/// returns its stderr.
fn refused(cmd: &mut Command) -> String {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().expect("stderr"), &mut err)
        .expect("read stderr");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(1), "{err}");
    err
}

#[test]
fn an_unknown_user_is_refused_at_start_naming_the_key_and_the_config_file() {
    let dir = privileged_dir("no-such-user-pillarbox", 0, "");
    let err = refused(
        Command::new(binary())
            .arg("serve")
            .arg("--config")
            .arg(&dir.config_path),
    );
    let file = dir.config_path.display().to_string();
    assert!(
        err.contains("key `user`") && err.contains("no-such-user-pillarbox") && err.contains(&file),
        "{err}"
    );
    assert!(!dir.data_dir.exists(), "nothing opened before the refusal");
}

#[test]
fn started_as_another_user_than_root_serve_refuses_a_different_user() {
    let _ = account();
    // nobody asks to become pillarbox-test: only root could.
    let dir = privileged_dir(ACCOUNT, 0, "");
    let err = refused(
        Command::new(binary())
            .arg("serve")
            .arg("--config")
            .arg(&dir.config_path)
            .current_dir(dir.path())
            .uid(65534)
            .gid(65534),
    );
    assert!(
        err.contains("key `user`") && err.contains("not root"),
        "{err}"
    );
}

#[test]
fn users_add_passwd_and_del_keep_the_users_file_owner_group_and_mode() {
    let (_, gid) = account();
    let dir = TestDir::new(&Config::default());
    let users = dir.path().join("users");
    std::os::unix::fs::chown(&users, Some(0), Some(gid)).expect("chown");
    fs::set_permissions(&users, fs::Permissions::from_mode(0o640)).expect("chmod");
    let run = |args: &[&str]| {
        let mut child = Command::new(binary())
            .arg("--config")
            .arg(&dir.config_path)
            .arg("users")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"secret\n")
            .expect("password");
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "users {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let meta = fs::metadata(&users).expect("stat");
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (0, gid, 0o640),
            "after users {args:?}"
        );
    };
    run(&["add", "carol@example.test", "--password-stdin"]);
    run(&["passwd", "carol@example.test", "--password-stdin"]);
    run(&["del", "carol@example.test"]);
}
