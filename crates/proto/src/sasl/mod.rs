//! SASL mechanisms for SMTP AUTH (RFC 4954), server and client side, sans-IO.
//!
//! Nothing here reads a clock, draws a random number or looks up a user: the
//! driver gives the nonce, host name and decoy key, answers the questions a
//! [`ServerStep`] asks, and turns each step into a reply of the contract.
//!
//! Server side, as the session driver runs it:
//!
//! ```text
//! AUTH <mech> [initial-response]  -> ServerExchange::start
//! loop over the ServerStep:
//!   Challenge(data)               -> send `334 <base64 data>` (Row::AuthChallenge),
//!                                    read one line (without CRLF), respond(line)
//!   CheckPassword { .. }          -> check against the directory, password_checked(ok)
//!   NeedSecret { authcid }        -> look the user up, secret(Some(..)) or secret(None)
//!   Success { authcid }           -> 235 2.7.0 (Row::AuthOk)
//!   Failure(f)                    -> f.row(): 535 5.7.8, 501 5.0.0 or 501 5.5.2
//! ```
//!
//! The driver keeps the limits the exchange cannot see: the length of a line
//! (`500 5.5.6`), TLS before a mechanism that sends the password
//! ([`Mechanism::sends_password`], `538 5.7.11`), directory errors (`454 4.7.0`)
//! and the count of failures.

mod constant_time;
mod cram_md5;
mod login;
mod plain;
mod scram;
pub mod secret;

use std::fmt;

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use pillarbox_codes::Row;

pub use login::{PASSWORD_PROMPT, USERNAME_PROMPT};
pub use scram::MAX_CLIENT_ITERATIONS;
pub use secret::{CramMd5Secret, ScramSecret};

/// Standard base64 (RFC 4648 4), as RFC 4954 4 requires. Decoding takes the
/// value with or without its `=` padding: some clients leave it off, and
/// being strict there buys nothing.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Base64 text for `data`, as it goes after `334 ` or `AUTH <mech> `.
pub fn encode(data: &[u8]) -> String {
    BASE64.encode(data)
}

/// The bytes of one base64 line of the exchange (surrounding whitespace and
/// a trailing CRLF ignored). Not the `*` or `=` conventions: those are the
/// exchange's to read.
pub fn decode(line: &str) -> Result<Vec<u8>, Failure> {
    BASE64
        .decode(line.trim_ascii())
        .map_err(|_| Failure::BadBase64)
}

/// A mechanism we implement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// RFC 4616.
    Plain,
    /// draft-murchison-sasl-login-00.
    Login,
    /// RFC 2195.
    CramMd5,
    /// RFC 5802, RFC 7677.
    ScramSha256,
}

impl Mechanism {
    /// Every mechanism, strongest last.
    pub const ALL: &'static [Mechanism] = &[
        Mechanism::Plain,
        Mechanism::Login,
        Mechanism::CramMd5,
        Mechanism::ScramSha256,
    ];

    /// The mechanism named `name`, in any case (RFC 4954 4: the name is
    /// case-insensitive, like every SASL mechanism name, RFC 4422 3.1).
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL
            .iter()
            .copied()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// The registered name, as EHLO advertises it.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
            Mechanism::CramMd5 => "CRAM-MD5",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
        }
    }

    /// Whether the password crosses the wire (only base64-encoded): such a
    /// mechanism needs TLS first (RFC 4616 6, RFC 4954 4; `538 5.7.11`).
    pub fn sends_password(self) -> bool {
        matches!(self, Mechanism::Plain | Mechanism::Login)
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How an exchange failed; each maps to one row of the reply contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Failure {
    /// Wrong password or proof, unknown user, an authzid other than the
    /// authcid, a SCRAM nonce or channel binding that is not ours:
    /// `535 5.7.8` (RFC 4954 6). A failed attempt for brute-force counting.
    InvalidCredentials,
    /// The client sent `*` (RFC 4954 4): `501 5.0.0`.
    Cancelled,
    /// A line that is not base64 (RFC 4954 4): `501 5.5.2`.
    BadBase64,
    /// Base64 that decodes to something the mechanism cannot parse (PLAIN
    /// without two NULs or without an authcid, LOGIN with an empty user name, CRAM-MD5 without a 32-digit digest, a SCRAM message
    /// out of syntax, SCRAM `p=` channel binding, text that is not UTF-8),
    /// an initial response to CRAM-MD5 (RFC 4954 4 says 501), or a
    /// non-empty answer to the SCRAM server-final: `501 5.5.2`, the same
    /// row as bad base64, because both are a response the server cannot
    /// decode. No credentials were checked, so it is a syntax error rather
    /// than a 535; the session's error counter bounds repeats.
    Malformed,
}

impl Failure {
    /// The reply-contract row the driver answers with.
    pub fn row(self) -> Row {
        match self {
            Failure::InvalidCredentials => Row::AuthInvalid,
            Failure::Cancelled => Row::AuthCancelled,
            Failure::BadBase64 | Failure::Malformed => Row::AuthBadBase64,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Failure::InvalidCredentials => "invalid credentials",
            Failure::Cancelled => "cancelled by the client",
            Failure::BadBase64 => "response is not base64",
            Failure::Malformed => "response does not follow the mechanism's syntax",
        })
    }
}

