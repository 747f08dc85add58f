//! Start-up output and the SIGTERM/SIGINT drain of the real binary.

mod common;

use common::{sample_message, Config, Smtp, TestDir, EXIT_TIMEOUT};
use std::fs;
use std::thread;
use std::time::Duration;

#[test]
fn startup_prints_listeners_data_dir_domains_then_ready() {
    let dir = TestDir::new(&Config::default());
    let server = dir.start();
    let lines = &server.startup;
    assert_eq!(lines.last().map(String::as_str), Some("ready"), "{lines:?}");
    assert!(
        lines.contains(&format!("listening smtp 127.0.0.1:{}", server.port)),
        "{lines:?}"
    );
    let data_dir = fs::canonicalize(&dir.data_dir).expect("the data dir exists after start");
    let printed = lines
        .iter()
        .find_map(|l| l.strip_prefix("data_dir "))
        .unwrap_or_else(|| panic!("no `data_dir` line in {lines:?}"));
    assert_eq!(
        fs::canonicalize(printed).ok(),
        Some(data_dir),
        "printed data_dir {printed:?} is not the configured one"
    );
    assert!(
        lines.contains(&"domains example.test,other.test".to_string()),
        "{lines:?}"
    );

    let mut smtp = server.connect();
    let greeting = smtp.read_reply().expect("greeting");
    assert_eq!(greeting.last(), "220 mx.example.test ESMTP Pillarbox");
}

/// Connects, says EHLO, and leaves the session idle.
fn idle_session(port: u16) -> Smtp {
    let mut smtp = Smtp::connect(port).expect("connect");
    assert_eq!(smtp.read_reply().expect("greeting").code, 220);
    smtp.expect("EHLO idle.client.test", 250);
    smtp
}

fn drains_on(signal: &str) {
    let dir = TestDir::new(&Config::default());
    let mut server = dir.start();
    let mut idle = idle_session(server.port);

    server.signal(signal);
    let reply = idle
        .read_reply()
        .unwrap_or_else(|e| panic!("idle client got no reply after SIG{signal}: {e}"));
    assert_eq!(
        reply.last(),
        "421 4.3.2 mx.example.test service shutting down, try again later",
        "idle client after SIG{signal}"
    );
    assert!(
        idle.is_closed(),
        "the connection should close after the 421"
    );

    let status = server
        .wait_exit(EXIT_TIMEOUT)
        .unwrap_or_else(|| panic!("server still running {EXIT_TIMEOUT:?} after SIG{signal}"));
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIG{signal}: {status:?}"
    );
}

#[test]
fn sigterm_sends_421_to_idle_session_and_exits_zero() {
    drains_on("TERM");
}

#[test]
fn sigint_sends_421_to_idle_session_and_exits_zero() {
    drains_on("INT");
}

