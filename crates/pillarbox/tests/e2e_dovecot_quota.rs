//! Dovecot's `quota = maildir` and Pillarbox share `maildirsize`: Dovecot
//! reports the usage Pillarbox wrote, and after a delete through Dovecot,
//! Pillarbox accepts mail again (issue 4).

mod common;

use std::fs;
use std::process::Command;

use common::{Config, TestDir};

const QUOTA: u64 = 3000;

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
    c.expect("MAIL FROM:<x@example.test> SIZE=1500", 250);
    c.expect("RCPT TO:<alice@example.test>", 452);
    c.expect("RSET", 250);

    let stored = dir.messages("alice@example.test");
    assert_eq!(stored.len(), 1);
    let size = stored[0].bytes.len() as u64;

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
    // doveadm shows KiB, rounded up.
    assert_eq!(
        value,
        size.div_ceil(1024),
        "Dovecot's usage is what Pillarbox recorded: {report}"
    );
    assert_eq!(limit, QUOTA.div_ceil(1024), "{report}");
    let messages = report.lines().find(|l| l.contains("MESSAGE")).unwrap();
    assert!(messages.split_whitespace().any(|w| w == "1"), "{report}");

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
    let md = fs::read_to_string(dir.maildir("alice@example.test").join("maildirsize")).unwrap();
    assert!(
        md.lines().any(|l| l.starts_with('-')),
        "Dovecot recorded the expunge: {md:?}"
    );

    c.expect("MAIL FROM:<x@example.test> SIZE=1500", 250);
    c.expect("RCPT TO:<alice@example.test>", 250);
    c.expect("RSET", 250);

    // And our CLI agrees.
    let text = dir.quota_get("alice@example.test");
    assert!(
        text.contains(&format!("storage 0 of {QUOTA} bytes")),
        "{text}"
    );
}