impl std::error::Error for Failure {}

/// What the directory holds for a user, as a mechanism that needs no
/// plaintext uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Secret {
    CramMd5(CramMd5Secret),
    Scram(ScramSecret),
}

/// What the server side of an exchange needs next.
#[derive(Clone, PartialEq, Eq)]
pub enum ServerStep {
    /// Send `334 <base64 of the data>` (empty data: `334 `) and pass the
    /// client's next line to [`ServerExchange::respond`].
    Challenge(Vec<u8>),
    /// PLAIN or LOGIN: check this password and call
    /// [`ServerExchange::password_checked`]. Never log the password (the
    /// `Debug` form hides it).
    CheckPassword { authcid: String, password: String },
    /// CRAM-MD5 or SCRAM: look the user up and call [`ServerExchange::secret`]
    /// with the secret the mechanism needs, or `None` for an unknown user or
    /// one without such a secret.
    NeedSecret { authcid: String },
    /// Authenticated: send `235 2.7.0`. For SCRAM the server-final message
    /// has already gone out as a challenge and the client's empty line has
    /// come back (RFC 4954 4 has no "additional data with success", so it
    /// goes as a challenge answered by an empty response: RFC 4422 3.6, 4).
    Success { authcid: String },
    /// Failed: send [`Failure::row`]. The exchange is over.
    Failure(Failure),
}

impl fmt::Debug for ServerStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerStep::Challenge(data) => f
                .debug_tuple("Challenge")
                .field(&String::from_utf8_lossy(data))
                .finish(),
            ServerStep::CheckPassword { authcid, .. } => f
                .debug_struct("CheckPassword")
                .field("authcid", authcid)
                .field("password", &"<hidden>")
                .finish(),
            ServerStep::NeedSecret { authcid } => f
                .debug_struct("NeedSecret")
                .field("authcid", authcid)
                .finish(),
            ServerStep::Success { authcid } => {
                f.debug_struct("Success").field("authcid", authcid).finish()
            }
            ServerStep::Failure(failure) => f.debug_tuple("Failure").field(failure).finish(),
        }
    }
}

/// Where a server exchange stands.
#[derive(Clone, Debug)]
enum ServerState {
    /// PLAIN after its empty challenge: the message comes next.
    PlainMessage,
    LoginUsername,
    LoginPassword {
        username: String,
    },
    /// Waiting for [`ServerExchange::password_checked`]. An empty password
    /// is asked about like any other (the same time, the same counting) but
    /// never succeeds: RFC 4616 2 and RFC 4954 6 know no empty secret.
    PasswordCheck {
        authcid: String,
        empty: bool,
    },
    CramResponse {
        challenge: String,
    },
    /// Waiting for [`ServerExchange::secret`].
    CramSecret {
        challenge: String,
        authcid: String,
        digest: [u8; 16],
    },
    /// SCRAM after its empty challenge: client-first comes next.
    ScramClientFirst,
    /// Waiting for [`ServerExchange::secret`].
    ScramSecret(scram::ClientFirst),
    ScramClientFinal(Box<scram::ServerFirst>),
    /// server-final sent; waiting for the client's empty line.
    ScramFinalAck {
        authcid: String,
    },
    Done,
}

