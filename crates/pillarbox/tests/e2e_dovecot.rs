//! Dovecot reads the Maildir Pillarbox writes and logs users in from Pillarbox's
//! users file, with the configuration of `docs/dovecot.md` as written there:
//! proof that the guide works (`mail_location = maildir:<data_dir>/mail/%d/%n/Maildir`,
//! `,S=` and `,W=` right, `{ARGON2ID}` hashes from `pillarbox users add`).

mod common;

use common::{
    conf_block_after, dovecot_config_from_docs, run_client, sample_message, to_crlf, transcript,
    Config, Dovecot, TestDir, CLIENT_TIMEOUT,
};
use std::fs;
use std::process::Command;

/// Logs in over IMAP, selects INBOX and writes message 1's BODY[] to a file.
/// Arguments: port, user, password, output path. Prints `EXISTS n` and `SIZE n`.
const IMAP_FETCH: &str = r#"
import imaplib, re, sys
port, user, password, out = sys.argv[1:5]
m = imaplib.IMAP4('127.0.0.1', int(port), timeout=30)
typ, data = m.login(user, password)
assert typ == 'OK', (typ, data)
typ, data = m.select('INBOX', readonly=True)
assert typ == 'OK', (typ, data)
print('EXISTS', int(data[0]))
typ, data = m.fetch('1', '(RFC822.SIZE BODY.PEEK[])')
assert typ == 'OK', (typ, data)
meta, body = data[0]
print('SIZE', int(re.search(rb'RFC822\.SIZE (\d+)', meta).group(1)))
open(out, 'wb').write(body)
m.logout()
"#;

/// Tries an IMAP LOGIN; prints `LOGIN OK` or `LOGIN NO <text>`.
/// Arguments: port, user, password.
const IMAP_LOGIN: &str = r#"
import imaplib, sys
port, user, password = sys.argv[1:4]
m = imaplib.IMAP4('127.0.0.1', int(port), timeout=30)
try:
    m.login(user, password)
    print('LOGIN OK')
    m.logout()
except imaplib.IMAP4.error as e:
    print('LOGIN NO', e)
"#;

const PASSWORD: &str = "correct horse battery";

fn python(script: &str, args: &[&str]) -> (std::process::Output, String) {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(script).args(args);
    let output = run_client(cmd, None, CLIENT_TIMEOUT, "install Python 3");
    let text = transcript(&output);
    (output, text)
}

#[test]
fn the_guide_has_its_configuration_and_test_blocks() {
    let doc = fs::read_to_string(common::dovecot_doc_path()).expect("read docs/dovecot.md");
    let conf = conf_block_after(&doc, "The configuration").unwrap();
    for line in [
        "mail_location = maildir:@DATA_DIR@/mail/%d/%n/Maildir",
        "quota = maildir:User quota",
    ] {
        assert!(
            conf.contains(line),
            "the configuration lacks `{line}`:\n{conf}"
        );
    }
    let plumbing = conf_block_after(&doc, "What the tests add").unwrap();
    assert!(plumbing.contains("ssl = no"), "{plumbing}");
}

#[test]
fn conf_block_after_a_heading_is_extracted_and_a_missing_one_is_named() {
    let doc = "# T\n## A\ntext\n```conf\nx = 1\n```\n## B\n```sh\nls\n```\n## C\n```conf\ny\n";
    assert_eq!(conf_block_after(doc, "A").unwrap(), "x = 1\n");
    assert_eq!(
        conf_block_after(doc, "B").unwrap_err(),
        "no ```conf block after `## B`"
    );
    assert_eq!(
        conf_block_after(doc, "C").unwrap_err(),
        "the ```conf block after `## C` is not closed"
    );
    assert_eq!(conf_block_after(doc, "D").unwrap_err(), "no heading `## D`");
}

#[test]
#[should_panic(expected = "@NOT_IN_THE_DOC@")]
fn a_placeholder_the_guide_lacks_fails_the_config() {
    dovecot_config_from_docs(&[("NOT_IN_THE_DOC", "x".to_string())]);
}

#[test]
fn dovecot_logs_in_a_user_added_by_pillarbox_and_fetches_the_delivered_message() {
    let dir = TestDir::new(&Config {
        users: Vec::new(),
        catch_all: false,
        ..Config::default()
    });
    let from = "imap-sender@client.test";
    let rcpt = "alice@example.test";
    dir.users_add(rcpt, None, PASSWORD);
    let msg = sample_message("dovecot", rcpt);
    {
        let server = dir.start();
        let mut smtp = server.session();
        smtp.expect("EHLO client.test", 250);
        let reply = smtp
            .send_mail(from, &[rcpt], &msg)
            .expect("send the message");
        assert!(reply.starts_with("250 2.0.0 ok: queued as "), "{reply}");
        smtp.expect("QUIT", 221);
        // Delivered from the queue while the server runs.
        assert_eq!(dir.messages(rcpt).len(), 1);
    }
    let stored = dir.messages(rcpt);
    assert_eq!(stored.len(), 1, "{stored:?}");
    stored[0].assert_is(from, &msg);
    let stored_bytes = stored[0].bytes.clone();

    let dovecot = Dovecot::start(&dir);
    let port = dovecot.imap_port.to_string();
    let (_, wrong) = python(IMAP_LOGIN, &[&port, rcpt, "not the password"]);
    assert!(
        wrong.contains("LOGIN NO"),
        "a wrong password must not log in:\n{wrong}"
    );
    let fetched_path = dir.path().join("fetched.eml");
    let (output, text) = python(
        IMAP_FETCH,
        &[&port, rcpt, PASSWORD, &fetched_path.display().to_string()],
    );
    assert!(
        output.status.success(),
        "IMAP LOGIN and fetch through Dovecot failed:\n{text}\n--- Dovecot's log ---\n{}",
        dovecot.log()
    );
    let log = dovecot.log();
    for bad in ["Error:", "Fatal:", "Panic:", "Warning:"] {
        assert!(
            !log.contains(bad),
            "Dovecot complained about our Maildir or users file:\n{log}"
        );
    }
    assert!(
        log.contains(&format!("Login: user=<{rcpt}>")),
        "Dovecot logged the user in with the password from our users file:\n{log}"
    );
    assert!(
        text.contains("EXISTS 1\n"),
        "Dovecot should see exactly one message:\n{text}"
    );

    let fetched = fs::read(&fetched_path).expect("read the fetched message");
    // IMAP serves CRLF; Dovecot must serve exactly the file we stored.
    assert!(
        fetched == to_crlf(&stored_bytes),
        "BODY[] differs from the stored file\n--- BODY[] ---\n{}\n--- stored ---\n{}",
        String::from_utf8_lossy(&fetched),
        String::from_utf8_lossy(&stored_bytes)
    );
    // And, without our Return-Path/Received, it is the message as sent.
    let (_, original) = common::split_added_headers(&fetched);
    assert!(
        original == msg,
        "message read over IMAP differs from the one sent\n--- sent ---\n{}\n--- fetched ---\n{}",
        String::from_utf8_lossy(&msg),
        String::from_utf8_lossy(&original)
    );
    // RFC822.SIZE comes from the `,W=` in the file name when present.
    assert!(
        text.contains(&format!("SIZE {}\n", fetched.len())),
        "RFC822.SIZE should be {} (the CRLF size):\n{text}",
        fetched.len()
    );
}
