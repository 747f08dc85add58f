//! Unit tests of the notification builder.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

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
        status: status.into(),
        reply: Some(reply.into()),
        remote_mta: Some("mx.example.net".into()),
        last_attempt: Some(at(1_700_000_600)),
        will_retry_until: Some(at(1_700_432_000)),
    }
}

fn report(recipients: &[DsnRecipient]) -> Report<'_> {
    Report {
        reporting_mta: "mx.example.org",
        envid: Some("QQ314159"),
        arrival: at(1_700_000_000),
        original_sender: "ann@example.org",
        recipients,
        ret: Ret::Full,
        original: ORIGINAL,
        language: Lang::En,
        now: at(1_700_000_900),
        message_id: "dsn.0001",
        max_original: 1 << 20,
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("a notification built from UTF-8 is UTF-8")
}

/// The header block of the notification itself.
fn top_header(msg: &str) -> &str {
    &msg[..msg.find("\r\n\r\n").expect("a header ends")]
}

#[test]
fn print_one() {
    let r = [recipient(Action::Failed)];
    println!("{}", text(&build(&report(&r))));
}
