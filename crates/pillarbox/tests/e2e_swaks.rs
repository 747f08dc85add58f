//! swaks against the real binary: with PIPELINING and with STARTTLS.

mod common;

use common::{run_client, sample_message, transcript, Config, TestDir, CLIENT_TIMEOUT};
use std::fs;
use std::process::Command;

const INSTALL: &str = "install swaks (`apt-get install swaks libnet-ssleay-perl`)";

/// Runs swaks with `extra` flags and returns its transcript (it prints both sides).
fn swaks(dir: &TestDir, port: u16, from: &str, to: &str, msg: &[u8], extra: &[&str]) -> String {
    // swaks adds the CRLF before the final dot itself, so the file ends without one.
    let body = msg.strip_suffix(b"\r\n").unwrap_or(msg);
    let path = dir.path().join("swaks-message.eml");
    fs::write(&path, body).expect("write the message file");
    let mut cmd = Command::new("swaks");
    cmd.args(["--server", "127.0.0.1", "--port", &port.to_string()])
        .args(["--helo", "client.test", "--from", from, "--to", to])
        .args(["--timeout", "20"])
        .arg("--data")
        .arg(format!("@{}", path.display()))
        .args(extra);
    let output = run_client(cmd, None, CLIENT_TIMEOUT, INSTALL);
    let text = transcript(&output);
    assert!(output.status.success(), "swaks failed:\n{text}");
    text
}

/// A transcript line holding the server's reply, whatever swaks' arrow style.
fn has_reply(transcript: &str, reply: &str) -> bool {
    transcript.lines().any(|l| {
        (l.starts_with("<-") || l.starts_with("<~")) && l[2..].trim_start().starts_with(reply)
    })
}

#[test]
fn swaks_pipeline_delivers() {
    let dir = TestDir::new(&Config::default());
    let server = dir.start();
    let from = "pipeliner@client.test";
    let msg = sample_message("swaks-pipeline", "dave@example.test");

    let out = swaks(
        &dir,
        server.port,
        from,
        "dave@example.test",
        &msg,
        &["--pipeline"],
    );
    assert!(
        has_reply(&out, "250-PIPELINING"),
        "PIPELINING not advertised:\n{out}"
    );
    assert!(has_reply(&out, "250 2.1.0 sender ok"), "{out}");
    assert!(has_reply(&out, "250 2.1.5 recipient ok"), "{out}");
    assert!(has_reply(&out, "354 "), "{out}");
    assert!(has_reply(&out, "250 2.0.0 ok: queued as "), "{out}");
    assert!(has_reply(&out, "221 2.0.0 bye"), "{out}");

    let stored = dir.messages("dave@example.test");
    assert_eq!(stored.len(), 1, "{stored:?}");
    stored[0].assert_is(from, &msg);
}

#[test]
fn swaks_tls_delivers() {
    let dir = TestDir::new(&Config::default());
    let server = dir.start();
    let from = "tls@client.test";
    let msg = sample_message("swaks-tls", "erin@other.test");

    let out = swaks(&dir, server.port, from, "erin@other.test", &msg, &["--tls"]);
    assert!(has_reply(&out, "220 2.0.0 ready to start TLS"), "{out}");
    // Lines sent and received under TLS are drawn with `~` by swaks.
    assert!(
        out.lines()
            .any(|l| l.starts_with("<~  250 2.0.0 ok: queued as ")),
        "no 250 queued-as under TLS:\n{out}"
    );

    let stored = dir.messages("erin@other.test");
    assert_eq!(stored.len(), 1, "{stored:?}");
    stored[0].assert_is(from, &msg);
    let received = stored[0].received();
    assert!(
        received.contains("with ESMTPS"),
        "STARTTLS delivery should say `with ESMTPS`: {received}"
    );
}
