//! Delivery status notifications as another MIME parser reads them: Python's
//! `email` package, which knows multipart/report and message/delivery-status
//! (RFC 3464 2.1: each block of fields a message of its own).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pillarbox_codes::Lang;
use pillarbox_queue::dsn::{build, Action, DsnRecipient, Report, Ret};

/// Checks one notification; prints the decoded subject and the first line of
/// the human-readable part. Arguments: file, action, status, final
/// recipient, diagnostic code, content type of the third part.
const CHECK: &str = r#"
import email, re, sys
from email import policy

path, action, status, final, diagnostic, third = sys.argv[1:7]
raw = open(path, "rb").read()
assert re.search(rb"(?<!\r)\n", raw) is None, "bare LF"
m = email.message_from_bytes(raw)
assert m.get_content_type() == "multipart/report", m.get_content_type()
assert m.get_param("report-type") == "delivery-status", m.get_param("report-type")
assert m["Auto-Submitted"] == "auto-replied"
parts = m.get_payload()
assert len(parts) == 3, len(parts)
assert parts[0].get_content_type() == "text/plain"
human = parts[0].get_payload(decode=True).decode("utf-8")

ds = parts[1]
assert ds.get_content_type() == "message/delivery-status", ds.get_content_type()
blocks = ds.get_payload()
assert len(blocks) == 2, len(blocks)
unfold = lambda v: re.sub(r"\r?\n", "", v) if v is not None else None
assert unfold(blocks[0]["Reporting-MTA"]) == "dns; mx.example.org", blocks[0]["Reporting-MTA"]
assert unfold(blocks[0]["Original-Envelope-Id"]) == "QQ314159"
assert blocks[0]["Arrival-Date"] is not None
rcpt = blocks[1]
assert unfold(rcpt["Action"]) == action, rcpt["Action"]
assert unfold(rcpt["Status"]) == status, rcpt["Status"]
assert unfold(rcpt["Final-Recipient"]) == final, rcpt["Final-Recipient"]
assert unfold(rcpt["Diagnostic-Code"]) == diagnostic, rcpt["Diagnostic-Code"]
assert unfold(rcpt["Original-Recipient"]) == "rfc822; Bob@Example.NET"
assert (rcpt["Will-Retry-Until"] is not None) == (action == "delayed")

assert parts[2].get_content_type() == third, parts[2].get_content_type()
if third == "message/rfc822":
    inner = parts[2].get_payload()[0]
    assert inner["Subject"] == "lunch", inner["Subject"]
    assert "BODY-MARKER" in inner.get_payload()
else:
    assert b"BODY-MARKER" not in raw

decoded = email.message_from_bytes(raw, policy=policy.default)
sys.stdout.write(str(decoded["Subject"]) + "\n" + human.splitlines()[0] + "\n")
"#;

const ORIGINAL: &[u8] = b"From: Ann <ann@example.org>\n\
To: Bob <bob@example.net>\n\
Subject: lunch\n\
Message-ID: <orig-1@example.org>\n\
\n\
Shall we meet at noon?\n\
BODY-MARKER\n";

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn recipient(action: Action) -> DsnRecipient {
    let (status, reply) = match action {
        Action::Failed => ("5.1.1", "550 5.1.1 <bob@example.net>: user unknown"),
        Action::Delayed => ("4.2.2", "452 4.2.2 mailbox full, try again later"),
        Action::Delivered | Action::Relayed => ("2.0.0", "250 2.0.0 OK queued as 7F3A"),
    };
    DsnRecipient {
        final_recipient: "bob@example.net".into(),
        original_recipient: Some(("rfc822".into(), "Bob@Example.NET".into())),
        action,
        status: Some(status.into()),
        reply: Some(reply.into()),
        remote_mta: Some("mx.example.net".into()),
        last_attempt: Some(at(1_700_000_600)),
        will_retry_until: Some(at(1_700_432_000)),
    }
}

fn python3() -> bool {
    Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs the check on `msg`; returns what it printed (subject, first line).
fn check(dir: &Path, name: &str, msg: &[u8], args: [&str; 5]) -> (String, String) {
    let path = dir.join(name);
    std::fs::write(&path, msg).expect("write the notification");
    let out = Command::new("python3")
        .arg("-c")
        .arg(CHECK)
        .arg(&path)
        .args(args)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{name}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(msg)
    );
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 from the check");
    let mut lines = stdout.lines();
    let subject = lines.next().unwrap_or_default().to_string();
    let first = lines.next().unwrap_or_default().to_string();
    (subject, first)
}

#[test]
fn python_reads_every_kind_in_every_language() {
    if !python3() {
        println!("python3 not found: the notification was not checked with Python's email package");
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    for action in [
        Action::Failed,
        Action::Delayed,
        Action::Delivered,
        Action::Relayed,
    ] {
        let r = [recipient(action)];
        let mut subjects = Vec::new();
        for lang in Lang::ALL {
            for ret in [Ret::Full, Ret::Hdrs] {
                let report = Report {
                    reporting_mta: "mx.example.org",
                    envid: Some("QQ314159"),
                    arrival: at(1_700_000_000),
                    original_sender: "ann@example.org",
                    recipients: &r,
                    ret,
                    original: ORIGINAL,
                    language: lang,
                    now: at(1_700_000_900),
                    message_id: "dsn.0001",
                    max_original: 1 << 20,
                };
                let third = if action == Action::Failed && ret == Ret::Full {
                    "message/rfc822"
                } else {
                    "text/rfc822-headers"
                };
                let rcpt = &r[0];
                let diagnostic = format!("smtp; {}", rcpt.reply.as_deref().unwrap());
                let name = format!("{}-{lang}-{ret:?}.eml", action.as_str());
                let (subject, first) = check(
                    dir.path(),
                    &name,
                    &build(&report),
                    [
                        action.as_str(),
                        rcpt.status.as_deref().unwrap_or_default(),
                        "rfc822; bob@example.net",
                        &diagnostic,
                        third,
                    ],
                );
                assert!(first.contains("mx.example.org"), "{name}: {first}");
                if ret == Ret::Full {
                    subjects.push(subject);
                }
            }
        }
        let expected = match action {
            Action::Failed => "Undelivered Mail Returned to Sender",
            Action::Delayed => "Delayed Mail (still being retried)",
            Action::Delivered | Action::Relayed => "Successful Mail Delivery Report",
        };
        assert_eq!(subjects[0], expected);
        for (i, s) in subjects.iter().enumerate() {
            assert!(
                !subjects[i + 1..].contains(s),
                "{action:?}: two languages share the subject {s}"
            );
        }
    }
}
