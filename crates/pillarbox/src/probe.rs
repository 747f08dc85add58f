//! `pillarbox probe`: a diagnostic SMTP client in the spirit of swaks.
//!
//! It connects (plain, STARTTLS, implicit TLS), says EHLO, shows the
//! capabilities, the TLS version, cipher and certificate chain, optionally
//! authenticates and sends a test message, and prints the transcript with
//! every server reply annotated from the registry in `pillarbox_codes`: its
//! class, what it means here, what to do. `--check` adds a short health
//! report for a server the user operates. The exit status tells success, a
//! transient failure (4xx) and a permanent one (5xx) apart.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pillarbox_client::{
    parse_target, Capabilities, Client, ClientConfig, ClientError, Direction, Envelope, Mechanism,
    ReplyLimits, ReplyRecord, Security, TlsInfo, Transfer, TrustAnchors, Verification,
};
use pillarbox_codes::registry::Explanation;
use pillarbox_codes::{check, Lang, Reply};
use pillarbox_server::received::Rfc5322Date;

/// Exit status: success (every step the probe was asked for was accepted).
pub const EXIT_OK: u8 = 0;
/// Exit status: `--check` found a failure (and nothing else failed).
pub const EXIT_CHECK_FAILED: u8 = 1;
/// Exit status: usage error, or no usable connection (refused, timeout,
/// TLS failure, a reply that breaks RFC 5321).
pub const EXIT_USAGE: u8 = 2;
/// Exit status: a step was refused permanently (5xx), sysexits EX_UNAVAILABLE.
pub const EXIT_PERMANENT: u8 = 69;
/// Exit status: a step was refused for now (4xx), sysexits EX_TEMPFAIL.
pub const EXIT_TRANSIENT: u8 = 75;

const EXIT_HELP: &str = "\
Exit status:
   0  every step asked for was accepted
   1  --check found a failure (and no step was refused)
   2  usage error, or no usable connection (refused, timeout, TLS failure,
      a malformed reply)
  69  a step was refused permanently (5xx reply; EX_UNAVAILABLE)
  75  a step was refused for now (4xx reply; EX_TEMPFAIL): try again later

The password is never taken from the command line: --password-env names an
environment variable, otherwise it is asked for on the terminal.";

/// Most recipients one probe sends to (RFC 5321 4.5.3.1.8 asks servers to
/// take at least 100).
const MAX_RECIPIENTS: usize = 100;

/// Connect to an SMTP server, show what it offers and how it answers.
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = EXIT_HELP)]
pub struct ProbeArgs {
    /// The server: HOST, HOST:PORT or [IPv6]:PORT (port 25 by default).
    #[arg(value_name = "HOST[:PORT]")]
    pub target: String,
    /// Upgrade the connection with STARTTLS (RFC 3207) after the first EHLO.
    #[arg(long, conflicts_with = "tls")]
    pub starttls: bool,
    /// TLS from the first byte (implicit TLS, RFC 8314; port 465).
    #[arg(long)]
    pub tls: bool,
    /// The name to send with EHLO (default: this host's name).
    #[arg(long, value_name = "NAME")]
    pub ehlo: Option<String>,
    /// Authenticate with this SASL mechanism: PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-256.
    #[arg(long, value_name = "MECH", requires = "user")]
    pub auth: Option<String>,
    /// The user name to authenticate as.
    #[arg(long, value_name = "USER", requires = "auth")]
    pub user: Option<String>,
    /// Read the password from this environment variable (else: a prompt).
    #[arg(long, value_name = "VAR", requires = "auth")]
    pub password_env: Option<String>,
    /// Send a test message from this address (default: probe@<EHLO name>).
    #[arg(long, value_name = "ADDRESS")]
    pub from: Option<String>,
    /// Send a test message to this address (repeat for more recipients).
    #[arg(long, value_name = "ADDRESS")]
    pub to: Vec<String>,
    /// The body of the test message (headers are added).
    #[arg(long, value_name = "TEXT", conflicts_with = "file")]
    pub body: Option<String>,
    /// Send this file as the whole message (headers included; LF becomes CRLF).
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Send MAIL, RCPT and DATA in one write when PIPELINING is offered (RFC 2920).
    #[arg(long)]
    pub pipeline: bool,
    /// Send the message with BDAT chunks (RFC 3030) instead of DATA.
    #[arg(long)]
    pub bdat: bool,
    /// The size of each BDAT chunk, in octets.
    #[arg(long, value_name = "OCTETS", default_value_t = 65536)]
    pub chunk_size: usize,
    /// Run a short health report: open relay, AUTH over plaintext,
    /// STARTTLS, HELP, SIZE. Only against a server you operate.
    #[arg(long)]
    pub check: bool,
    /// Print the transcript, replies and findings as JSON.
    #[arg(long)]
    pub json: bool,
    /// Seconds to wait for the connection and for each reply.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub timeout: u64,
    /// Also trust the certificates in this PEM file (repeatable).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Vec<PathBuf>,
    /// The language of the annotations: en, zh, id, pt, ja, tr.
    #[arg(long, value_name = "LANG", default_value = "en")]
    pub lang: String,
}

