//! Dovecot's `quota = maildir` (configured as `docs/dovecot.md` says) and
//! Pillarbox share `maildirsize`: Dovecot
//! reports the usage Pillarbox wrote, and after a delete through Dovecot,
//! Pillarbox accepts mail again.
//!
//! The file is seeded with a phantom change line (1 KiB in one message that
//! is not on disk), so only a reader that sums the file, not one that
//! recounts the Maildir, gets the figures asserted here.

mod common;

use common::{Config, Dovecot, TestDir};
use std::fs;

/// Room for the message and the phantom line (Dovecot recounts a file over
/// quota that has change lines), not for a 1500-byte message on top.
const QUOTA: u64 = 4096;
/// A change line no message on disk accounts for: `<bytes> <count>`.
const PHANTOM_BYTES: u64 = 1024;
const PHANTOM_LINE: &str = "1024 1\n";

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

    // Dovecot on the same data dir and users file, configured by docs/dovecot.md:
    // the 4 KiB limit comes from the users file's userdb_quota_rule, not the
    // guide's default.
    let dovecot = Dovecot::start(&dir);
    let report = dovecot.doveadm(&["quota", "get", "-u", "alice@example.test"]);
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
    dovecot.doveadm(&[
        "expunge",
        "-u",
        "alice@example.test",
        "mailbox",
        "INBOX",
        "all",
    ]);
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
