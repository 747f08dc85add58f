//! SASL mechanisms: golden exchanges in `tests/sasl/*.exchange`, client
//! against server for every mechanism, the RFC test vectors, and a property
//! test that no line makes the server panic.
//!
//! An exchange file is an AUTH transcript as the session driver would run it:
//! - `C: text` — a line from the client: `AUTH <mech> [initial-response]`
//!   starts an exchange, any other line answers the last `334` (`C:` alone is
//!   an empty line);
//! - `S: text` — the server's reply, from the reply contract;
//! - `D: check-password <user> <password> -> ok|wrong` and
//!   `D: need-secret <user> -> cram-md5|scram|none` — the questions the
//!   exchange asks the driver, and the fake directory's answer;
//! - `@user <name> <password>` — a directory entry for PLAIN, LOGIN and
//!   CRAM-MD5 (`CramMd5Secret::from_password`);
//!   `@scram <name> <password> <salt-b64> <iterations>` — a SCRAM entry
//!   (`ScramSecret::from_password`);
//! - `@nonce`, `@hostname`, `@decoy-key` — what the driver gives `start`
//!   (defaults: `1896.697170952`, `postoffice.reston.mci.net`, `decoy`);
//! - `@client <user> <password> [nonce]` — also run our client: it must send
//!   exactly the file's `C:` lines of the first exchange and accept its end;
//! - `#` comments (the decoded form of the base64 lines) and blank lines.

use std::collections::HashMap;
use std::path::Path;

use pillarbox_codes::Row;
use pillarbox_proto::sasl::{
    decode, encode, ClientError, ClientExchange, CramMd5Secret, Failure, Mechanism, ScramSecret,
    Secret, ServerExchange, ServerStep, PASSWORD_PROMPT, USERNAME_PROMPT,
};
use proptest::prelude::*;

#[derive(Default)]
struct Directory {
    passwords: HashMap<String, String>,
    scram: HashMap<String, ScramSecret>,
}

struct Exchange {
    expected: Vec<String>,
    directory: Directory,
    nonce: String,
    hostname: String,
    decoy_key: String,
    client: Option<(String, String, String)>,
}

fn parse_file(text: &str) -> Exchange {
    let mut ex = Exchange {
        expected: Vec::new(),
        directory: Directory::default(),
        nonce: "1896.697170952".into(),
        hostname: "postoffice.reston.mci.net".into(),
        decoy_key: "decoy".into(),
        client: None,
    };
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(setting) = line.strip_prefix('@') {
            let words: Vec<&str> = setting.split(' ').collect();
            match words.as_slice() {
                ["user", name, password] => {
                    ex.directory
                        .passwords
                        .insert(name.to_string(), password.to_string());
                }
                ["scram", name, password, salt, iterations] => {
                    let salt = decode(salt).expect("salt is base64");
                    let iterations = iterations.parse().expect("iterations");
                    let secret = ScramSecret::from_password(password, &salt, iterations);
                    ex.directory.scram.insert(name.to_string(), secret);
                }
                ["nonce", nonce] => ex.nonce = nonce.to_string(),
                ["hostname", host] => ex.hostname = host.to_string(),
                ["decoy-key", key] => ex.decoy_key = key.to_string(),
                ["client", user, password] => {
                    ex.client = Some((user.to_string(), password.to_string(), String::new()))
                }
                ["client", user, password, nonce] => {
                    ex.client = Some((user.to_string(), password.to_string(), nonce.to_string()))
                }
                _ => panic!("unknown setting {line:?}"),
            }
            continue;
        }
        ex.expected.push(line.to_owned());
    }
    ex
}

fn reply(row: Row, detail: &str) -> String {
    format!("S: {}", row.reply_with(detail))
}