/// The server side of one AUTH exchange.
#[derive(Clone, Debug)]
pub struct ServerExchange {
    mechanism: Mechanism,
    nonce: String,
    decoy_key: Vec<u8>,
    /// The counts a decoy SCRAM secret picks from; empty: the default.
    decoy_iterations: std::sync::Arc<[u32]>,
    state: ServerState,
}

impl ServerExchange {
    /// Begin `AUTH <mech> [initial-response]`.
    ///
    /// - `initial_response`: the argument as sent, base64 or `=` for an
    ///   empty one (RFC 4954 4).
    /// - `nonce`: fresh random text from the driver for this exchange, in
    ///   the SCRAM nonce alphabet (printable ASCII without `,`: RFC 5802 7;
    ///   other characters are dropped), e.g. base64 of 18 random bytes and,
    ///   for CRAM-MD5, a timestamp: `<nonce>.<unix seconds>`.
    /// - `hostname`: the server's name, for the CRAM-MD5 challenge.
    /// - `decoy_key`: bytes the driver keeps secret and stable, across
    ///   restarts too (Pillarbox keeps them in its state database): an
    ///   unknown SCRAM user gets a salt derived from it and the user name,
    ///   the same on every attempt as a real user's, so a probe cannot tell
    ///   users apart. [`ServerExchange::set_decoy_iterations`] sets the
    ///   iteration counts it picks from.
    pub fn start(
        mechanism: Mechanism,
        initial_response: Option<&str>,
        nonce: &str,
        hostname: &str,
        decoy_key: &[u8],
    ) -> (ServerExchange, ServerStep) {
        let mut exchange = ServerExchange {
            mechanism,
            nonce: scram::clean_nonce(nonce),
            decoy_key: decoy_key.to_vec(),
            decoy_iterations: std::sync::Arc::from([]),
            state: ServerState::Done,
        };
        let initial = match initial_response.map(str::trim_ascii) {
            // An empty argument is no argument.
            None | Some("") => None,
            // RFC 4954 4: "=" is a present but empty initial response.
            Some("=") => Some(Vec::new()),
            Some(text) => match decode(text) {
                Ok(data) => Some(data),
                Err(failure) => return (exchange, ServerStep::Failure(failure)),
            },
        };
        let step = match (mechanism, initial) {
            (Mechanism::Plain, Some(message)) => exchange.plain(&message),
            (Mechanism::Plain, None) => {
                // RFC 4616 3 with RFC 4954 4: an empty challenge asks for the message.
                exchange.state = ServerState::PlainMessage;
                ServerStep::Challenge(Vec::new())
            }
            // Outlook sends the user name as the initial response.
            (Mechanism::Login, Some(username)) => exchange.login_username(&username),
            (Mechanism::Login, None) => {
                exchange.state = ServerState::LoginUsername;
                ServerStep::Challenge(USERNAME_PROMPT.to_vec())
            }
            // RFC 4954 4: an initial response to a mechanism where the
            // server speaks first is refused with 501.
            (Mechanism::CramMd5, Some(_)) => ServerStep::Failure(Failure::Malformed),
            (Mechanism::CramMd5, None) => {
                let challenge = cram_md5::challenge(&exchange.nonce, hostname);
                let step = ServerStep::Challenge(challenge.clone().into_bytes());
                exchange.state = ServerState::CramResponse { challenge };
                step
            }
            (Mechanism::ScramSha256, Some(message)) => exchange.scram_client_first(&message),
            (Mechanism::ScramSha256, None) => {
                exchange.state = ServerState::ScramClientFirst;
                ServerStep::Challenge(Vec::new())
            }
        };
        (exchange, step)
    }

