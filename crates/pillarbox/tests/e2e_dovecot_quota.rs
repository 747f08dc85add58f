//! Dovecot's `quota = maildir` and Pillarbox share `maildirsize`: Dovecot
//! reports the usage Pillarbox wrote, and after a delete through Dovecot,
//! Pillarbox accepts mail again.
//!
//! The file is seeded with a phantom change line (1 KiB in one message that
//! is not on disk), so only a reader that sums the file, not one that
//! recounts the Maildir, gets the figures asserted here.

mod common;

use std::fs;
use std::process::Command;

use common::{Config, TestDir};

/// Room for the message and the phantom line (Dovecot recounts a file over
/// quota that has change lines), not for a 1500-byte message on top.
const QUOTA: u64 = 4096;
/// A change line no message on disk accounts for: `<bytes> <count>`.
const PHANTOM_BYTES: u64 = 1024;
const PHANTOM_LINE: &str = "1024 1\n";

fn doveadm(conf: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("doveadm")
        .arg("-c")
        .arg(conf)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("doveadm (Debian dovecot-core) must be installed: {e}"));
    assert!(
        out.status.success(),
        "doveadm {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `dovecot -F`, stopped on drop.
struct Daemon(std::process::Child);

impl Daemon {
    fn start(conf: &std::path::Path, socket: &std::path::Path) -> Daemon {
        let child = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(conf)
            .spawn()
            .unwrap_or_else(|e| panic!("dovecot (Debian dovecot-core) must be installed: {e}"));
        let d = Daemon(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while !socket.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "dovecot did not create {}",
                socket.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        d
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn message(bytes: usize) -> Vec<u8> {
    let mut m = b"Subject: quota\r\n\r\n".to_vec();
    while m.len() < bytes {
        m.extend_from_slice(b"quota quota quota quota quota quota quota quota\r\n");
    }
    m
}

#[test]
fn dovecot_reports_our_usage_and_its_expunge_frees_room_for_us() {
    let cfg = Config {
        users: vec![format!(
            "alice@example.test::65534:65534::::userdb_quota_rule=*:bytes={QUOTA}"
        )],
        catch_all: false,
        ..Config::default()
    };
    let dir = TestDir::new(&cfg);
    let server = dir.start();
    let mut c = server.session();
    c.expect("EHLO client.test", 250);
    assert_eq!(
        c.send_mail("x@example.test", &["alice@example.test"], &message(2000))
            .unwrap()
            .code,
        250
    );
    let stored = dir.messages("alice@example.test");
    assert_eq!(stored.len(), 1);
    let size = stored[0].bytes.len() as u64;

    // Usage that only the file says: a recount of the Maildir would find
    // `size` bytes in one message, the file's sum is one KiB and one message more.
    let maildirsize = dir.maildir("alice@example.test").join("maildirsize");
    let ours = fs::read_to_string(&maildirsize).unwrap();
    assert_eq!(
        ours,
        format!("{QUOTA}S\n{size} 1\n"),
        "Pillarbox's maildirsize"
    );
    let seeded = format!("{ours}{PHANTOM_LINE}");
    fs::write(&maildirsize, &seeded).unwrap();
    // Pillarbox sums it too: the message and the phantom leave no room for 1500.
    c.expect("MAIL FROM:<x@example.test> SIZE=1500", 250);
    c.expect("RCPT TO:<alice@example.test>", 452);
    c.expect("RSET", 250);

    // Dovecot on the same data dir, with the same users file and the same rule.
    for p in [dir.path(), dir.data_dir.as_path()] {
        Command::new("chmod").arg("755").arg(p).status().unwrap();
    }
    Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(dir.data_dir.join("mail"))
        .status()
        .unwrap();
    let run = dir.path().join("dovecot-run");
    fs::create_dir_all(&run).unwrap();
    let users = dir.path().join("users");
    let conf = dir.path().join("dovecot.conf");
    fs::write(
        &conf,
        format!(
            "log_path = {run}/dovecot.log\nssl = no\nprotocols =\nbase_dir = {run}\nstate_dir = {run}\n\
             first_valid_uid = 1\n\
             mail_location = maildir:{data}/mail/%d/%n/Maildir\n\
             mail_plugins = quota\n\
             passdb {{\n  driver = passwd-file\n  args = {users}\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = {users}\n}}\n\
             plugin {{\n  quota = maildir:User quota\n  quota_rule = *:bytes={QUOTA}\n}}\n",
            run = run.display(),
            data = dir.data_dir.display(),
            users = users.display(),
        ),
    )
    .unwrap();

    // doveadm asks the auth service for the user: run the real daemon (no listeners).
    let _dovecot = Daemon::start(&conf, &run.join("auth-userdb"));
    let report = doveadm(&conf, &["quota", "get", "-u", "alice@example.test"]);
    // `Quota name Type Value Limit %`: the STORAGE row, in kilobytes.
    let storage = report
        .lines()
        .find(|l| l.contains("STORAGE"))
        .unwrap_or_else(|| panic!("no STORAGE row in {report}"));
    let cols: Vec<&str> = storage.split_whitespace().collect();
    let value: u64 = cols[cols.len() - 3].parse().unwrap();
    let limit: u64 = cols[cols.len() - 2].parse().unwrap();
    // doveadm shows KiB, rounded up; a recount would show `size` alone.
    assert_eq!(
        value,
        (size + PHANTOM_BYTES).div_ceil(1024),
        "Dovecot's usage is the sum of maildirsize, not a recount ({size} bytes on disk): {report}"
    );
    assert_eq!(limit, QUOTA.div_ceil(1024), "{report}");
    let messages = report.lines().find(|l| l.contains("MESSAGE")).unwrap();
    assert!(
        messages.split_whitespace().any(|w| w == "2"),
        "Dovecot counts the file's two messages (one on disk): {report}"
    );
    assert_eq!(
        fs::read_to_string(&maildirsize).unwrap(),
        seeded,
        "Dovecot read maildirsize without rewriting it"
    );

    // Delete through Dovecot; Dovecot appends the change to maildirsize.
    doveadm(
        &conf,
        &[
            "expunge",
            "-u",
            "alice@example.test",
            "mailbox",
            "INBOX",
            "all",
        ],
    );
    let md = fs::read_to_string(&maildirsize).unwrap();
    assert!(
        md.starts_with(&seeded) && md[seeded.len()..].lines().any(|l| l.starts_with('-')),
        "Dovecot appended the expunge to our file: {md:?}"
    );

    // The phantom KiB stays: 1024 + 1500 fits in the quota again.
    c.expect("MAIL FROM:<x@example.test> SIZE=1500", 250);
    c.expect("RCPT TO:<alice@example.test>", 250);
    c.expect("RSET", 250);

    // And our CLI agrees, from the file (a recount would say 0).
    let text = dir.quota_get("alice@example.test");
    assert!(
        text.contains(&format!("storage {PHANTOM_BYTES} of {QUOTA} bytes")),
        "{text}"
    );
}
