//! The server session state machine (RFC 5321 4.1.4 command order, RFC 2920
//! pipelining, RFC 3030 BDAT, RFC 3207 STARTTLS).

use std::collections::VecDeque;

use pillarbox_codes::{Reply, Row};

use crate::address::{ForwardPath, ReversePath};
use crate::command::{
    self, Command, CommandError, MailCommand, MailParams, RcptCommand, RcptParams,
};
use crate::dot_decoder::{DotDecoder, LineEndingCheck};
use crate::extension::Extension;
use crate::hops::ReceivedCounter;
use crate::input::Input;
use crate::sasl::{self, Mechanism, Secret, ServerExchange, ServerStep};

/// What a session is allowed and bound to; set by the server per connection.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Our host name, in the greeting, EHLO and Received.
    pub hostname: String,
    /// Message size limit in octets (RFC 1870), advertised in EHLO.
    pub max_message_size: u64,
    /// Recipients per transaction (RFC 5321 4.5.3.1.8: at least 100).
    pub max_recipients: usize,
    /// Protocol errors before `421 4.7.0 too many errors`.
    pub max_errors: u32,
    /// `Received:` fields a message's header section may carry (RFC 5321
    /// 6.3); more refuse it at the end of data as a routing loop. Only the
    /// client's bytes are counted, not the field the server adds.
    pub max_hops: u32,
    /// Longest command line, CRLF included (RFC 5321 4.5.3.1.4: 512, plus
    /// room for extension parameters).
    pub max_line: usize,
    /// A certificate is available: STARTTLS is offered until TLS is on.
    pub starttls: bool,
    /// The connection is already under TLS (implicit TLS, or after STARTTLS).
    pub tls: bool,
    /// This client may ask `HELP STATUS` (loopback or trusted).
    pub status_allowed: bool,
    /// SMTP AUTH on this listener (RFC 4954).
    pub auth: AuthPolicy,
}

/// What AUTH this listener offers.
#[derive(Clone, Debug, Default)]
pub struct AuthPolicy {
    /// Mechanisms offered; empty: AUTH is off here (`502`).
    pub mechanisms: Vec<Mechanism>,
    /// AUTH only under TLS (RFC 8314, RFC 6409): not advertised before it,
    /// `538 5.7.11` if tried.
    pub require_tls: bool,
    /// MAIL needs AUTH first (`530 5.7.0`).
    pub required: bool,
    /// Random text from the driver, unique to this session; each exchange's
    /// nonce is it plus a counter.
    pub nonce: String,
    /// A server-wide secret for decoy SCRAM salts of unknown users.
    pub decoy_key: Vec<u8>,
    /// The iteration counts of the users' SCRAM secrets, one per user: an
    /// unknown name's decoy announces one of them, the same every time for
    /// that name, so `i=` does not tell unknown names apart. Empty: 4096
    /// (RFC 7677's minimum, Dovecot's default).
    pub decoy_scram_iterations: std::sync::Arc<[u32]>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            hostname: "localhost".into(),
            max_message_size: 50 * 1024 * 1024,
            max_recipients: 100,
            max_errors: 20,
            // RFC 5321 6.3: a limit of at least 100 hops.
            max_hops: 100,
            max_line: 1024,
            starttls: false,
            tls: false,
            status_allowed: false,
            auth: AuthPolicy::default(),
        }
    }
}

/// Something the driver must do.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// Send this reply (buffer it; flush before reading more input).
    Reply(Reply),
    /// Answer this with the `answer_*` method of its kind (see [`Question`]);
    /// the session waits until then.
    Ask(Question),
    /// Message content, dot-unstuffed, in wire form (CRLF line ends).
    Body(Vec<u8>),
    /// Drop the message begun with [`Question::BeginMessage`].
    AbortMessage,
    /// Flush replies, then run the TLS handshake and call
    /// [`Session::tls_established`]. The unread input has been discarded.
    StartTls,
    /// Flush replies and close the connection.
    Close,
    /// An AUTH exchange ended: `authcid` as the client gave it (when it got
    /// that far) and whether it succeeded. For logs and failure counting;
    /// never carries a password.
    AuthAttempt {
        /// The authentication identity, if the exchange got that far.
        authcid: Option<String>,
        /// The credentials were right.
        ok: bool,
    },
}

/// A question for policy or storage. Each kind is answered with its own
/// method of [`Session`], which takes the question back by value: an answer
/// fits its question by type, and is given once.
#[derive(Debug, PartialEq, Eq)]
pub enum Question {
    /// MAIL: may this sender start a transaction (disk reserve, rate ...)?
    /// [`Session::answer_sender`].
    Sender(SenderQuestion),
    /// RCPT: is this a recipient we take, and what is it to the driver?
    /// [`Session::answer_recipient`].
    Recipient(RecipientQuestion),
    /// DATA or the first BDAT: open storage for the message of
    /// [`Session::transaction`]. [`Session::answer_begin`].
    BeginMessage(BeginQuestion),
    /// The message is complete and valid: make it durable for every
    /// recipient. [`Session::answer_deliver`].
    Deliver(DeliverQuestion),
    /// `HELP STATUS` from an allowed client. [`Session::answer_status`].
    Status(StatusQuestion),
    /// AUTH PLAIN/LOGIN: is this the user's password?
    /// [`Session::answer_password`].
    CheckPassword(PasswordQuestion),
    /// AUTH CRAM-MD5/SCRAM-SHA-256: the user's secret for the mechanism.
    /// [`Session::answer_secret`].
    Secret(SecretQuestion),
}

/// Makes a question impossible to build outside this crate, so every
/// answer is to a question the session asked.
#[derive(Debug, PartialEq, Eq)]
struct Ticket;

/// MAIL: the sender and its parameters, checked by the parser already.
#[derive(Debug, PartialEq, Eq)]
pub struct SenderQuestion {
    /// The reverse path.
    pub from: ReversePath,
    /// The MAIL parameters.
    pub params: MailParams,
    _ticket: Ticket,
}

/// RCPT: a recipient the syntax and the limits let through.
#[derive(Debug, PartialEq, Eq)]
pub struct RecipientQuestion {
    /// The forward path.
    pub to: ForwardPath,
    /// The RCPT parameters.
    pub params: RcptParams,
    /// The size declared at MAIL (RFC 1870), for a quota check now.
    pub size: Option<u64>,
    _ticket: Ticket,
}

/// DATA or the first BDAT: storage for the message is to be opened.
#[derive(Debug, PartialEq, Eq)]
pub struct BeginQuestion {
    _ticket: Ticket,
}