    /// The mechanism of this exchange.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The client's line after a [`ServerStep::Challenge`], without CRLF:
    /// base64, or `*` to cancel (RFC 4954 4).
    ///
    /// Every method fails closed: a call the exchange is not waiting for
    /// (after the end, or while a question is open) ends it with
    /// [`Failure::InvalidCredentials`].
    pub fn respond(&mut self, line: &str) -> ServerStep {
        if !self.waits_for_line() {
            return self.fail(Failure::InvalidCredentials);
        }
        let line = line.trim_ascii();
        if line == "*" {
            return self.fail(Failure::Cancelled);
        }
        let data = match decode(line) {
            Ok(data) => data,
            Err(failure) => return self.fail(failure),
        };
        match std::mem::replace(&mut self.state, ServerState::Done) {
            ServerState::PlainMessage => self.plain(&data),
            ServerState::LoginUsername => self.login_username(&data),
            ServerState::LoginPassword { username } => match String::from_utf8(data) {
                Ok(password) => self.check_password(username, password),
                Err(_) => self.fail(Failure::Malformed),
            },
            ServerState::CramResponse { challenge } => match cram_md5::parse_response(&data) {
                Ok(response) => {
                    let authcid = response.authcid.clone();
                    self.state = ServerState::CramSecret {
                        challenge,
                        authcid: response.authcid,
                        digest: response.digest,
                    };
                    ServerStep::NeedSecret { authcid }
                }
                Err(failure) => self.fail(failure),
            },
            ServerState::ScramClientFirst => self.scram_client_first(&data),
            ServerState::ScramClientFinal(server_first) => {
                match server_first.verify_client_final(&data) {
                    Ok(server_final) => {
                        self.state = ServerState::ScramFinalAck {
                            authcid: server_first.authcid().to_owned(),
                        };
                        ServerStep::Challenge(server_final)
                    }
                    Err(failure) => self.fail(failure),
                }
            }
            // RFC 4422 3.6 (via RFC 4954 4): the answer to additional data
            // sent as a challenge is empty.
            ServerState::ScramFinalAck { authcid } if data.is_empty() => {
                ServerStep::Success { authcid }
            }
            ServerState::ScramFinalAck { .. } => self.fail(Failure::Malformed),
            ServerState::PasswordCheck { .. }
            | ServerState::CramSecret { .. }
            | ServerState::ScramSecret(_)
            | ServerState::Done => self.fail(Failure::InvalidCredentials),
        }
    }

    /// The directory's verdict on a [`ServerStep::CheckPassword`].
    pub fn password_checked(&mut self, ok: bool) -> ServerStep {
        match std::mem::replace(&mut self.state, ServerState::Done) {
            ServerState::PasswordCheck {
                authcid,
                empty: false,
            } if ok => ServerStep::Success { authcid },
            _ => ServerStep::Failure(Failure::InvalidCredentials),
        }
    }

    /// The iteration counts of the users' own SCRAM secrets, one per user:
    /// a decoy secret (for an unknown user) announces one of them, picked by
    /// a keyed hash of the name, so that `i=` does not tell unknown names
    /// from users, whatever counts the users have. Empty (the default): 4096.
    pub fn set_decoy_iterations(&mut self, counts: std::sync::Arc<[u32]>) {
        self.decoy_iterations = counts;
    }

    /// The directory's answer to a [`ServerStep::NeedSecret`]: the user's
    /// secret of the kind this mechanism uses, or `None` (unknown user, or a
    /// user whose stored scheme cannot serve this mechanism). A secret of the
    /// other kind counts as `None`.
    ///
    /// CRAM-MD5 fails at once on `None` (the client has already sent its
    /// whole response). SCRAM goes on with a decoy server-first and fails at
    /// the proof, so the unknown user looks like a wrong password.
    pub fn secret(&mut self, secret: Option<Secret>) -> ServerStep {
        match std::mem::replace(&mut self.state, ServerState::Done) {
            ServerState::CramSecret {
                challenge,
                digest,
                authcid,
            } => match secret {
                Some(Secret::CramMd5(secret))
                    if cram_md5::verify(&secret, challenge.as_bytes(), &digest) =>
                {
                    ServerStep::Success { authcid }
                }
                _ => ServerStep::Failure(Failure::InvalidCredentials),
            },
            ServerState::ScramSecret(client_first) => {
                let secret = match secret {
                    Some(Secret::Scram(secret)) => Some(secret),
                    _ => None,
                };
                let server_first = scram::ServerFirst::new(
                    client_first,
                    secret,
                    &self.nonce,
                    &self.decoy_key,
                    &self.decoy_iterations,
                );
                let step = ServerStep::Challenge(server_first.message().to_vec());
                self.state = ServerState::ScramClientFinal(Box::new(server_first));
                step
            }
            _ => ServerStep::Failure(Failure::InvalidCredentials),
        }
    }