/// Run the server over the file's client lines; the transcript it makes.
fn run_server(ex: &Exchange) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<ServerExchange> = None;
    for line in &ex.expected {
        let Some(text) = line.strip_prefix("C:") else {
            continue;
        };
        let text = text.strip_prefix(' ').unwrap_or(text);
        out.push(line.clone());
        let mut step = match current.as_mut() {
            Some(server) => server.respond(text),
            None => {
                let mut words = text.splitn(3, ' ');
                assert_eq!(words.next(), Some("AUTH"), "an exchange starts with AUTH");
                let name = words.next().expect("mechanism name");
                let Some(mechanism) = Mechanism::from_name(name) else {
                    out.push(reply(Row::AuthMechanism, ""));
                    continue;
                };
                let (server, step) = ServerExchange::start(
                    mechanism,
                    words.next(),
                    &ex.nonce,
                    &ex.hostname,
                    ex.decoy_key.as_bytes(),
                );
                current = Some(server);
                step
            }
        };
        loop {
            let Some(server) = current.as_mut() else {
                unreachable!("an exchange is running")
            };
            step = match step {
                ServerStep::Challenge(data) => {
                    out.push(reply(Row::AuthChallenge, &encode(&data)));
                    break;
                }
                ServerStep::CheckPassword { authcid, password } => {
                    let ok = ex.directory.passwords.get(&authcid) == Some(&password);
                    let verdict = if ok { "ok" } else { "wrong" };
                    out.push(format!(
                        "D: check-password {authcid} {password} -> {verdict}"
                    ));
                    server.password_checked(ok)
                }
                ServerStep::NeedSecret { authcid } => {
                    let secret = match server.mechanism() {
                        Mechanism::CramMd5 => ex
                            .directory
                            .passwords
                            .get(&authcid)
                            .map(|p| Secret::CramMd5(CramMd5Secret::from_password(p))),
                        _ => ex.directory.scram.get(&authcid).cloned().map(Secret::Scram),
                    };
                    let kind = match secret {
                        Some(Secret::CramMd5(_)) => "cram-md5",
                        Some(Secret::Scram(_)) => "scram",
                        None => "none",
                    };
                    out.push(format!("D: need-secret {authcid} -> {kind}"));
                    server.secret(secret)
                }
                ServerStep::Success { .. } => {
                    out.push(reply(Row::AuthOk, ""));
                    current = None;
                    break;
                }
                ServerStep::Failure(failure) => {
                    out.push(reply(failure.row(), ""));
                    current = None;
                    break;
                }
            };
        }
    }
    out
}

/// Run our client against the file's server lines: it must send the file's
/// client lines, up to the end of the first exchange.
fn run_client(ex: &Exchange, (user, password, nonce): &(String, String, String)) {
    let mut lines = ex.expected.iter().filter(|l| !l.starts_with("D:"));
    let first = lines.next().expect("an AUTH line");
    let name = first
        .strip_prefix("C: AUTH ")
        .and_then(|rest| rest.split(' ').next())
        .expect("AUTH line");
    let mechanism = Mechanism::from_name(name).expect("known mechanism");
    let (mut client, initial) = ClientExchange::start(mechanism, user, password, nonce);
    let auth = match initial {
        Some(data) if data.is_empty() => format!("C: AUTH {name} ="),
        Some(data) => format!("C: AUTH {name} {}", encode(&data)),
        None => format!("C: AUTH {name}"),
    };
    assert_eq!(&auth, first, "client's AUTH line");
    for line in lines {
        if let Some(challenge) = line.strip_prefix("S: 334") {
            let challenge = decode(challenge.trim()).expect("challenge is base64");
            let answer = client.step(&challenge).expect("client answers");
            let sent = format!("C: {}", encode(&answer));
            let expected = lines_next(line, ex);
            assert_eq!(sent.trim_end(), expected, "client's answer to {line:?}");
        } else if line.starts_with("S: 235") {
            client.finish().expect("client accepts the success");
            return;
        } else if line.starts_with("S: ") {
            panic!("@client needs an exchange that succeeds, got {line:?}");
        }
    }
    panic!("no success for @client");
}