#[test]
fn sigterm_lets_a_transaction_in_progress_finish() {
    let config = Config::default().limit("shutdown_grace", "\"10s\"");
    let dir = TestDir::new(&config);
    let mut server = dir.start();
    let from = "drain@client.test";
    let rcpt = "ivan@example.test";
    let msg = sample_message("drain-in-progress", rcpt);
    let wire = common::dot_stuff(&msg);
    let (first, rest) = wire.split_at(wire.len() / 2);

    let mut busy = Smtp::connect(server.port).expect("connect");
    assert_eq!(busy.read_reply().expect("greeting").code, 220);
    busy.expect("EHLO busy.client.test", 250);
    busy.expect(&format!("MAIL FROM:<{from}>"), 250);
    busy.expect(&format!("RCPT TO:<{rcpt}>"), 250);
    busy.expect("DATA", 354);
    busy.send(first)
        .expect("send the first half of the message");

    server.signal("TERM");
    thread::sleep(Duration::from_millis(500));
    busy.send(rest)
        .expect("send the rest of the message after SIGTERM");
    let reply = busy
        .read_reply()
        .expect("final reply to DATA during the drain");
    assert!(
        reply.starts_with("250 2.0.0 ok: queued as "),
        "a transaction in progress must finish during the grace period, got {reply}"
    );
    let stored = dir.messages(rcpt);
    assert_eq!(stored.len(), 1, "{stored:?}");
    stored[0].assert_is(from, &msg);

    // The session is no longer needed: whatever comes next (221 or 421), it ends.
    let _ = busy.cmd("QUIT");
    let status = server
        .wait_exit(EXIT_TIMEOUT)
        .unwrap_or_else(|| panic!("server still running {EXIT_TIMEOUT:?} after SIGTERM"));
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn no_new_connections_are_served_after_sigterm() {
    let dir = TestDir::new(&Config::default());
    let mut server = dir.start();
    // Keep one transaction open so the server is still alive while we knock.
    let mut busy = Smtp::connect(server.port).expect("connect");
    assert_eq!(busy.read_reply().expect("greeting").code, 220);
    busy.expect("EHLO busy.client.test", 250);
    busy.expect("MAIL FROM:<knock@client.test>", 250);
    busy.expect("RCPT TO:<judy@example.test>", 250);
    busy.expect("DATA", 354);

    server.signal("TERM");
    thread::sleep(Duration::from_millis(500));
    // Refused, closed at once, or told 421: never a 220.
    if let Ok(mut late) = Smtp::connect(server.port) {
        late.set_read_timeout(Duration::from_secs(5));
        if let Ok(reply) = late.read_reply() {
            assert_eq!(reply.code, 421, "a connection after SIGTERM got {reply}");
        }
    }
    let _ = busy.send(b"Subject: x\r\n\r\nbye\r\n.\r\n");
    let _ = busy.read_reply();
    let _ = busy.cmd("QUIT");
    let status = server
        .wait_exit(EXIT_TIMEOUT)
        .expect("server exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn sigterm_closes_a_stalled_transaction_after_shutdown_grace() {
    let config = Config::default().limit("shutdown_grace", "\"1s\"");
    let dir = TestDir::new(&config);
    let mut server = dir.start();
    let mut stalled = Smtp::connect(server.port).expect("connect");
    assert_eq!(stalled.read_reply().expect("greeting").code, 220);
    stalled.expect("EHLO stalled.client.test", 250);
    stalled.expect("MAIL FROM:<stalled@client.test>", 250);
    stalled.expect("RCPT TO:<stalled@example.test>", 250);
    stalled.expect("DATA", 354);
    stalled
        .send(b"Subject: never finished\r\n\r\npart")
        .expect("send part of the data");

    let sent = std::time::Instant::now();
    server.signal("TERM");
    let reply = stalled
        .read_reply()
        .expect("a reply when the grace period ends");
    assert_eq!(
        reply.last(),
        "421 4.3.2 mx.example.test service shutting down, try again later"
    );
    assert!(
        sent.elapsed() >= Duration::from_millis(900),
        "the transaction was cut before shutdown_grace: {:?}",
        sent.elapsed()
    );
    assert!(stalled.is_closed());
    let status = server
        .wait_exit(EXIT_TIMEOUT)
        .expect("server exits after the grace period");
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(dir.all_messages().is_empty(), "{:?}", dir.all_messages());
}

#[test]
fn json_log_has_one_object_per_line() {
    let config = Config {
        log_format: "json".to_string(),
        ..Config::default()
    };
    let dir = TestDir::new(&config);
    let mut server = dir.start();
    let mut smtp = server.session();
    smtp.expect("EHLO client.test", 250);
    let msg = sample_message("json-log", "kate@example.test");
    let reply = smtp
        .send_mail("json@client.test", &["kate@example.test"], &msg)
        .expect("deliver");
    let queue_id = queued_as(&reply);
    quit_and_stop(&mut smtp, &mut server);

    let log = dir.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "no log output");
    for line in &lines {
        assert!(
            line.starts_with('{') && line.ends_with('}'),
            "not a JSON object: {line}"
        );
    }
    assert!(
        lines.iter().any(|l| l.contains(&queue_id)),
        "the delivery's queue id {queue_id} is in no log line:\n{log}"
    );
}

#[test]
fn info_log_has_each_refusal_and_one_delivered_line_per_message() {
    let dir = TestDir::new(&Config::default());
    let mut server = dir.start();
    let mut smtp = server.session();
    smtp.expect("EHLO client.test", 250);
    smtp.expect("MAIL FROM:<lena@client.test>", 250);
    smtp.expect("RCPT TO:<someone@remote.test>", 554);
    smtp.expect("RCPT TO:<kate@example.test>", 250);
    smtp.expect("RCPT TO:<Max@other.test>", 250);
    smtp.expect("DATA", 354);
    smtp.send(&common::dot_stuff(&sample_message(
        "info-log",
        "kate@example.test",
    )))
    .expect("send the message");
    let reply = smtp.read_reply().expect("reply at the end of data");
    let queue_id = queued_as(&reply);
    quit_and_stop(&mut smtp, &mut server);

    let log = dir.log();
    let lines = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    // The refusal, with its reply.
    assert_eq!(lines("reply 554 5.7.1"), 1, "{log}");
    // The accepted message: one line naming it, its sender and recipients
    // when it is queued, and one per mailbox when its copy is delivered.
    let delivered: Vec<&str> = log.lines().filter(|l| l.contains(" queued ")).collect();
    assert_eq!(delivered.len(), 1, "{log}");
    assert_eq!(lines(&format!("delivered queue_id={queue_id}")), 2, "{log}");
    for part in [
        format!("queue_id={queue_id}"),
        "from=<lena@client.test>".to_string(),
        "to=kate@example.test,max@other.test".to_string(),
        "rcpts=2".to_string(),
    ] {
        assert!(
            delivered[0].contains(&part),
            "{part} not in {}",
            delivered[0]
        );
    }
    // Its positive replies are debug events, not info lines.
    for positive in [
        "reply 250 2.1.0",
        "reply 250 2.1.5",
        "reply 354",
        "reply 250 2.0.0",
    ] {
        assert_eq!(lines(positive), 0, "{positive} logged at info:\n{log}");
    }
    // Replies outside a transaction still are.
    assert_eq!(lines("command=\"EHLO\""), 1, "{log}");
    assert_eq!(lines("reply 221"), 1, "{log}");
}

/// The queue id of a `250 2.0.0 ok: queued as <id>` reply.
fn queued_as(reply: &common::Reply) -> String {
    assert!(reply.starts_with("250 2.0.0 ok: queued as "), "{reply}");
    reply.text().rsplit(' ').next().unwrap_or("").to_string()
}

/// QUIT, then SIGTERM, and the server's exit: its log is complete after this.
fn quit_and_stop(smtp: &mut Smtp, server: &mut common::Server) {
    smtp.expect("QUIT", 221);
    server.signal("TERM");
    server.wait_exit(EXIT_TIMEOUT).expect("server exits");
}

/// Two servers on one data directory would each clear the other's spool (a
/// start removes a crash's remnants): the second refuses to start, naming the
/// lock file and the pid that holds it, and the first goes on delivering.
#[test]
fn a_second_server_on_the_same_data_directory_refuses_to_start() {
    let dir = TestDir::new(&Config::default());
    let server = dir.start();
    let mut second = std::process::Command::new(common::binary())
        .arg("serve")
        .arg("--config")
        .arg(&dir.config_path)
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run a second server");
    let mut status = None;
    for _ in 0..EXIT_TIMEOUT.as_millis() / 20 {
        status = second.try_wait().expect("wait for the second server");
        if status.is_some() {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let Some(status) = status else {
        let _ = second.kill();
        let _ = second.wait();
        panic!("a second server on the same data directory kept running");
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "the second server exited {status:?}");
    assert!(
        stderr.contains("pillarbox.lock") && stderr.contains(&format!("pid {}", server.pid)),
        "the error names the lock file and the holder: {stderr}"
    );
    assert_eq!(
        stderr.matches("pillarbox.lock").count(),
        1,
        "the cause is said once: {stderr}"
    );
    let mut smtp = server.session();
    smtp.expect("EHLO client.test", 250);
    let reply = smtp
        .send_mail(
            "a@example.test",
            &["bob@example.test"],
            &sample_message("after", "bob@example.test"),
        )
        .unwrap();
    assert_eq!(reply.code, 250, "{reply}");
    assert_eq!(dir.messages("bob@example.test").len(), 1);
}