/// Runs the probe and returns its exit status.
pub fn run(args: &ProbeArgs) -> ExitCode {
    let plan = match Plan::from_args(args) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("pillarbox probe: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pillarbox probe: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let report = runtime.block_on(probe(&plan));
    let code = report.exit_code();
    if plan.json {
        println!("{}", report.to_json(&plan, code));
    } else {
        print!("{}", report.to_text(&plan, code));
    }
    if let Some(e) = &report.error {
        eprintln!("pillarbox probe: {e}");
    }
    ExitCode::from(code)
}

/// Everything the probe will do, checked before connecting.
struct Plan {
    host: String,
    port: u16,
    security: Security,
    starttls: bool,
    ehlo: String,
    auth: Option<(Mechanism, String, String)>,
    message: Option<(Envelope, Vec<u8>)>,
    transfer: Transfer,
    pipeline: bool,
    check: bool,
    json: bool,
    lang: Lang,
    config: ClientConfig,
}

impl Plan {
    fn from_args(args: &ProbeArgs) -> Result<Plan, String> {
        let (host, port) = parse_target(&args.target, Some(25)).map_err(|e| e.to_string())?;
        let lang = Lang::from_tag(&args.lang).ok_or_else(|| {
            format!(
                "unknown language {:?}: use en, zh, id, pt, ja or tr",
                args.lang
            )
        })?;
        let ehlo = args.ehlo.clone().unwrap_or_else(local_hostname);
        if ehlo.is_empty() || ehlo.contains(char::is_whitespace) {
            return Err(format!("--ehlo {ehlo:?} is not a domain name"));
        }
        let auth = match &args.auth {
            None => None,
            Some(name) => {
                let mechanism = Mechanism::from_name(name).ok_or_else(|| {
                    format!(
                        "unknown mechanism {name:?}: use PLAIN, LOGIN, CRAM-MD5 or SCRAM-SHA-256"
                    )
                })?;
                let user = args.user.clone().ok_or("--auth needs --user")?;
                let password = match &args.password_env {
                    Some(var) => std::env::var(var)
                        .map_err(|_| format!("--password-env: ${var} is not set (or not UTF-8)"))?,
                    None => prompt_password(&format!("password for {user}: "))?,
                };
                Some((mechanism, user, password))
            }
        };
        if args.to.len() > MAX_RECIPIENTS {
            return Err(format!("at most {MAX_RECIPIENTS} --to addresses"));
        }
        let wants_message = !args.to.is_empty();
        if !wants_message && (args.from.is_some() || args.body.is_some() || args.file.is_some()) {
            return Err("--from, --body and --file need at least one --to".into());
        }
        let message = if wants_message {
            let from = args.from.clone().unwrap_or_else(|| format!("probe@{ehlo}"));
            let content = match (&args.file, &args.body) {
                (Some(path), _) => {
                    let bytes = std::fs::read(path)
                        .map_err(|e| format!("--file {}: {e}", path.display()))?;
                    pillarbox_client::dot_stuffing::to_crlf(&bytes)
                }
                (None, body) => {
                    let body = body
                        .as_deref()
                        .unwrap_or("This is a test message sent by pillarbox probe.");
                    test_message(&from, &args.to, &ehlo, body)
                }
            };
            Some((
                Envelope {
                    from,
                    to: args.to.clone(),
                    mail_params: Vec::new(),
                },
                content,
            ))
        } else {
            None
        };
        if args.chunk_size == 0 {
            return Err("--chunk-size must be at least 1".into());
        }
        let wait = Duration::from_secs(args.timeout.max(1));
        let config = ClientConfig {
            connect_timeout: wait,
            command_timeout: wait,
            // The end of data may take the server longer (RFC 5321 4.5.3.2.6).
            data_timeout: wait * 4,
            limits: ReplyLimits::default(),
            trust: TrustAnchors {
                system: true,
                files: args.ca_file.clone(),
            },
        };
        Ok(Plan {
            host,
            port,
            security: if args.tls {
                Security::ImplicitTls
            } else {
                Security::Plain
            },
            starttls: args.starttls,
            ehlo,
            auth,
            message,
            transfer: if args.bdat {
                Transfer::Bdat {
                    chunk_size: args.chunk_size,
                }
            } else {
                Transfer::Data
            },
            pipeline: args.pipeline,
            check: args.check,
            json: args.json,
            lang,
            config,
        })
    }

    fn mode(&self) -> &'static str {
        match (self.security, self.starttls) {
            (Security::ImplicitTls, _) => "tls",
            (Security::Plain, true) => "starttls",
            (Security::Plain, false) => "plain",
        }
    }
}

