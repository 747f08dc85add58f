//! SIGHUP: the server survives it, re-reads its config file, serves a renewed
//! TLS certificate to the next client, and refuses a broken config with a log
//! line, keeping the running one.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use common::{run_python, sample_message, transcript, Config, Smtp, TestDir};

/// How long a reload may take to show in the log.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits (bounded) until the server log holds `count` lines containing `needle`.
fn wait_for_log(dir: &TestDir, needle: &str, count: usize) -> String {
    let deadline = Instant::now() + RELOAD_TIMEOUT;
    loop {
        let log = dir.log();
        if log.lines().filter(|l| l.contains(needle)).count() >= count {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "no {count} log line(s) with {needle:?} within {RELOAD_TIMEOUT:?}:\n{log}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Writes a new self-signed pair for `mx.example.test` to `cert` and `key`.
fn write_pair(cert: &Path, key: &Path) {
    let pair = rcgen::generate_simple_self_signed(vec!["mx.example.test".to_string()])
        .expect("generate a certificate");
    fs::write(cert, pair.cert.pem()).expect("write the certificate");
    fs::write(key, pair.key_pair.serialize_pem()).expect("write the key");
}

/// A test dir whose config has `[tls]` with a fresh pair in the directory.
/// A server config with a TLS pair of its own, whose files are looked at
/// every `watch` (`"0s"`: only on SIGHUP).
fn tls_dir_watching(watch: &str) -> (TestDir, PathBuf, PathBuf) {
    let dir = TestDir::new(&Config::default());
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    write_pair(&cert, &key);
    dir.append_config(&format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\nwatch = \"{watch}\"\n",
        cert.display(),
        key.display()
    ));
    (dir, cert, key)
}

fn tls_dir() -> (TestDir, PathBuf, PathBuf) {
    tls_dir_watching("0s")
}

/// STARTTLS, then prints `SEEN <sha256>` of the certificate the server showed
/// and `FILE <sha256>` of the PEM certificate in argv[2].
const FINGERPRINTS: &str = r#"
import hashlib, socket, ssl, sys
port = int(sys.argv[1])
s = socket.create_connection(('127.0.0.1', port), timeout=20)
f = s.makefile('rb')
def reply():
    while True:
        line = f.readline()
        if not line:
            raise SystemExit('connection closed')
        if line[3:4] != b'-':
            return line
reply()
s.sendall(b'EHLO client.test\r\n')
reply()
s.sendall(b'STARTTLS\r\n')
r = reply()
if not r.startswith(b'220'):
    raise SystemExit('STARTTLS refused: %r' % r)
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
t = ctx.wrap_socket(s, server_hostname='mx.example.test')
print('SEEN', hashlib.sha256(t.getpeercert(binary_form=True)).hexdigest())
print('FILE', hashlib.sha256(ssl.PEM_cert_to_DER_cert(open(sys.argv[2]).read())).hexdigest())
t.sendall(b'QUIT\r\n')
"#;

/// The fingerprint the next TLS client sees, and that of the PEM file `cert`.
fn fingerprints(port: u16, cert: &Path) -> (String, String) {
    let cert = cert.to_str().expect("utf-8 path");
    let output = run_python(FINGERPRINTS, &[&port.to_string(), cert]);
    let text = transcript(&output);
    assert!(output.status.success(), "{text}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {name:?} line:\n{text}"))
    };
    (field("SEEN "), field("FILE "))
}

#[test]
fn sighup_leaves_the_same_process_serving_and_an_open_session_finishes() {
    let dir = TestDir::new(&Config::default());
    let mut server = dir.start();
    let rcpt = "ivan@example.test";
    let msg = sample_message("across-sighup", rcpt);
    let wire = common::dot_stuff(&msg);
    let (first, rest) = wire.split_at(wire.len() / 2);

    let mut busy = server.session();
    busy.expect("EHLO busy.client.test", 250);
    busy.expect("MAIL FROM:<hup@client.test>", 250);
    busy.expect(&format!("RCPT TO:<{rcpt}>"), 250);
    busy.expect("DATA", 354);
    busy.send(first).expect("send the first half");

    // A limit changed (applied to new sessions) and the log format (which
    // only a restart applies).
    let text = fs::read_to_string(&dir.config_path).expect("read config");
    let text = text.replacen(
        "command_timeout = \"30s\"",
        "command_timeout = \"30s\"\nmessage_size = \"1MiB\"",
        1,
    );
    fs::write(
        &dir.config_path,
        text.replacen("format = \"text\"", "format = \"json\"", 1),
    )
    .expect("write config");
    server.signal("HUP");
    wait_for_log(&dir, "config reloaded", 1);
    assert!(
        server.wait_exit(Duration::from_millis(300)).is_none(),
        "the server exited after SIGHUP:\n{}",
        dir.log()
    );

    busy.send(rest).expect("send the rest after SIGHUP");
    let reply = busy.read_reply().expect("final reply to DATA");
    assert!(reply.starts_with("250 2.0.0 ok: queued as "), "{reply}");
    busy.expect("QUIT", 221);
    assert_eq!(dir.messages(rcpt).len(), 1);

    // Still the same process, still accepting, with the new message size.
    let mut next = Smtp::connect(server.port).expect("connect after SIGHUP");
    assert_eq!(next.read_reply().expect("greeting").code, 220);
    let ehlo = next.expect("EHLO next.client.test", 250);
    assert!(
        ehlo.lines.iter().any(|l| l.ends_with("SIZE 1048576")),
        "a new session takes the reloaded limits: {ehlo}"
    );
    assert!(server.wait_exit(Duration::ZERO).is_none());
    let log = dir.log();
    let line = log
        .lines()
        .find(|l| l.contains("config reloaded"))
        .unwrap_or_default();
    assert!(
        line.contains("changed_applied=limits") && line.contains("changed_needs_restart=log"),
        "the reload line says which changed keys apply and which wait for a restart: {line}"
    );
    assert!(
        !log.contains("{\""),
        "the log format waits for a restart: {log}"
    );
}