/// The message is complete: make it durable.
#[derive(Debug, PartialEq, Eq)]
pub struct DeliverQuestion {
    /// Octets of the message as received (dot-unstuffed, CRLF line ends).
    pub size: u64,
    _ticket: Ticket,
}

/// `HELP STATUS`: the lines to show.
#[derive(Debug, PartialEq, Eq)]
pub struct StatusQuestion {
    _ticket: Ticket,
}

/// AUTH PLAIN/LOGIN: the credentials to check. Its `Debug` hides the password.
#[derive(PartialEq, Eq)]
pub struct PasswordQuestion {
    /// The authentication identity as the client gave it.
    pub authcid: String,
    /// The password as the client gave it.
    pub password: String,
    _ticket: Ticket,
}

impl std::fmt::Debug for PasswordQuestion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Questions end up in logs; a password must not.
        f.debug_struct("PasswordQuestion")
            .field("authcid", &self.authcid)
            .field("password", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// AUTH CRAM-MD5/SCRAM-SHA-256: the user whose secret is needed.
#[derive(Debug, PartialEq, Eq)]
pub struct SecretQuestion {
    /// The authentication identity as the client gave it.
    pub authcid: String,
    /// The mechanism the secret is for.
    pub mechanism: Mechanism,
    _ticket: Ticket,
}

/// The answer to a [`PasswordQuestion`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PasswordAnswer {
    /// The password is the user's.
    Valid,
    /// Wrong password, or no such user: the exchange answers 535.
    Invalid,
    /// The directory cannot be read (`454 4.7.0`): the exchange ends, not
    /// counted as a failure.
    Unavailable(Reply),
}

/// An accepted recipient, with what the driver made of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient<R> {
    /// The forward path as given.
    pub to: ForwardPath,
    /// The RCPT parameters.
    pub params: RcptParams,
    /// The driver's data, given with [`Session::answer_recipient`].
    pub data: R,
}

/// The mail transaction in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction<R> {
    /// The reverse path of MAIL.
    pub from: ReversePath,
    /// The MAIL parameters.
    pub params: MailParams,
    /// Accepted recipients, in order.
    pub rcpts: Vec<Recipient<R>>,
    /// RCPT commands tried, accepted or not.
    rcpt_attempts: usize,
    /// BDAT has begun the message (so DATA is out of order).
    bdat: bool,
    /// Storage was opened for the message.
    begun: bool,
}

/// The client's greeting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Greeting {
    /// The domain or address literal it gave.
    pub name: String,
    /// EHLO (extensions allowed) rather than HELO.
    pub esmtp: bool,
}

/// What the input is read as.
#[derive(Debug)]
enum Reading {
    /// Reading commands.
    None,
    Data(DotDecoder),
    Bdat {
        remaining: u64,
        last: bool,
        chunk: u64,
    },
    /// Skipping a BDAT chunk that cannot be taken, then replying; a protocol
    /// error (out of sequence) counts towards `max_errors` once the chunk is read.
    Discard {
        remaining: u64,
        then: Reply,
        protocol_error: bool,
    },
}

/// The question the session waits on.
#[derive(Clone, Copy, Debug)]
enum Pending {
    Sender,
    Recipient,
    BeginData,
    BeginBdat { size: u64, last: bool },
    Deliver,
    Status,
    TlsHandshake,
    Password,
    Secret,
}

/// One SMTP server session, from greeting to close. `R` is what the driver
/// keeps for each accepted recipient (its answer to
/// [`Question::Recipient`]), held in the [`Transaction`].
#[derive(Debug)]
pub struct Session<R = ()> {
    cfg: SessionConfig,
    greeting: Option<Greeting>,
    /// Boxed, like `sasl`: allocated only while in use, so an idle
    /// connection's task stays small.
    tx: Option<Box<Transaction<R>>>,
    body: Reading,
    /// Size and bare CR/LF state of a BDAT message across chunks.
    bdat_size: u64,
    bdat_check: LineEndingCheck,
    /// `Received:` fields of the message being read (DATA or BDAT).
    received: ReceivedCounter,
    events: VecDeque<Event>,
    pending: Option<Pending>,
    errors: u32,
    discarding_line: bool,
    closed: bool,
    last_command: &'static str,
    /// The authenticated identity (RFC 4954 4), until STARTTLS or the end.
    authenticated: Option<String>,
    /// An AUTH exchange in progress: lines are SASL responses, not commands.
    sasl: Option<Box<ServerExchange>>,
    /// The authcid of the exchange in progress, once known.
    sasl_authcid: Option<String>,
    auth_attempts: u32,
}

impl<R> Session<R> {
    /// A session for one connection; send [`Session::greeting`] first.
    pub fn new(cfg: SessionConfig) -> Self {
        Self {
            cfg,
            greeting: None,
            tx: None,
            body: Reading::None,
            bdat_size: 0,
            bdat_check: LineEndingCheck::default(),
            received: ReceivedCounter::new(),
            events: VecDeque::new(),
            pending: None,
            errors: 0,
            discarding_line: false,
            closed: false,
            last_command: "",
            authenticated: None,
            sasl: None,
            sasl_authcid: None,
            auth_attempts: 0,
        }
    }

    /// Who authenticated in this session (RFC 4954), if anyone.
    pub fn authenticated(&self) -> Option<&str> {
        self.authenticated.as_deref()
    }

