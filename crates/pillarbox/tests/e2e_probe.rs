//! `pillarbox probe` against the real Pillarbox binary and against a real
//! Postfix (Debian package `postfix`, configured here in a temporary
//! directory on loopback ports): the transcript holds the replies and their
//! annotations, `--json` parses, and the exit status follows the outcome
//! (0 accepted, 69 for a 5xx, 75 for a 4xx, 2 for no connection or bad usage).

mod common;

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use common::{binary, run_client, transcript, Config, TestDir, CLIENT_TIMEOUT};

const EXIT_PERMANENT: i32 = 69;
const EXIT_TRANSIENT: i32 = 75;
const EXIT_USAGE: i32 = 2;

/// Runs `pillarbox probe ARGS`, bounded.
fn probe(args: &[&str]) -> Output {
    let mut cmd = Command::new(binary());
    cmd.arg("probe").args(["--timeout", "20"]).args(args);
    run_client(cmd, None, CLIENT_TIMEOUT, "build the pillarbox binary")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit {code}\n{}",
        transcript(out)
    );
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("--json output does not parse: {e}\n{}", transcript(out)))
}

/// A port nobody listens on (bound, then released).
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

// ---------------------------------------------------------------- Pillarbox

#[test]
fn probe_delivers_over_starttls_and_annotates_every_reply() {
    let dir = TestDir::new(&Config::default());
    let server = dir.start();
    let target = format!("127.0.0.1:{}", server.port);
    let out = probe(&[
        &target,
        "--starttls",
        "--ehlo",
        "client.test",
        "--from",
        "sender@client.test",
        "--to",
        "bob@example.test",
        "--body",
        ".a line with a leading dot",
        "--bdat",
        "--chunk-size",
        "64",
    ]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    for expected in [
        "S: 220 mx.example.test ESMTP Pillarbox",
        "= 2xx positive completion",
        "C: STARTTLS",
        "S: 220 2.0.0 ready to start TLS",
        "TLS established: TLSv1.",
        "~C: EHLO client.test",
        "~C: BDAT 64\n",
        "LAST",
        "250 2.0.0 ok: queued as",
        "~S: 221 2.0.0 bye",
        "subject CN=mx.example.test",
        "does NOT verify",
        "Result: success (exit 0)",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // Every reply is followed by its annotation: as many `=` lines as replies.
    let replies = text
        .lines()
        .filter(|l| {
            l.contains("S: ")
                && l.split("S: ")
                    .nth(1)
                    .is_some_and(|r| r.as_bytes().get(3) == Some(&b' '))
        })
        .count();
    let annotations = text
        .lines()
        .filter(|l| l.trim_start().starts_with("= "))
        .count();
    assert_eq!(replies, annotations, "every reply annotated:\n{text}");
    let stored = dir.messages("bob@example.test");
    assert_eq!(stored.len(), 1, "one message delivered");
    // BDAT carries the content as is: the leading dot is not stuffed.
    assert!(String::from_utf8_lossy(&stored[0].bytes).contains("\n.a line with a leading dot"));

    // The server's own certificate as trust anchor: now the chain verifies
    // (its names include 127.0.0.1).
    let cert = dir.data_dir.join("tls").join("cert.pem");
    let out = probe(&[
        &target,
        "--starttls",
        "--ca-file",
        cert.to_str().expect("utf-8 path"),
    ]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("chain for 127.0.0.1: verifies"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn probe_unknown_user_is_a_permanent_failure() {
    let cfg = Config {
        catch_all: false,
        ..Config::default()
    };
    let dir = TestDir::new(&cfg);
    let server = dir.start();
    let out = probe(&[
        &format!("127.0.0.1:{}", server.port),
        "--to",
        "nobody@example.test",
        "--pipeline",
    ]);
    assert_exit(&out, EXIT_PERMANENT);
    let text = stdout(&out);
    assert!(text.contains("S: 550 5.1.1 no such user here"), "{text}");
    assert!(text.contains("= 5xx permanent negative"), "{text}");
    // Pipelined: MAIL, RCPT and DATA went before the first reply came back.
    let mail = text.find("C: MAIL FROM:").expect("MAIL sent");
    let data = text.find("C: DATA").expect("DATA sent with the batch");
    let first_reply = text[mail..].find("S: ").map(|i| i + mail).expect("a reply");
    assert!(data < first_reply, "MAIL, RCPT, DATA in one batch:\n{text}");
    assert!(
        text.contains("Result: permanent failure (exit 69)"),
        "{text}"
    );
}

#[test]
fn probe_full_mailbox_is_a_transient_failure() {
    let cfg = Config {
        catch_all: false,
        users: vec!["alice@example.test::1000:1000::::userdb_quota_rule=*:bytes=100".to_string()],
        ..Config::default()
    };
    let dir = TestDir::new(&cfg);
    let server = dir.start();
    let body = "x".repeat(400);
    let out = probe(&[
        &format!("127.0.0.1:{}", server.port),
        "--to",
        "alice@example.test",
        "--body",
        &body,
        "--json",
    ]);
    assert_exit(&out, EXIT_TRANSIENT);
    let v = json(&out);
    assert_eq!(v["outcome"], "transient_failure");
    assert_eq!(v["exit_code"], 75);
    let replies = v["replies"].as_array().expect("replies");
    let last_data = replies
        .iter()
        .find(|r| r["answered"] == "<end of data>")
        .expect("a reply after the end of data");
    assert_eq!(last_data["code"], 452, "{last_data}");
    assert_eq!(last_data["enhanced"], "4.2.2");
    assert!(last_data["annotation"]["class"]
        .as_str()
        .is_some_and(|c| c.starts_with("4xx")));
    assert!(!last_data["annotation"]["action"]
        .as_str()
        .unwrap_or("")
        .is_empty());
}

#[test]
fn probe_check_reports_findings_as_json() {
    let dir = TestDir::new(&Config::default());
    let server = dir.start();
    let out = probe(&[&format!("127.0.0.1:{}", server.port), "--check", "--json"]);
    let v = json(&out);
    let findings = v["findings"].as_array().expect("findings");
    let status = |name: &str| {
        findings
            .iter()
            .find(|f| f["check"] == name)
            .map(|f| f["status"].as_str().unwrap_or("").to_string())
            .unwrap_or_else(|| panic!("no {name} finding in {findings:?}"))
    };
    assert_eq!(status("starttls"), "pass");
    assert_eq!(status("auth_plaintext"), "pass");
    assert_eq!(status("help"), "pass");
    assert_eq!(status("size"), "pass");
    assert_eq!(status("open_relay"), "pass", "{findings:?}");
    assert_eq!(status("certificate"), "warn");
    // The relay test's expected refusal does not make the probe fail.
    assert_exit(&out, 0);
    let transcript = v["transcript"].as_array().expect("transcript");
    assert!(transcript
        .iter()
        .any(|e| e["text"] == "RCPT TO:<probe@relay-test.invalid>" && e["direction"] == "sent"));
    assert!(transcript.iter().any(|e| e["tls"] == true));
    assert!(transcript[0]["at_ms"].is_number());
    assert_eq!(v["tls"]["verification"]["result"], "failed");
}

#[test]
fn probe_without_a_server_or_with_bad_usage_exits_2() {
    let out = probe(&[&format!("127.0.0.1:{}", closed_port())]);
    assert_exit(&out, EXIT_USAGE);
    let out = probe(&["127.0.0.1:25", "--from", "a@b.test"]);
    assert_exit(&out, EXIT_USAGE);
    let out = probe(&["127.0.0.1:notaport"]);
    assert_exit(&out, EXIT_USAGE);
}

// ------------------------------------------------------------------ Postfix

const POSTFIX: &str = "/usr/sbin/postfix";
const POSTFIX_INSTALL: &str =
    "install Postfix (`DEBIAN_FRONTEND=noninteractive apt-get install -y postfix`)";

/// A Postfix with its own config, queue and data directories in a
/// temporary directory, listening on two loopback ports: SMTP with
/// STARTTLS, and implicit TLS. Stopped on drop.
struct Postfix {
    dir: tempfile::TempDir,
    port: u16,
    tls_port: u16,
    cert: PathBuf,
}

impl Postfix {
    fn start() -> Postfix {
        assert!(
            Path::new(POSTFIX).exists(),
            "{POSTFIX} is missing: {POSTFIX_INSTALL}"
        );
        let dir = tempfile::Builder::new()
            .prefix("pillarbox-postfix-")
            .tempdir()
            .expect("temporary directory");
        let root = dir.path();
        // Postfix's daemons run as the `postfix` user and must reach the queue.
        set_mode(root, 0o755);
        let (etc, spool, data) = (root.join("etc"), root.join("spool"), root.join("data"));
        for d in [&etc, &spool, &data] {
            fs::create_dir(d).expect("create a Postfix directory");
        }
        // data_directory belongs to the mail owner (master.lock, TLS caches).
        let status = Command::new("chown")
            .arg("postfix")
            .arg(&data)
            .status()
            .expect("run chown");
        assert!(
            status.success(),
            "chown postfix {}: is Postfix installed? {POSTFIX_INSTALL}",
            data.display()
        );

        let key = rcgen::KeyPair::generate().expect("generate a key");
        let params = rcgen::CertificateParams::new(vec![
            "postfix.example.test".to_string(),
            "127.0.0.1".to_string(),
        ])
        .expect("certificate parameters");
        let cert = params.self_signed(&key).expect("self-sign");
        let cert_path = etc.join("cert.pem");
        let key_path = etc.join("key.pem");
        fs::write(&cert_path, cert.pem()).expect("write cert");
        fs::write(&key_path, key.serialize_pem()).expect("write key");
        set_mode(&key_path, 0o600);

        let port = closed_port();
        let mut tls_port = closed_port();
        while tls_port == port {
            tls_port = closed_port();
        }
        let r = root.display();
        let main_cf = format!(
            "compatibility_level = 3.6\n\
             queue_directory = {r}/spool\n\
             data_directory = {r}/data\n\
             mail_owner = postfix\n\
             setgid_group = postdrop\n\
             inet_interfaces = loopback-only\n\
             inet_protocols = ipv4\n\
             myhostname = postfix.example.test\n\
             mydomain = example.test\n\
             mydestination = postfix.example.test\n\
             # Loopback is not trusted: the relay test sees what an outsider sees.\n\
             mynetworks = 192.0.2.1/32\n\
             alias_maps =\n\
             alias_database =\n\
             # Accepted mail is dropped: nothing is written outside the temporary directory.\n\
             local_transport = discard:\n\
             maillog_file = {r}/maillog\n\
             maillog_file_prefixes = {r}\n\
             smtpd_banner = $myhostname ESMTP Postfix\n\
             message_size_limit = 1000000\n\
             smtpd_recipient_restrictions = check_recipient_access inline:{{ {{ busy@postfix.example.test = 450 4.2.1 mailbox busy, try again later }} }}\n\
             smtpd_tls_security_level = may\n\
             smtpd_tls_cert_file = {cert}\n\
             smtpd_tls_key_file = {key}\n",
            cert = cert_path.display(),
            key = key_path.display(),
        );
        fs::write(etc.join("main.cf"), main_cf).expect("write main.cf");
        let master_cf = format!(
            "127.0.0.1:{port} inet n - n - - smtpd\n\
             127.0.0.1:{tls_port} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes -o smtpd_tls_security_level=encrypt\n\
             cleanup   unix n - n - 0 cleanup\n\
             qmgr      unix n - n 300 1 qmgr\n\
             tlsmgr    unix - - n 1000? 1 tlsmgr\n\
             rewrite   unix - - n - - trivial-rewrite\n\
             bounce    unix - - n - 0 bounce\n\
             defer     unix - - n - 0 bounce\n\
             trace     unix - - n - 0 bounce\n\
             verify    unix - - n - 1 verify\n\
             flush     unix n - n 1000? 0 flush\n\
             proxymap  unix - - n - - proxymap\n\
             smtp      unix - - n - - smtp\n\
             relay     unix - - n - - smtp\n\
             showq     unix n - n - - showq\n\
             error     unix - - n - - error\n\
             retry     unix - - n - - error\n\
             discard   unix - - n - - discard\n\
             local     unix - n n - - local\n\
             anvil     unix - - n - 1 anvil\n\
             scache    unix - - n - 1 scache\n\
             postlog   unix-dgram n - n - 1 postlogd\n"
        );
        fs::write(etc.join("master.cf"), master_cf).expect("write master.cf");

        let postfix = Postfix {
            dir,
            port,
            tls_port,
            cert: cert_path,
        };
        let out = postfix.control("start");
        assert!(
            out.status.success(),
            "postfix start failed\n{}\n--- maillog ---\n{}",
            transcript(&out),
            postfix.log()
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err()
            || TcpStream::connect(("127.0.0.1", tls_port)).is_err()
        {
            assert!(
                Instant::now() < deadline,
                "Postfix did not listen on {port} and {tls_port} within 30s\n--- maillog ---\n{}",
                postfix.log()
            );
            thread::sleep(Duration::from_millis(100));
        }
        postfix
    }

    fn control(&self, verb: &str) -> Output {
        let mut cmd = Command::new(POSTFIX);
        cmd.arg("-c").arg(self.dir.path().join("etc")).arg(verb);
        run_client(cmd, None, CLIENT_TIMEOUT, POSTFIX_INSTALL)
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = self.control("stop");
        if thread::panicking() {
            eprintln!("--- postfix maillog ---\n{}", self.log());
        }
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn probe_against_postfix() {
    let postfix = Postfix::start();
    let target = format!("127.0.0.1:{}", postfix.port);

    // Health check: STARTTLS works, relaying from an outsider is refused,
    // Postfix does not answer HELP (a warning, not a failure).
    let out = probe(&[&target, "--check", "--ehlo", "client.test"]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    for expected in [
        "S: 220 postfix.example.test ESMTP Postfix",
        "= 2xx positive completion",
        "TLS established: TLSv1.",
        "Relay access denied",
        "PASS starttls",
        "PASS open_relay",
        "WARN help",
        "PASS size",
        "subject CN=rcgen self signed cert",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }

    // An unknown local user: 550 5.1.1, permanent.
    let out = probe(&[
        &target,
        "--to",
        "nosuch@postfix.example.test",
        "--from",
        "sender@client.test",
    ]);
    assert_exit(&out, EXIT_PERMANENT);
    let text = stdout(&out);
    assert!(text.contains("S: 550 5.1.1"), "{text}");
    assert!(text.contains("= 5xx permanent negative"), "{text}");

    // A recipient deferred with 450: transient, even though another
    // recipient in the same (pipelined, BDAT) transaction got the message.
    let out = probe(&[
        &target,
        "--starttls",
        "--pipeline",
        "--bdat",
        "--from",
        "sender@client.test",
        "--to",
        "busy@postfix.example.test",
        "--to",
        "root@postfix.example.test",
        "--json",
    ]);
    assert_exit(&out, EXIT_TRANSIENT);
    let v = json(&out);
    let codes: Vec<u64> = v["replies"]
        .as_array()
        .expect("replies")
        .iter()
        .filter_map(|r| r["code"].as_u64())
        .collect();
    assert!(codes.contains(&450), "{codes:?}");
    assert_eq!(v["delivered"], true);
    assert_eq!(v["tls"]["verification"]["result"], "failed");

    // Implicit TLS, with the test certificate as the trust anchor: verifies.
    let out = probe(&[
        &format!("127.0.0.1:{}", postfix.tls_port),
        "--tls",
        "--ca-file",
        postfix.cert.to_str().expect("utf-8 path"),
        "--to",
        "root@postfix.example.test",
        "--file",
        postfix
            .dir
            .path()
            .join("etc")
            .join("main.cf")
            .to_str()
            .expect("utf-8 path"),
    ]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains("~S: 220 postfix.example.test ESMTP Postfix"),
        "{text}"
    );
    assert!(text.contains("chain for 127.0.0.1: verifies"), "{text}");
    assert!(text.contains("~S: 250 2.0.0 Ok: queued as"), "{text}");
}