#[test]
fn a_replaced_certificate_is_served_to_the_next_tls_client_after_sighup() {
    let (dir, cert, key) = tls_dir();
    let server = dir.start();
    let (seen, file) = fingerprints(server.port, &cert);
    assert_eq!(seen, file, "the configured certificate is served at start");

    write_pair(&cert, &key);
    let (still, renewed) = fingerprints(server.port, &cert);
    assert_ne!(renewed, file, "the test must write a different certificate");
    assert_eq!(still, file, "without SIGHUP the old certificate stays");

    server.signal("HUP");
    wait_for_log(&dir, "config reloaded", 1);
    let (seen, file) = fingerprints(server.port, &cert);
    assert_eq!(seen, file, "the renewed certificate is served after SIGHUP");
}

#[test]
fn a_broken_config_on_sighup_is_refused_with_a_log_line_and_the_old_one_stays() {
    let (dir, cert, _key) = tls_dir();
    let server = dir.start();
    let (served, _) = fingerprints(server.port, &cert);
    let good = fs::read_to_string(&dir.config_path).expect("read config");

    // A misspelt key: refused, naming the key and the file.
    fs::write(
        &dir.config_path,
        good.replacen("hostname =", "hostnme =", 1),
    )
    .expect("write config");
    server.signal("HUP");
    let log = wait_for_log(&dir, "reload refused", 1);
    let line = log
        .lines()
        .find(|l| l.contains("reload refused"))
        .unwrap_or_default();
    assert!(
        line.contains("hostnme") && line.contains(&dir.config_path.display().to_string()),
        "{line}"
    );
    wait_for_log(&dir, "config not reloaded", 1);

    // A certificate that is not there: refused, naming `tls.cert` and the path,
    // and the certificate served so far is still served.
    let missing = dir.path().join("renewed-cert.pem");
    let cert_line = format!("cert = \"{}\"", cert.display());
    assert!(good.contains(&cert_line), "{good}");
    fs::write(
        &dir.config_path,
        good.replacen(&cert_line, &format!("cert = \"{}\"", missing.display()), 1),
    )
    .expect("write config");
    server.signal("HUP");
    let log = wait_for_log(&dir, "reload refused", 2);
    let line = log
        .lines()
        .filter(|l| l.contains("reload refused"))
        .nth(1)
        .unwrap_or_default();
    assert!(
        line.contains("tls.cert") && line.contains(&missing.display().to_string()),
        "{line}"
    );
    wait_for_log(&dir, "config not reloaded", 2);
    assert!(!log.contains("config reloaded"), "{log}");

    let mut smtp = server.session();
    smtp.expect("EHLO client.test", 250);
    let (still, _) = fingerprints(server.port, &cert);
    assert_eq!(still, served, "the running certificate stays");
}

#[test]
fn a_renewed_certificate_is_served_without_sighup_once_its_files_change() {
    let (dir, cert, key) = tls_dir_watching("1s");
    let server = dir.start();
    let (seen, first) = fingerprints(server.port, &cert);
    assert_eq!(seen, first);
    write_pair(&cert, &key);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (seen, file) = fingerprints(server.port, &cert);
        assert_ne!(file, first, "the test must write a different certificate");
        if seen == file {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was not served within 15 s:\n{}",
            dir.log()
        );
        thread::sleep(Duration::from_millis(300));
    }
    assert!(dir
        .log()
        .contains("TLS certificate and key changed on disk"));
}

#[test]
fn pillarbox_reload_signals_the_server_holding_the_data_directory() {
    let dir = TestDir::new(&Config::default());
    let run = || {
        let mut cmd = std::process::Command::new(common::binary());
        cmd.arg("reload").arg("--config").arg(&dir.config_path);
        common::run_client(
            cmd,
            None,
            common::CLIENT_TIMEOUT,
            "build the pillarbox binary",
        )
    };
    // No server yet: refused, naming the lock file.
    let out = run();
    assert!(!out.status.success(), "{}", transcript(&out));
    assert!(
        transcript(&out).contains("pillarbox.lock"),
        "{}",
        transcript(&out)
    );
    let server = dir.start();
    let out = run();
    assert!(out.status.success(), "{}", transcript(&out));
    assert!(
        transcript(&out).contains(&format!("pid {}", server.pid)),
        "{}",
        transcript(&out)
    );
    wait_for_log(&dir, "config reloaded", 1);
}