/// This host's name, for EHLO; `localhost` when it has none.
fn local_hostname() -> String {
    pillarbox_server::config::system_hostname()
}

/// Asks for the password on the terminal with echo off. Without a terminal
/// (CI, a pipe) it refuses: use --password-env.
fn prompt_password(prompt: &str) -> Result<String, String> {
    crate::password_prompt::ask_hidden(prompt)
        .map(|answer| answer.text)
        .map_err(|e| {
            format!(
                "cannot ask for the password ({}): use --password-env VAR",
                e.io()
            )
        })
}

/// A small RFC 5322 message with a Date and Message-ID, CRLF line ends.
fn test_message(from: &str, to: &[String], ehlo: &str, body: &str) -> Vec<u8> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut out = String::new();
    let _ = write!(out, "Date: {}\r\n", Rfc5322Date(UNIX_EPOCH + now));
    let _ = write!(out, "From: <{from}>\r\n");
    let _ = write!(
        out,
        "To: {}\r\n",
        to.iter()
            .map(|t| format!("<{t}>"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    out.push_str("Subject: pillarbox probe test\r\n");
    let _ = write!(
        out,
        "Message-ID: <probe.{}.{}.{}@{ehlo}>\r\n",
        now.as_secs(),
        now.subsec_nanos(),
        std::process::id()
    );
    out.push_str("\r\n");
    out.push_str(body);
    let mut bytes = pillarbox_client::dot_stuffing::to_crlf(out.as_bytes());
    if !bytes.ends_with(b"\r\n") {
        bytes.extend_from_slice(b"\r\n");
    }
    bytes
}

/// How a health check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    Pass,
    Warn,
    Fail,
}

/// One line of the `--check` report.
#[derive(Clone, Debug, serde::Serialize)]
struct CheckFinding {
    check: &'static str,
    status: Status,
    why: String,
}

/// What a run found.
struct Report {
    transcript: Vec<pillarbox_client::Entry>,
    replies: Vec<ReplyRecord>,
    /// Indices into `replies` whose outcome decides the exit status.
    judged: Vec<usize>,
    capabilities_plain: Option<Capabilities>,
    capabilities: Option<Capabilities>,
    tls: Option<TlsInfo>,
    findings: Vec<CheckFinding>,
    error: Option<String>,
    delivered: Option<bool>,
}

impl Report {
    fn exit_code(&self) -> u8 {
        if self.error.is_some() {
            return EXIT_USAGE;
        }
        let classes: Vec<u16> = self
            .judged
            .iter()
            .filter_map(|&i| self.replies.get(i))
            .map(|r| r.reply.code.get() / 100)
            .collect();
        if classes.contains(&5) {
            EXIT_PERMANENT
        } else if classes.contains(&4) {
            EXIT_TRANSIENT
        } else if self.findings.iter().any(|f| f.status == Status::Fail) {
            EXIT_CHECK_FAILED
        } else {
            EXIT_OK
        }
    }

    fn outcome_name(code: u8) -> &'static str {
        match code {
            EXIT_OK => "success",
            EXIT_CHECK_FAILED => "check_failed",
            EXIT_PERMANENT => "permanent_failure",
            EXIT_TRANSIENT => "transient_failure",
            _ => "error",
        }
    }
}

