//! Authenticated submission end to end: real clients (swaks, curl,
//! Python smtplib, msmtp with GNU SASL for SCRAM-SHA-256) against the real
//! binary on its submission (STARTTLS) and submissions (implicit TLS)
//! listeners, users written by `pillarbox users add`.

mod common;

use std::fs;
use std::process::Command;

use common::{binary, run_client, run_python, transcript, Config, Server, TestDir, CLIENT_TIMEOUT};

const LISTENERS: &str = "[[listen]]\naddress = \"127.0.0.1:0\"\nprotocol = \"submission\"\n\
[[listen]]\naddress = \"127.0.0.1:0\"\nprotocol = \"submissions\"\n";

const ALICE: (&str, &str, &str) = ("alice@example.test", "argon2id", "alice-secret");
const CAROL: (&str, &str, &str) = ("carol@example.test", "scram-sha-256", "carol-secret");
const DAVE: (&str, &str, &str) = ("dave@example.test", "cram-md5", "dave-secret");

/// A server with submission and submissions listeners and alice (Argon2id,
/// alias sales@example.test).
fn server(extra: &str) -> (TestDir, Server, u16, u16) {
    server_with(extra, &[ALICE])
}

/// A server with submission and submissions listeners and these users
/// (address, scheme, password); alice gets the alias sales@example.test.
fn server_with(extra: &str, users: &[(&str, &str, &str)]) -> (TestDir, Server, u16, u16) {
    let cfg = Config {
        users: Vec::new(),
        ..Config::default()
    };
    let dir = TestDir::new(&cfg);
    dir.append_config(LISTENERS);
    dir.append_config(extra);
    for (user, scheme, password) in users {
        dir.users_add(user, Some(scheme), password);
    }
    // An alias for alice, as a Dovecot extra field on her line.
    let users = dir.path().join("users");
    let text = fs::read_to_string(&users).unwrap();
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("alice@") {
                format!("{l}::::::aliases=sales@example.test\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    fs::write(&users, text).unwrap();
    let server = dir.start();
    let (sub, subs) = (port(&server, "submission"), port(&server, "submissions"));
    (dir, server, sub, subs)
}

/// The port of `server`'s listener for `proto`, from its startup lines.
fn port(server: &Server, proto: &str) -> u16 {
    server
        .startup
        .iter()
        .find_map(|l| l.strip_prefix(&format!("listening {proto} ")))
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no {proto} listener in {:?}", server.startup))
}

fn swaks(args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new("swaks");
    cmd.args(args);
    run_client(
        cmd,
        None,
        CLIENT_TIMEOUT,
        "apt-get install swaks libnet-ssleay-perl",
    )
}

#[test]
fn swaks_authenticates_with_plain_and_login_over_starttls() {
    let (dir, _server, sub, _) = server("");
    let server_arg = format!("127.0.0.1:{sub}");
    for mech in ["PLAIN", "LOGIN"] {
        let out = swaks(&[
            "--server",
            &server_arg,
            "--tls",
            "--auth",
            mech,
            "--auth-user",
            "alice@example.test",
            "--auth-password",
            "alice-secret",
            "--from",
            "alice@example.test",
            "--to",
            "bob@example.test",
            "--header",
            &format!("Subject: via {mech}"),
        ]);
        let t = transcript(&out);
        assert!(out.status.success(), "swaks --auth {mech}: {t}");
        assert!(
            t.contains("235 2.7.0 authentication successful"),
            "{mech}: {t}"
        );
        assert!(t.contains("250 2.0.0 ok: queued as"), "{mech}: {t}");
    }
    let stored = dir.messages("bob@example.test");
    assert_eq!(stored.len(), 2);
    for m in &stored {
        assert!(
            m.received().contains("with ESMTPSA"),
            "RFC 3848 names AUTH and TLS: {}",
            m.received()
        );
    }
}

#[test]
fn swaks_authenticates_with_cram_md5_where_every_user_can() {
    let (dir, _server, sub, _) = server_with("", &[DAVE]);
    let out = swaks(&[
        "--server",
        &format!("127.0.0.1:{sub}"),
        "--tls",
        "--auth",
        "CRAM-MD5",
        "--auth-user",
        "dave@example.test",
        "--auth-password",
        "dave-secret",
        "--from",
        "dave@example.test",
        "--to",
        "bob@example.test",
    ]);
    let t = transcript(&out);
    assert!(out.status.success(), "swaks --auth CRAM-MD5: {t}");
    assert!(t.contains("235 2.7.0"), "{t}");
    assert_eq!(dir.messages("bob@example.test").len(), 1);
}

#[test]
fn cram_md5_and_scram_are_not_advertised_when_a_users_hash_cannot_serve_them() {
    // alice's Argon2 hash can serve neither: clients that prefer CRAM-MD5 or
    // SCRAM (curl, msmtp) would fail for her if they were offered.
    let (_dir, _server, _, subs) = server_with("", &[ALICE, CAROL, DAVE]);
    let out = run_python(
        "import smtplib, ssl, sys\nctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\n\
         s = smtplib.SMTP_SSL('127.0.0.1', int(sys.argv[1]), context=ctx, timeout=20); s.ehlo()\n\
         print('auth=' + s.esmtp_features.get('auth', '').strip()); s.quit()\n",
        &[&subs.to_string()],
    );
    assert!(
        transcript(&out).contains("auth=PLAIN LOGIN\n"),
        "{}",
        transcript(&out)
    );
}

#[test]
fn swaks_wrong_password_gets_535() {
    let (_dir, _server, sub, _) = server("");
    let out = swaks(&[
        "--server",
        &format!("127.0.0.1:{sub}"),
        "--tls",
        "--auth",
        "PLAIN",
        "--auth-user",
        "alice@example.test",
        "--auth-password",
        "wrong",
        "--from",
        "alice@example.test",
        "--to",
        "bob@example.test",
    ]);
    let t = transcript(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains("535 5.7.8 authentication credentials invalid"),
        "{t}"
    );
}

#[test]
fn msmtp_authenticates_with_scram_sha_256_over_implicit_tls() {
    let (dir, _server, _, subs) = server_with("", &[CAROL]);
    let mut cmd = Command::new("msmtp");
    cmd.args([
        "--host=127.0.0.1",
        &format!("--port={subs}"),
        "--tls=on",
        "--tls-starttls=off",
        "--tls-certcheck=off",
        "--auth=scram-sha-256",
        "--user=carol@example.test",
        "--passwordeval=echo carol-secret",
        "--from=carol@example.test",
        "--debug",
        "bob@example.test",
    ]);
    let out = run_client(
        cmd,
        Some(b"Subject: scram\r\n\r\nsent by msmtp with SCRAM-SHA-256\r\n".to_vec()),
        CLIENT_TIMEOUT,
        "apt-get install msmtp (built with GNU SASL)",
    );
    let t = transcript(&out);
    assert!(out.status.success(), "msmtp: {t}");
    assert!(t.contains("AUTH SCRAM-SHA-256"), "{t}");
    assert!(t.contains("235 2.7.0"), "{t}");
    let stored = dir.messages("bob@example.test");
    assert_eq!(stored.len(), 1);
    assert!(String::from_utf8_lossy(&stored[0].bytes).contains("sent by msmtp with SCRAM-SHA-256"));
}

#[test]
fn curl_authenticates_and_sends_over_starttls() {
    let (dir, _server, sub, _) = server("");
    let body = dir.path().join("body.eml");
    fs::write(&body, b"Subject: curl\r\n\r\nsent by curl\r\n").unwrap();
    let mut cmd = Command::new("curl");
    cmd.args(["--silent", "--show-error", "--ssl-reqd", "--insecure"])
        .arg(format!("smtp://127.0.0.1:{sub}"))
        .args(["--user", "alice@example.test:alice-secret"])
        .args([
            "--mail-from",
            "alice@example.test",
            "--mail-rcpt",
            "bob@example.test",
        ])
        .arg("--upload-file")
        .arg(&body);
    let out = run_client(cmd, None, CLIENT_TIMEOUT, "apt-get install curl");
    assert!(out.status.success(), "curl: {}", transcript(&out));
    let stored = dir.messages("bob@example.test");
    assert_eq!(stored.len(), 1);
    assert!(stored[0].received().contains("with ESMTPSA"));
}

const SMTPLIB: &str = r#"
import smtplib, ssl, sys
mode, port = sys.argv[1], int(sys.argv[2])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
if mode == "starttls":
    s = smtplib.SMTP("127.0.0.1", port, timeout=20)
    s.ehlo()
    print("before-tls-auth", s.has_extn("auth"))
    s.starttls(context=ctx)
    s.ehlo()
else:
    s = smtplib.SMTP_SSL("127.0.0.1", port, context=ctx, timeout=20)
    s.ehlo()
print("auth", s.esmtp_features.get("auth", ""))
print("login", s.login("alice@example.test", "alice-secret"))
print("own", s.mail("alice@example.test")); s.rset()
print("alias", s.mail("sales@example.test")); s.rset()
print("null", s.mail("")); s.rset()
print("foreign", s.mail("bob@example.test")); s.rset()
s.mail("alice@example.test")
print("remote", s.rcpt("someone@elsewhere.invalid"))
print("local", s.rcpt("bob@example.test"))
print("data", s.data(b"Subject: smtplib\r\n\r\nsent by smtplib\r\n"))
s.quit()
"#;

#[test]
fn smtplib_login_on_587_and_465_with_sender_ownership_and_relay() {
    let (dir, _server, sub, subs) = server("");
    for (mode, port) in [("starttls", sub), ("ssl", subs)] {
        let out = run_python(SMTPLIB, &[mode, &port.to_string()]);
        let t = transcript(&out);
        assert!(out.status.success(), "{mode}: {t}");
        if mode == "starttls" {
            assert!(
                t.contains("before-tls-auth False"),
                "AUTH is not advertised before TLS: {t}"
            );
        }
        assert!(
            t.contains("auth  PLAIN LOGIN\n"),
            "only what alice's Argon2 hash can serve: {t}"
        );
        assert!(
            t.contains("login (235, b'2.7.0 authentication successful')"),
            "{t}"
        );
        assert!(t.contains("own (250,"), "{t}");
        assert!(
            t.contains("alias (250,"),
            "an alias from the users file is owned: {t}"
        );
        assert!(t.contains("null (250,"), "{t}");
        assert!(
            t.contains("foreign (553, b'5.7.1 sender address not owned by user')"),
            "{t}"
        );
        assert!(
            t.contains("remote (451, b'4.3.0 remote delivery not yet available')"),
            "{t}"
        );
        assert!(t.contains("local (250,"), "{t}");
        assert!(t.contains("data (250, b'2.0.0 ok: queued as"), "{t}");
    }
    assert_eq!(dir.messages("bob@example.test").len(), 2);
    let log = dir.log();
    assert!(
        log.contains("authenticated") && log.contains("alice@example.test"),
        "the user is logged"
    );
    assert!(
        !log.contains("alice-secret"),
        "the password is never logged"
    );
}

#[test]
fn submission_needs_tls_before_auth_and_auth_before_mail() {
    let (_dir, server, sub, _) = server("");
    let mut c = common::Smtp::connect(sub).unwrap();
    assert_eq!(c.read_reply().unwrap().code, 220);
    let ehlo = c.expect("EHLO client.test", 250);
    assert!(
        !ehlo.lines.iter().any(|l| l.contains("AUTH")),
        "no AUTH before TLS: {ehlo}"
    );
    let r = c.expect(
        "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1zZWNyZXQ=",
        538,
    );
    assert!(r.text().contains("5.7.11"), "{r}");
    let r = c.expect("MAIL FROM:<alice@example.test>", 530);
    assert!(
        r.text()
            .contains("5.7.0 must issue a STARTTLS command first"),
        "{r}"
    );
    // The MX listener takes mail without AUTH but does not relay.
    let mut mx = server.session();
    mx.expect("EHLO client.test", 250);
    mx.expect("MAIL FROM:<x@elsewhere.invalid>", 250);
    let r = mx.expect("RCPT TO:<someone@elsewhere.invalid>", 554);
    assert!(r.text().contains("5.7.1 relay access denied"), "{r}");
    let r = mx.expect(
        "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1zZWNyZXQ=",
        502,
    );
    assert!(
        r.text().contains("5.5.1"),
        "AUTH is off on the MX listener: {r}"
    );
}

const BRUTE: &str = r#"
import smtplib, ssl, sys
port, tries = int(sys.argv[1]), int(sys.argv[2])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP_SSL("127.0.0.1", port, context=ctx, timeout=20)
s.ehlo()
for i in range(tries):
    try:
        code, msg = s.docmd("AUTH", "PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw==")
        print("try", i, code, msg.decode())
        if code == 421:
            break
    except smtplib.SMTPServerDisconnected as e:
        print("disconnected", i); break
try:
    s2 = smtplib.SMTP_SSL("127.0.0.1", port, context=ctx, timeout=20)
    print("second", s2.ehlo()[0])
except smtplib.SMTPConnectError as e:
    print("second-refused", e.smtp_code, e.smtp_error.decode())
except Exception as e:
    print("second-error", type(e).__name__, e)
"#;

fn auth_cli(dir: &TestDir, args: &[&str]) -> (bool, String) {
    let out = Command::new(binary())
        .arg("auth")
        .arg("--config")
        .arg(&dir.config_path)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn repeated_failures_ban_the_address_until_unbanned() {
    let (dir, _server, _, subs) = server(
        "[auth]\nmax_failures = 3\nfailure_delay = \"10ms\"\nban_for = \"1h\"\nban_trusted = true\n",
    );
    let out = run_python(BRUTE, &[&subs.to_string(), "5"]);
    let t = transcript(&out);
    assert!(t.contains("try 0 535"), "{t}");
    assert!(t.contains("try 1 535"), "{t}");
    assert!(
        t.contains("try 2 535"),
        "the third failure still gets its 535: {t}"
    );
    assert!(
        t.contains("421 4.7.0 too many authentication failures, try later")
            || t.contains("disconnected"),
        "then the connection ends: {t}"
    );
    assert!(
        t.contains("second-refused 421 4.7.0 too many authentication failures"),
        "a new connection is refused: {t}"
    );

    let (ok, bans) = auth_cli(&dir, &["bans"]);
    assert!(ok, "{bans}");
    assert!(
        bans.contains("127.0.0.1") && bans.contains("3 failed logins"),
        "bans list the reason: {bans}"
    );
    assert!(
        dir.log().contains("banned"),
        "the ban is logged with its reason"
    );

    let (ok, said) = auth_cli(&dir, &["unban", "127.0.0.1"]);
    assert!(ok, "{said}");
    let out = run_python(BRUTE, &[&subs.to_string(), "0"]);
    assert!(
        transcript(&out).contains("second 250"),
        "unbanned: {}",
        transcript(&out)
    );
}

#[test]
fn loopback_is_not_banned_unless_configured() {
    let (_dir, _server, _, subs) = server("[auth]\nmax_failures = 2\nfailure_delay = \"10ms\"\n");
    let out = run_python(BRUTE, &[&subs.to_string(), "4"]);
    let t = transcript(&out);
    assert!(
        t.contains("try 3 535"),
        "loopback keeps getting 535, not a ban: {t}"
    );
    assert!(t.contains("second 250"), "{t}");
}

#[test]
fn a_user_added_while_running_can_log_in_without_a_restart() {
    let (dir, _server, _, subs) = server_with("", &[]);
    let login = |who: &str, pw: &str| {
        let script = "import smtplib, ssl, sys\nctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\n\
             s = smtplib.SMTP_SSL('127.0.0.1', int(sys.argv[1]), context=ctx, timeout=20); s.ehlo()\n\
             print('code', s.docmd('AUTH', 'PLAIN ' + __import__('base64').b64encode(('\\0' + sys.argv[2] + '\\0' + sys.argv[3]).encode()).decode())[0])\n";
        transcript(&run_python(script, &[&subs.to_string(), who, pw]))
    };
    assert!(login("erin@example.test", "erin-secret").contains("code 535"));
    dir.users_add("erin@example.test", Some("sha512-crypt"), "erin-secret");
    // The file is looked at again at most once a second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let t = login("erin@example.test", "erin-secret");
    assert!(t.contains("code 235"), "{t}");
    // A broken line is reported with its number and does not take the others down.
    let users = dir.path().join("users");
    let mut text = fs::read_to_string(&users).unwrap();
    text.push_str(":no-user-name\n");
    fs::write(&users, text).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let t = login("erin@example.test", "erin-secret");
    assert!(t.contains("code 235"), "{t}");
    let n = fs::read_to_string(&users).unwrap().lines().count();
    assert!(
        dir.log().contains(&format!("line={n}")) && dir.log().contains("users file:"),
        "the broken line is named with its number: {}",
        dir.log()
    );
}

/// Starts SCRAM-SHA-256 for `user` over implicit TLS and prints the salt and
/// the iteration count of the server-first message.
const SCRAM_FIRST: &str = "import smtplib, ssl, sys, base64\n\
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\n\
s = smtplib.SMTP_SSL('127.0.0.1', int(sys.argv[1]), context=ctx, timeout=20); s.ehlo()\n\
first = base64.b64encode(('n,,n=' + sys.argv[2] + ',r=clientnonce').encode()).decode()\n\
code, msg = s.docmd('AUTH', 'SCRAM-SHA-256 ' + first)\n\
assert code == 334, (code, msg)\n\
fields = dict(f.split('=', 1) for f in base64.b64decode(msg).decode().split(','))\n\
print('salt=' + fields['s'])\n\
print('i=' + fields['i'])\n";

/// The salt and the iteration count SCRAM-SHA-256 announces for `user`.
fn scram_first(server: &Server, user: &str) -> (String, String) {
    let out = run_python(
        SCRAM_FIRST,
        &[&port(server, "submissions").to_string(), user],
    );
    let t = transcript(&out);
    assert!(out.status.success(), "{t}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name).map(str::to_string))
            .unwrap_or_else(|| panic!("no {name}: {t}"))
    };
    (field("salt="), field("i="))
}

fn scram_salt(server: &Server, user: &str) -> String {
    scram_first(server, user).0
}

#[test]
fn an_unknown_users_scram_salt_survives_a_restart_as_a_real_users_does() {
    let (dir, server, _, _) = server_with("", &[CAROL]);
    let carol = scram_salt(&server, "carol@example.test");
    let nobody = scram_salt(&server, "nobody@example.test");
    // The same name gets the same salt on every attempt.
    assert_eq!(scram_salt(&server, "nobody@example.test"), nobody);
    assert_ne!(scram_salt(&server, "someone@example.test"), nobody);
    drop(server);
    let server = dir.start();
    assert_eq!(scram_salt(&server, "carol@example.test"), carol);
    assert_eq!(
        scram_salt(&server, "nobody@example.test"),
        nobody,
        "a restart would tell the unknown name from carol"
    );
}

#[test]
fn an_unknown_users_scram_iterations_are_one_of_the_users_own() {
    // erin's secret, made with 8,192 iterations (Python's hashlib; `doveadm
    // pw -t` verifies it), where new hashes and the default decoy use 4,096.
    const ERIN: &str = "erin@example.test:{SCRAM-SHA-256}8192,AAECAwQFBgcICQoLDA0ODw==,\
SdcC22DTi3CBujS/S2qFxFiiqeUpKOWMn/bsn308n0w=,bo1gW8FfoN4ZRCtvVyxIForPpdOpNUzSfHHAhiehLYQ=::::::\n";
    let dir = TestDir::new(&Config {
        users: Vec::new(),
        ..Config::default()
    });
    dir.append_config(LISTENERS);
    fs::write(dir.path().join("users"), ERIN).unwrap();
    let server = dir.start();
    let (_, erin) = scram_first(&server, "erin@example.test");
    assert_eq!(erin, "8192");
    let (_, nobody) = scram_first(&server, "nobody@example.test");
    assert_eq!(nobody, erin, "i= tells the unknown name from erin");

    // frank joins with a {PLAIN} password (a 4,096-iteration secret is made
    // from it). One count for every unknown name would now tell whichever
    // user has the other count apart: each name gets one user's count, the
    // same every time.
    let mut users = ERIN.to_string();
    users.push_str("frank@example.test:{PLAIN}frank-secret::::::\n");
    fs::write(dir.path().join("users"), users).unwrap();
    // The users file is looked at once a second, at most.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(scram_first(&server, "frank@example.test").1, "4096");
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..20 {
        seen.insert(scram_first(&server, &format!("nobody{i}@example.test")).1);
    }
    // Both counts, each with probability 1/2 per name: all 20 alike is 2^-19.
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["4096", "8192"],
        "every unknown name announces the same count"
    );
    let again = scram_first(&server, "nobody3@example.test").1;
    assert_eq!(scram_first(&server, "nobody3@example.test").1, again);
}

const EMPTY_PASSWORD_AND_LONG_LINE: &str = r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP_SSL("127.0.0.1", int(sys.argv[1]), context=ctx, timeout=20)
s.ehlo()
code, msg = s.docmd("AUTH", "PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAA=")
print("empty", code, msg.decode())
code, msg = s.docmd("AUTH", "PLAIN " + "A" * 4000)
print("long", code, msg.decode())
code, msg = s.docmd("NOOP")
print("noop", code)
"#;

#[test]
fn an_empty_plain_password_gets_535_and_an_over_long_auth_line_500_5_5_6() {
    let (dir, _server, _, subs) = server("[auth]\nfailure_delay = \"10ms\"\n");
    let out = run_python(EMPTY_PASSWORD_AND_LONG_LINE, &[&subs.to_string()]);
    let t = transcript(&out);
    // RFC 4954 6: it decodes, so it is credentials, and wrong ones.
    assert!(
        t.contains("empty 535 5.7.8 authentication credentials invalid"),
        "{t}"
    );
    // RFC 4954 4: an AUTH line longer than the command line limit.
    assert!(
        t.contains("long 500 5.5.6 authentication exchange line too long"),
        "{t}"
    );
    assert!(t.contains("noop 250"), "the session goes on: {t}");
    assert!(
        dir.log().contains("alice@example.test"),
        "the failed attempt is logged with its user"
    );
}
