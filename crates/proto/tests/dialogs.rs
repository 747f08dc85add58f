//! Golden dialogs: `tests/dialogs/*.dialog` run against the pure session.
//!
//! A dialog is a transcript, in the spirit of Postfix's `.in`/`.ref` files:
//! - `C: text` — a command line the client sends (CRLF appended);
//! - `C~ bytes` — raw bytes with escapes `\r`, `\n`, `\\`, `\xHH` (nothing appended);
//! - `S: text` — one line the server sends (CRLF removed);
//! - `M~ bytes` — the content of a message handed to storage for delivery;
//! - `X: closed` / `X: starttls` / `X: abort` — the session closes, starts TLS,
//!   drops the message it began;
//! - `! timeout` / `! shutdown` — the driver ends the session (command timeout,
//!   server drain) as the server does;
//! - `@key value` — settings: `hostname`, `max_size`, `max_recipients`,
//!   `max_errors`, `max_line`, `max_hops`, `starttls on|off`, `tls on|off`, `status on|off`,
//!   `auth MECH ...` (offered mechanisms), `auth_tls on|off` (AUTH only under
//!   TLS), `auth_required on|off`; the AUTH nonce is `NONCE` plus a counter;
//! - `X: auth <authcid> ok|failed` — an AUTH exchange ended;
//! - `#` comments and blank lines.
//!
//! The transcript starts with the server's greeting: the `S:` lines a dialog
//! gives before its first client line, or else [`GREETING`] (the greeting for
//! the runner's host name; a dialog that sets `@hostname` states its own).
//!
//! Consecutive client lines are sent in one batch (as a pipelining client
//! would); the session runs until it needs more input, and everything it did
//! is compared with the expected lines that follow.
//!
//! The fake policy the dialogs run with: local domains are `example.test`,
//! `localhost` and `[127.0.0.1]`; local part `unknown` -> 550 5.1.1, `full` ->
//! 452 4.2.2, `locked` -> 450 4.2.1, `disabled` -> 550 5.2.1, `grey` -> 450
//! 4.2.0 (300 s); other domains -> 554 5.7.1; sender `nospace@...` -> 452
//! 4.3.1; deliveries get queue ids Q1, Q2 ... Users: `alice` with password
//! `secret` (SCRAM salt `salt`, 4096 iterations); `down` -> 454 4.7.0 (the
//! directory cannot be read); anyone else is unknown.

use std::path::Path;

use pillarbox_codes::{Reply, Row};
use pillarbox_proto::sasl::{CramMd5Secret, Mechanism, ScramSecret, Secret};
use pillarbox_proto::{
    Event, ForwardPath, Input, PasswordAnswer, Question, ReversePath, Session, SessionConfig,
};

fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'r' => out.push(b'\r'),
                b'n' => out.push(b'\n'),
                b'\\' => out.push(b'\\'),
                b'x' => {
                    let hex = std::str::from_utf8(&b[i + 2..i + 4]).expect("hex escape");
                    out.push(u8::from_str_radix(hex, 16).expect("hex escape"));
                    i += 2;
                }
                c => panic!("unknown escape \\{}", c as char),
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn escape(b: &[u8]) -> String {
    let mut s = String::new();
    for &c in b {
        match c {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s
}

/// Answers `q` as the fake policy of the module doc says.
fn answer(session: &mut Session, q: Question, delivered: &mut u32) {
    match q {
        Question::Sender(q) => {
            let a = match &q.from {
                ReversePath::Mailbox(m) if m.local == "nospace" => {
                    Err(Row::InsufficientStorage.reply())
                }
                _ => Ok(()),
            };
            session.answer_sender(q, a);
        }
        Question::Recipient(q) => {
            let a = recipient(&q.to);
            session.answer_recipient(q, a);
        }
        Question::BeginMessage(q) => session.answer_begin(q, Ok(())),
        Question::Deliver(q) => {
            *delivered += 1;
            session.answer_deliver(q, Ok(format!("Q{delivered}")));
        }
        Question::Status(q) => {
            session.answer_status(q, vec!["Pillarbox test".into(), "sessions 1".into()])
        }
        Question::CheckPassword(q) => {
            let a = match q.authcid.as_str() {
                "down" => PasswordAnswer::Unavailable(Row::AuthTemporary.reply()),
                "alice" if q.password == "secret" => PasswordAnswer::Valid,
                _ => PasswordAnswer::Invalid,
            };
            session.answer_password(q, a);
        }
        Question::Secret(q) => {
            let a = match (q.authcid.as_str(), q.mechanism) {
                ("down", _) => Err(Row::AuthTemporary.reply()),
                ("alice", Mechanism::CramMd5) => Ok(Some(Secret::CramMd5(
                    CramMd5Secret::from_password("secret"),
                ))),
                ("alice", _) => Ok(Some(Secret::Scram(ScramSecret::from_password(
                    "secret", b"salt", 4096,
                )))),
                _ => Ok(None),
            };
            session.answer_secret(q, a);
        }
    }
}

fn recipient(to: &ForwardPath) -> Result<(), Reply> {
    match to {
        ForwardPath::Postmaster => Ok(()),
        ForwardPath::Mailbox(m) => {
            let local_domain = ["example.test", "localhost", "[127.0.0.1]"]
                .contains(&m.domain.lowercase().as_str());
            if !local_domain {
                return Err(Row::RelayDenied.reply());
            }
            match m.local_unquoted().to_lowercase().as_str() {
                "unknown" => Err(Row::NoSuchUser.reply()),
                "full" => Err(Row::MailboxFull.reply()),
                "locked" => Err(Row::MailboxUnavailable.reply()),
                "disabled" => Err(Row::MailboxDisabled.reply()),
                "grey" => Err(Row::Greylisted.reply_with("300")),
                _ => Ok(()),
            }
        }
    }
}

/// The greeting a dialog expects unless it states one: RFC 5321 4.3.1 220
/// with the runner's host name, and no enhanced code (RFC 2034 3).
const GREETING: &str = "S: 220 mx.example.test ESMTP Pillarbox";

fn run_dialog(path: &Path) {
    let text = std::fs::read_to_string(path).expect("read dialog");
    run_dialog_text(&path.display().to_string(), &text);
}

/// Runs one dialog; panics with a diff if the session's transcript differs.
fn run_dialog_text(name: &str, text: &str) {
    let mut cfg = SessionConfig {
        hostname: "mx.example.test".into(),
        starttls: true,
        ..SessionConfig::default()
    };
    // Settings first: they may appear anywhere but apply to the whole dialog.
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix('@') {
            let (k, v) = rest.split_once(' ').unwrap_or((rest, ""));
            let on = v == "on";
            match k {
                "hostname" => cfg.hostname = v.into(),
                "max_size" => cfg.max_message_size = v.parse().unwrap(),
                "max_recipients" => cfg.max_recipients = v.parse().unwrap(),
                "max_errors" => cfg.max_errors = v.parse().unwrap(),
                "max_line" => cfg.max_line = v.parse().unwrap(),
                "max_hops" => cfg.max_hops = v.parse().unwrap(),
                "starttls" => cfg.starttls = on,
                "tls" => cfg.tls = on,
                "status" => cfg.status_allowed = on,
                "auth" => {
                    cfg.auth.mechanisms = v
                        .split(' ')
                        .map(|m| Mechanism::from_name(m).expect("mechanism"))
                        .collect();
                    cfg.auth.nonce = "NONCE".into();
                    cfg.auth.decoy_key = b"decoy".to_vec();
                }
                "auth_tls" => cfg.auth.require_tls = on,
                "auth_required" => cfg.auth.required = on,
                _ => panic!("{name}: unknown setting @{k}"),
            }
        }
    }
    let mut session = Session::new(cfg);
    let mut input = Input::new();
    let mut delivered = 0;
    let mut message = Vec::new();
    let mut actual = vec![format!("S: {}", session.greeting().to_wire().trim_end())];
    let mut expected = Vec::new();
    let mut pending_client = false;
    // Until the first client line or driver action, expected lines are the greeting.
    let mut client_seen = false;
    let mut greeting_stated = false;

    let mut run = |session: &mut Session,
                   input: &mut Input,
                   actual: &mut Vec<String>,
                   message: &mut Vec<u8>| {
        let mut guard = 0;
        while let Some(ev) = session.handle(input) {
            guard += 1;
            assert!(guard < 100_000, "session does not settle");
            match ev {
                Event::Reply(r) => actual.extend(r.to_wire().lines().map(|l| format!("S: {l}"))),
                Event::Ask(q) => {
                    if let Question::Deliver(_) = q {
                        actual.push(format!("M~ {}", escape(message)));
                        message.clear();
                    }
                    answer(session, q, &mut delivered);
                }
                Event::Body(b) => message.extend_from_slice(&b),
                Event::AbortMessage => {
                    actual.push("X: abort".into());
                    message.clear();
                }
                Event::StartTls => {
                    actual.push("X: starttls".into());
                    session.tls_established();
                }
                Event::Close => actual.push("X: closed".into()),
                Event::AuthAttempt { authcid, ok } => actual.push(format!(
                    "X: auth {} {}",
                    authcid.as_deref().unwrap_or("-"),
                    if ok { "ok" } else { "failed" }
                )),
            }
        }
    };

    for line in text.lines() {
        if line.starts_with('#') || line.starts_with('@') || line.trim().is_empty() {
            continue;
        }
        if let Some(what) = line.strip_prefix("! ") {
            client_seen = true;
            if pending_client {
                run(&mut session, &mut input, &mut actual, &mut message);
                pending_client = false;
            }
            let hostname = session.config().hostname.clone();
            let reply = match what {
                "timeout" => Row::Timeout.reply(),
                "shutdown" => Row::ShuttingDown.reply_with(&hostname),
                _ => panic!("unknown driver action {what}"),
            };
            for ev in session.close_with(reply) {
                match ev {
                    Event::Reply(r) => {
                        actual.extend(r.to_wire().lines().map(|l| format!("S: {l}")))
                    }
                    Event::AbortMessage => actual.push("X: abort".into()),
                    Event::Close => actual.push("X: closed".into()),
                    other => panic!("unexpected {other:?}"),
                }
            }
        } else if let Some(c) = line.strip_prefix("C: ").or((line == "C:").then_some("")) {
            input.extend(c.as_bytes());
            input.extend(b"\r\n");
            pending_client = true;
            client_seen = true;
        } else if let Some(c) = line.strip_prefix("C~ ") {
            input.extend(&unescape(c));
            pending_client = true;
            client_seen = true;
        } else {
            if pending_client {
                run(&mut session, &mut input, &mut actual, &mut message);
                pending_client = false;
            }
            if !client_seen && expected.is_empty() {
                greeting_stated = true;
            }
            expected.push(line.to_string());
        }
    }
    if pending_client {
        run(&mut session, &mut input, &mut actual, &mut message);
    }
    if !greeting_stated {
        expected.insert(0, GREETING.to_string());
    }
    if actual != expected {
        let mut diff = String::new();
        for i in 0..actual.len().max(expected.len()) {
            let a = actual.get(i).map(String::as_str).unwrap_or("<none>");
            let e = expected.get(i).map(String::as_str).unwrap_or("<none>");
            let mark = if a == e { "  " } else { "!!" };
            diff.push_str(&format!("{mark} expected {e:<60} got {a}\n"));
        }
        panic!("dialog {name} differs:\n{diff}");
    }
}

#[test]
fn golden_dialogs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dialogs");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("dialogs dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "dialog"))
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 30,
        "expected the full set of dialogs, found {}",
        paths.len()
    );
    let mut failures = Vec::new();
    for p in &paths {
        if let Err(e) = std::panic::catch_unwind(|| run_dialog(p)) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(msg);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} dialogs failed:\n{}",
        failures.len(),
        paths.len(),
        failures.join("\n")
    );
}

#[test]
fn a_wrong_greeting_fails_its_dialog() {
    let stated = "S: 220 mx.example.test ESMTP Postfix\nC: QUIT\nS: 221 2.0.0 bye\nX: closed\n";
    let implied = "@hostname other.test\nC: QUIT\nS: 221 2.0.0 bye\nX: closed\n";
    for text in [stated, implied] {
        let r = std::panic::catch_unwind(|| run_dialog_text("wrong greeting", text));
        assert!(r.is_err(), "a dialog passed with a wrong greeting:\n{text}");
    }
}
