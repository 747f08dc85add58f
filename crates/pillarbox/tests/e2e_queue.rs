//! The queue end to end: a recipient the end of data refuses waits in the
//! queue while the others receive the message; `pillarbox queue` shows and
//! steers it on the live server; when it fails the sender gets a DSN that
//! Python's `email` package reads, as NOTIFY asks, and never for the null
//! sender.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn queue(dir: &TestDir, args: &[&str]) -> String {
    dir.queue_cli(args)
}

/// The queue as `queue list --json` prints it.
fn queue_json(dir: &TestDir) -> serde_json::Value {
    let text = queue(dir, &["list", "--json"]);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("queue list --json: {e}: {text}"))
}

/// A message of about `size` bytes.
fn message(tag: &str, size: usize) -> Vec<u8> {
    let mut m = format!("Subject: {tag}\r\nMessage-ID: <{tag}@example.test>\r\n\r\n").into_bytes();
    while m.len() < size {
        m.extend_from_slice(
            b"0123456789012345678901234567890123456789012345678901234567890123456789\r\n",
        );
    }
    m
}

/// Sends one message with raw MAIL and RCPT lines (parameters included);
/// returns the DATA reply.
fn send(server: &Server, mail: &str, rcpts: &[&str], body: &[u8]) -> Reply {
    let mut s = server.session();
    s.expect("EHLO client.test", 250);
    s.expect(mail, 250);
    for r in rcpts {
        s.expect(r, 250);
    }
    s.expect("DATA", 354);
    s.send(&dot_stuff(body)).expect("send the message");
    let reply = s.read_reply().expect("the reply to the end of data");
    let _ = s.cmd("QUIT");
    reply
}

/// Waits (bounded) until `address` has `n` messages.
fn wait_for_messages(dir: &TestDir, address: &str, n: usize, within: Duration) -> Vec<Stored> {
    let deadline = Instant::now() + within;
    loop {
        let got = messages_in_now(&dir.maildir(address));
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Messages of a Maildir as they are now (no waiting for the queue).
fn messages_in_now(maildir: &Path) -> Vec<Stored> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(maildir.join(sub)) else {
            continue;
        };
        for e in entries.flatten() {
            let bytes = std::fs::read(e.path()).unwrap_or_default();
            out.push(Stored {
                path: e.path(),
                bytes,
            });
        }
    }
    out
}

/// Waits (bounded) until the queue is empty.
fn wait_for_empty_queue(dir: &TestDir, within: Duration) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if queue_json(dir).as_array().is_some_and(|a| a.is_empty()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the queue did not empty: {}", queue(dir, &["list"]));
}

/// Reads a DSN with Python's `email` package and prints what the tests check,
/// one `key=value` per line.
const PARSE_DSN: &str = r#"
import email, sys
m = email.message_from_bytes(open(sys.argv[1], "rb").read())
print("type=" + m.get_content_type())
print("report-type=" + str(m.get_param("report-type")))
print("from=" + str(m["From"]))
print("auto-submitted=" + str(m["Auto-Submitted"]))
parts = m.get_payload()
status = parts[1]
print("part2=" + status.get_content_type())
blocks = status.get_payload()
for b in blocks[1:]:
    for k in ("Final-Recipient", "Original-Recipient", "Action", "Status", "Diagnostic-Code", "Will-Retry-Until"):
        if b[k] is not None:
            print(k.lower() + "=" + " ".join(str(b[k]).split()))
print("part3=" + parts[2].get_content_type())
"#;