/// The client line that follows `line` in the file.
fn lines_next<'a>(line: &str, ex: &'a Exchange) -> &'a str {
    let at = ex
        .expected
        .iter()
        .position(|l| std::ptr::eq(l.as_str(), line))
        .expect("line of the file");
    ex.expected[at + 1..]
        .iter()
        .find(|l| l.starts_with("C:"))
        .map(String::as_str)
        .expect("a client line after the challenge")
}

#[test]
fn golden_exchanges() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sasl");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/sasl")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "exchange"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "golden exchanges found: {}", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        let text = std::fs::read_to_string(path).expect("read exchange");
        let ex = parse_file(&text);
        let actual = run_server(&ex);
        let expected: Vec<String> = ex
            .expected
            .iter()
            .map(|l| l.trim_end().to_owned())
            .collect();
        let actual: Vec<String> = actual.iter().map(|l| l.trim_end().to_owned()).collect();
        if actual != expected {
            failures.push(format!(
                "{name}:\n--- expected\n{}\n--- actual\n{}",
                expected.join("\n"),
                actual.join("\n")
            ));
            continue;
        }
        if let Some(client) = &ex.client {
            let result = std::panic::catch_unwind(|| run_client(&ex, client));
            if result.is_err() {
                failures.push(format!("{name}: client side differs (see panic above)"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ---- the RFC vectors, directly ----

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn cram_md5_secret_from_password_gives_rfc_2195_digest() {
    let secret = CramMd5Secret::from_password("tanstaaftanstaaf");
    let digest = secret.hmac(b"<1896.697170952@postoffice.reston.mci.net>");
    assert_eq!(hex(&digest), "b913a602c7eda7a495b4e6e7334d3890");
}

#[test]
fn scram_secret_from_password_matches_rfc_7677_exchange() {
    // RFC 7677 3: user "user", password "pencil", this salt and count; the
    // golden file scram_sha256_rfc7677 checks the proof and signature made
    // with these keys.
    let salt = decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("salt");
    let secret = ScramSecret::from_password("pencil", &salt, 4096);
    assert_eq!(secret.iterations, 4096);
    assert_eq!(secret.salt, salt);
    // Values computed independently (Python hashlib/hmac).
    assert_eq!(
        encode(&secret.stored_key),
        "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
    );
    assert_eq!(
        encode(&secret.server_key),
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
    );
}

#[test]
fn cram_md5_secret_from_password_matches_dovecot() {
    // `doveadm pw -s CRAM-MD5 -p tanstaaftanstaaf`: the OUTER (opad) state
    // first, then the inner (ipad) one, each word little-endian, in hex.
    let secret = CramMd5Secret::from_password("tanstaaftanstaaf");
    let words: Vec<u8> = secret
        .outer
        .iter()
        .chain(&secret.inner)
        .flat_map(|w| w.to_le_bytes())
        .collect();
    assert_eq!(
        hex(&words),
        "d06d4e1b26fccaa4b0b61801132340a354b21152711fb604ca3e035e7015116b"
    );
}

#[test]
fn scram_secret_from_password_matches_dovecot() {
    // `doveadm pw -s SCRAM-SHA-256 -p pencil`:
    // {SCRAM-SHA-256}iterations,salt,StoredKey,ServerKey (base64).
    let salt = decode("oydhfTjjUTr3F0460SphLQ==").expect("salt");
    let secret = ScramSecret::from_password("pencil", &salt, 4096);
    assert_eq!(
        encode(&secret.stored_key),
        "h/zycpcxjZ2+D1sbh9eA3EynC7RVbg0hv+aGG+xF/IA="
    );
    assert_eq!(
        encode(&secret.server_key),
        "2AF0d0TlJRwYz1Khnasck0/7AuhfCUk+TgLYmJ3ZXtg="
    );
}

// ---- client against server ----

const DECOY: &[u8] = b"decoy key";

/// Run `client` against `server` to the end; the server's outcome.
fn converse(
    mechanism: Mechanism,
    user: &str,
    password: &str,
    directory_password: &str,
) -> (ServerStep, Result<(), ClientError>) {
    let (mut client, initial) = ClientExchange::start(mechanism, user, password, "clientnonce123");
    let initial = initial.map(|d| if d.is_empty() { "=".into() } else { encode(&d) });
    let (mut server, mut step) = ServerExchange::start(
        mechanism,
        initial.as_deref(),
        "servernonce456.1700000000",
        "mx.example.test",
        DECOY,
    );
    let salt = b"sixteen byte slt";
    for _ in 0..10 {
        step = match step {
            ServerStep::Challenge(data) => match client.step(&data) {
                Ok(answer) => server.respond(&encode(&answer)),
                Err(e) => return (server.respond("*"), Err(e)),
            },
            ServerStep::CheckPassword { authcid, password } => {
                server.password_checked(authcid == user && password == directory_password)
            }
            ServerStep::NeedSecret { .. } => server.secret(Some(match mechanism {
                Mechanism::CramMd5 => {
                    Secret::CramMd5(CramMd5Secret::from_password(directory_password))
                }
                _ => Secret::Scram(ScramSecret::from_password(directory_password, salt, 4096)),
            })),
            done => {
                let finished = match done {
                    ServerStep::Success { .. } => client.finish(),
                    _ => Ok(()),
                };
                return (done, finished);
            }
        };
    }
    panic!("exchange did not end");
}

#[test]
fn our_client_authenticates_against_our_server_with_every_mechanism() {
    for &mechanism in Mechanism::ALL {
        let (step, client) = converse(
            mechanism,
            "alice@example.test",
            "s3cret, pässword",
            "s3cret, pässword",
        );
        assert_eq!(
            step,
            ServerStep::Success {
                authcid: "alice@example.test".into()
            },
            "{mechanism}"
        );
        assert_eq!(client, Ok(()), "{mechanism}");
    }
}

#[test]
fn wrong_password_fails_with_every_mechanism() {
    for &mechanism in Mechanism::ALL {
        let (step, _) = converse(mechanism, "alice", "guess", "right");
        assert_eq!(
            step,
            ServerStep::Failure(Failure::InvalidCredentials),
            "{mechanism}"
        );
    }
}

#[test]
fn user_name_with_comma_and_equals_survives_scram_escaping() {
    let (step, client) = converse(Mechanism::ScramSha256, "a,b=c", "pw", "pw");
    assert_eq!(
        step,
        ServerStep::Success {
            authcid: "a,b=c".into()
        }
    );
    assert_eq!(client, Ok(()));
}

// ---- failure paths not spelled in golden files ----

fn start(mechanism: Mechanism, initial: Option<&str>) -> (ServerExchange, ServerStep) {
    ServerExchange::start(mechanism, initial, "n0nce", "mx.example.test", DECOY)
}

#[test]
fn an_empty_plain_password_never_succeeds_even_if_the_directory_says_yes() {
    let (mut server, step) = start(Mechanism::Plain, Some(&encode(b"\0tim\0")));
    assert_eq!(
        step,
        ServerStep::CheckPassword {
            authcid: "tim".into(),
            password: String::new()
        }
    );
    assert_eq!(
        server.password_checked(true),
        ServerStep::Failure(Failure::InvalidCredentials)
    );
}

#[test]
fn failures_map_to_contract_rows() {
    assert_eq!(Failure::InvalidCredentials.row(), Row::AuthInvalid);
    assert_eq!(Failure::Cancelled.row(), Row::AuthCancelled);
    assert_eq!(Failure::BadBase64.row(), Row::AuthBadBase64);
    assert_eq!(Failure::Malformed.row(), Row::AuthBadBase64);
}

#[test]
fn mechanism_names_are_case_insensitive() {
    assert_eq!(Mechanism::from_name("plain"), Some(Mechanism::Plain));
    assert_eq!(Mechanism::from_name("Login"), Some(Mechanism::Login));
    assert_eq!(Mechanism::from_name("cram-md5"), Some(Mechanism::CramMd5));
    assert_eq!(
        Mechanism::from_name("scram-sha-256"),
        Some(Mechanism::ScramSha256)
    );
    assert_eq!(Mechanism::from_name("SCRAM-SHA-1"), None);
    assert_eq!(Mechanism::from_name("GSSAPI"), None);
    for &m in Mechanism::ALL {
        assert_eq!(Mechanism::from_name(m.name()), Some(m));
    }
    assert!(Mechanism::Plain.sends_password() && Mechanism::Login.sends_password());
    assert!(!Mechanism::CramMd5.sends_password() && !Mechanism::ScramSha256.sends_password());
}

#[test]
fn login_prompts_are_the_ones_outlook_expects() {
    assert_eq!(encode(USERNAME_PROMPT), "VXNlcm5hbWU6");
    assert_eq!(encode(PASSWORD_PROMPT), "UGFzc3dvcmQ6");
}

#[test]
fn calls_out_of_sequence_fail_closed() {
    // A password verdict nobody asked for.
    let (mut server, _) = start(Mechanism::Login, None);
    assert_eq!(
        server.password_checked(true),
        ServerStep::Failure(Failure::InvalidCredentials)
    );
    // A line while the password check is open.
    let (mut server, step) = start(Mechanism::Plain, Some(&encode(b"\0u\0p")));
    assert!(matches!(step, ServerStep::CheckPassword { .. }));
    assert_eq!(
        server.respond("dGVzdA=="),
        ServerStep::Failure(Failure::InvalidCredentials)
    );
    assert_eq!(
        server.password_checked(true),
        ServerStep::Failure(Failure::InvalidCredentials)
    );
    // Anything after success.
    let (mut server, _) = start(Mechanism::Plain, Some(&encode(b"\0u\0p")));
    assert_eq!(
        server.password_checked(true),
        ServerStep::Success {
            authcid: "u".into()
        }
    );
    assert_eq!(
        server.password_checked(true),
        ServerStep::Failure(Failure::InvalidCredentials)
    );
    assert_eq!(
        server.respond(""),
        ServerStep::Failure(Failure::InvalidCredentials)
    );
    // A secret for a mechanism that asked none.
    let (mut server, _) = start(Mechanism::Plain, None);
    assert_eq!(
        server.secret(None),
        ServerStep::Failure(Failure::InvalidCredentials)
    );
}

#[test]
fn cram_md5_with_a_scram_secret_is_an_unknown_user() {
    let (mut server, step) = start(Mechanism::CramMd5, None);
    let ServerStep::Challenge(challenge) = step else {
        panic!("challenge")
    };
    let (mut client, _) = ClientExchange::start(Mechanism::CramMd5, "u", "p", "");
    let answer = client.step(&challenge).expect("answer");
    assert_eq!(
        server.respond(&encode(&answer)),
        ServerStep::NeedSecret {
            authcid: "u".into()
        }
    );
    let wrong_kind = Secret::Scram(ScramSecret::from_password("p", b"salt", 1));
    assert_eq!(
        server.secret(Some(wrong_kind)),
        ServerStep::Failure(Failure::InvalidCredentials)
    );
}

#[test]
fn scram_unknown_user_fails_only_at_the_proof_with_a_stable_salt() {
    let server_first = |nonce: &str| {
        let first = encode(b"n,,n=nobody,r=abc");
        let (mut server, step) =
            ServerExchange::start(Mechanism::ScramSha256, Some(&first), nonce, "h", DECOY);
        assert_eq!(
            step,
            ServerStep::NeedSecret {
                authcid: "nobody".into()
            }
        );
        let ServerStep::Challenge(data) = server.secret(None) else {
            panic!("server-first")
        };
        (server, String::from_utf8(data).expect("utf-8"))
    };
    let (mut server, first) = server_first("one");
    let (_, again) = server_first("two");
    let salt = |m: &str| m.split(',').nth(1).map(str::to_owned);
    assert_eq!(
        salt(&first),
        salt(&again),
        "same decoy salt on every attempt"
    );
    assert!(first.ends_with(",i=4096"));
    // Even the proof a real client computes for some password fails.
    let (mut client, _) = ClientExchange::start(Mechanism::ScramSha256, "nobody", "x", "abc");
    let final_message = client.step(first.as_bytes()).expect("client-final");
    assert_eq!(
        server.respond(&encode(&final_message)),
        ServerStep::Failure(Failure::InvalidCredentials)
    );
}

#[test]
fn scram_client_rejects_a_wrong_server_signature_and_a_silent_success() {
    let salt = b"salt salt salt!!";
    let secret = ScramSecret::from_password("pw", salt, 4096);
    let (mut client, first) = ClientExchange::start(Mechanism::ScramSha256, "u", "pw", "cn");
    let first = encode(&first.expect("client-first"));
    let (mut server, _) =
        ServerExchange::start(Mechanism::ScramSha256, Some(&first), "sn", "h", DECOY);
    let ServerStep::Challenge(server_first) = server.secret(Some(Secret::Scram(secret))) else {
        panic!("server-first")
    };
    let client_final = client.step(&server_first).expect("client-final");
    // The server says 235 without sending server-final: not trusted.
    assert_eq!(client.finish(), Err(ClientError::ServerNotVerified));
    let ServerStep::Challenge(server_final) = server.respond(&encode(&client_final)) else {
        panic!("server-final")
    };
    let mut forged = client.clone();
    let mut bad = server_final.clone();
    let last = bad.len() - 2;
    bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
    assert_eq!(forged.step(&bad), Err(ClientError::ServerNotVerified));
    assert_eq!(
        client.clone().step(b"e=invalid-proof"),
        Err(ClientError::Server("invalid-proof".into()))
    );
    assert_eq!(client.step(&server_final), Ok(Vec::new()));
    assert_eq!(client.finish(), Ok(()));
    assert_eq!(client.step(b""), Err(ClientError::UnexpectedChallenge));
}

#[test]
fn scram_client_rejects_a_server_first_it_cannot_trust() {
    let server_first = |text: &str| {
        let (mut client, _) = ClientExchange::start(Mechanism::ScramSha256, "u", "pw", "cn");
        client.step(text.as_bytes())
    };
    let bad = ClientError::MalformedChallenge;
    // The nonce must extend ours (RFC 5802 5.1).
    assert_eq!(server_first("r=other,s=c2FsdA==,i=4096"), Err(bad.clone()));
    assert_eq!(server_first("r=cn,s=c2FsdA==,i=4096"), Err(bad.clone()));
    assert_eq!(server_first("r=cnX,s=c2FsdA==,i=0"), Err(bad.clone()));
    assert_eq!(
        server_first("r=cnX,s=c2FsdA==,i=99999999999"),
        Err(bad.clone())
    );
    assert_eq!(server_first("r=cnX,s=!!,i=4096"), Err(bad.clone()));
    assert_eq!(
        server_first("m=ext,r=cnX,s=c2FsdA==,i=4096"),
        Err(bad.clone())
    );
    assert_eq!(
        server_first("e=other-error"),
        Err(ClientError::Server("other-error".into()))
    );
    assert!(server_first("r=cnX,s=c2FsdA==,i=1").is_ok());
}

#[test]
fn plain_client_repeats_its_message_on_an_empty_challenge() {
    let (mut client, initial) = ClientExchange::start(Mechanism::Plain, "u", "p", "");
    assert_eq!(initial.as_deref(), Some(&b"\0u\0p"[..]));
    assert_eq!(client.step(b"").as_deref(), Ok(&b"\0u\0p"[..]));
    assert_eq!(client.step(b""), Err(ClientError::UnexpectedChallenge));
}

#[test]
fn login_client_answers_by_position() {
    let (mut client, initial) = ClientExchange::start(Mechanism::Login, "u", "p", "");
    assert_eq!(initial, None);
    assert_eq!(client.step(b"User Name\0").as_deref(), Ok(&b"u"[..]));
    assert_eq!(client.step(b"Password:").as_deref(), Ok(&b"p"[..]));
    assert_eq!(
        client.step(b"Password:"),
        Err(ClientError::UnexpectedChallenge)
    );
}

#[test]
fn debug_forms_hide_passwords() {
    let step = ServerStep::CheckPassword {
        authcid: "u".into(),
        password: "hunter2".into(),
    };
    assert!(!format!("{step:?}").contains("hunter2"));
    let (client, _) = ClientExchange::start(Mechanism::Plain, "u", "hunter2", "");
    assert!(!format!("{client:?}").contains("hunter2"));
}

// ---- no panic, whatever the client sends ----

fn mechanism() -> impl Strategy<Value = Mechanism> {
    prop::sample::select(Mechanism::ALL.to_vec())
}

/// A line: arbitrary text, or base64 of arbitrary bytes (so the mechanism
/// parsers see them), or base64 of text near the mechanisms' syntax.
fn client_line() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(any::<u8>(), 0..80).prop_map(|b| encode(&b)),
        "[nyp=a-z,0-9\\x00 ]{0,60}".prop_map(|s| encode(s.as_bytes())),
        "(c=biws|c=eSws|r=[a-z]{0,8}|p=[A-Za-z0-9+/=]{0,48}|n=[a-z=,]{0,5}|[nyp]|,){0,8}"
            .prop_map(|s| encode(s.as_bytes())),
        Just("*".to_owned()),
        Just("=".to_owned()),
        Just(String::new()),
    ]
}

#[test]
fn login_empty_username_is_malformed() {
    // As PLAIN without an authcid: 501 at once, no password asked or checked.
    let (mut server, step) = ServerExchange::start(Mechanism::Login, None, "n", "h", DECOY);
    assert_eq!(step, ServerStep::Challenge(USERNAME_PROMPT.to_vec()));
    assert_eq!(server.respond(""), ServerStep::Failure(Failure::Malformed));
    let (_, step) = ServerExchange::start(Mechanism::Login, Some("="), "n", "h", DECOY);
    assert_eq!(step, ServerStep::Failure(Failure::Malformed));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn server_never_panics_on_arbitrary_lines(
        mechanism in mechanism(),
        initial in prop::option::of(client_line()),
        lines in prop::collection::vec(client_line(), 0..6),
        verdicts in prop::collection::vec(any::<bool>(), 6),
        nonce in any::<String>(),
    ) {
        let (mut server, mut step) =
            ServerExchange::start(mechanism, initial.as_deref(), &nonce, "h", DECOY);
        let mut lines = lines.into_iter();
        let mut verdicts = verdicts.into_iter().cycle();
        for _ in 0..20 {
            step = match step {
                ServerStep::Challenge(_) => match lines.next() {
                    Some(line) => server.respond(&line),
                    None => break,
                },
                ServerStep::CheckPassword { .. } => {
                    server.password_checked(verdicts.next().unwrap_or(false))
                }
                ServerStep::NeedSecret { .. } => {
                    let known = verdicts.next().unwrap_or(false);
                    server.secret(known.then(|| match mechanism {
                        Mechanism::CramMd5 => Secret::CramMd5(CramMd5Secret::from_password("pw")),
                        _ => Secret::Scram(ScramSecret::from_password("pw", b"salt", 1)),
                    }))
                }
                ServerStep::Success { .. } | ServerStep::Failure(_) => break,
            };
        }
    }

    #[test]
    fn client_never_panics_on_arbitrary_challenges(
        mechanism in mechanism(),
        challenges in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 0..5),
    ) {
        let (mut client, _) = ClientExchange::start(mechanism, "u", "p", "cn");
        for challenge in challenges {
            let _ = client.step(&challenge);
        }
        let _ = client.finish();
    }
}
