//! The `[limits]` of the config, enforced over the wire by the real binary.

mod common;

use common::{dot_stuff, sample_message, Config, Smtp, TestDir};
use std::thread;
use std::time::{Duration, Instant};

#[test]
fn message_over_message_size_gets_552_after_its_end_and_nothing_is_stored() {
    let dir = TestDir::new(&Config::default().limit("message_size", "\"10KiB\""));
    let server = dir.start();
    let rcpt = "big@example.test";
    let mut smtp = server.session();
    let ehlo = smtp.expect("EHLO client.test", 250);
    assert!(
        ehlo.lines
            .iter()
            .any(|l| l[4..].eq_ignore_ascii_case("SIZE 10240")),
        "EHLO should advertise SIZE 10240: {ehlo}"
    );

    // 20 KiB of body, no SIZE parameter: the limit must bite while streaming.
    let mut big = b"Subject: too big\r\n\r\n".to_vec();
    for i in 0..500 {
        big.extend_from_slice(
            format!("{i:05} 0123456789012345678901234567890123456789\r\n").as_bytes(),
        );
    }
    assert!(big.len() > 20_000);
    let reply = smtp
        .send_mail("big@client.test", &[rcpt], &big)
        .expect("reply to the big message");
    assert_eq!(reply.last(), "552 5.3.4 message size exceeds fixed maximum");
    assert!(
        dir.messages(rcpt).is_empty(),
        "nothing may be stored: {:?}",
        dir.messages(rcpt)
    );

    // The rest of the big message was read and dropped: the session goes on.
    let small = sample_message("after-too-big", rcpt);
    let reply = smtp
        .send_mail("small@client.test", &[rcpt], &small)
        .expect("reply to the small message");
    assert!(reply.starts_with("250 2.0.0 ok: queued as "), "{reply}");
    let stored = dir.messages(rcpt);
    assert_eq!(stored.len(), 1, "{stored:?}");
    stored[0].assert_is("small@client.test", &small);
    smtp.expect("QUIT", 221);
}

#[test]
fn mail_with_size_above_message_size_gets_552() {
    let dir = TestDir::new(&Config::default().limit("message_size", "\"10KiB\""));
    let server = dir.start();
    let mut smtp = server.session();
    smtp.expect("EHLO client.test", 250);
    let reply = smtp
        .cmd("MAIL FROM:<big@client.test> SIZE=20000")
        .expect("reply to MAIL");
    assert_eq!(reply.last(), "552 5.3.4 message size exceeds fixed maximum");
    smtp.expect("MAIL FROM:<ok@client.test> SIZE=1000", 250);
}

#[test]
fn early_talker_gets_554_and_is_closed() {
    let dir = TestDir::new(&Config::default().limit("greeting_delay", "\"1s\""));
    let server = dir.start();

    let mut early = server.connect();
    early
        .send(b"EHLO early.client.test\r\n")
        .expect("talk before the greeting");
    let reply = early.read_reply().expect("a reply to the early talker");
    assert_eq!(
        reply.last(),
        "554 5.5.1 protocol error: talked before greeting"
    );
    assert!(
        early.is_closed(),
        "the connection should close after the 554"
    );

    // A patient client gets its greeting after the delay.
    let started = Instant::now();
    let mut patient = server.connect();
    let greeting = patient.read_reply().expect("greeting after the delay");
    assert_eq!(greeting.code, 220, "{greeting}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "greeting came after {:?}, before greeting_delay",
        started.elapsed()
    );
}

