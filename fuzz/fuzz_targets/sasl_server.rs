#![no_main]
//! The server side of every SASL mechanism fed arbitrary client lines, with
//! the driver answering its questions as the fuzzer says: no panic, and the
//! exchange only succeeds when it should.
//!
//! Input: byte 0 picks the mechanism (bits 0-1), whether the first line is
//! the initial response of `AUTH` (bit 2) and whether the directory knows
//! the user (bit 3); byte 1 is a bit string of password verdicts and of
//! "misbehave" choices (answer a question with a line instead). The rest is
//! the client's lines, split at LF.
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pillarbox_proto::sasl::{
    CramMd5Secret, Failure, Mechanism, ScramSecret, Secret, ServerExchange, ServerStep,
    PASSWORD_PROMPT, USERNAME_PROMPT,
};

fn scram_secret() -> ScramSecret {
    static SECRET: OnceLock<ScramSecret> = OnceLock::new();
    SECRET
        .get_or_init(|| ScramSecret::from_password("pw", b"salt", 1))
        .clone()
}

fuzz_target!(|data: &[u8]| {
    let [flags, choices, rest @ ..] = data else {
        return;
    };
    let mechanism = Mechanism::ALL[usize::from(flags & 3)];
    let known = flags & 4 != 0;
    let with_initial = flags & 8 != 0;
    let mut bits = (0..).map(|i: u32| choices.rotate_left(i) & 1 != 0);
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let mut lines = text.split('\n');
    let initial = if with_initial { lines.next() } else { None };

    let (mut server, mut step) =
        ServerExchange::start(mechanism, initial, "srvnonce", "mx.example.test", b"decoy");
    // What the driver said last, for the success checks.
    let mut password_ok: Option<(String, bool)> = None;
    let mut secret_given = false;
    let mut challenges = 0;
    let mut over = false;
    loop {
        step = match step {
            ServerStep::Challenge(data) => {
                challenges += 1;
                assert!(
                    challenges <= 3,
                    "{mechanism}: more challenges than the mechanism has"
                );
                match mechanism {
                    Mechanism::Login => assert!(
                        data == USERNAME_PROMPT || data == PASSWORD_PROMPT,
                        "LOGIN challenge {data:?}"
                    ),
                    Mechanism::Plain => assert!(data.is_empty()),
                    Mechanism::CramMd5 => {
                        assert!(data.starts_with(b"<") && data.ends_with(b">"))
                    }
                    Mechanism::ScramSha256 => assert!(
                        data.is_empty() || data.starts_with(b"r=") || data.starts_with(b"v="),
                        "SCRAM challenge {:?}",
                        String::from_utf8_lossy(&data)
                    ),
                }
                let Some(line) = lines.next() else { break };
                let step = server.respond(line);
                if line.trim_ascii() == "*" {
                    assert_eq!(step, ServerStep::Failure(Failure::Cancelled));
                }
                step
            }
            ServerStep::CheckPassword { authcid, password } => {
                assert!(
                    mechanism.sends_password(),
                    "{mechanism} asked for a password check"
                );
                assert!(!authcid.is_empty());
                if bits.next() == Some(true) {
                    // A line while the question is open fails closed.
                    let step = server.respond("");
                    assert_eq!(step, ServerStep::Failure(Failure::InvalidCredentials));
                    step
                } else {
                    let ok = bits.next() == Some(true);
                    password_ok = Some((authcid, ok && !password.is_empty()));
                    server.password_checked(ok)
                }
            }
            ServerStep::NeedSecret { authcid } => {
                assert!(
                    !mechanism.sends_password(),
                    "{mechanism} asked for a secret"
                );
                assert!(!authcid.is_empty());
                secret_given = known;
                server.secret(known.then(|| match mechanism {
                    Mechanism::CramMd5 => Secret::CramMd5(CramMd5Secret::from_password("pw")),
                    _ => Secret::Scram(scram_secret()),
                }))
            }
            ServerStep::Success { authcid } => {
                match mechanism {
                    Mechanism::Plain | Mechanism::Login => {
                        assert_eq!(
                            password_ok,
                            Some((authcid, true)),
                            "success without a good password"
                        )
                    }
                    Mechanism::CramMd5 | Mechanism::ScramSha256 => {
                        assert!(secret_given, "success without the user's secret")
                    }
                }
                over = true;
                break;
            }
            ServerStep::Failure(_) => {
                over = true;
                break;
            }
        };
    }
    // Over or waiting: once over, every call fails closed.
    if over {
        assert_eq!(
            server.respond("="),
            ServerStep::Failure(Failure::InvalidCredentials)
        );
        assert_eq!(
            server.password_checked(true),
            ServerStep::Failure(Failure::InvalidCredentials)
        );
    }
});