fn parse_dsn(stored: &Stored) -> String {
    let path = stored.path.display().to_string();
    let out = run_python(PARSE_DSN, &[&path]);
    assert!(
        out.status.success(),
        "python could not read the DSN: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&stored.bytes)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_recipient_over_quota_waits_in_the_queue_and_queue_retry_delivers_it_once_there_is_room() {
    let dir = TestDir::new(&Config {
        users: vec![
            "alice@example.test::1000:1000::::userdb_quota_rule=*:bytes=500".into(),
            "bob@example.test::1000:1000::::".into(),
        ],
        ..Config::default()
    });
    let server = dir.start();
    // No SIZE: RCPT cannot know; the end of data finds alice full.
    let reply = send(
        &server,
        "MAIL FROM:<sam@other.test>",
        &["RCPT TO:<alice@example.test>", "RCPT TO:<bob@example.test>"],
        &message("over-quota", 2000),
    );
    assert_eq!(
        reply.code,
        250,
        "one recipient can take it: {}",
        reply.text()
    );
    let id = reply
        .last()
        .rsplit(' ')
        .next()
        .expect("queued as <id>")
        .to_string();
    assert_eq!(dir.messages("bob@example.test").len(), 1, "bob received it");
    assert!(messages_in_now(&dir.maildir("alice@example.test")).is_empty());

    let list = queue_json(&dir);
    let msgs = list.as_array().expect("an array");
    assert_eq!(msgs.len(), 1, "{list}");
    assert_eq!(msgs[0]["id"], id.as_str());
    let rcpts = msgs[0]["rcpts"].as_array().expect("recipients");
    let alice = rcpts
        .iter()
        .find(|r| r["address"] == "alice@example.test")
        .expect("alice in the queue");
    assert_eq!(alice["state"], "deferred", "{list}");
    assert!(
        alice["last_reply"]
            .as_str()
            .is_some_and(|r| r.starts_with("452 4.2.2")),
        "{list}"
    );
    let bob = rcpts
        .iter()
        .find(|r| r["address"] == "bob@example.test")
        .expect("bob in the queue");
    assert_eq!(bob["state"], "delivered", "{list}");
    let text = queue(&dir, &["list"]);
    assert!(
        text.contains(&id) && text.contains("deferred (452 4.2.2"),
        "{text}"
    );
    let shown = queue(&dir, &["show", &id]);
    assert!(shown.contains("Subject: over-quota"), "{shown}");
    assert!(shown.contains("452 4.2.2 mailbox full"), "{shown}");

    // HELP STATUS counts it (loopback is trusted by default).
    let mut s = server.session();
    s.expect("EHLO client.test", 250);
    let status = s.expect("HELP STATUS", 211);
    assert!(
        status
            .text()
            .contains("queue 1 messages (1 deferred, 0 held)"),
        "{}",
        status.text()
    );
    let _ = s.cmd("QUIT");

    // Room: a larger quota (the users file is read again when it changes).
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(
        dir.users_file(),
        "alice@example.test::1000:1000::::userdb_quota_rule=*:bytes=100000\nbob@example.test::1000:1000::::\n",
    )
    .expect("write users");
    std::thread::sleep(Duration::from_millis(1500));
    let retried = queue(&dir, &["retry", &id]);
    assert!(retried.contains("1 message(s) tried again"), "{retried}");
    let alice_has = wait_for_messages(&dir, "alice@example.test", 1, Duration::from_secs(10));
    assert_eq!(alice_has.len(), 1, "queue retry delivered it");
    assert!(String::from_utf8_lossy(&alice_has[0].bytes).contains("Subject: over-quota"));
    wait_for_empty_queue(&dir, Duration::from_secs(10));
    assert_eq!(
        dir.messages("bob@example.test").len(),
        1,
        "bob did not get a second copy"
    );
}

#[test]
fn hold_release_and_delete_steer_a_waiting_message() {
    let dir = TestDir::new(&Config {
        users: vec!["alice@example.test::1000:1000::::userdb_quota_rule=*:bytes=300".into()],
        ..Config::default()
    });
    let server = dir.start();
    let reply = send(
        &server,
        "MAIL FROM:<sam@other.test>",
        &["RCPT TO:<alice@example.test>", "RCPT TO:<bob@example.test>"],
        &message("steer", 1000),
    );
    assert_eq!(reply.code, 250);
    let id = reply
        .last()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_string();
    let held = queue(&dir, &["hold", &id]);
    assert!(held.contains("held"), "{held}");
    assert_eq!(queue_json(&dir)[0]["held"], true);
    assert!(queue(&dir, &["list"]).contains("[held]"));
    queue(&dir, &["release", &id]);
    assert_eq!(queue_json(&dir)[0]["held"], false);
    let deleted = queue(&dir, &["delete", &id]);
    assert!(deleted.contains("deleted"), "{deleted}");
    assert!(queue_json(&dir).as_array().is_some_and(|a| a.is_empty()));
    assert!(
        !dir.data_dir.join("queue/messages").join(&id).exists(),
        "its body is gone"
    );
    // A message that is not there is an error that says so.
    let out = Command::new(binary())
        .args(["queue", "hold", &id, "--config"])
        .arg(&dir.config_path)
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no message"),
        "{out:?}"
    );
    // Nobody was told: no DSN for a deletion.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(messages_in_now(&dir.maildir("sam@other.test")).is_empty());
}

/// Short queue times, so that a lifetime ends within the test.
fn quick_queue(dir: &TestDir, lifetime: &str, delay_warning: &str) {
    dir.append_config(&format!(
        "[queue]\nretry_min = \"1s\"\nretry_max = \"1s\"\nlifetime = \"{lifetime}\"\ndelay_warning = \"{delay_warning}\"\n"
    ));
}

