//! Python's `smtplib` against the real binary, in plaintext and after STARTTLS.

mod common;

use common::{run_python, sample_message, transcript, Config, TestDir};
use std::fs;
use std::os::unix::fs::MetadataExt;

/// Sends one message with smtplib and prints every reply as `VERB code text`.
/// Arguments: port, mode (`plain` | `starttls`), sender, comma-separated
/// recipients, path of the message file (CRLF).
const SMTPLIB_SEND: &str = r#"
import smtplib, ssl, sys
port, mode, sender, rcpts, path = sys.argv[1:6]
msg = open(path, 'rb').read()
s = smtplib.SMTP('127.0.0.1', int(port), local_hostname='client.test', timeout=20)
code, resp = s.ehlo()
print('EHLO', code, 'starttls' if s.has_extn('starttls') else 'no-starttls')
if mode == 'starttls':
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    code, resp = s.starttls(context=ctx)
    print('STARTTLS', code, resp.decode())
    code, resp = s.ehlo()
    print('EHLO-TLS', code, 'starttls' if s.has_extn('starttls') else 'no-starttls')
code, resp = s.mail(sender)
print('MAIL', code, resp.decode())
for r in rcpts.split(','):
    code, resp = s.rcpt(r)
    print('RCPT', code, resp.decode())
code, resp = s.data(msg)
print('DATA', code, resp.decode())
code, resp = s.quit()
print('QUIT', code, resp.decode())
"#;

fn send_with_smtplib(
    dir: &TestDir,
    port: u16,
    mode: &str,
    from: &str,
    rcpts: &[&str],
    msg: &[u8],
) -> String {
    let path = dir.path().join(format!("message-{mode}.eml"));
    fs::write(&path, msg).expect("write the message file");
    let output = run_python(
        SMTPLIB_SEND,
        &[
            &port.to_string(),
            mode,
            from,
            &rcpts.join(","),
            &path.display().to_string(),
        ],
    );
    let text = transcript(&output);
    assert!(output.status.success(), "smtplib failed:\n{text}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn smtplib_plain_delivers_to_two_recipients_byte_exact() {
    let dir = TestDir::new(&Config::default());
    let server = dir.start();
    let from = "sender@client.test";
    let rcpts = ["alice@example.test", "bob@other.test"];
    let msg = sample_message("smtplib-plain", "alice@example.test");

    let out = send_with_smtplib(&dir, server.port, "plain", from, &rcpts, &msg);
    assert!(
        out.contains("EHLO 250 starttls"),
        "STARTTLS not offered in plaintext EHLO:\n{out}"
    );
    assert!(out.contains("MAIL 250 2.1.0 sender ok"), "{out}");
    assert_eq!(
        out.matches("RCPT 250 2.1.5 recipient ok").count(),
        2,
        "{out}"
    );
    assert!(out.contains("DATA 250 2.0.0 ok: queued as "), "{out}");
    assert!(out.contains("QUIT 221 2.0.0 bye"), "{out}");

    let mut inodes = Vec::new();
    for rcpt in rcpts {
        let stored = dir.messages(rcpt);
        assert_eq!(
            stored.len(),
            1,
            "{rcpt} should hold exactly one message: {stored:?}"
        );
        inodes.push(fs::metadata(&stored[0].path).expect("stat").ino());
        stored[0].assert_is(from, &msg);
        let received = stored[0].received();
        assert!(
            received.contains(" with ESMTP ") || received.contains(" with ESMTP;"),
            "plaintext ESMTP delivery should say `with ESMTP` (RFC 3848): {received}"
        );
    }
    // Written once, hard-linked into each mailbox on the same filesystem.
    assert_eq!(
        inodes[0], inodes[1],
        "the two mailboxes' copies should be one file, hard-linked"
    );
}

#[test]
fn smtplib_starttls_then_delivers() {
    let dir = TestDir::new(&Config::default());
    let server = dir.start();
    let from = "tls-sender@client.test";
    let rcpts = ["carol@example.test"];
    let msg = sample_message("smtplib-starttls", "carol@example.test");

    let out = send_with_smtplib(&dir, server.port, "starttls", from, &rcpts, &msg);
    assert!(
        out.contains("STARTTLS 220 2.0.0 ready to start TLS"),
        "{out}"
    );
    assert!(
        out.contains("EHLO-TLS 250 no-starttls"),
        "STARTTLS must not be offered again under TLS:\n{out}"
    );
    assert!(out.contains("DATA 250 2.0.0 ok: queued as "), "{out}");

    let tls_dir = dir.data_dir.join("tls");
    let generated = fs::read_dir(&tls_dir).map(|d| d.count()).unwrap_or(0);
    assert!(
        generated > 0,
        "no self-signed pair generated in {}",
        tls_dir.display()
    );

    let stored = dir.messages("carol@example.test");
    assert_eq!(stored.len(), 1, "{stored:?}");
    stored[0].assert_is(from, &msg);
    let received = stored[0].received();
    assert!(
        received.contains("with ESMTPS"),
        "a delivery over STARTTLS should say `with ESMTPS` (RFC 3848): {received}"
    );
}