    fn waits_for_line(&self) -> bool {
        matches!(
            self.state,
            ServerState::PlainMessage
                | ServerState::LoginUsername
                | ServerState::LoginPassword { .. }
                | ServerState::CramResponse { .. }
                | ServerState::ScramClientFirst
                | ServerState::ScramClientFinal(_)
                | ServerState::ScramFinalAck { .. }
        )
    }

    fn fail(&mut self, failure: Failure) -> ServerStep {
        self.state = ServerState::Done;
        ServerStep::Failure(failure)
    }

    fn check_password(&mut self, authcid: String, password: String) -> ServerStep {
        self.state = ServerState::PasswordCheck {
            authcid: authcid.clone(),
            empty: password.is_empty(),
        };
        ServerStep::CheckPassword { authcid, password }
    }

    fn plain(&mut self, message: &[u8]) -> ServerStep {
        match plain::parse(message) {
            Ok(credentials) => self.check_password(credentials.authcid, credentials.password),
            Err(failure) => self.fail(failure),
        }
    }

    fn login_username(&mut self, data: &[u8]) -> ServerStep {
        match String::from_utf8(data.to_vec()) {
            // No authcid: malformed, as for PLAIN (RFC 4616 2 requires one).
            Ok(username) if username.is_empty() => self.fail(Failure::Malformed),
            Ok(username) => {
                self.state = ServerState::LoginPassword { username };
                ServerStep::Challenge(PASSWORD_PROMPT.to_vec())
            }
            Err(_) => self.fail(Failure::Malformed),
        }
    }

    fn scram_client_first(&mut self, message: &[u8]) -> ServerStep {
        match scram::parse_client_first(message) {
            Ok(client_first) => {
                let authcid = client_first.authcid.clone();
                self.state = ServerState::ScramSecret(client_first);
                ServerStep::NeedSecret { authcid }
            }
            Err(failure) => self.fail(failure),
        }
    }
}

/// Why the client side of an exchange gave up. The driver then cancels
/// with `*` (RFC 4954 4) if the server is still waiting for a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// A challenge where the mechanism expects none (one too many steps).
    UnexpectedChallenge,
    /// A challenge the mechanism cannot parse (SCRAM server-first without
    /// our nonce, a zero or huge iteration count, ...).
    MalformedChallenge,
    /// The SCRAM server sent `e=<error>` (RFC 5802 7).
    Server(String),
    /// The SCRAM server-final signature is wrong, or the server reported
    /// success without one: it does not know the user's keys (RFC 5802 5.1,
    /// 9).
    ServerNotVerified,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::UnexpectedChallenge => f.write_str("unexpected challenge from the server"),
            ClientError::MalformedChallenge => f.write_str("malformed challenge from the server"),
            ClientError::Server(error) => write!(f, "the server reported: {error}"),
            ClientError::ServerNotVerified => {
                f.write_str("the server did not prove it knows the user's keys")
            }
        }
    }
}

impl std::error::Error for ClientError {}

#[derive(Clone)]
enum ClientState {
    /// PLAIN: the message, sent as the initial response and again if the
    /// server asks with an empty challenge instead.
    Plain {
        message: Vec<u8>,
    },
    LoginUsername,
    LoginPassword,
    Cram,
    /// SCRAM before server-first.
    ScramFirst {
        bare: String,
        client_nonce: String,
    },
    /// SCRAM after client-final: the ServerSignature we expect.
    ScramFinal {
        server_signature: [u8; 32],
    },
    /// SCRAM server-final verified.
    ScramVerified,
    Done,
}

/// The client side of one AUTH exchange.
#[derive(Clone)]
pub struct ClientExchange {
    mechanism: Mechanism,
    authcid: String,
    password: String,
    state: ClientState,
}