/// The session as the plan asks, with every step bounded.
async fn probe(plan: &Plan) -> Report {
    let mut report = Report {
        transcript: Vec::new(),
        replies: Vec::new(),
        judged: Vec::new(),
        capabilities_plain: None,
        capabilities: None,
        tls: None,
        findings: Vec::new(),
        error: None,
        delivered: None,
    };
    let mut client =
        match Client::connect(&plan.host, plan.port, plan.security, plan.config.clone()).await {
            Ok(c) => c,
            Err(e) => {
                report.error = Some(e.to_string());
                return report;
            }
        };
    let result = session(plan, &mut client, &mut report).await;
    if let Err(e) = result {
        report.error = Some(e.to_string());
    }
    report.transcript = client.transcript().entries().to_vec();
    report.replies = client.replies().to_vec();
    report.capabilities = client.capabilities().cloned();
    report.tls = client.tls().cloned();
    if let Some(tls) = &report.tls {
        if plan.check {
            certificate_findings(tls, &mut report.findings);
        }
    }
    report
}

/// Marks the latest reply as one that decides the exit status.
fn judge(client: &Client, report: &mut Report) {
    if let Some(last) = client.replies().len().checked_sub(1) {
        report.judged.push(last);
    }
}

fn is(reply: &Reply, class: u16) -> bool {
    reply.code.get() / 100 == class
}

async fn session(plan: &Plan, client: &mut Client, report: &mut Report) -> Result<(), ClientError> {
    let greeting = client.read_greeting().await?;
    judge(client, report);
    if !is(&greeting, 2) {
        // RFC 5321 3.1: after a 554 greeting the client sends QUIT.
        return quit(client).await;
    }
    if !hello(plan, client, report).await? {
        return quit(client).await;
    }
    if !client.is_tls() {
        report.capabilities_plain = client.capabilities().cloned();
    }
    let advertised = client.capabilities().is_some_and(|c| c.starttls());
    let want_tls = plan.starttls || (plan.check && advertised && !client.is_tls());
    if plan.check {
        starttls_finding_before(plan, client, advertised, &mut report.findings);
        auth_plaintext_finding(plan, client, &mut report.findings);
    }
    if want_tls {
        if !advertised {
            client.note("STARTTLS is not advertised; trying it anyway");
        }
        let reply = match client.starttls().await {
            Ok(reply) => reply,
            Err(e) => {
                if plan.check {
                    push(
                        &mut report.findings,
                        "starttls",
                        Status::Fail,
                        format!("STARTTLS was accepted but TLS failed: {e}"),
                    );
                }
                return Err(e);
            }
        };
        if plan.starttls {
            judge(client, report);
        }
        if reply.code.get() != 220 {
            if plan.check {
                push(
                    &mut report.findings,
                    "starttls",
                    Status::Fail,
                    format!("STARTTLS refused: {}", one_line(&reply)),
                );
            }
            if plan.starttls {
                return quit(client).await;
            }
        } else {
            if plan.check {
                let info = client
                    .tls()
                    .map(|t| format!("{} {}", t.version, t.cipher_suite));
                push(
                    &mut report.findings,
                    "starttls",
                    Status::Pass,
                    format!("STARTTLS works: {}", info.unwrap_or_default()),
                );
            }
            // RFC 3207 4.2: the server forgets what the client said; EHLO again.
            if !hello(plan, client, report).await? {
                return quit(client).await;
            }
        }
    }
    if plan.check {
        health_checks(plan, client, report).await?;
    }
    if let Some((mechanism, user, password)) = &plan.auth {
        if !client.capabilities().is_some_and(|c| c.offers(*mechanism)) {
            client.note(format!(
                "AUTH {} is not advertised; trying it anyway",
                mechanism.name()
            ));
        }
        let reply = client.auth(*mechanism, user, password).await;
        match reply {
            Ok(reply) => {
                judge(client, report);
                if !is(&reply, 2) {
                    return quit(client).await;
                }
            }
            Err(ClientError::Sasl { mechanism, source }) => {
                // The exchange itself failed (e.g. a SCRAM server that did not
                // prove itself): a permanent failure of this step.
                client.note(format!(
                    "AUTH {mechanism} failed on the client side: {source}"
                ));
                report.error = Some(format!("AUTH {mechanism}: {source}"));
                return quit(client).await;
            }
            Err(e) => return Err(e),
        }
    }
    if let Some((envelope, content)) = &plan.message {
        if plan.pipeline && !client.capabilities().is_some_and(|c| c.pipelining()) {
            client.note("PIPELINING is not advertised: sending one command at a time");
        }
        if matches!(plan.transfer, Transfer::Bdat { .. })
            && !client.capabilities().is_some_and(|c| c.chunking())
        {
            client.note("CHUNKING is not advertised; sending BDAT anyway");
        }
        let first = client.replies().len();
        let outcome = client
            .send_mail(envelope, content, plan.transfer, plan.pipeline)
            .await?;
        // Every reply of the transaction counts: a refused recipient is a
        // failure of the probe even when another one got the message.
        report.judged.extend(first..client.replies().len());
        report.delivered = Some(outcome.delivered());
        if !outcome.delivered() {
            let _ = client.rset().await;
        }
    }
    quit(client).await
}

