//! Dovecot reads the Maildir Pillarbox writes: proof that it is the real thing
//! (`mail_location = maildir:<data_dir>/mail/%d/%n/Maildir`, `,S=` and `,W=` right).

mod common;

use common::{run_client, sample_message, to_crlf, transcript, Config, TestDir, CLIENT_TIMEOUT};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// Dovecot's IMAP binary (Debian `dovecot-imapd`); run directly it is pre-authenticated
/// as `$USER` and speaks IMAP on stdin/stdout.
const DOVECOT_IMAP: &str = "/usr/lib/dovecot/imap";

/// Selects INBOX over IMAP4_stream and writes message 1's BODY[] to a file.
/// Arguments: the imap command line, the output path. Prints `EXISTS n` and `SIZE n`.
const IMAP_FETCH: &str = r#"
import imaplib, re, sys
cmd, out = sys.argv[1:3]
m = imaplib.IMAP4_stream(cmd)
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

fn current_uid() -> String {
    let out = Command::new("id").arg("-u").output().expect("run id -u");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn run(cmd: &str, args: &[&str]) {
    let status = Command::new(cmd)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(status.success(), "{cmd} {args:?} failed");
}

/// Dovecot refuses to access mail as root. When the tests run as root (as CI
/// does), the mail tree is handed to `nobody` and Dovecot drops to it.
fn dovecot_config(dir: &TestDir) -> String {
    let uid = current_uid();
    let (mail_uid, mail_gid) = if uid == "0" {
        run(
            "chown",
            &[
                "-R",
                "65534:65534",
                &dir.data_dir.join("mail").display().to_string(),
            ],
        );
        for path in [dir.path(), dir.data_dir.as_path()] {
            run("chmod", &["755", &path.display().to_string()]);
        }
        for ancestor in dir.path().ancestors().skip(1) {
            let mode = fs::metadata(ancestor)
                .map(|m| m.permissions().mode())
                .unwrap_or(0);
            assert!(
                mode & 0o001 != 0,
                "Dovecot runs as nobody and cannot pass {} (mode {:o}): point TMPDIR at a world-traversable directory",
                ancestor.display(),
                mode & 0o7777
            );
        }
        ("65534".to_string(), "65534".to_string())
    } else {
        let gid = Command::new("id").arg("-g").output().expect("run id -g");
        (uid, String::from_utf8_lossy(&gid.stdout).trim().to_string())
    };
    let run_dir = dir.path().join("dovecot-run");
    fs::create_dir_all(&run_dir).expect("create dovecot base_dir");
    format!(
        "log_path = /dev/stderr\n\
         ssl = no\n\
         protocols = imap\n\
         mail_location = maildir:{data}/mail/%d/%n/Maildir\n\
         mail_uid = {mail_uid}\n\
         mail_gid = {mail_gid}\n\
         first_valid_uid = 1\n\
         base_dir = {run}\n\
         state_dir = {run}\n",
        data = dir.data_dir.display(),
        run = run_dir.display(),
    )
}

fn assert_installed(path: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: install Dovecot's IMAP server (`apt-get install dovecot-imapd`; .ci/run installs it)"
    );
}

#[test]
fn dovecot_imap_fetches_the_delivered_message() {
    assert_installed(DOVECOT_IMAP);
    let dir = TestDir::new(&Config::default());
    let from = "imap-sender@client.test";
    let rcpt = "alice@example.test";
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
    }
    let stored = dir.messages(rcpt);
    assert_eq!(stored.len(), 1, "{stored:?}");
    stored[0].assert_is(from, &msg);
    let stored_bytes = stored[0].bytes.clone();

    let conf = dir.path().join("dovecot.conf");
    fs::write(&conf, dovecot_config(&dir)).expect("write dovecot.conf");
    let imap_cmd = format!("env -i USER={rcpt} {DOVECOT_IMAP} -c {}", conf.display());
    let fetched_path = dir.path().join("fetched.eml");
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(IMAP_FETCH)
        .arg(&imap_cmd)
        .arg(&fetched_path);
    let output = run_client(cmd, None, CLIENT_TIMEOUT, "install Python 3");
    let text = transcript(&output);
    assert!(
        output.status.success(),
        "IMAP fetch through Dovecot failed:\n{text}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    for bad in ["Error:", "Fatal:", "Panic:", "Warning:"] {
        assert!(
            !stderr.contains(bad),
            "Dovecot complained about our Maildir:\n{text}"
        );
    }
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