impl fmt::Debug for ClientExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientExchange")
            .field("mechanism", &self.mechanism)
            .field("authcid", &self.authcid)
            .field("password", &"<hidden>")
            .finish_non_exhaustive()
    }
}

impl ClientExchange {
    /// Begin; returns the initial response to send with `AUTH <mech>`
    /// (base64 it with [`encode`]; an empty one is sent as `=`), or `None`.
    /// PLAIN and SCRAM have one; LOGIN and CRAM-MD5 wait for the server.
    /// `nonce` is SCRAM's client nonce: fresh random printable text without
    /// `,` (RFC 5802 7; other characters are dropped).
    pub fn start(
        mechanism: Mechanism,
        authcid: &str,
        password: &str,
        nonce: &str,
    ) -> (ClientExchange, Option<Vec<u8>>) {
        let (state, initial) = match mechanism {
            Mechanism::Plain => {
                let message = plain::message(authcid, password);
                (
                    ClientState::Plain {
                        message: message.clone(),
                    },
                    Some(message),
                )
            }
            Mechanism::Login => (ClientState::LoginUsername, None),
            Mechanism::CramMd5 => (ClientState::Cram, None),
            Mechanism::ScramSha256 => {
                let client_nonce = scram::clean_nonce(nonce);
                let bare = scram::client_first_bare(authcid, &client_nonce);
                let first = format!("{}{bare}", scram::CLIENT_GS2_HEADER).into_bytes();
                (ClientState::ScramFirst { bare, client_nonce }, Some(first))
            }
        };
        let exchange = ClientExchange {
            mechanism,
            authcid: authcid.to_owned(),
            password: password.to_owned(),
            state,
        };
        (exchange, initial)
    }

    /// The mechanism of this exchange.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The answer to a `334` challenge (its base64 decoded; see [`decode`]).
    pub fn step(&mut self, challenge: &[u8]) -> Result<Vec<u8>, ClientError> {
        match std::mem::replace(&mut self.state, ClientState::Done) {
            // The server did not take (or we did not send) the initial
            // response and asks for it with an empty challenge.
            ClientState::Plain { message } if challenge.is_empty() => Ok(message),
            // LOGIN: answer by position, not by prompt text: servers word the
            // prompts differently (e.g. "User Name").
            ClientState::LoginUsername => {
                self.state = ClientState::LoginPassword;
                Ok(self.authcid.clone().into_bytes())
            }
            ClientState::LoginPassword => Ok(self.password.clone().into_bytes()),
            ClientState::Cram => Ok(cram_md5::response(&self.authcid, &self.password, challenge)),
            ClientState::ScramFirst { bare, client_nonce } if challenge.is_empty() => {
                let first = format!("{}{bare}", scram::CLIENT_GS2_HEADER).into_bytes();
                self.state = ClientState::ScramFirst { bare, client_nonce };
                Ok(first)
            }
            ClientState::ScramFirst { bare, client_nonce } => {
                let (client_final, server_signature) =
                    scram::client_final(&self.password, &bare, &client_nonce, challenge)?;
                self.state = ClientState::ScramFinal { server_signature };
                Ok(client_final)
            }
            ClientState::ScramFinal { server_signature } => {
                scram::check_server_final(&server_signature, challenge)?;
                self.state = ClientState::ScramVerified;
                // RFC 4954 4: the server-final came as a challenge; the
                // answer is an empty line.
                Ok(Vec::new())
            }
            ClientState::Plain { .. } | ClientState::ScramVerified | ClientState::Done => {
                Err(ClientError::UnexpectedChallenge)
            }
        }
    }

    /// Call when the server answers `235`. For SCRAM the server must have
    /// proved itself with a server-final first (RFC 5802 5.1): a server that
    /// skips it is not trusted. Other mechanisms have nothing to check.
    pub fn finish(&self) -> Result<(), ClientError> {
        match (self.mechanism, &self.state) {
            (Mechanism::ScramSha256, ClientState::ScramVerified) => Ok(()),
            (Mechanism::ScramSha256, _) => Err(ClientError::ServerNotVerified),
            _ => Ok(()),
        }
    }
}