#[test]
fn second_session_from_same_address_gets_421_with_sessions_per_client_1() {
    let dir = TestDir::new(&Config::default().limit("sessions_per_client", "1"));
    let server = dir.start();

    let mut first = server.session();
    first.expect("EHLO first.client.test", 250);

    let mut second = server.connect();
    let reply = second
        .read_reply()
        .expect("a reply to the second connection");
    assert_eq!(
        reply.last(),
        "421 4.7.0 too many connections from your address"
    );
    assert!(
        second.is_closed(),
        "the connection should close after the 421"
    );

    // The first session is unaffected, and once it ends a new one is welcome.
    first.expect("NOOP", 250);
    first.expect("QUIT", 221);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = server.connect();
        let reply = again.read_reply().expect("a reply to the third connection");
        if reply.code == 220 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot was not freed after the first session ended: {reply}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn recipient_over_the_limit_gets_452() {
    let dir = TestDir::new(&Config::default().limit("recipients", "2"));
    let server = dir.start();
    let mut smtp = server.session();
    smtp.expect("EHLO client.test", 250);
    smtp.expect("MAIL FROM:<many@client.test>", 250);
    smtp.expect("RCPT TO:<r1@example.test>", 250);
    smtp.expect("RCPT TO:<r2@example.test>", 250);
    let reply = smtp
        .cmd("RCPT TO:<r3@example.test>")
        .expect("reply to the third RCPT");
    assert_eq!(reply.last(), "452 4.5.3 too many recipients");
    smtp.expect("DATA", 354);
    let msg = sample_message("recipients-limit", "r1@example.test");
    smtp.send(&dot_stuff(&msg)).expect("send the message");
    let reply = smtp.read_reply().expect("final reply");
    assert!(reply.starts_with("250 2.0.0 ok: queued as "), "{reply}");
    assert_eq!(dir.messages("r1@example.test").len(), 1);
    assert_eq!(dir.messages("r2@example.test").len(), 1);
    assert!(dir.messages("r3@example.test").is_empty());
}

#[test]
fn idle_client_past_command_timeout_gets_421() {
    let dir = TestDir::new(&Config::default().limit("command_timeout", "\"1s\""));
    let server = dir.start();
    let mut smtp = server.session();
    smtp.expect("EHLO client.test", 250);
    expect_timeout_421(&mut smtp);
}

#[test]
fn too_many_errors_gets_421_and_close() {
    let dir = TestDir::new(&Config::default().limit("errors", "3"));
    let server = dir.start();
    let mut smtp: Smtp = server.session();
    smtp.expect("EHLO client.test", 250);
    let mut replies = Vec::new();
    for _ in 0..5 {
        match smtp.cmd("BOGUS") {
            Ok(reply) => {
                let done = reply.code == 421;
                replies.push(reply);
                if done {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let last = replies.last().expect("at least one reply");
    assert_eq!(
        last.last(),
        "421 4.7.0 too many errors",
        "replies: {replies:?}"
    );
    assert!(
        replies.len() >= 3,
        "the 421 came before `errors = 3` errors were made: {replies:?}"
    );
    assert!(
        replies[..replies.len() - 1]
            .iter()
            .all(|r| r.last() == "500 5.5.2 command not recognized"),
        "{replies:?}"
    );
    assert!(smtp.is_closed());
}

#[test]
fn client_stalling_in_data_past_data_timeout_gets_421() {
    let dir = TestDir::new(&Config::default().limit("data_timeout", "\"1s\""));
    let server = dir.start();
    let mut smtp = server.session();
    smtp.expect("EHLO client.test", 250);
    smtp.expect("MAIL FROM:<slow@client.test>", 250);
    smtp.expect("RCPT TO:<slow@example.test>", 250);
    smtp.expect("DATA", 354);
    smtp.send(b"Subject: slow\r\n\r\nhalf a messa")
        .expect("send part of the data");
    expect_timeout_421(&mut smtp);
    assert!(dir.all_messages().is_empty(), "{:?}", dir.all_messages());
}

#[test]
fn overlong_command_line_gets_500_and_the_rest_of_it_is_discarded() {
    let dir = TestDir::new(&Config::default());
    let server = dir.start();
    let mut smtp = server.session();
    smtp.expect("EHLO client.test", 250);
    // 64 KiB in one line: the tail must not be read as commands.
    let mut line = b"NOOP ".to_vec();
    while line.len() < 65_536 {
        line.extend_from_slice(b"RSET\r");
    }
    line.extend_from_slice(b"\r\nNOOP\r\n");
    smtp.send(&line).expect("send the long line");
    let reply = smtp.read_reply().expect("reply to the long line");
    assert_eq!(reply.last(), "500 5.5.2 line too long");
    let reply = smtp.read_reply().expect("reply to the NOOP after it");
    assert_eq!(reply.last(), "250 2.0.0 ok");
    smtp.expect("QUIT", 221);
}

#[test]
fn sessions_over_the_global_limit_get_421_4_3_2_not_the_per_address_text() {
    let dir = TestDir::new(&Config::default().limit("sessions", "2"));
    let server = dir.start();
    let _first = server.session();
    let _second = server.session();
    let mut third = server.connect();
    let reply = third.read_reply().expect("a reply to the third connection");
    // This address holds two sessions, far below `sessions_per_client`: the
    // limit reached is the server's, so the reply does not blame the address.
    assert_eq!(
        reply.last(),
        "421 4.3.2 too many connections, try again later"
    );
    assert!(third.is_closed());
}

/// Waits for the `421 4.4.2` of a 1 s timeout: it comes no sooner than that,
/// and the connection is closed after it.
fn expect_timeout_421(smtp: &mut Smtp) {
    smtp.set_read_timeout(Duration::from_secs(10));
    let started = Instant::now();
    let reply = smtp.read_reply().expect("the timeout reply");
    assert_eq!(reply.last(), "421 4.4.2 timeout, closing connection");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert!(
        smtp.is_closed(),
        "the connection should close after the 421"
    );
}

/// Sends `bytes` one at a time, `gap` apart, until a reply comes (or the
/// bytes run out); returns it, or `None`.
/// A server with `cfg` and a session of it that has just had its 354.
fn in_data(cfg: Config) -> (TestDir, common::Server, Smtp) {
    let dir = TestDir::new(&cfg);
    let server = dir.start();
    let mut smtp = server.session();
    smtp.expect("EHLO client.test", 250);
    smtp.expect("MAIL FROM:<slow@client.test>", 250);
    smtp.expect("RCPT TO:<slow@example.test>", 250);
    smtp.expect("DATA", 354);
    (dir, server, smtp)
}

fn trickle(smtp: &mut Smtp, bytes: &[u8], gap: Duration) -> Option<common::Reply> {
    // The read timeout is the gap: a reply arriving in it ends the wait.
    smtp.set_read_timeout(gap);
    for &b in bytes {
        if smtp.send(&[b]).is_err() {
            break;
        }
        if let Ok(reply) = smtp.read_reply() {
            return Some(reply);
        }
    }
    smtp.set_read_timeout(Duration::from_secs(5));
    smtp.read_reply().ok()
}

#[test]
fn command_trickled_a_byte_at_a_time_is_closed_at_command_timeout_in_all() {
    let dir = TestDir::new(&Config::default().limit("command_timeout", "\"2s\""));
    let server = dir.start();
    let mut smtp = server.session();
    smtp.expect("EHLO client.test", 250);
    // 40 bytes, 300 ms apart: 12 s for the line, each gap far below the 2 s
    // timeout, so a timeout restarted at each read would never fire.
    let line = b"MAIL FROM:<trickle@slow.client.test>\r\n\r\n";
    let started = Instant::now();
    let reply = trickle(&mut smtp, line, Duration::from_millis(300))
        .expect("a reply before the line was done");
    let took = started.elapsed();
    assert_eq!(reply.last(), "421 4.4.2 timeout, closing connection");
    assert!(
        took >= Duration::from_millis(1800) && took < Duration::from_secs(6),
        "closed after {took:?}, command_timeout is 2s"
    );
    smtp.set_read_timeout(Duration::from_secs(5));
    assert!(
        smtp.is_closed(),
        "the connection should close after the 421"
    );
    let log = server.log();
    assert!(log.contains("command time"), "{log}");
}

#[test]
fn pipelined_commands_arriving_together_are_each_given_command_timeout() {
    let dir = TestDir::new(&Config::default().limit("command_timeout", "\"2s\""));
    let server = dir.start();
    let mut smtp = server.session();
    smtp.expect("EHLO client.test", 250);
    for _ in 0..3 {
        // Two whole lines and the start of a third, then the rest of it 1.5 s
        // later: each command completes within 2 s of the one before.
        smtp.send(b"NOOP\r\nNOOP\r\nNO").expect("send");
        smtp.read_reply().expect("first NOOP");
        smtp.read_reply().expect("second NOOP");
        thread::sleep(Duration::from_millis(1500));
        smtp.send(b"OP\r\n").expect("send the rest");
        let reply = smtp.read_reply().expect("third NOOP");
        assert_eq!(reply.code, 250, "{reply}");
    }
    smtp.expect("QUIT", 221);
}

#[test]
fn data_trickled_below_data_rate_min_is_closed() {
    let (dir, server, mut smtp) = in_data(
        Config::default()
            .limit("data_timeout", "\"1s\"")
            .limit("data_rate_min", "1000"),
    );
    // 5 bytes a second, 200 ms apart (the idle timeout is 1 s): closed at
    // 1 s * 1000 / (1000 - 5), about 1 s after the 354.
    let body = [b'x'; 100];
    let started = Instant::now();
    let reply = trickle(&mut smtp, &body, Duration::from_millis(200))
        .expect("a reply before the body was done");
    let took = started.elapsed();
    assert_eq!(reply.last(), "421 4.4.2 timeout, closing connection");
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
    smtp.set_read_timeout(Duration::from_secs(5));
    assert!(
        smtp.is_closed(),
        "the connection should close after the 421"
    );
    assert!(dir.all_messages().is_empty(), "{:?}", dir.all_messages());
    let log = server.log();
    assert!(log.contains("data rate"), "{log}");
}

#[test]
fn data_longer_than_data_time_max_is_closed_however_steady() {
    let (dir, server, mut smtp) = in_data(
        Config::default()
            .limit("data_timeout", "\"1s\"")
            .limit("data_rate_min", "0")
            .limit("data_time_max", "\"2s\""),
    );
    let body = [b'x'; 100];
    let started = Instant::now();
    let reply = trickle(&mut smtp, &body, Duration::from_millis(200))
        .expect("a reply before the body was done");
    let took = started.elapsed();
    assert_eq!(reply.last(), "421 4.4.2 timeout, closing connection");
    assert!(
        took >= Duration::from_millis(1800) && took < Duration::from_secs(6),
        "closed after {took:?}, data_time_max is 2s"
    );
    assert!(dir.all_messages().is_empty(), "{:?}", dir.all_messages());
    let log = server.log();
    assert!(log.contains("data time"), "{log}");
}

#[test]
fn large_message_at_full_speed_is_unaffected_by_the_data_bounds() {
    let dir = TestDir::new(
        &Config::default()
            .limit("command_timeout", "\"2s\"")
            .limit("data_timeout", "\"1s\"")
            .limit("data_rate_min", "\"1KiB\"")
            .limit("data_time_max", "\"20s\""),
    );
    let server = dir.start();
    let rcpt = "big@example.test";
    let mut smtp = server.session();
    smtp.expect("EHLO client.test", 250);
    let mut big = b"Subject: big and fast\r\n\r\n".to_vec();
    while big.len() < 8 << 20 {
        big.extend_from_slice(
            b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n",
        );
    }
    let reply = smtp
        .send_mail("fast@client.test", &[rcpt], &big)
        .expect("reply to the big message");
    assert!(reply.starts_with("250 2.0.0 ok: queued as "), "{reply}");
    let stored = dir.messages(rcpt);
    assert_eq!(stored.len(), 1, "{stored:?}");
    stored[0].assert_is("fast@client.test", &big);
    // A second message in the same session gets a fresh clock.
    let small = sample_message("after-big", rcpt);
    let reply = smtp
        .send_mail("fast@client.test", &[rcpt], &small)
        .expect("reply to the small message");
    assert!(reply.starts_with("250 2.0.0 ok: queued as "), "{reply}");
    smtp.expect("QUIT", 221);
}

#[test]
fn a_client_that_never_reads_its_replies_is_closed_at_command_timeout() {
    let dir = TestDir::new(&Config::default().limit("command_timeout", "\"2s\""));
    let server = dir.start();
    let mut c = server.session();
    c.expect("EHLO client.test", 250);
    // Pipelined NOOPs, never reading a reply: the replies fill both sockets'
    // buffers, then the server's write waits on a client that never reads.
    let chunk = "NOOP\r\n".repeat(10_000);
    let started = Instant::now();
    let mut closed = None;
    while started.elapsed() < Duration::from_secs(30) {
        if let Err(e) = c.send(chunk.as_bytes()) {
            closed = Some(e);
            break;
        }
    }
    let e = closed.expect("the server still took commands after 30 s of unread replies");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "closed only after {took:?} ({e})"
    );
    let mut log = String::new();
    for _ in 0..50 {
        log = dir.log();
        if log.contains("does not read its replies") {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    assert!(log.contains("does not read its replies"), "{log}");
}