#[test]
fn a_recipient_whose_lifetime_ends_gets_its_sender_a_dsn_as_notify_asks_and_never_one_for_the_null_sender(
) {
    let dir = TestDir::new(&Config {
        users: vec![
            "alice@example.test::1000:1000::::userdb_quota_rule=*:bytes=300".into(),
            "sam@example.test::1000:1000::::".into(),
            "nora@example.test::1000:1000::::".into(),
            "postmaster@example.test::1000:1000::::".into(),
        ],
        ..Config::default()
    });
    quick_queue(&dir, "3s", "0s");
    let server = dir.start();
    // sam: the default NOTIFY (failure), with ORCPT and ENVID.
    let r = send(
        &server,
        "MAIL FROM:<sam@example.test> ENVID=env+2B1 RET=HDRS",
        &[
            "RCPT TO:<alice@example.test> ORCPT=rfc822;Alice@Example.Test",
            "RCPT TO:<bob@example.test>",
        ],
        &message("lifetime", 1000),
    );
    assert_eq!(r.code, 250, "{}", r.text());
    // nora: NOTIFY=NEVER.
    let r = send(
        &server,
        "MAIL FROM:<nora@example.test>",
        &[
            "RCPT TO:<alice@example.test> NOTIFY=NEVER",
            "RCPT TO:<bob@example.test>",
        ],
        &message("never", 1000),
    );
    assert_eq!(r.code, 250, "{}", r.text());
    // The null sender.
    let r = send(
        &server,
        "MAIL FROM:<>",
        &["RCPT TO:<alice@example.test>", "RCPT TO:<bob@example.test>"],
        &message("null-sender", 1000),
    );
    assert_eq!(r.code, 250, "{}", r.text());

    let sam = wait_for_messages(&dir, "sam@example.test", 1, Duration::from_secs(20));
    assert_eq!(sam.len(), 1, "sam got a DSN");
    let dsn = parse_dsn(&sam[0]);
    for want in [
        "type=multipart/report",
        "report-type=delivery-status",
        "part2=message/delivery-status",
        "auto-submitted=auto-replied",
        "final-recipient=rfc822; alice@example.test",
        "original-recipient=rfc822; Alice@Example.Test",
        "action=failed",
        "status=4.2.2",
        "diagnostic-code=smtp; 452 4.2.2 mailbox full, try again later",
        "part3=text/rfc822-headers",
    ] {
        assert!(dsn.lines().any(|l| l == want), "{want:?} not in:\n{dsn}");
    }
    assert!(dsn.contains("<MAILER-DAEMON@mx.example.test>"), "{dsn}");
    let text = String::from_utf8_lossy(&sam[0].bytes);
    assert!(text.contains("Original-Envelope-Id: env+2B1"), "{text}");
    // The human-readable part explains the reply.
    assert!(text.to_lowercase().contains("mailbox"), "{text}");
    // The envelope sender of a DSN is the null sender.
    assert!(text.starts_with("Return-Path: <>"), "{text}");

    wait_for_empty_queue(&dir, Duration::from_secs(20));
    assert!(
        messages_in_now(&dir.maildir("nora@example.test")).is_empty(),
        "NOTIFY=NEVER: no DSN"
    );
    // The null sender's failure reached the postmaster, not a sender.
    let pm = wait_for_messages(&dir, "postmaster@example.test", 1, Duration::from_secs(5));
    assert_eq!(
        pm.len(),
        1,
        "the postmaster hears of the null sender's failure"
    );
    assert!(parse_dsn(&pm[0]).contains("action=failed"));
    assert_eq!(
        dir.messages("sam@example.test").len(),
        1,
        "one DSN, not two"
    );
    assert!(dir.log().contains("a message from the null sender failed"));
}

#[test]
fn notify_success_gets_a_delivered_notice_and_a_long_wait_a_delay_notice() {
    let dir = TestDir::new(&Config {
        users: vec![
            "alice@example.test::1000:1000::::userdb_quota_rule=*:bytes=300".into(),
            "sam@example.test::1000:1000::::".into(),
            "tom@example.test::1000:1000::::".into(),
        ],
        ..Config::default()
    });
    quick_queue(&dir, "1h", "2s");
    let server = dir.start();
    let r = send(
        &server,
        "MAIL FROM:<sam@example.test>",
        &["RCPT TO:<bob@example.test> NOTIFY=SUCCESS"],
        &message("success", 200),
    );
    assert_eq!(r.code, 250);
    let sam = wait_for_messages(&dir, "sam@example.test", 1, Duration::from_secs(10));
    assert_eq!(sam.len(), 1, "sam got a delivered notice");
    let dsn = parse_dsn(&sam[0]);
    assert!(dsn.lines().any(|l| l == "action=delivered"), "{dsn}");
    assert!(
        dsn.lines()
            .any(|l| l == "final-recipient=rfc822; bob@example.test"),
        "{dsn}"
    );

    // tom's message waits for alice past delay_warning.
    let r = send(
        &server,
        "MAIL FROM:<tom@example.test>",
        &[
            "RCPT TO:<alice@example.test> NOTIFY=DELAY,FAILURE",
            "RCPT TO:<bob@example.test>",
        ],
        &message("delayed", 1000),
    );
    assert_eq!(r.code, 250);
    let tom = wait_for_messages(&dir, "tom@example.test", 1, Duration::from_secs(15));
    assert_eq!(tom.len(), 1, "tom got a delay notice");
    let dsn = parse_dsn(&tom[0]);
    assert!(dsn.lines().any(|l| l == "action=delayed"), "{dsn}");
    assert!(
        dsn.lines().any(|l| l.starts_with("will-retry-until=")),
        "{dsn}"
    );
    // Once only.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(messages_in_now(&dir.maildir("tom@example.test")).len(), 1);
}
