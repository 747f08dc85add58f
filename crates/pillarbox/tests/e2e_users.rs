//! `pillarbox users` writes a users file Dovecot reads: every hash we write passes
//! `doveadm pw -t`, and a Dovecot with `passdb passwd-file` on the same file logs
//! the users in (`doveadm auth test`). Dovecot (Debian `dovecot-core`) missing is a
//! failure, not a skip: `.ci/run` installs it.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use pillarbox_store::password::{hash, Scheme};

const DOVEADM: &str = "doveadm";

/// A test's own directory with a config whose users file is `<dir>/users`.
struct UsersDir {
    dir: tempfile::TempDir,
}

impl UsersDir {
    fn new() -> UsersDir {
        let dir = tempfile::tempdir().expect("tempdir");
        common::write_users_config(dir.path());
        UsersDir { dir }
    }

    fn users_file(&self) -> PathBuf {
        self.dir.path().join("users")
    }

    /// Runs `pillarbox users --config <cfg> ARGS` with `stdin` as standard input.
    fn users(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(common::binary())
            .arg("users")
            .arg("--config")
            .arg(self.dir.path().join("pillarbox.toml"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run pillarbox");
        let mut input = child.stdin.take().expect("stdin");
        // The command may exit before reading (a refused user): ignore EPIPE.
        let _ = input.write_all(stdin.as_bytes());
        drop(input);
        child.wait_with_output().expect("wait pillarbox")
    }

    /// Like `users`, and the command must succeed; returns its stdout.
    fn users_ok(&self, args: &[&str], stdin: &str) -> String {
        let out = self.users(args, stdin);
        assert!(
            out.status.success(),
            "pillarbox users {args:?}: {}",
            show(&out)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// The password field of `user` as written in the users file.
    fn field(&self, user: &str) -> String {
        let text = fs::read_to_string(self.users_file()).expect("read users file");
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{user}:")))
            .map(|rest| rest.split(':').next().unwrap_or("").to_string())
            .unwrap_or_else(|| panic!("no line for {user} in:\n{text}"))
    }
}

fn show(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `doveadm pw -t FIELD -p PASSWORD`: true when Dovecot verifies it.
fn doveadm_verifies(field: &str, password: &str) -> bool {
    let out = Command::new(DOVEADM)
        .args(["pw", "-t", field, "-p", password])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {DOVEADM} (apt-get install dovecot-core): {e}"));
    let verified = String::from_utf8_lossy(&out.stdout).contains("(verified)");
    assert_eq!(out.status.success(), verified, "{field}: {}", show(&out));
    verified
}

#[test]
fn every_hash_we_write_is_verified_by_doveadm() {
    for scheme in Scheme::ALL {
        for password in ["secret", "Gr\u{fc}\u{df}e, a longer pass phrase!"] {
            let field = hash(scheme, password).unwrap_or_else(|e| panic!("{scheme}: {e}"));
            assert!(doveadm_verifies(&field, password), "{scheme}: {field}");
            assert!(!doveadm_verifies(&field, "wrong"), "{scheme}: {field}");
        }
    }
}

#[test]
fn users_add_reads_the_password_from_stdin_and_writes_a_0600_file() {
    let d = UsersDir::new();
    let out = d.users_ok(
        &["add", "Alice@Example.test", "--password-stdin"],
        "s3cret pass\n",
    );
    assert_eq!(out, "added alice@example.test (ARGON2ID)\n");
    let mode = fs::metadata(d.users_file())
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let field = d.field("alice@example.test");
    assert!(field.starts_with("{ARGON2ID}$argon2id$v=19$"), "{field}");
    assert!(doveadm_verifies(&field, "s3cret pass"));
    assert!(!doveadm_verifies(&field, "s3cret pass\n"));
}

#[test]
fn users_add_with_each_scheme_writes_what_doveadm_verifies() {
    let d = UsersDir::new();
    for (i, scheme) in [
        "sha512-crypt",
        "SHA256-CRYPT",
        "blf-crypt",
        "scram-sha-256",
        "cram-md5",
    ]
    .iter()
    .enumerate()
    {
        let user = format!("u{i}@example.test");
        d.users_ok(
            &["add", &user, "--scheme", scheme, "--password-stdin"],
            "pw\r\n",
        );
        let field = d.field(&user);
        assert!(
            field
                .to_lowercase()
                .starts_with(&format!("{{{scheme}}}").to_lowercase()),
            "{field}"
        );
        assert!(doveadm_verifies(&field, "pw"), "{field}");
    }
}

#[test]
fn users_add_refuses_an_existing_user_and_a_password_in_argv() {
    let d = UsersDir::new();
    d.users_ok(&["add", "alice", "--password-stdin"], "one\n");
    let before = fs::read(d.users_file()).expect("read");
    let again = d.users(&["add", "alice@example.test", "--password-stdin"], "two\n");
    assert!(!again.status.success(), "{}", show(&again));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let argv = d.users(&["add", "bob", "secret-on-argv"], "");
    assert!(!argv.status.success(), "{}", show(&argv));
    assert_eq!(fs::read(d.users_file()).expect("read"), before);
}

#[test]
fn users_add_refuses_an_empty_password() {
    let d = UsersDir::new();
    let out = d.users(&["add", "alice", "--password-stdin"], "\n");
    assert!(!out.status.success(), "{}", show(&out));
    assert!(!d.users_file().exists());
}

#[test]
fn users_list_shows_users_and_schemes_never_hashes() {
    let d = UsersDir::new();
    d.users_ok(&["add", "alice", "--password-stdin"], "a\n");
    d.users_ok(
        &[
            "add",
            "bob@other.test",
            "--scheme",
            "plain",
            "--password-stdin",
        ],
        "bobs-plain-pw\n",
    );
    let list = d.users_ok(&["list"], "");
    assert_eq!(
        list,
        "alice@example.test\tARGON2ID\nbob@other.test\tPLAIN\n"
    );
    assert!(!list.contains("argon2id$") && !list.contains("bobs-plain-pw"));
}

#[test]
fn users_passwd_and_del_change_only_their_user() {
    let d = UsersDir::new();
    fs::write(
        d.users_file(),
        "# kept\ncarol@example.test:{PLAIN}c:1000:1000::/home/carol::quota_rule=*:storage=1G\n",
    )
    .expect("seed");
    d.users_ok(&["add", "alice", "--password-stdin"], "old\n");
    d.users_ok(&["passwd", "alice", "--password-stdin"], "new\n");
    let field = d.field("alice@example.test");
    assert!(doveadm_verifies(&field, "new") && !doveadm_verifies(&field, "old"));
    d.users_ok(&["del", "alice@example.test"], "");
    assert_eq!(
        fs::read_to_string(d.users_file()).expect("read"),
        "# kept\ncarol@example.test:{PLAIN}c:1000:1000::/home/carol::quota_rule=*:storage=1G\n"
    );
    let missing = d.users(&["passwd", "alice", "--password-stdin"], "x\n");
    assert!(!missing.status.success(), "{}", show(&missing));
}

/// Drives `pillarbox users add` on a pseudo-terminal, typing the password twice.
const PTY_DRIVER: &str = r#"
import os, pty, sys, time
argv, password = sys.argv[1:-1], sys.argv[-1]
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
seen = b""
def read_until(marker):
    """Reads until `marker` has been seen, or to the end with None."""
    global seen
    deadline = time.time() + 30
    while marker is None or marker not in seen:
        if time.time() > deadline:
            sys.exit("timed out waiting for %r; got %r" % (marker, seen))
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
read_until(b"New password")
os.write(fd, password.encode() + b"\n")
read_until(b"Retype")
os.write(fd, password.encode() + b"\n")
read_until(None)
_, status = os.waitpid(pid, 0)
sys.stdout.write(seen.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;

#[test]
fn users_add_asks_twice_on_the_terminal_without_echo() {
    let d = UsersDir::new();
    let out = Command::new("python3")
        .arg("-c")
        .arg(PTY_DRIVER)
        .arg(common::binary())
        .args(["users", "--config"])
        .arg(d.dir.path().join("pillarbox.toml"))
        .args(["add", "alice", "Typed-Pw-1"])
        .output()
        .expect("run python3 (apt-get install python3)");
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        seen.contains("New password for alice@example.test"),
        "{seen}"
    );
    assert!(!seen.contains("Typed-Pw-1"), "password echoed: {seen}");
    assert!(doveadm_verifies(
        &d.field("alice@example.test"),
        "Typed-Pw-1"
    ));
}

/// A Dovecot with `passdb passwd-file` on a users file, stopped when dropped.
struct Dovecot {
    config: PathBuf,
}

impl Dovecot {
    fn start(dir: &Path, users_file: &Path) -> Dovecot {
        let run = dir.join("dovecot-run");
        fs::create_dir_all(&run).expect("mkdir run");
        let config = dir.join("dovecot.conf");
        fs::write(
            &config,
            format!(
                "base_dir = {run}\nstate_dir = {run}\nlog_path = {log}\nprotocols =\nssl = no\n\
                 passdb {{\n  driver = passwd-file\n  args = {users}\n}}\n\
                 userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={dir}/home\n}}\n",
                run = run.display(),
                log = dir.join("dovecot.log").display(),
                users = users_file.display(),
                dir = dir.display(),
            ),
        )
        .expect("write dovecot.conf");
        let status = Command::new("dovecot")
            .arg("-c")
            .arg(&config)
            .status()
            .expect("run dovecot (apt-get install dovecot-core)");
        assert!(status.success(), "dovecot did not start: {status}");
        Dovecot { config }
    }

    /// `doveadm auth test USER PASSWORD`: true when Dovecot logs the user in.
    fn auth(&self, user: &str, password: &str) -> bool {
        let out = Command::new(DOVEADM)
            .arg("-c")
            .arg(&self.config)
            .args(["auth", "test", user, password])
            .output()
            .expect("run doveadm");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            !text.contains("temp_fail"),
            "dovecot trouble: {}",
            show(&out)
        );
        out.status.success()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new(DOVEADM)
            .arg("-c")
            .arg(&self.config)
            .arg("stop")
            .status();
    }
}

fn uid_of(user: &str) -> u32 {
    let out = Command::new("id")
        .args(["-u", user])
        .output()
        .expect("run id");
    assert!(out.status.success(), "no {user} account: {}", show(&out));
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("uid")
}

#[test]
fn dovecot_passwd_file_logs_in_the_users_pillarbox_wrote() {
    let d = UsersDir::new();
    d.users_ok(&["add", "alice", "--password-stdin"], "alice-pw\n");
    d.users_ok(
        &[
            "add",
            "bob@example.test",
            "--scheme",
            "scram-sha-256",
            "--password-stdin",
        ],
        "bob-pw\n",
    );
    // Dovecot's auth process runs as `dovecot`: give it the file (mode 0600 stays)
    // and the way to it. Our later edits keep the owner.
    fs::set_permissions(d.dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod dir");
    std::os::unix::fs::chown(d.users_file(), Some(uid_of("dovecot")), None)
        .expect("chown users file (run as root)");
    let dovecot = Dovecot::start(d.dir.path(), &d.users_file());
    assert!(dovecot.auth("alice@example.test", "alice-pw"));
    assert!(dovecot.auth("bob@example.test", "bob-pw"));
    assert!(!dovecot.auth("alice@example.test", "bob-pw"));

    d.users_ok(&["passwd", "alice", "--password-stdin"], "alice-pw-2\n");
    let meta = fs::metadata(d.users_file()).expect("stat");
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        uid_of("dovecot")
    );
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(dovecot.auth("alice@example.test", "alice-pw-2"));
}