    /// The verb of the last command read (for logs): `MAIL`, `DATA` ..., or
    /// `?` for a line that was not a command.
    pub fn last_command(&self) -> &'static str {
        self.last_command
    }

    /// The 220 greeting (RFC 5321 4.3.1).
    pub fn greeting(&self) -> Reply {
        Row::Greeting.reply_with(&self.cfg.hostname)
    }

    /// The configuration the session was made with (TLS as it is now).
    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// The client's EHLO/HELO, once given.
    pub fn client_greeting(&self) -> Option<&Greeting> {
        self.greeting.as_ref()
    }

    /// The transaction in progress, if any.
    pub fn transaction(&self) -> Option<&Transaction<R>> {
        self.tx.as_deref()
    }

    /// Under TLS now.
    pub fn is_tls(&self) -> bool {
        self.cfg.tls
    }

    /// A transaction is in progress (a drain lets it finish).
    pub fn in_transaction(&self) -> bool {
        self.tx.is_some()
    }

    /// The session has ended; nothing more will be read.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Waiting for a BDAT chunk's or DATA's bytes (the driver uses the data
    /// timeout rather than the command timeout).
    pub fn reading_body(&self) -> bool {
        !matches!(self.body, Reading::None)
    }

    /// Frees the event queue's memory when it is empty, as
    /// [`Input::release`] does for the input: the driver calls both before it
    /// waits for the client, so an idle connection keeps no queue.
    pub fn release(&mut self) {
        if self.events.is_empty() {
            self.events = VecDeque::new();
        }
    }

    /// The next thing for the driver to do, consuming input as needed; `None`
    /// when more input (or an answer) is needed first.
    pub fn handle(&mut self, input: &mut Input) -> Option<Event> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Some(e);
            }
            if self.closed || self.pending.is_some() {
                return None;
            }
            let progressed = match self.body {
                Reading::None => self.read_command(input),
                Reading::Data(_) => self.read_data(input),
                Reading::Bdat { .. } => self.read_bdat(input),
                Reading::Discard { .. } => self.read_discard(input),
            };
            if !progressed {
                return None;
            }
        }
    }

    /// Answers [`Question::Sender`]: `Ok` starts the transaction (250).
    pub fn answer_sender(&mut self, q: SenderQuestion, a: Result<(), Reply>) {
        if self
            .take_pending(|p| matches!(p, Pending::Sender))
            .is_none()
        {
            return;
        }
        match a {
            Ok(()) => {
                self.tx = Some(Box::new(Transaction {
                    from: q.from,
                    params: q.params,
                    rcpts: Vec::new(),
                    rcpt_attempts: 0,
                    bdat: false,
                    begun: false,
                }));
                self.reply(Row::SenderOk.reply());
            }
            Err(reply) => self.reply(reply),
        }
    }

    /// Answers [`Question::Recipient`]: `Ok(data)` accepts the recipient
    /// (250) and keeps `data` with it in the transaction.
    pub fn answer_recipient(&mut self, q: RecipientQuestion, a: Result<R, Reply>) {
        if self
            .take_pending(|p| matches!(p, Pending::Recipient))
            .is_none()
        {
            return;
        }
        match a {
            Ok(data) => {
                if let Some(tx) = self.tx.as_mut() {
                    tx.rcpts.push(Recipient {
                        to: q.to,
                        params: q.params,
                        data,
                    });
                }
                self.reply(Row::RecipientOk.reply());
            }
            Err(reply) => self.reply(reply),
        }
    }

    /// Answers [`Question::BeginMessage`]: `Ok` once storage is open for
    /// the message; a refusal ends the transaction.
    pub fn answer_begin(&mut self, q: BeginQuestion, a: Result<(), Reply>) {
        let _ = q;
        let Some(pending) =
            self.take_pending(|p| matches!(p, Pending::BeginData | Pending::BeginBdat { .. }))
        else {
            return;
        };
        match (pending, a) {
            (Pending::BeginBdat { size, last }, Ok(())) => {
                if let Some(tx) = self.tx.as_mut() {
                    tx.begun = true;
                    tx.bdat = true;
                }
                self.bdat_size = 0;
                self.bdat_check = LineEndingCheck::default();
                self.received = ReceivedCounter::new();
                self.body = Reading::Bdat {
                    remaining: size,
                    last,
                    chunk: size,
                };
            }
            (Pending::BeginBdat { size, .. }, Err(reply)) => {
                // RFC 3030 2: the chunk is read whatever the reply.
                self.tx = None;
                self.body = Reading::Discard {
                    remaining: size,
                    then: reply,
                    protocol_error: false,
                };
            }
            (_, Ok(())) => {
                if let Some(tx) = self.tx.as_mut() {
                    tx.begun = true;
                }
                self.received = ReceivedCounter::new();
                self.body = Reading::Data(DotDecoder::new(self.cfg.max_message_size));
                self.reply(Row::StartData.reply());
            }
            (_, Err(reply)) => {
                // RFC 5321 4.1.1.4: whatever the reply, the transaction is over.
                self.tx = None;
                self.reply(reply);
            }
        }
    }

    /// Answers [`Question::Deliver`]: `Ok(queue id)` once the message is
    /// durable (250); either way the transaction is over.
    pub fn answer_deliver(&mut self, q: DeliverQuestion, a: Result<String, Reply>) {
        let _ = q;
        if self
            .take_pending(|p| matches!(p, Pending::Deliver))
            .is_none()
        {
            return;
        }
        // RFC 5321 4.1.1.4: whatever the reply, the transaction is over.
        self.tx = None;
        match a {
            Ok(id) => self.reply(Row::Queued.reply_with(&id)),
            Err(reply) => self.reply(reply),
        }
    }

    /// Answers [`Question::Status`] with the lines to show (214).
    pub fn answer_status(&mut self, q: StatusQuestion, lines: Vec<String>) {
        let _ = q;
        if self
            .take_pending(|p| matches!(p, Pending::Status))
            .is_some()
        {
            self.reply(Row::Status.reply_lines(lines));
        }
    }

    /// Answers [`Question::CheckPassword`].
    pub fn answer_password(&mut self, q: PasswordQuestion, a: PasswordAnswer) {
        drop(q);
        if self
            .take_pending(|p| matches!(p, Pending::Password))
            .is_none()
        {
            return;
        }
        match a {
            PasswordAnswer::Valid => self.sasl_continue(|x| x.password_checked(true)),
            PasswordAnswer::Invalid => self.sasl_continue(|x| x.password_checked(false)),
            PasswordAnswer::Unavailable(reply) => self.sasl_unavailable(reply),
        }
    }

    /// Answers [`Question::Secret`]: `Ok(None)` for an unknown user or one
    /// without such a secret (the exchange goes on with a decoy), `Err` when
    /// the directory cannot be read (454).
    pub fn answer_secret(&mut self, q: SecretQuestion, a: Result<Option<Secret>, Reply>) {
        let _ = q;
        if self
            .take_pending(|p| matches!(p, Pending::Secret))
            .is_none()
        {
            return;
        }
        match a {
            Ok(secret) => self.sasl_continue(move |x| x.secret(secret)),
            Err(reply) => self.sasl_unavailable(reply),
        }
    }

    /// The pending question, if `fits` says the answer is to it. An answer
    /// to no question is ignored; one that does not fit can only be to a
    /// question of another session: the session fails safe (451), except
    /// during the TLS handshake, which it keeps waiting for.
    fn take_pending(&mut self, fits: impl Fn(&Pending) -> bool) -> Option<Pending> {
        let pending = self.pending.take()?;
        if fits(&pending) {
            return Some(pending);
        }
        if matches!(pending, Pending::TlsHandshake) {
            self.pending = Some(pending);
        } else {
            self.sasl = None;
            self.reply(Row::LocalError.reply());
        }
        None
    }

    /// The directory could not answer (454): the exchange ends, uncounted.
    fn sasl_unavailable(&mut self, reply: Reply) {
        self.sasl = None;
        self.sasl_authcid = None;
        self.reply(reply);
    }

    /// The TLS handshake after STARTTLS succeeded: RFC 3207 4.2, the session
    /// starts over and forgets everything learnt before.
    pub fn tls_established(&mut self) {
        self.pending = None;
        self.cfg.tls = true;
        self.greeting = None;
        self.authenticated = None;
        self.sasl = None;
        self.tx = None;
        self.body = Reading::None;
        self.discarding_line = false;
    }

    /// Ends the session from outside (timeout, shutdown) with `reply`.
    pub fn close_with(&mut self, reply: Reply) -> Vec<Event> {
        let mut out: Vec<Event> = self.events.drain(..).collect();
        if self.tx.as_ref().is_some_and(|t| t.begun) {
            out.push(Event::AbortMessage);
        }
        self.tx = None;
        out.push(Event::Reply(reply));
        out.push(Event::Close);
        self.closed = true;
        out
    }

    fn reply(&mut self, reply: Reply) {
        self.events.push_back(Event::Reply(reply));
    }

    fn ask(&mut self, pending: Pending, question: Question) {
        self.pending = Some(pending);
        self.events.push_back(Event::Ask(question));
    }

    /// A reply that counts as a protocol error (RFC 5321 4.2.5 does not bound
    /// them; we do, as Postfix's smtpd_hard_error_limit does).
    fn error(&mut self, reply: Reply) {
        self.reply(reply);
        self.errors += 1;
        if self.errors >= self.cfg.max_errors {
            self.abort_message_if_begun();
            self.reply(Row::TooManyErrors.reply());
            self.events.push_back(Event::Close);
            self.closed = true;
        }
    }

    fn abort_message_if_begun(&mut self) {
        if self.tx.as_ref().is_some_and(|t| t.begun) {
            self.events.push_back(Event::AbortMessage);
        }
    }

    fn bad_sequence(&mut self, what: &str) {
        self.error(Row::BadSequence.reply_with(what));
    }

    fn read_command(&mut self, input: &mut Input) -> bool {
        if self.sasl.is_some() {
            return self.read_sasl_line(input);
        }
        let data = input.data();
        if self.discarding_line {
            // The rest of an over-long line is dropped before the next command.
            match data.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    input.consume(i + 1);
                    self.discarding_line = false;
                    return true;
                }
                None => {
                    let n = data.len();
                    input.consume(n);
                    return false;
                }
            }
        }
        let Some(lf) = data.iter().position(|&b| b == b'\n') else {
            if data.len() >= self.cfg.max_line {
                let reply = self.line_too_long(data);
                let n = data.len();
                input.consume(n);
                self.discarding_line = true;
                self.error(reply);
                return true;
            }
            return false;
        };
        // Commands end with CRLF; a bare LF is tolerated here as Postfix does
        // (only in DATA does it matter for smuggling, and there it never ends a line).
        if lf + 1 > self.cfg.max_line {
            let reply = self.line_too_long(data);
            input.consume(lf + 1);
            self.error(reply);
            return true;
        }
        let line_end = if lf > 0 && data[lf - 1] == b'\r' {
            lf - 1
        } else {
            lf
        };
        let cx = command::Context {
            esmtp: self.esmtp(),
            auth: self.auth_offered(),
            smtputf8: self.tx.as_ref().is_some_and(|t| t.params.smtputf8),
        };
        let parsed = command::parse(&data[..line_end], cx);
        input.consume(lf + 1);
        self.last_command = match &parsed {
            Ok(c) => c.verb(),
            Err(e) => e.verb(),
        };
        match parsed {
            Ok(cmd) => self.command(cmd, input),
            Err(CommandError::Mail(reply)) => self.mail(Err(reply)),
            Err(CommandError::Rcpt(reply)) => self.rcpt(Err(reply)),
            Err(CommandError::Unknown) => self.error(Row::UnknownCommand.reply()),
            Err(CommandError::Syntax(usage)) => self.error(Row::Syntax.reply_with(usage)),
            Err(CommandError::Greeting(verb)) => self.error(Row::EhloSyntax.reply_with(verb)),
            Err(CommandError::BdatSyntax) => {
                // RFC 3030 2: without a readable size the chunk cannot be skipped;
                // the connection cannot be kept in sync, so it ends, saying why.
                self.reply(Row::Syntax.reply_with("BDAT chunk-size [LAST]"));
                self.abort_message_if_begun();
                self.tx = None;
                self.reply(Row::BdatOutOfStep.reply());
                self.events.push_back(Event::Close);
                self.closed = true;
            }
        }
        true
    }

    /// The reply to a command line longer than `max_line`, from its first
    /// bytes: where AUTH is offered, an AUTH line too long (an initial
    /// response that does not fit) gets RFC 4954 4's `500 5.5.6`; any other
    /// line gets RFC 5321 4.5.3.1.4's `500 5.5.2`.
    fn line_too_long(&mut self, line: &[u8]) -> Reply {
        let auth = self.auth_offered()
            && line
                .get(..5)
                .is_some_and(|verb| verb.eq_ignore_ascii_case(b"AUTH "));
        if auth {
            self.last_command = "AUTH";
            Row::AuthLineTooLong.reply()
        } else {
            self.last_command = "?";
            Row::LineTooLong.reply()
        }
    }

    fn command(&mut self, cmd: Command, input: &mut Input) {
        match cmd {
            Command::Ehlo(name) | Command::Helo(name)
                if self.tx.as_ref().is_some_and(|t| t.bdat) =>
            {
                let _ = name;
                self.bad_sequence("BDAT transaction in progress, send RSET");
            }
            Command::Ehlo(name) => {
                // RFC 5321 4.1.4: EHLO resets the transaction.
                self.tx = None;
                self.greeting = Some(Greeting { name, esmtp: true });
                let reply = Row::Ehlo.reply_lines(self.ehlo_lines());
                self.reply(reply);
            }
            Command::Helo(name) => {
                self.tx = None;
                self.greeting = Some(Greeting { name, esmtp: false });
                self.reply(Row::Helo.reply_with(&self.cfg.hostname.clone()));
            }
            Command::Mail(mail) => self.mail(Ok(mail)),
            Command::Rcpt(rcpt) => self.rcpt(Ok(rcpt)),
            Command::Data => self.data(),
            Command::Bdat { size, last } => self.bdat(size, last),
            Command::Rset => {
                self.abort_message_if_begun();
                self.tx = None;
                self.reply(Row::Ok.reply());
            }
            Command::Noop => self.reply(Row::Ok.reply()),
            // RFC 5321 3.5.3: 252 when we will not say whether a user exists.
            Command::Vrfy => self.reply(Row::Vrfy.reply()),
            Command::Help(topic) => self.help(topic.as_deref()),
            Command::Quit => {
                self.abort_message_if_begun();
                self.tx = None;
                self.reply(Row::Bye.reply());
                self.events.push_back(Event::Close);
                self.closed = true;
            }
            Command::StartTls => self.starttls(input),
            Command::Auth(args) => self.auth(&args),
            Command::NotImplemented => self.error(Row::NotImplemented.reply()),
        }
    }

    fn ehlo_lines(&self) -> Vec<String> {
        let mut lines = Vec::with_capacity(1 + Extension::ALL.len());
        lines.push(self.cfg.hostname.clone());
        lines.extend(
            Extension::ALL
                .into_iter()
                .filter(|&e| self.offers(e))
                .map(|e| self.ehlo_line(e)),
        );
        lines
    }

    /// The extension is offered now (RFC 3207 4.2: no STARTTLS under TLS).
    fn offers(&self, ext: Extension) -> bool {
        match ext {
            Extension::StartTls => self.cfg.starttls && !self.cfg.tls,
            Extension::Auth => self.auth_offered(),
            Extension::Pipelining
            | Extension::Size
            | Extension::EightBitMime
            | Extension::SmtpUtf8
            | Extension::EnhancedStatusCodes
            | Extension::Chunking
            // RFC 3461 4: the server's queue sends the notifications asked for.
            | Extension::Dsn => true,
        }
    }

    /// The extension's EHLO line: its keyword and, for some, parameters.
    fn ehlo_line(&self, ext: Extension) -> String {
        match ext {
            // RFC 1870 4: the fixed maximum in octets, whatever storage can
            // take now. A client takes a message above it as permanently too
            // big (552), so a figure lowered to the room left would turn a
            // temporary shortage into bounces; the shortage is said with 452
            // 4.3.1 at MAIL or RCPT instead (RFC 1870 6.1, the disk reserve
            // check). `SIZE 0` would mean "no fixed maximum": a maximum of 0
            // is advertised as bare `SIZE`, which says nothing about it.
            Extension::Size if self.cfg.max_message_size == 0 => ext.keyword().to_string(),
            Extension::Size => format!("{} {}", ext.keyword(), self.cfg.max_message_size),
            // RFC 4954 3: the mechanisms, space-separated.
            Extension::Auth => {
                let mut line = ext.keyword().to_string();
                for m in &self.cfg.auth.mechanisms {
                    line.push(' ');
                    line.push_str(m.name());
                }
                line
            }
            _ => ext.keyword().to_string(),
        }
    }

    /// AUTH is advertised now: configured, and TLS is on where required.
    fn auth_offered(&self) -> bool {
        !self.cfg.auth.mechanisms.is_empty() && (self.cfg.tls || !self.cfg.auth.require_tls)
    }

    fn esmtp(&self) -> bool {
        self.greeting.as_ref().is_some_and(|g| g.esmtp)
    }

    /// MAIL, parsed or refused by the parser: order and policy come first
    /// (RFC 5321 4.1.4), then the parser's refusal.
    fn mail(&mut self, parsed: Result<MailCommand, Reply>) {
        if self.greeting.is_none() {
            return self.bad_sequence("send EHLO or HELO first");
        }
        if self.tx.is_some() {
            return self.bad_sequence("nested MAIL command");
        }
        if self.cfg.auth.required && self.authenticated.is_none() {
            // RFC 4954 6 / RFC 6409 4.3; on a listener that needs TLS first, say that first.
            let row = if !self.cfg.tls && self.cfg.auth.require_tls && self.cfg.starttls {
                Row::TlsRequired
            } else {
                Row::AuthRequired
            };
            return self.error(row.reply());
        }
        let MailCommand { from, params } = match parsed {
            Ok(m) => m,
            Err(reply) => return self.error(reply),
        };
        // RFC 1870 6.1: a declared size above our fixed maximum is refused at MAIL.
        if params.size.is_some_and(|s| s > self.cfg.max_message_size) {
            return self.reply(Row::SizeExceeded.reply());
        }
        self.ask(
            Pending::Sender,
            Question::Sender(SenderQuestion {
                from,
                params,
                _ticket: Ticket,
            }),
        );
    }

    /// RCPT, parsed or refused by the parser, as [`Session::mail`].
    fn rcpt(&mut self, parsed: Result<RcptCommand, Reply>) {
        let Some(tx) = self.tx.as_ref() else {
            return self.bad_sequence("send MAIL first");
        };
        if tx.bdat {
            return self.bad_sequence("RCPT after BDAT");
        }
        let size = tx.params.size;
        let RcptCommand { to, params } = match parsed {
            Ok(r) => r,
            Err(reply) => return self.error(reply),
        };
        if let Some(tx) = self.tx.as_mut() {
            tx.rcpt_attempts += 1;
            // RFC 5321 4.5.3.1.10: 452 for too many recipients; the client sends the rest later.
            if tx.rcpts.len() >= self.cfg.max_recipients {
                return self.reply(Row::TooManyRecipients.reply());
            }
        }
        self.ask(
            Pending::Recipient,
            Question::Recipient(RecipientQuestion {
                to,
                params,
                size,
                _ticket: Ticket,
            }),
        );
    }

    fn data(&mut self) {
        let Some(tx) = self.tx.as_ref() else {
            return self.bad_sequence("send MAIL and RCPT first");
        };
        if tx.bdat {
            return self.bad_sequence("DATA after BDAT");
        }
        if tx.rcpts.is_empty() {
            if tx.rcpt_attempts == 0 {
                return self.bad_sequence("send RCPT first");
            }
            // RFC 2920 3.1: RCPTs were tried and all refused.
            return self.reply(Row::NoValidRecipients.reply());
        }
        self.ask(
            Pending::BeginData,
            Question::BeginMessage(BeginQuestion { _ticket: Ticket }),
        );
    }

    fn bdat(&mut self, size: u64, last: bool) {
        // RFC 3030 2: the chunk's bytes follow the command in any case; a refused
        // BDAT still reads them so the stream stays in sync.
        // (reply, whether it is a protocol error)
        let refusal = match self.tx.as_ref() {
            None => Some((
                Row::BadSequence.reply_with("send MAIL and RCPT first"),
                true,
            )),
            Some(tx) if tx.begun && !tx.bdat => {
                Some((Row::BadSequence.reply_with("BDAT after DATA"), true))
            }
            Some(tx) if tx.rcpts.is_empty() && tx.rcpt_attempts == 0 => {
                Some((Row::BadSequence.reply_with("send RCPT first"), true))
            }
            Some(tx) if tx.rcpts.is_empty() => Some((Row::NoValidRecipients.reply(), false)),
            Some(_) => None,
        };
        if let Some((reply, protocol_error)) = refusal {
            self.body = Reading::Discard {
                remaining: size,
                then: reply,
                protocol_error,
            };
            return;
        }
        let begun = self.tx.as_ref().is_some_and(|t| t.begun);
        if begun {
            self.body = Reading::Bdat {
                remaining: size,
                last,
                chunk: size,
            };
        } else {
            self.ask(
                Pending::BeginBdat { size, last },
                Question::BeginMessage(BeginQuestion { _ticket: Ticket }),
            );
        }
    }

    fn help(&mut self, topic: Option<&str>) {
        match topic.map(str::to_ascii_uppercase).as_deref() {
            Some("STATUS") if self.cfg.status_allowed => self.ask(
                Pending::Status,
                Question::Status(StatusQuestion { _ticket: Ticket }),
            ),
            None | Some("STATUS") => {
                // What this session offers now, from the same list EHLO gives.
                let mut commands =
                    "commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT".to_string();
                let mut extensions = "extensions:".to_string();
                for e in Extension::ALL.into_iter().filter(|&e| self.offers(e)) {
                    extensions.push(' ');
                    extensions.push_str(e.keyword());
                    if let Some((verb, _)) = e.command() {
                        commands.push(' ');
                        commands.push_str(verb);
                    }
                }
                let reply = Row::Help.reply_lines([
                    "Pillarbox ESMTP server".to_string(),
                    commands,
                    extensions,
                    "HELP <command> explains a command; `pillarbox explain <code>` explains a reply".to_string(),
                    "documentation: https://www.rfc-editor.org/rfc/rfc5321 and the Pillarbox README".to_string(),
                ]);
                self.reply(reply);
            }
            Some(cmd) => {
                // The commands extensions add are explained by the extension.
                let added = Extension::ALL
                    .into_iter()
                    .filter_map(Extension::command)
                    .find(|&(verb, _)| verb == cmd);
                let text = match cmd {
                    _ if added.is_some() => added.map_or("", |(_, help)| help),
                    "EHLO" => "EHLO <domain>: greet the server and list its extensions",
                    "HELO" => "HELO <domain>: greet the server without extensions",
                    "MAIL" => {
                        "MAIL FROM:<address> [SIZE=n] [BODY=8BITMIME] [SMTPUTF8] [RET=FULL|HDRS] [ENVID=id]: start a message"
                    }
                    "RCPT" => {
                        "RCPT TO:<address> [NOTIFY=NEVER|SUCCESS,FAILURE,DELAY] [ORCPT=rfc822;address]: add a recipient"
                    }
                    "DATA" => "DATA: send the message, ended by a line with a single dot",
                    "BDAT" => "BDAT <size> [LAST]: send the message in chunks of exact size",
                    "RSET" => "RSET: abandon the current message",
                    "NOOP" => "NOOP: do nothing, reply 250",
                    "VRFY" => "VRFY <address>: not answered (252); send the message instead",
                    "HELP" => "HELP [command]: this help",
                    "QUIT" => "QUIT: end the session",
                    _ => "unknown command; HELP lists the commands",
                };
                self.reply(Row::Help.reply_with(text));
            }
        }
    }

    fn starttls(&mut self, input: &mut Input) {
        if self.cfg.tls {
            return self.error(Row::TlsAlready.reply());
        }
        if !self.cfg.starttls {
            return self.reply(Row::TlsNotAvailable.reply());
        }
        if self.tx.is_some() {
            return self.bad_sequence("STARTTLS inside a mail transaction");
        }
        // RFC 3207 4.2 / CVE-2011-0411: plaintext pipelined after STARTTLS is discarded.
        input.clear();
        self.reply(Row::TlsReady.reply());
        self.events.push_back(Event::StartTls);
        self.pending = Some(Pending::TlsHandshake);
    }

    fn auth(&mut self, args: &str) {
        if self.cfg.auth.mechanisms.is_empty() {
            return self.error(Row::NotImplemented.reply());
        }
        if self.greeting.as_ref().is_none_or(|g| !g.esmtp) {
            return self.bad_sequence("send EHLO first");
        }
        if self.authenticated.is_some() {
            return self.bad_sequence("already authenticated");
        }
        if self.tx.is_some() {
            return self.bad_sequence("AUTH inside a mail transaction");
        }
        if !self.cfg.tls && self.cfg.auth.require_tls {
            return self.error(Row::AuthNeedsTls.reply());
        }
        let mut words = args.split(' ').filter(|w| !w.is_empty());
        let (Some(name), initial) = (words.next(), words.next()) else {
            return self.error(Row::Syntax.reply_with("AUTH <mechanism> [initial-response]"));
        };
        if words.next().is_some() {
            return self.error(Row::Syntax.reply_with("AUTH <mechanism> [initial-response]"));
        }
        let Some(mech) =
            Mechanism::from_name(name).filter(|m| self.cfg.auth.mechanisms.contains(m))
        else {
            return self.error(Row::AuthMechanism.reply());
        };
        self.auth_attempts += 1;
        let nonce = format!("{}{}", self.cfg.auth.nonce, self.auth_attempts);
        let (mut exchange, step) = ServerExchange::start(
            mech,
            initial,
            &nonce,
            &self.cfg.hostname,
            &self.cfg.auth.decoy_key,
        );
        exchange.set_decoy_iterations(self.cfg.auth.decoy_scram_iterations.clone());
        self.sasl = Some(Box::new(exchange));
        self.sasl_authcid = None;
        self.sasl_step(step);
    }

    /// Carries out one step of the exchange in progress.
    fn sasl_step(&mut self, step: ServerStep) {
        match step {
            ServerStep::Challenge(data) => {
                self.reply(Row::AuthChallenge.reply_with(&sasl::encode(&data)))
            }
            ServerStep::CheckPassword { authcid, password } => {
                self.sasl_authcid = Some(authcid.clone());
                self.ask(
                    Pending::Password,
                    Question::CheckPassword(PasswordQuestion {
                        authcid,
                        password,
                        _ticket: Ticket,
                    }),
                );
            }
            ServerStep::NeedSecret { authcid } => {
                self.sasl_authcid = Some(authcid.clone());
                let mechanism = self
                    .sasl
                    .as_ref()
                    .map_or(Mechanism::ScramSha256, |x| x.mechanism());
                self.ask(
                    Pending::Secret,
                    Question::Secret(SecretQuestion {
                        authcid,
                        mechanism,
                        _ticket: Ticket,
                    }),
                );
            }
            ServerStep::Success { authcid } => {
                self.sasl = None;
                self.sasl_authcid = None;
                self.authenticated = Some(authcid.clone());
                self.events.push_back(Event::AuthAttempt {
                    authcid: Some(authcid),
                    ok: true,
                });
                self.reply(Row::AuthOk.reply());
            }
            ServerStep::Failure(f) => {
                self.sasl = None;
                let authcid = self.sasl_authcid.take();
                if f == sasl::Failure::InvalidCredentials {
                    self.events
                        .push_back(Event::AuthAttempt { authcid, ok: false });
                    self.reply(f.row().reply());
                } else {
                    self.error(f.row().reply());
                }
            }
        }
    }

    fn sasl_continue(&mut self, f: impl FnOnce(&mut ServerExchange) -> ServerStep) {
        let Some(mut x) = self.sasl.take() else {
            return;
        };
        let step = f(&mut x);
        self.sasl = Some(x);
        self.sasl_step(step);
    }

    /// A line of the AUTH exchange: RFC 4954 4 allows 12288 octets; longer
    /// ends the exchange with `500 5.5.6` (the rest of the line is dropped).
    fn read_sasl_line(&mut self, input: &mut Input) -> bool {
        const MAX_SASL_LINE: usize = 12288;
        let data = input.data();
        let lf = data.iter().position(|&b| b == b'\n');
        let too_long = match lf {
            Some(i) => i + 1 > MAX_SASL_LINE,
            None => data.len() >= MAX_SASL_LINE,
        };
        if too_long {
            match lf {
                Some(i) => input.consume(i + 1),
                None => {
                    let n = data.len();
                    input.consume(n);
                    self.discarding_line = true;
                }
            }
            self.sasl = None;
            self.sasl_authcid = None;
            self.error(Row::AuthLineTooLong.reply());
            return true;
        }
        let Some(lf) = lf else { return false };
        let end = if lf > 0 && data[lf - 1] == b'\r' {
            lf - 1
        } else {
            lf
        };
        let line = String::from_utf8_lossy(&data[..end]).into_owned();
        input.consume(lf + 1);
        self.last_command = "AUTH";
        self.sasl_continue(|x| x.respond(&line));
        true
    }

    fn read_data(&mut self, input: &mut Input) -> bool {
        let Reading::Data(decoder) = &mut self.body else {
            return false;
        };
        let data = input.data();
        if data.is_empty() {
            return false;
        }
        let mut out = crate::spare::take(data.len());
        let r = decoder.decode(data, &mut out);
        input.consume(r.consumed);
        if out.is_empty() {
            crate::spare::give(out);
        } else {
            self.received.feed(&out);
            self.events.push_back(Event::Body(out));
        }
        if r.ended {
            let (size, oversize, bare) = (
                decoder.size(),
                decoder.oversize(),
                decoder.bare_line_ending(),
            );
            self.body = Reading::None;
            self.finish_message(size, oversize, bare);
        }
        true
    }

    fn read_bdat(&mut self, input: &mut Input) -> bool {
        let Reading::Bdat {
            remaining,
            last,
            chunk,
        } = &mut self.body
        else {
            return false;
        };
        if *remaining > 0 {
            let data = input.data();
            if data.is_empty() {
                return false;
            }
            let n = (*remaining).min(data.len() as u64) as usize;
            let bytes = &data[..n];
            self.bdat_check.feed(bytes);
            let before = self.bdat_size;
            self.bdat_size = self.bdat_size.saturating_add(n as u64);
            if before < self.cfg.max_message_size {
                let keep = ((self.cfg.max_message_size - before) as usize).min(n);
                let mut body = crate::spare::take(keep);
                body.extend_from_slice(&bytes[..keep]);
                self.received.feed(&body);
                self.events.push_back(Event::Body(body));
            }
            *remaining -= n as u64;
            input.consume(n);
            if *remaining > 0 {
                return true;
            }
        }
        let (last, chunk) = (*last, *chunk);
        self.body = Reading::None;
        let oversize = self.bdat_size > self.cfg.max_message_size;
        if last {
            let bare = self.bdat_check.finish();
            self.finish_message(self.bdat_size, oversize, bare);
        } else if oversize {
            // RFC 3030 2 / RFC 1870: refuse as soon as the limit is crossed.
            self.events.push_back(Event::AbortMessage);
            self.tx = None;
            self.reply(Row::SizeExceeded.reply());
        } else {
            self.reply(Row::BdatReceived.reply_with(&chunk.to_string()));
        }
        true
    }

    fn read_discard(&mut self, input: &mut Input) -> bool {
        let Reading::Discard { remaining, .. } = &mut self.body else {
            return false;
        };
        let n = (*remaining).min(input.len() as u64);
        input.consume(n as usize);
        *remaining -= n;
        if *remaining > 0 {
            return n > 0;
        }
        if let Reading::Discard {
            then,
            protocol_error,
            ..
        } = std::mem::replace(&mut self.body, Reading::None)
        {
            if protocol_error {
                self.error(then);
            } else {
                self.reply(then);
            }
        }
        true
    }

    fn finish_message(&mut self, size: u64, oversize: bool, bare: bool) {
        if oversize {
            self.events.push_back(Event::AbortMessage);
            self.tx = None;
            self.reply(Row::SizeExceeded.reply());
        } else if bare {
            self.events.push_back(Event::AbortMessage);
            self.tx = None;
            self.reply(Row::BareLineEnding.reply());
        } else if self.received.count() > self.cfg.max_hops {
            // RFC 5321 6.3: too many Received fields is taken for a loop.
            self.events.push_back(Event::AbortMessage);
            self.tx = None;
            self.reply(Row::RoutingLoop.reply());
        } else {
            self.ask(
                Pending::Deliver,
                Question::Deliver(DeliverQuestion {
                    size,
                    _ticket: Ticket,
                }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_frees_a_drained_event_queue() {
        let mut s: Session = Session::new(SessionConfig::default());
        let mut input = Input::new();
        input.extend(b"EHLO client.test\r\nNOOP\r\n");
        let events: Vec<Event> = std::iter::from_fn(|| s.handle(&mut input)).collect();
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(
            s.events.capacity() > 0,
            "the replies went through the queue"
        );
        s.release();
        assert_eq!(s.events.capacity(), 0, "an idle session keeps no queue");
    }

    #[test]
    fn release_keeps_events_not_yet_handed_out() {
        let mut s: Session = Session::new(SessionConfig::default());
        let mut input = Input::new();
        input.extend(b"QUIT\r\n");
        assert!(
            matches!(s.handle(&mut input), Some(Event::Reply(r)) if r.to_wire().starts_with("221 "))
        );
        s.release();
        assert!(matches!(s.handle(&mut input), Some(Event::Close)));
        assert!(s.handle(&mut input).is_none());
    }

    /// Runs `s` on `lines` until it waits, answering recipients with
    /// `rcpt(to)`, everything else yes; returns the reply lines.
    fn drive(
        s: &mut Session<u32>,
        lines: &[u8],
        rcpt: impl Fn(&ForwardPath) -> Result<u32, Reply>,
    ) -> Vec<String> {
        let mut input = Input::new();
        input.extend(lines);
        let mut replies = Vec::new();
        while let Some(ev) = s.handle(&mut input) {
            match ev {
                Event::Reply(r) => replies.push(r.to_wire()),
                Event::Ask(Question::Sender(q)) => s.answer_sender(q, Ok(())),
                Event::Ask(Question::Recipient(q)) => {
                    let a = rcpt(&q.to);
                    s.answer_recipient(q, a);
                }
                Event::Ask(other) => panic!("unexpected {other:?}"),
                _ => {}
            }
        }
        replies
    }

    #[test]
    fn accepted_recipients_keep_their_data_in_order() {
        let mut s: Session<u32> = Session::new(SessionConfig::default());
        let replies = drive(
            &mut s,
            b"EHLO c.test\r\nMAIL FROM:<a@b.test> SIZE=10\r\n\
              RCPT TO:<one@b.test>\r\nRCPT TO:<no@b.test>\r\nRCPT TO:<Postmaster>\r\n",
            |to| match to {
                ForwardPath::Postmaster => Ok(3),
                ForwardPath::Mailbox(m) if m.local == "one" => Ok(1),
                ForwardPath::Mailbox(_) => Err(Row::NoSuchUser.reply()),
            },
        );
        assert_eq!(replies.len(), 5, "{replies:?}");
        let tx = s.transaction().expect("a transaction");
        assert_eq!(tx.params.size, Some(10));
        let got: Vec<(String, u32)> = tx
            .rcpts
            .iter()
            .map(|r| (r.to.to_string(), r.data))
            .collect();
        assert_eq!(
            got,
            [
                ("<one@b.test>".to_string(), 1),
                ("<Postmaster>".to_string(), 3)
            ]
        );
    }

    #[test]
    fn mail_argument_errors_wait_for_order_checks() {
        // RFC 5321 4.1.4: out of sequence is said before what is wrong with the arguments.
        let mut s: Session<u32> = Session::new(SessionConfig::default());
        let replies = drive(&mut s, b"MAIL FROM:<bad\r\nRCPT TO:<bad\r\n", |_| Ok(0));
        assert!(replies.iter().all(|r| r.starts_with("503 ")), "{replies:?}");
        assert_eq!(s.last_command(), "RCPT");
    }

    #[test]
    fn ehlo_never_advertises_size_0_which_means_no_limit() {
        // RFC 1870 4: `SIZE 0` is "no fixed maximum".
        let mut s: Session<u32> = Session::new(SessionConfig {
            max_message_size: 0,
            ..SessionConfig::default()
        });
        let replies = drive(&mut s, b"EHLO c.test\r\n", |_| Ok(0));
        assert!(replies[0].contains("250-SIZE\r\n"), "{replies:?}");
        let mut s: Session<u32> = Session::new(SessionConfig {
            max_message_size: 10_240,
            ..SessionConfig::default()
        });
        let replies = drive(&mut s, b"EHLO c.test\r\n", |_| Ok(0));
        assert!(replies[0].contains("250-SIZE 10240\r\n"), "{replies:?}");
    }

    /// Runs a DATA transaction whose message arrives in `reads`, with
    /// `max_hops`; returns the replies to the message.
    fn data_in_reads(max_hops: u32, reads: &[&[u8]]) -> Vec<String> {
        let mut s: Session<u32> = Session::new(SessionConfig {
            max_hops,
            ..SessionConfig::default()
        });
        let commands: &[u8] =
            b"EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@b.test>\r\nDATA\r\n";
        let mut input = Input::new();
        let mut replies = Vec::new();
        for (i, read) in std::iter::once(&commands).chain(reads).enumerate() {
            input.extend(read);
            while let Some(ev) = s.handle(&mut input) {
                match ev {
                    Event::Reply(r) if i > 0 => replies.push(r.to_wire()),
                    Event::Ask(Question::Sender(q)) => s.answer_sender(q, Ok(())),
                    Event::Ask(Question::Recipient(q)) => s.answer_recipient(q, Ok(0)),
                    Event::Ask(Question::BeginMessage(q)) => s.answer_begin(q, Ok(())),
                    Event::Ask(Question::Deliver(q)) => s.answer_deliver(q, Ok("Q1".into())),
                    _ => {}
                }
            }
        }
        replies
    }

    #[test]
    fn received_fields_above_max_hops_refuse_the_message_at_end_of_data() {
        let two = b"Received: from a\r\nReceived: from b\r\n\r\nbody\r\n.\r\n";
        let at_limit = data_in_reads(2, &[two]);
        assert_eq!(
            at_limit.last().map(String::as_str),
            Some("250 2.0.0 ok: queued as Q1\r\n")
        );
        let above = data_in_reads(1, &[two]);
        assert_eq!(above.last(), Some(&Row::RoutingLoop.reply().to_wire()));
    }

    #[test]
    fn a_received_field_split_across_reads_counts_once() {
        let replies = data_in_reads(
            1,
            &[
                b"Received: from a\r\nRece",
                b"ived: from b\r\n\r\n",
                b"Received: in the body\r\n.\r\n",
            ],
        );
        assert_eq!(replies.last(), Some(&Row::RoutingLoop.reply().to_wire()));
        let replies = data_in_reads(2, &[b"Received: from a\r\nRece", b"ived: b\r\n\r\n.\r\n"]);
        assert!(
            replies.last().is_some_and(|r| r.starts_with("250 ")),
            "{replies:?}"
        );
    }

    #[test]
    fn password_question_debug_hides_the_password() {
        let q = PasswordQuestion {
            authcid: "alice".into(),
            password: "hunter2".into(),
            _ticket: Ticket,
        };
        let shown = format!("{q:?}");
        assert!(
            shown.contains("alice") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