async fn quit(client: &mut Client) -> Result<(), ClientError> {
    match client.quit().await {
        // A server that closes without answering QUIT has still ended the
        // session; the transcript shows it.
        Ok(_) | Err(ClientError::Closed { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// EHLO, and HELO if EHLO is refused (RFC 5321 4.1.1.1, 3.2). True when
/// the server accepted one of them.
async fn hello(plan: &Plan, client: &mut Client, report: &mut Report) -> Result<bool, ClientError> {
    let reply = client.ehlo(&plan.ehlo).await?;
    if is(&reply, 5) && !client.is_tls() && reply.code.get() != 554 {
        client.note("EHLO refused; trying HELO (no extensions)");
        let helo = client.helo(&plan.ehlo).await?;
        judge(client, report);
        return Ok(is(&helo, 2));
    }
    judge(client, report);
    Ok(is(&reply, 2))
}

fn push(findings: &mut Vec<CheckFinding>, check: &'static str, status: Status, why: String) {
    findings.push(CheckFinding { check, status, why });
}

fn one_line(reply: &Reply) -> String {
    reply
        .to_string()
        .lines()
        .last()
        .unwrap_or_default()
        .to_string()
}

/// STARTTLS present (before it is tried).
fn starttls_finding_before(
    plan: &Plan,
    client: &Client,
    advertised: bool,
    findings: &mut Vec<CheckFinding>,
) {
    if plan.security == Security::ImplicitTls {
        push(
            findings,
            "starttls",
            Status::Pass,
            "implicit TLS: the whole session is encrypted (RFC 8314)".into(),
        );
    } else if !advertised && !client.is_tls() {
        push(
            findings,
            "starttls",
            Status::Fail,
            "STARTTLS is not advertised: mail to this server crosses the network in clear (RFC 3207)".into(),
        );
    }
}

/// AUTH offered before TLS.
fn auth_plaintext_finding(plan: &Plan, client: &Client, findings: &mut Vec<CheckFinding>) {
    if plan.security == Security::ImplicitTls || client.is_tls() {
        push(
            findings,
            "auth_plaintext",
            Status::Pass,
            "no plaintext phase: AUTH can only happen under TLS".into(),
        );
        return;
    }
    let mechs = client
        .capabilities()
        .map(|c| c.auth_mechanisms())
        .unwrap_or_default();
    if mechs.is_empty() {
        push(
            findings,
            "auth_plaintext",
            Status::Pass,
            "AUTH is not offered before TLS".into(),
        );
        return;
    }
    let cleartext: Vec<&String> = mechs
        .iter()
        .filter(|m| matches!(m.as_str(), "PLAIN" | "LOGIN"))
        .collect();
    if cleartext.is_empty() {
        push(
            findings,
            "auth_plaintext",
            Status::Warn,
            format!(
                "AUTH {} is offered before TLS: the password does not cross in clear, but the user name does and the exchange can be recorded for offline guessing",
                mechs.join(" ")
            ),
        );
    } else {
        push(
            findings,
            "auth_plaintext",
            Status::Fail,
            format!(
                "AUTH {} is offered before TLS: passwords would cross the network in clear (RFC 4954 4, RFC 4616 6; advertise AUTH only under TLS)",
                mechs.join(" ")
            ),
        );
    }
}

/// HELP, SIZE and the open relay test, before any AUTH.
async fn health_checks(
    _plan: &Plan,
    client: &mut Client,
    report: &mut Report,
) -> Result<(), ClientError> {
    let help = client.help(None).await?;
    match help.code.get() {
        211 | 214 => push(&mut report.findings, "help", Status::Pass, format!("HELP answered with {}", help.code)),
        _ => push(
            &mut report.findings,
            "help",
            Status::Warn,
            format!("HELP not answered ({}): people debugging mail cannot ask the server what it supports", one_line(&help)),
        ),
    }
    match client.capabilities().and_then(|c| c.size()) {
        Some(Some(n)) => push(&mut report.findings, "size", Status::Pass, format!("SIZE {n} advertised: clients learn the limit before sending (RFC 1870)")),
        Some(None) => push(&mut report.findings, "size", Status::Pass, "SIZE advertised without a fixed maximum (RFC 1870)".into()),
        None => push(
            &mut report.findings,
            "size",
            Status::Warn,
            "SIZE not advertised: a client learns the size limit only after sending the whole message (RFC 1870)".into(),
        ),
    }
    // Open relay: an outside sender to an outside domain must be refused.
    client.note("open relay test: outside sender to an outside domain (never followed by DATA)");
    let mail = client.mail("probe@relay-sender.invalid", &[]).await?;
    if !is(&mail, 2) {
        push(
            &mut report.findings,
            "open_relay",
            Status::Warn,
            format!(
                "not tested: the outside sender was refused ({})",
                one_line(&mail)
            ),
        );
        let _ = client.rset().await?;
        return Ok(());
    }
    let rcpt = client.rcpt("probe@relay-test.invalid").await?;
    let local = client.local_addr().ip();
    let (status, why) = match rcpt.code.get() / 100 {
        5 => (Status::Pass, format!("relaying refused ({})", one_line(&rcpt))),
        4 => (
            Status::Pass,
            format!("relaying refused for now ({}); a lasting refusal would be a 5xx", one_line(&rcpt)),
        ),
        _ if local.is_loopback() => (
            Status::Warn,
            format!(
                "relaying to an outside domain was accepted from {local}, a loopback address that servers usually trust (Postfix mynetworks, Pillarbox trusted_networks); run --check from an outside address to test what the Internet sees"
            ),
        ),
        _ => (
            Status::Fail,
            format!(
                "OPEN RELAY: a message from an outside sender to an outside domain was accepted from {local} without authentication ({}); restrict relaying to authenticated users and trusted networks",
                one_line(&rcpt)
            ),
        ),
    };
    push(&mut report.findings, "open_relay", status, why);
    let _ = client.rset().await?;
    Ok(())
}

fn certificate_findings(tls: &TlsInfo, findings: &mut Vec<CheckFinding>) {
    match &tls.verification {
        Verification::Verified => push(
            findings,
            "certificate",
            Status::Pass,
            format!("the certificate chain verifies for {}", tls.server_name),
        ),
        Verification::Failed(why) => push(
            findings,
            "certificate",
            Status::Warn,
            format!(
                "the certificate does not verify for {} ({why}); senders that require valid TLS (MTA-STS, DANE, most submission clients) will refuse it",
                tls.server_name
            ),
        ),
        Verification::NotChecked(why) => {
            push(findings, "certificate", Status::Warn, format!("the certificate was not checked: {why}"))
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if let Some(leaf) = tls.certificates.first().filter(|c| !c.not_after.is_empty()) {
        let days = leaf.days_left(now);
        if leaf.expired_at(now) {
            push(
                findings,
                "certificate_expiry",
                Status::Fail,
                format!("the certificate expired on {}", leaf.not_after),
            );
        } else if days < 14 {
            push(
                findings,
                "certificate_expiry",
                Status::Warn,
                format!(
                    "the certificate expires in {days} days ({})",
                    leaf.not_after
                ),
            );
        } else {
            push(
                findings,
                "certificate_expiry",
                Status::Pass,
                format!(
                    "the certificate is valid until {} ({days} days)",
                    leaf.not_after
                ),
            );
        }
    }
}

/// What the registry says about one reply, in the plan's language.
struct Annotation {
    class: String,
    title: String,
    meaning: String,
    action: String,
    findings: Vec<String>,
}

fn annotate(record: &ReplyRecord, lang: Lang) -> Annotation {
    let reply = &record.reply;
    let code = reply.code.get();
    let labels = lang.labels();
    let digit = (code / 100) as u8;
    let class = format!("{}xx {}", digit, labels.class_name(digit));
    let basic = Explanation::basic(code, lang);
    let enhanced = reply.enhanced.and_then(|e| Explanation::enhanced(e, lang));
    let title = match (&basic, &enhanced) {
        (Some(b), Some(e)) => format!("{} / {}", b.title, e.title),
        (Some(b), None) => b.title.to_string(),
        (None, Some(e)) => e.title.to_string(),
        (None, None) => labels.class_meaning(digit).to_string(),
    };
    // The most specific entry says what it means and what to do; an
    // enhanced code with detail 0 (`2.0.0`, `2.1.0`: "other or undefined")
    // says less than the basic code.
    let specific = match (&enhanced, reply.enhanced) {
        (Some(e), Some(code)) if code.detail != 0 || basic.is_none() => Some(e),
        _ => basic.as_ref().or(enhanced.as_ref()),
    };
    let context = match &record.answered {
        Some(cmd) => format!("[{}] ", cmd_name(cmd)),
        None => format!("[{}] ", labels.stage_names[0]),
    };
    let meaning = match specific {
        Some(e) => format!("{context}{}", e.description),
        None => format!("{context}{}", labels.class_meaning(digit)),
    };
    let action = match specific {
        Some(e) if digit == 5 => format!("{} {}", e.retry.how, e.fix.sender),
        Some(e) => e.retry.how.to_string(),
        None => labels.class_meaning(digit).to_string(),
    };
    let text = reply.lines.join(" ");
    let findings = check(code, reply.enhanced, &text)
        .iter()
        .map(|f| format!("{}: {}", f.severity.name(lang), f.message(lang)))
        .collect();
    Annotation {
        class,
        title,
        meaning,
        action,
        findings,
    }
}

/// `MAIL FROM:<a>` -> `MAIL`, `<end of data>` as is.
fn cmd_name(cmd: &str) -> String {
    if cmd.starts_with('<') {
        return cmd.to_string();
    }
    let word = cmd.split([' ', ':']).next().unwrap_or(cmd);
    if word.eq_ignore_ascii_case("BDAT") {
        return cmd.to_string();
    }
    word.to_ascii_uppercase()
}

impl Report {
    fn to_text(&self, plan: &Plan, code: u8) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Transcript of {}:{} ({}); time since connect, ~ = under TLS",
            plan.host,
            plan.port,
            plan.mode()
        );
        let entries = &self.transcript;
        for (i, e) in entries.iter().enumerate() {
            let _ = writeln!(out, "{}", e.to_text());
            let ends_reply = e.direction == Direction::Received
                && e.reply.is_some()
                && entries.get(i + 1).map(|n| n.reply) != Some(e.reply);
            if let Some(record) = e
                .reply
                .filter(|_| ends_reply)
                .and_then(|r| self.replies.get(r))
            {
                let a = annotate(record, plan.lang);
                let pad = "              ";
                let _ = writeln!(out, "{pad}= {} | {}", a.class, a.title);
                let _ = writeln!(out, "{pad}  means: {}", a.meaning);
                let _ = writeln!(out, "{pad}  do: {}", a.action);
                for f in &a.findings {
                    let _ = writeln!(out, "{pad}  ! {f}");
                }
            }
        }
        let caps = |title: &str, c: &Capabilities, out: &mut String| {
            let _ = writeln!(out, "\n{title} ({}):", c.server_name);
            if c.extensions.is_empty() {
                let _ = writeln!(out, "  (none)");
            }
            for ext in &c.extensions {
                let _ = writeln!(
                    out,
                    "  {}",
                    format!("{} {}", ext.keyword, ext.params.join(" ")).trim_end()
                );
            }
        };
        match (&self.capabilities_plain, &self.capabilities) {
            (Some(p), Some(t)) if self.tls.is_some() => {
                caps("Capabilities before TLS", p, &mut out);
                caps("Capabilities under TLS", t, &mut out);
            }
            (_, Some(c)) => caps("Capabilities", c, &mut out),
            (Some(p), None) => caps("Capabilities", p, &mut out),
            (None, None) => {}
        }
        if let Some(tls) = &self.tls {
            let _ = writeln!(out, "\nTLS: {} {}", tls.version, tls.cipher_suite);
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            for (i, c) in tls.certificates.iter().enumerate() {
                let _ = writeln!(out, "  certificate {i}: subject {}", c.subject);
                let _ = writeln!(out, "                 issuer  {}", c.issuer);
                if !c.not_after.is_empty() {
                    let state = if c.expired_at(now) {
                        "EXPIRED".to_string()
                    } else {
                        format!("{} days left", c.days_left(now))
                    };
                    let _ = writeln!(out, "                 expires {} ({state})", c.not_after);
                }
                if !c.dns_names.is_empty() {
                    let _ = writeln!(out, "                 names   {}", c.dns_names.join(", "));
                }
            }
            let verdict = match &tls.verification {
                Verification::Verified => "verifies".to_string(),
                Verification::Failed(why) => format!("does NOT verify: {why}"),
                Verification::NotChecked(why) => format!("not checked: {why}"),
            };
            let _ = writeln!(out, "  chain for {}: {verdict}", tls.server_name);
            let _ = writeln!(out, "  trust anchors: {}", tls.trust_anchors);
        }
        if !self.findings.is_empty() {
            let _ = writeln!(out, "\nHealth check:");
            for f in &self.findings {
                let status = match f.status {
                    Status::Pass => "PASS",
                    Status::Warn => "WARN",
                    Status::Fail => "FAIL",
                };
                let _ = writeln!(out, "  {status} {:<18} {}", f.check, f.why);
            }
        }
        let _ = writeln!(
            out,
            "\nResult: {} (exit {code})",
            Self::outcome_name(code).replace('_', " ")
        );
        if let Some(e) = &self.error {
            let _ = writeln!(out, "Error: {e}");
        }
        out
    }

    fn to_json(&self, plan: &Plan, code: u8) -> String {
        let replies: Vec<serde_json::Value> = self
            .replies
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let a = annotate(r, plan.lang);
                serde_json::json!({
                    "index": i,
                    "answered": r.answered,
                    "tls": r.tls,
                    "code": r.reply.code.get(),
                    "enhanced": r.reply.enhanced.map(|e| e.to_string()),
                    "lines": r.reply.lines,
                    "counts_for_exit": self.judged.contains(&i),
                    "annotation": {
                        "class": a.class,
                        "title": a.title,
                        "meaning": a.meaning,
                        "action": a.action,
                        "findings": a.findings,
                    },
                })
            })
            .collect();
        let value = serde_json::json!({
            "target": { "host": plan.host, "port": plan.port, "mode": plan.mode() },
            "outcome": Self::outcome_name(code),
            "exit_code": code,
            "error": self.error,
            "delivered": self.delivered,
            "capabilities_before_tls": self.capabilities_plain,
            "capabilities": self.capabilities,
            "tls": self.tls,
            "transcript": self.transcript,
            "replies": replies,
            "findings": self.findings,
        });
        serde_json::to_string_pretty(&value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_message_has_headers_and_crlf() {
        let m = test_message("a@x.test", &["b@y.test".into()], "x.test", "hi\nthere");
        let text = String::from_utf8(m).unwrap();
        assert!(text.contains("From: <a@x.test>\r\nTo: <b@y.test>\r\n"));
        assert!(text.ends_with("\r\n\r\nhi\r\nthere\r\n"));
    }
}
