//! curl's SMTP client against the real binary: plaintext and STARTTLS (`--ssl-reqd`).

mod common;

use common::{run_client, sample_message, transcript, Config, TestDir, CLIENT_TIMEOUT};
use std::fs;
use std::process::Command;

const INSTALL: &str = "install curl (`apt-get install curl`)";

fn curl_upload(
    dir: &TestDir,
    port: u16,
    from: &str,
    rcpts: &[&str],
    msg: &[u8],
    extra: &[&str],
) -> String {
    let path = dir.path().join("curl-message.eml");
    fs::write(&path, msg).expect("write the message file");
    let mut cmd = Command::new("curl");
    cmd.args(["--silent", "--show-error", "--verbose", "--max-time", "30"])
        .arg(format!("smtp://127.0.0.1:{port}"))
        .args(["--mail-from", from]);
    for rcpt in rcpts {
        cmd.args(["--mail-rcpt", rcpt]);
    }
    cmd.arg("--upload-file").arg(&path).args(extra);
    let output = run_client(cmd, None, CLIENT_TIMEOUT, INSTALL);
    let text = transcript(&output);
    assert!(output.status.success(), "curl failed:\n{text}");
    text
}

#[test]
fn curl_upload_is_stored_byte_exact() {
    let dir = TestDir::new(&Config::default());
    let server = dir.start();
    let from = "curl@client.test";
    let rcpts = ["frank@example.test", "grace@example.test"];
    let msg = sample_message("curl-plain", "frank@example.test");

    let out = curl_upload(&dir, server.port, from, &rcpts, &msg, &[]);
    assert!(out.contains("< 250 2.0.0 ok: queued as "), "{out}");

    for rcpt in rcpts {
        let stored = dir.messages(rcpt);
        assert_eq!(stored.len(), 1, "{rcpt}: {stored:?}");
        stored[0].assert_is(from, &msg);
    }
}

#[test]
fn curl_starttls_upload_is_stored_byte_exact() {
    let dir = TestDir::new(&Config::default());
    let server = dir.start();
    let from = "curl-tls@client.test";
    let msg = sample_message("curl-starttls", "heidi@example.test");

    // --ssl-reqd on smtp:// means STARTTLS or fail; -k: our certificate is self-signed.
    let out = curl_upload(
        &dir,
        server.port,
        from,
        &["heidi@example.test"],
        &msg,
        &["--ssl-reqd", "--insecure"],
    );
    assert!(out.contains("< 220 2.0.0 ready to start TLS"), "{out}");
    assert!(out.contains("< 250 2.0.0 ok: queued as "), "{out}");

    let stored = dir.messages("heidi@example.test");
    assert_eq!(stored.len(), 1, "{stored:?}");
    stored[0].assert_is(from, &msg);
}
