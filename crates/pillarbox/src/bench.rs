//! `pillarbox bench`: an SMTP load generator in the spirit of Postfix's
//! `smtp-source`, and an idle-connection cost meter.
//!
//! Load mode: `--sessions` tasks share a budget of `--messages` (and an
//! optional `--duration`); each claims the next message, sends it (one per
//! connection, or many with `--reuse`) and records the accept latency: the
//! time from writing the final `.` (or the `BDAT ... LAST` chunk) to reading
//! the reply. At the end: messages/s, bytes/s, latency percentiles and every
//! non-2xx reply counted by code.
//!
//! Idle mode (`--idle N`): opens N connections, completes EHLO on each,
//! holds them and reports the server's RSS growth per connection from
//! `/proc/PID/status`.
//!
//! The client must not be the bottleneck, so it does not use the
//! transcript-keeping `pillarbox_client`: raw tokio sockets, one small reply
//! buffer per connection, every command and message body built once before
//! the run and shared (`Arc<[u8]>`), nothing allocated per line. Every loop is
//! bounded by the message budget, the duration, and connect/read timeouts.
//! It only ever targets loopback unless `--allow-target` names the address.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Exit status: every message attempted was accepted (idle: every connection opened).
const EXIT_OK: u8 = 0;
/// Exit status: the run finished, but some messages were refused or failed.
const EXIT_SOME_FAILED: u8 = 1;
/// Exit status: usage error, a refused target, or not one connection made.
const EXIT_USAGE: u8 = 2;

/// Most bytes of one reply line (RFC 5321 4.5.3.1.5 says 512; servers add
/// long texts) and of the reply buffer kept per connection.
const REPLY_BUFFER: usize = 4096;
/// Most lines of one multi-line reply (EHLO has a dozen).
const MAX_REPLY_LINES: usize = 100;
/// Largest message size accepted by --size.
const MAX_SIZE: usize = 100 << 20;
/// Largest --messages and --idle.
const MAX_MESSAGES: u64 = 100_000_000;
const MAX_IDLE: u32 = 1_000_000;
/// How long a QUIT may take at the end of a session.
const QUIT_TIMEOUT: Duration = Duration::from_secs(2);

const BENCH_HELP: &str = "\
Load mode measures, for accepted messages only: messages/s and bytes/s over
the whole run (first connect to last reply), and the accept latency: from
writing the final `.` (DATA) or the `BDAT n LAST` chunk to reading its reply.

--json prints one object:
  target, address                 as given, and the address connected to
  mode {sessions, reuse, pipeline, bdat, security, auth, size_dist}
                                  size_dist: [[bytes, weight], ...]
  messages {planned, attempted, accepted, failed}
                                  failed = refused (non-2xx) or transport error
  connections {opened, failed}
  elapsed_s, messages_per_s, bytes, bytes_per_s
                                  bytes: message bytes of accepted messages
  latency_ms {p50, p90, p99, max, mean}   null when nothing was accepted
  replies {\"550\": n, ...}          every non-2xx reply by code (354 after DATA,
                                  334 during AUTH and 220 before TLS are expected
                                  and not counted); reply_samples {code: text}
  errors {\"timeout\": n, ...}       transport failures by kind (connect, timeout,
                                  io, closed, tls, protocol); error_samples
  client {cpu_s, rss_kib}         this process: user+system CPU, resident set
  server {pids, cpu_s, cpu_s_per_1000_messages, rss_kib, hwm_kib, pss_kib}
                                  with --server-pid: the process and its
                                  descendants, CPU (utime+stime+cutime+cstime)
                                  over the run; VmRSS, VmHWM and Pss summed
                                  over them at the end

Idle mode (--idle N) opens N connections (--connect-concurrency at a time),
completes EHLO (and STARTTLS/TLS when asked) on each, holds them for --hold
seconds, and reports with --server-pid the server's VmRSS (summed over the
process and its descendants) before opening and at the end of the hold, and
the growth per open connection; also this process's own RSS. --json prints
{mode: \"idle\", target, requested, opened, failed, errors, open_s, hold_s,
server {pids, rss_before_kib, rss_holding_kib, rss_per_connection_kib, and
the same for pss_ (proportional set size: the honest sum over a server that
runs a process per connection)},
client {rss_before_kib, rss_holding_kib, rss_per_connection_kib}}.
The server must allow the connections: for Pillarbox `[limits] sessions` and
`sessions_per_client` at least N (all come from one address), a
`command_timeout` longer than the hold, and a nofile limit above N (`ulimit -n`).
Measure a freshly started server: allocators keep memory freed by earlier
connections, which hides the growth.
The bench raises its own soft RLIMIT_NOFILE to the hard limit when it needs more.

Targets: loopback addresses only (127.0.0.0/8, ::1, a name resolving to them)
unless --allow-target names the host or address: this is a load generator.

Exit status:
   0  every message attempted was accepted (idle: every connection opened)
   1  the run finished, but some messages were refused or failed
   2  usage error, a refused target, or not one connection could be made";

/// Send load to an SMTP server and measure it (or measure idle connections).
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = BENCH_HELP)]
pub struct BenchArgs {
    /// The server: HOST:PORT or [IPv6]:PORT.
    #[arg(value_name = "HOST:PORT")]
    pub target: String,
    /// Concurrent connections (sessions).
    #[arg(long, short = 's', default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub sessions: u32,
    /// Messages to send in all (the budget the sessions share).
    #[arg(long, short = 'm', default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=MAX_MESSAGES))]
    pub messages: u64,
    /// Message size in bytes, headers included: 4096, 4k, 4KiB, 1M.
    #[arg(long, default_value = "4KiB", value_parser = parse_size)]
    pub size: usize,
    /// A size distribution instead of --size: SIZE:WEIGHT,... e.g. 1k:50,4k:30,64k:20.
    #[arg(long, value_name = "SIZE:WEIGHT,...", value_parser = parse_size_dist)]
    pub size_dist: Option<SizeDist>,
    /// Many messages per connection; without it, one message per connection.
    #[arg(long)]
    pub reuse: bool,
    /// Send MAIL, RCPT and DATA (or BDAT) in one write (RFC 2920).
    #[arg(long)]
    pub pipeline: bool,
    /// Send the message with one `BDAT n LAST` (RFC 3030) instead of DATA.
    #[arg(long)]
    pub bdat: bool,
    /// STARTTLS after EHLO (RFC 3207); the certificate is not verified.
    #[arg(long, conflicts_with = "tls")]
    pub starttls: bool,
    /// Implicit TLS from the first byte (RFC 8314); the certificate is not verified.
    #[arg(long)]
    pub tls: bool,
    /// AUTH PLAIN as USER on every connection (RFC 4954); needs --password-env.
    #[arg(long, value_name = "USER", requires = "password_env")]
    pub auth: Option<String>,
    /// The environment variable holding the --auth password.
    #[arg(long, value_name = "VAR", requires = "auth")]
    pub password_env: Option<String>,
    /// The envelope sender (MAIL FROM).
    #[arg(long, default_value = "bench@localhost")]
    pub from: String,
    /// The envelope recipient (RCPT TO).
    #[arg(long, default_value = "bench@localhost")]
    pub to: String,
    /// The EHLO name.
    #[arg(long, default_value = "bench.localhost")]
    pub ehlo: String,
    /// Stop starting new messages after SECS (messages under way finish).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub duration: Option<Duration>,
    /// Connect, TLS handshake and per-reply read timeout, in seconds.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub timeout: Duration,
    /// Allow a target that is not loopback: its host name or address as given.
    #[arg(long = "allow-target", value_name = "ADDR")]
    pub allow_target: Vec<String>,
    /// Print the results as one JSON object (fields: see below).
    #[arg(long)]
    pub json: bool,
    /// No progress line on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Runtime threads for the client (1: one thread, the cheapest on CPU).
    #[arg(long, default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub threads: u32,
    /// Idle mode: open N connections, EHLO on each, hold them, measure RSS.
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=MAX_IDLE as i64))]
    pub idle: Option<u32>,
    /// The server's process id: its RSS (idle mode), its CPU and peak RSS
    /// (load mode), summed over it and its descendants.
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Idle mode: seconds to hold the connections open.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub hold: Duration,
    /// Idle mode: connections being opened at the same time.
    #[arg(long, value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub connect_concurrency: u32,
}

/// Message sizes and their weights.
#[derive(Clone, Debug)]
pub struct SizeDist(Vec<(usize, u32)>);

fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num.parse().map_err(|_| format!("{s:?}: not a size"))?;
    let mult = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        _ => return Err(format!("{s:?}: unknown unit (use k, KiB, M, MiB)")),
    };
    let size = n
        .checked_mul(mult)
        .filter(|&v| (1..=MAX_SIZE).contains(&v))
        .ok_or_else(|| format!("{s:?}: between 1 byte and {} MiB", MAX_SIZE >> 20))?;
    Ok(size)
}

fn parse_size_dist(s: &str) -> Result<SizeDist, String> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let (size, weight) = part
            .split_once(':')
            .ok_or_else(|| format!("{part:?}: expected SIZE:WEIGHT"))?;
        let weight: u32 = weight
            .trim()
            .parse()
            .ok()
            .filter(|&w| (1..=1_000_000).contains(&w))
            .ok_or_else(|| format!("{part:?}: weight must be 1..=1000000"))?;
        out.push((parse_size(size)?, weight));
    }
    if out.is_empty() || out.len() > 64 {
        return Err("one to 64 SIZE:WEIGHT entries".to_string());
    }
    Ok(SizeDist(out))
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .trim()
        .trim_end_matches('s')
        .parse()
        .map_err(|_| format!("{s:?}: not a number of seconds"))?;
    if !(0.001..=86_400.0).contains(&v) {
        return Err(format!("{s:?}: between 0.001 and 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// `pillarbox bench`.
pub fn run(args: &BenchArgs) -> ExitCode {
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads as usize)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pillarbox bench: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let code = runtime.block_on(async {
        let ctx = match Ctx::new(args).await {
            Ok(ctx) => Arc::new(ctx),
            Err(e) => {
                eprintln!("pillarbox bench: {e}");
                return EXIT_USAGE;
            }
        };
        match args.idle {
            Some(n) => idle(ctx, args, n).await,
            None => load(ctx, args).await,
        }
    });
    ExitCode::from(code)
}

// ------------------------------------------------------------------ setup

/// How the connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Security {
    Plain,
    StartTls,
    Tls,
}

impl Security {
    fn name(self) -> &'static str {
        match self {
            Security::Plain => "plain",
            Security::StartTls => "starttls",
            Security::Tls => "tls",
        }
    }
}

/// One message size, with everything sent for it built once.
struct Payload {
    size: usize,
    /// Non-pipelined DATA: the message, then `.` CRLF.
    data: Arc<[u8]>,
    /// Pipelined BDAT: MAIL, RCPT and `BDAT n LAST` with the message, one write.
    /// Non-pipelined BDAT: `BDAT n LAST` CRLF and the message.
    bdat: Arc<[u8]>,
}

/// What every session shares: the target, the prebuilt commands and bodies,
/// the budget and the live counters.
struct Ctx {
    addr: SocketAddr,
    server_name: ServerName<'static>,
    security: Security,
    tls: Option<TlsConnector>,
    timeout: Duration,
    reuse: bool,
    pipeline: bool,
    bdat: bool,
    ehlo: Vec<u8>,
    auth: Option<Vec<u8>>,
    mail: Vec<u8>,
    rcpt: Vec<u8>,
    /// MAIL, RCPT and DATA in one write (RFC 2920 3.1: DATA ends the group).
    mail_rcpt_data: Vec<u8>,
    payloads: Vec<Payload>,
    /// Cumulative weights of `payloads`, for the pick.
    cumulative: Vec<u64>,
    messages: u64,
    deadline: Option<Instant>,
    next: AtomicU64,
    done: AtomicU64,
    accepted: AtomicU64,
}

impl Ctx {
    async fn new(args: &BenchArgs) -> Result<Ctx, String> {
        let (host, port) = split_target(&args.target)?;
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| format!("{}: cannot resolve: {e}", args.target))?
            .collect();
        let allowed = |ip: &IpAddr| {
            args.allow_target.iter().any(|a| {
                a.eq_ignore_ascii_case(&host)
                    || a.trim_matches(|c| c == '[' || c == ']')
                        .parse::<IpAddr>()
                        .ok()
                        == Some(*ip)
            })
        };
        let addr = *addrs
            .first()
            .ok_or_else(|| format!("{}: resolves to no address", args.target))?;
        // Every address the name resolves to must pass, not only the first.
        if let Some(bad) = addrs
            .iter()
            .find(|a| !is_loopback(&a.ip()) && !allowed(&a.ip()))
        {
            return Err(format!(
                "refusing target {} ({}): not a loopback address; a load generator only \
                 targets this machine unless --allow-target {} names it",
                args.target,
                bad.ip(),
                bad.ip()
            ));
        }
        let security = if args.tls {
            Security::Tls
        } else if args.starttls {
            Security::StartTls
        } else {
            Security::Plain
        };
        let server_name = match host.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(host.clone())
                .map_err(|e| format!("{host:?}: not a server name: {e}"))?,
        };
        let tls = (security != Security::Plain)
            .then(tls_connector)
            .transpose()?;
        for (what, v) in [
            ("--from", &args.from),
            ("--to", &args.to),
            ("--ehlo", &args.ehlo),
        ] {
            if v.bytes()
                .any(|b| b.is_ascii_control() || b == b' ' || b == b'<' || b == b'>')
            {
                return Err(format!(
                    "{what} {v:?}: no spaces, angle brackets or control characters"
                ));
            }
        }
        let auth = match (&args.auth, &args.password_env) {
            (Some(user), Some(var)) => {
                let password = std::env::var(var)
                    .map_err(|_| format!("--password-env {var}: the variable is not set"))?;
                // RFC 4616 2: authzid NUL authcid NUL passwd, with an empty authzid.
                let mut message = Vec::with_capacity(user.len() + password.len() + 2);
                message.push(0);
                message.extend_from_slice(user.as_bytes());
                message.push(0);
                message.extend_from_slice(password.as_bytes());
                let encoded = pillarbox_proto::sasl::encode(&message);
                Some(format!("AUTH PLAIN {encoded}\r\n").into_bytes())
            }
            _ => None,
        };
        let mail = format!("MAIL FROM:<{}>\r\n", args.from).into_bytes();
        let rcpt = format!("RCPT TO:<{}>\r\n", args.to).into_bytes();
        let mut mail_rcpt_data = [mail.as_slice(), rcpt.as_slice()].concat();
        mail_rcpt_data.extend_from_slice(b"DATA\r\n");
        let dist = match &args.size_dist {
            Some(d) => d.0.clone(),
            None => vec![(args.size, 1)],
        };
        let mut payloads = Vec::with_capacity(dist.len());
        let mut cumulative = Vec::with_capacity(dist.len());
        let mut total = 0u64;
        for &(size, weight) in &dist {
            let message = build_message(size, &args.from, &args.to);
            let mut data = message.clone();
            data.extend_from_slice(b".\r\n");
            let mut bdat = Vec::with_capacity(message.len() + 128);
            if args.pipeline {
                bdat.extend_from_slice(&mail);
                bdat.extend_from_slice(&rcpt);
            }
            bdat.extend_from_slice(format!("BDAT {} LAST\r\n", message.len()).as_bytes());
            bdat.extend_from_slice(&message);
            payloads.push(Payload {
                size: message.len(),
                data: data.into(),
                bdat: bdat.into(),
            });
            total += u64::from(weight);
            cumulative.push(total);
        }
        Ok(Ctx {
            addr,
            server_name,
            security,
            tls,
            timeout: args.timeout,
            reuse: args.reuse,
            pipeline: args.pipeline,
            bdat: args.bdat,
            ehlo: format!("EHLO {}\r\n", args.ehlo).into_bytes(),
            auth,
            mail,
            rcpt,
            mail_rcpt_data,
            payloads,
            cumulative,
            messages: args.messages,
            deadline: args.duration.map(|d| Instant::now() + d),
            next: AtomicU64::new(0),
            done: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
        })
    }

    /// The next message of the budget, or `None` when the budget or the
    /// duration is spent.
    fn claim(&self) -> Option<u64> {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        (i < self.messages).then_some(i)
    }

    /// The payload of message `i`: a fixed pseudo-random pick by weight, so
    /// two runs send the same sizes in the same order.
    fn payload(&self, i: u64) -> &Payload {
        if self.payloads.len() == 1 {
            return &self.payloads[0];
        }
        let total = self.cumulative.last().copied().unwrap_or(1);
        let r = splitmix64(i) % total;
        let k = self.cumulative.partition_point(|&c| c <= r);
        &self.payloads[k.min(self.payloads.len() - 1)]
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn is_loopback(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// `HOST:PORT` or `[V6]:PORT` into host and port; the port is required.
fn split_target(target: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = target.strip_prefix('[') {
        let (h, p) = rest
            .split_once("]:")
            .ok_or_else(|| format!("{target:?}: expected [IPv6]:PORT"))?;
        (h, p)
    } else {
        target
            .rsplit_once(':')
            .ok_or_else(|| format!("{target:?}: expected HOST:PORT"))?
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("{target:?}: {port:?} is not a port"))?;
    if host.is_empty() {
        return Err(format!("{target:?}: no host"));
    }
    Ok((host.to_string(), port))
}

/// A message of exactly `size` bytes where the headers allow: a few headers,
/// then lines of at most 78 letters, never starting with `.` (so DATA needs
/// no dot-stuffing and BDAT and DATA carry the same bytes), ending in CRLF.
fn build_message(size: usize, from: &str, to: &str) -> Vec<u8> {
    let mut m = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: pillarbox bench\r\n\
         Date: Thu, 1 Jan 2026 00:00:00 +0000\r\nMessage-ID: <bench@pillarbox.invalid>\r\n\r\n"
    )
    .into_bytes();
    if m.len() + 3 > size {
        m.extend_from_slice(b"x\r\n");
        return m;
    }
    m.reserve(size - m.len());
    let mut letter = 0u8;
    // Each line is letters and CRLF, at most 80 bytes; the last one takes
    // what is left, so at least three bytes must always remain.
    while m.len() < size {
        let left = size - m.len();
        let line = if left <= 80 {
            left - 2
        } else if left - 80 < 3 {
            left - 5
        } else {
            78
        };
        m.extend(std::iter::repeat_n(b'a' + letter, line));
        m.extend_from_slice(b"\r\n");
        letter = (letter + 1) % 26;
    }
    m
}

// ------------------------------------------------------------------- TLS

/// The bench only talks to this machine and measures the server, not a PKI:
/// the certificate is accepted unchecked (the client crate's unverified config).
fn tls_connector() -> Result<TlsConnector, String> {
    let config =
        pillarbox_client::tls::unverified_config().map_err(|e| format!("TLS setup: {e}"))?;
    Ok(TlsConnector::from(config))
}

// ----------------------------------------------------------------- wire

/// A connection's byte stream, plain or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Why a connection failed (not a reply: those are counted by code).
#[derive(Debug)]
struct Failure {
    kind: &'static str,
    detail: String,
}

impl Failure {
    fn new(kind: &'static str, detail: impl Into<String>) -> Failure {
        Failure {
            kind,
            detail: detail.into(),
        }
    }
}

/// Reads replies into one fixed buffer; a reply is its code, and the text of
/// its last line stays readable until the next read.
struct ReplyReader {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    last: (usize, usize),
}

impl ReplyReader {
    fn new() -> ReplyReader {
        ReplyReader {
            buf: vec![0; REPLY_BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            last: (0, 0),
        }
    }

    /// The last line of the last reply, without CRLF.
    fn last_text(&self) -> String {
        String::from_utf8_lossy(&self.buf[self.last.0..self.last.1]).into_owned()
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// One complete reply (RFC 5321 4.2.1: `code-text` lines, then `code text`).
    async fn reply<S: AsyncRead + Unpin + ?Sized>(
        &mut self,
        io: &mut S,
        timeout: Duration,
    ) -> Result<u16, Failure> {
        let mut lines = 0;
        loop {
            if let Some(nl) = self.buf[self.start..self.end]
                .iter()
                .position(|&b| b == b'\n')
            {
                let line_start = self.start;
                let line_end = self.start + nl; // at the LF
                self.start = line_end + 1;
                let line = &self.buf[line_start..line_end];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let code = parse_code(line).ok_or_else(|| {
                    Failure::new(
                        "protocol",
                        format!(
                            "not a reply line: {:?}",
                            String::from_utf8_lossy(&line[..line.len().min(80)])
                        ),
                    )
                })?;
                lines += 1;
                if line.get(3) == Some(&b'-') {
                    if lines >= MAX_REPLY_LINES {
                        return Err(Failure::new("protocol", "reply of too many lines"));
                    }
                    continue;
                }
                self.last = (line_start, line_start + line.len());
                return Ok(code);
            }
            // No full line yet: move the partial line to the front, read more.
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
                self.last = (0, 0);
            }
            if self.end == self.buf.len() {
                return Err(Failure::new("protocol", "reply line too long"));
            }
            let n = match tokio::time::timeout(timeout, io.read(&mut self.buf[self.end..])).await {
                Err(_) => return Err(Failure::new("timeout", "no reply in time")),
                Ok(Err(e)) => return Err(Failure::new("io", e.to_string())),
                Ok(Ok(n)) => n,
            };
            if n == 0 {
                return Err(Failure::new("closed", "the server closed the connection"));
            }
            self.end += n;
        }
    }
}

fn parse_code(line: &[u8]) -> Option<u16> {
    let digits = line.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) || !matches!(line.get(3), None | Some(b' ' | b'-')) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u16, |n, d| n * 10 + u16::from(d - b'0')),
    )
}

async fn send<S: AsyncWrite + Unpin + ?Sized>(
    io: &mut S,
    bytes: &[u8],
    timeout: Duration,
) -> Result<(), Failure> {
    match tokio::time::timeout(timeout, io.write_all(bytes)).await {
        Err(_) => Err(Failure::new("timeout", "write timed out")),
        Ok(Err(e)) => Err(Failure::new("io", e.to_string())),
        Ok(Ok(())) => Ok(()),
    }
}

// -------------------------------------------------------------- sessions

/// One report line per counted key: `  LABEL        KEY: N  (e.g. SAMPLE)`.
fn write_counted<K: Ord + std::fmt::Display>(
    out: &mut String,
    label: &str,
    counts: &BTreeMap<K, u64>,
    samples: &BTreeMap<K, String>,
    quote: bool,
) {
    use std::fmt::Write as _;
    for (key, n) in counts {
        let sample = samples.get(key).map(String::as_str).unwrap_or("");
        let _ = if quote {
            writeln!(out, "  {label:<13}{key}: {n}  (e.g. {sample:?})")
        } else {
            writeln!(out, "  {label:<13}{key}: {n}  (e.g. {sample})")
        };
    }
}

/// A count or sample map as a JSON object keyed by the code or kind.
fn json_map<K: ToString, V: Clone + Into<serde_json::Value>>(
    m: &BTreeMap<K, V>,
) -> serde_json::Map<String, serde_json::Value> {
    m.iter()
        .map(|(k, v)| (k.to_string(), v.clone().into()))
        .collect()
}

/// What one session (or the idle opener) counted; merged at the end.
#[derive(Default)]
struct Stats {
    attempted: u64,
    accepted: u64,
    failed: u64,
    bytes: u64,
    latencies_us: Vec<u32>,
    replies: BTreeMap<u16, u64>,
    reply_samples: BTreeMap<u16, String>,
    errors: BTreeMap<&'static str, u64>,
    error_samples: BTreeMap<&'static str, String>,
    opened: u64,
    open_failed: u64,
}

impl Stats {
    fn reply(&mut self, code: u16, reader: &ReplyReader) {
        *self.replies.entry(code).or_insert(0) += 1;
        self.reply_samples
            .entry(code)
            .or_insert_with(|| reader.last_text());
    }

    fn error(&mut self, f: Failure) {
        *self.errors.entry(f.kind).or_insert(0) += 1;
        self.error_samples.entry(f.kind).or_insert(f.detail);
    }

    /// The `non-2xx` lines of the report: each code, its count and a sample
    /// (quoted: it is the server's text).
    fn write_replies(&self, out: &mut String) {
        write_counted(out, "non-2xx", &self.replies, &self.reply_samples, true);
    }

    /// The `errors` lines of the report: each kind, its count and a sample.
    fn write_errors(&self, out: &mut String) {
        write_counted(out, "errors", &self.errors, &self.error_samples, false);
    }

    fn merge(&mut self, o: Stats) {
        self.attempted += o.attempted;
        self.accepted += o.accepted;
        self.failed += o.failed;
        self.bytes += o.bytes;
        self.latencies_us.extend_from_slice(&o.latencies_us);
        for (k, v) in o.replies {
            *self.replies.entry(k).or_insert(0) += v;
        }
        for (k, v) in o.reply_samples {
            self.reply_samples.entry(k).or_insert(v);
        }
        for (k, v) in o.errors {
            *self.errors.entry(k).or_insert(0) += v;
        }
        for (k, v) in o.error_samples {
            self.error_samples.entry(k).or_insert(v);
        }
        self.opened += o.opened;
        self.open_failed += o.open_failed;
    }
}

/// An open SMTP connection, after EHLO (and TLS and AUTH when asked).
struct Conn {
    io: Box<dyn Io>,
    rd: ReplyReader,
}

/// A reply outside 2xx during setup: counted, and the connection given up.
fn refused(stats: &mut Stats, rd: &ReplyReader, code: u16, step: &str) -> Failure {
    stats.reply(code, rd);
    Failure::new("refused", format!("{step}: {code} {}", rd.last_text()))
}

async fn expect<S: AsyncRead + Unpin + ?Sized>(
    io: &mut S,
    rd: &mut ReplyReader,
    stats: &mut Stats,
    timeout: Duration,
    want: u16,
    step: &str,
) -> Result<(), Failure> {
    let code = rd.reply(io, timeout).await?;
    if code == want || (want == 250 && (200..300).contains(&code)) {
        Ok(())
    } else {
        Err(refused(stats, rd, code, step))
    }
}

async fn handshake(ctx: &Ctx, tcp: TcpStream) -> Result<Box<dyn Io>, Failure> {
    let connector = ctx
        .tls
        .as_ref()
        .ok_or_else(|| Failure::new("tls", "no TLS configuration"))?;
    match tokio::time::timeout(ctx.timeout, connector.connect(ctx.server_name.clone(), tcp)).await {
        Err(_) => Err(Failure::new("timeout", "TLS handshake timed out")),
        Ok(Err(e)) => Err(Failure::new("tls", e.to_string())),
        Ok(Ok(s)) => Ok(Box::new(s)),
    }
}

/// Connects and completes the greeting, EHLO, TLS and AUTH as asked.
async fn open(ctx: &Ctx, stats: &mut Stats) -> Result<Conn, Failure> {
    let t = ctx.timeout;
    let mut tcp = match tokio::time::timeout(t, TcpStream::connect(ctx.addr)).await {
        Err(_) => return Err(Failure::new("connect", "connect timed out")),
        Ok(Err(e)) => return Err(Failure::new("connect", e.to_string())),
        Ok(Ok(s)) => s,
    };
    let _ = tcp.set_nodelay(true);
    let mut rd = ReplyReader::new();
    let mut io: Box<dyn Io> = match ctx.security {
        Security::Tls => handshake(ctx, tcp).await?,
        Security::Plain => Box::new(tcp),
        Security::StartTls => {
            expect(&mut tcp, &mut rd, stats, t, 220, "greeting").await?;
            send(&mut tcp, &ctx.ehlo, t).await?;
            expect(&mut tcp, &mut rd, stats, t, 250, "EHLO").await?;
            send(&mut tcp, b"STARTTLS\r\n", t).await?;
            expect(&mut tcp, &mut rd, stats, t, 220, "STARTTLS").await?;
            if !rd.is_empty() {
                // RFC 3207 5: nothing may follow the 220 before the handshake.
                return Err(Failure::new("protocol", "bytes after the STARTTLS reply"));
            }
            handshake(ctx, tcp).await?
        }
    };
    if ctx.security != Security::StartTls {
        expect(&mut io, &mut rd, stats, t, 220, "greeting").await?;
    }
    send(&mut io, &ctx.ehlo, t).await?;
    expect(&mut io, &mut rd, stats, t, 250, "EHLO").await?;
    if let Some(auth) = &ctx.auth {
        send(&mut io, auth, t).await?;
        expect(&mut io, &mut rd, stats, t, 235, "AUTH").await?;
    }
    Ok(Conn { io, rd })
}

/// How one transaction ended.
enum Outcome {
    Accepted(Duration),
    /// Refused with this code; `true` when the server is closing (421).
    Refused(bool),
}

/// One message: MAIL, RCPT, DATA or BDAT; RSET after a refusal.
async fn transact(
    ctx: &Ctx,
    c: &mut Conn,
    p: &Payload,
    stats: &mut Stats,
) -> Result<Outcome, Failure> {
    let t = ctx.timeout;
    let io = &mut c.io;
    let rd = &mut c.rd;
    // Replies before the final one: MAIL, RCPT, and DATA's 354.
    let mut refusal: Option<u16> = None;
    let mut note = |code: u16, rd: &ReplyReader, stats: &mut Stats, want: u16| {
        let ok = if want == 354 {
            code == 354
        } else {
            (200..300).contains(&code)
        };
        if !ok {
            stats.reply(code, rd);
            refusal.get_or_insert(code);
        }
        ok
    };
    let start;
    if ctx.bdat {
        if ctx.pipeline {
            send(io, &p.bdat, t).await?;
            start = Instant::now();
            for _ in 0..2 {
                let code = rd.reply(io, t).await?;
                note(code, rd, stats, 250);
            }
        } else {
            for cmd in [&ctx.mail, &ctx.rcpt] {
                send(io, cmd, t).await?;
                let code = rd.reply(io, t).await?;
                if !note(code, rd, stats, 250) {
                    return finish_refused(ctx, c, stats, code).await;
                }
            }
            send(io, &p.bdat, t).await?;
            start = Instant::now();
        }
        // The BDAT LAST reply (sent even when MAIL or RCPT failed).
        let code = rd.reply(io, t).await?;
        if note(code, rd, stats, 250) && refusal.is_none() {
            return Ok(Outcome::Accepted(start.elapsed()));
        }
        let code = refusal.unwrap_or(code);
        return finish_refused(ctx, c, stats, code).await;
    }
    if ctx.pipeline {
        send(io, &ctx.mail_rcpt_data, t).await?;
        let mut data_ok = false;
        for want in [250, 250, 354] {
            let code = rd.reply(io, t).await?;
            data_ok = note(code, rd, stats, want);
        }
        if !data_ok {
            let code = refusal.unwrap_or(0);
            return finish_refused(ctx, c, stats, code).await;
        }
    } else {
        for cmd in [&ctx.mail, &ctx.rcpt] {
            send(io, cmd, t).await?;
            let code = rd.reply(io, t).await?;
            if !note(code, rd, stats, 250) {
                return finish_refused(ctx, c, stats, code).await;
            }
        }
        send(io, b"DATA\r\n", t).await?;
        let code = rd.reply(io, t).await?;
        if !note(code, rd, stats, 354) {
            return finish_refused(ctx, c, stats, code).await;
        }
    }
    send(io, &p.data, t).await?;
    let start = Instant::now();
    let code = rd.reply(io, t).await?;
    if note(code, rd, stats, 250) && refusal.is_none() {
        return Ok(Outcome::Accepted(start.elapsed()));
    }
    let code = refusal.unwrap_or(code);
    finish_refused(ctx, c, stats, code).await
}

/// After a refusal: RSET so the next transaction starts clean (RFC 5321
/// 4.1.1.5), unless the server said it is closing.
async fn finish_refused(
    ctx: &Ctx,
    c: &mut Conn,
    stats: &mut Stats,
    code: u16,
) -> Result<Outcome, Failure> {
    if code == 421 {
        return Ok(Outcome::Refused(true));
    }
    send(&mut c.io, b"RSET\r\n", ctx.timeout).await?;
    let code = c.rd.reply(&mut c.io, ctx.timeout).await?;
    if !(200..300).contains(&code) {
        stats.reply(code, &c.rd);
        return Ok(Outcome::Refused(true));
    }
    Ok(Outcome::Refused(false))
}

async fn quit(mut c: Conn) {
    let _ = send(&mut c.io, b"QUIT\r\n", QUIT_TIMEOUT).await;
    let _ = c.rd.reply(&mut c.io, QUIT_TIMEOUT).await;
    let _ = tokio::time::timeout(QUIT_TIMEOUT, c.io.shutdown()).await;
}

/// One session: claims messages until the budget or the time is spent.
async fn session(ctx: Arc<Ctx>, expected: usize) -> Stats {
    let mut stats = Stats {
        latencies_us: Vec::with_capacity(expected),
        ..Stats::default()
    };
    let mut conn: Option<Conn> = None;
    while let Some(i) = ctx.claim() {
        stats.attempted += 1;
        let p = ctx.payload(i);
        if conn.is_none() {
            match open(&ctx, &mut stats).await {
                Ok(c) => {
                    stats.opened += 1;
                    conn = Some(c);
                }
                Err(f) => {
                    stats.open_failed += 1;
                    if f.kind != "refused" {
                        stats.error(f);
                    }
                    stats.failed += 1;
                    ctx.done.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let keep = match transact(&ctx, c, p, &mut stats).await {
            Ok(Outcome::Accepted(latency)) => {
                stats.accepted += 1;
                stats.bytes += p.size as u64;
                stats
                    .latencies_us
                    .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
                ctx.accepted.fetch_add(1, Ordering::Relaxed);
                true
            }
            Ok(Outcome::Refused(closing)) => {
                stats.failed += 1;
                !closing
            }
            Err(f) => {
                stats.failed += 1;
                stats.error(f);
                false
            }
        };
        ctx.done.fetch_add(1, Ordering::Relaxed);
        if !keep {
            conn = None;
        } else if !ctx.reuse {
            if let Some(c) = conn.take() {
                quit(c).await;
            }
        }
    }
    if let Some(c) = conn {
        quit(c).await;
    }
    stats
}

// ------------------------------------------------------------ /proc

/// CPU time and memory of a process and its descendants, from /proc.
#[derive(Clone, Debug, Default)]
struct ProcTree {
    pids: Vec<u32>,
    /// utime + stime + cutime + cstime, seconds.
    cpu_s: f64,
    rss_kib: u64,
    hwm_kib: u64,
    /// Proportional set size: shared pages divided among the processes that
    /// share them, so a sum over a tree of processes (Postfix's smtpd per
    /// connection) does not count the same library pages once per process.
    pss_kib: u64,
}

fn proc_tree(root: u32) -> Option<ProcTree> {
    // Parent of every process, to find the descendants.
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(fields) = stat_fields(pid) {
                if let Some(ppid) = fields.get(1).and_then(|s| s.parse().ok()) {
                    parents.push((pid, ppid));
                }
            }
        }
    }
    let mut pids = vec![root];
    let mut i = 0;
    while i < pids.len() {
        let p = pids[i];
        pids.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut tree = ProcTree::default();
    for &pid in &pids {
        let Some(fields) = stat_fields(pid) else {
            if pid == root {
                return None;
            }
            continue;
        };
        // Fields after the command: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
        let t: u64 = (11..=14)
            .filter_map(|k| fields.get(k).and_then(|s| s.parse::<u64>().ok()))
            .sum();
        tree.cpu_s += t as f64 / ticks;
        tree.rss_kib += status_kib(&format!("/proc/{pid}/status"), "VmRSS:").unwrap_or(0);
        tree.hwm_kib += status_kib(&format!("/proc/{pid}/status"), "VmHWM:").unwrap_or(0);
        tree.pss_kib += status_kib(&format!("/proc/{pid}/smaps_rollup"), "Pss:").unwrap_or(0);
        tree.pids.push(pid);
    }
    Some(tree)
}

/// The fields of /proc/PID/stat after the `(comm)`.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

fn status_kib(path: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn self_rss_kib() -> u64 {
    status_kib("/proc/self/status", "VmRSS:").unwrap_or(0)
}

fn self_cpu_s() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Raises the soft RLIMIT_NOFILE to the hard limit when `needed`
/// descriptors do not fit; returns the soft limit in force.
fn raise_nofile(needed: u64) -> u64 {
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return needed;
    }
    if lim.rlim_cur < needed && lim.rlim_max > lim.rlim_cur {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return raised.rlim_cur;
        }
    }
    lim.rlim_cur
}

fn check_nofile(needed: u64, quiet: bool) {
    let have = raise_nofile(needed);
    if have < needed && !quiet {
        eprintln!(
            "pillarbox bench: warning: {needed} descriptors needed, the limit is {have} \
             (raise the hard limit: ulimit -Hn); connections past it fail"
        );
    }
}

// ----------------------------------------------------------------- load

async fn load(ctx: Arc<Ctx>, args: &BenchArgs) -> u8 {
    check_nofile(u64::from(args.sessions) + 64, args.quiet);
    let server_before = args.server_pid.and_then(proc_tree);
    if args.server_pid.is_some() && server_before.is_none() && !args.quiet {
        eprintln!(
            "pillarbox bench: warning: no process {:?} to measure",
            args.server_pid
        );
    }
    let cpu_before = self_cpu_s();
    let started = Instant::now();
    let finished = Arc::new(AtomicBool::new(false));
    let progress =
        (!args.quiet).then(|| tokio::spawn(progress_line(ctx.clone(), finished.clone(), started)));
    let per_session = (args.messages / u64::from(args.sessions) + 1).min(1 << 20) as usize;
    let tasks: Vec<_> = (0..args.sessions)
        .map(|_| tokio::spawn(session(ctx.clone(), per_session)))
        .collect();
    let mut total = Stats::default();
    for task in tasks {
        match task.await {
            Ok(s) => total.merge(s),
            Err(e) => total.error(Failure::new("panic", e.to_string())),
        }
    }
    let elapsed = started.elapsed();
    finished.store(true, Ordering::Relaxed);
    if let Some(p) = progress {
        let _ = p.await;
    }
    let client_cpu = self_cpu_s() - cpu_before;
    let server_after = args.server_pid.and_then(proc_tree);
    let report = LoadReport {
        ctx: &ctx,
        args,
        stats: total,
        elapsed,
        client_cpu,
        server: server_before.zip(server_after),
    };
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    let s = &report.stats;
    if s.opened == 0 && s.attempted > 0 {
        EXIT_USAGE
    } else if s.failed > 0 {
        EXIT_SOME_FAILED
    } else {
        EXIT_OK
    }
}

async fn progress_line(ctx: Arc<Ctx>, finished: Arc<AtomicBool>, started: Instant) {
    let tty = std::io::stderr().is_terminal();
    let every = if tty {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(5)
    };
    let mut last = (Instant::now(), 0u64);
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let done_flag = finished.load(Ordering::Relaxed);
        let now = Instant::now();
        let done = ctx.done.load(Ordering::Relaxed);
        let accepted = ctx.accepted.load(Ordering::Relaxed);
        let dt = now.duration_since(last.0).as_secs_f64().max(1e-6);
        let rate = (accepted.saturating_sub(last.1)) as f64 / dt;
        last = (now, accepted);
        let line = format!(
            "bench: {done}/{} done, {accepted} accepted, {} failed, {rate:.0} msg/s now, {:.1} s",
            ctx.messages,
            done - accepted.min(done),
            started.elapsed().as_secs_f64()
        );
        let mut err = std::io::stderr().lock();
        if tty {
            let _ = write!(err, "\r\x1b[K{line}");
            if done_flag {
                let _ = writeln!(err);
            }
        } else if !done_flag {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
        if done_flag {
            return;
        }
    }
}

struct LoadReport<'a> {
    ctx: &'a Ctx,
    args: &'a BenchArgs,
    stats: Stats,
    elapsed: Duration,
    client_cpu: f64,
    server: Option<(ProcTree, ProcTree)>,
}

/// Nearest-rank percentile of sorted microseconds, in milliseconds.
fn percentile_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
}

impl LoadReport<'_> {
    fn latencies(&self) -> Option<[f64; 5]> {
        let mut v = self.stats.latencies_us.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64 / 1000.0;
        Some([
            percentile_ms(&v, 50.0),
            percentile_ms(&v, 90.0),
            percentile_ms(&v, 99.0),
            percentile_ms(&v, 100.0),
            mean,
        ])
    }

    fn rates(&self) -> (f64, f64) {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        (
            self.stats.accepted as f64 / secs,
            self.stats.bytes as f64 / secs,
        )
    }

    fn server_figures(&self) -> Option<(f64, f64, &ProcTree)> {
        let (before, after) = self.server.as_ref()?;
        let cpu = (after.cpu_s - before.cpu_s).max(0.0);
        let per_1000 = if self.stats.accepted > 0 {
            cpu * 1000.0 / self.stats.accepted as f64
        } else {
            0.0
        };
        Some((cpu, per_1000, after))
    }

    fn json(&self) -> serde_json::Value {
        let s = &self.stats;
        let (mps, bps) = self.rates();
        let latency = self.latencies().map(|[p50, p90, p99, max, mean]| {
            serde_json::json!({"p50": p50, "p90": p90, "p99": p99, "max": max, "mean": mean})
        });
        let server = self.server_figures().map(|(cpu, per_1000, after)| {
            serde_json::json!({
                "pids": after.pids,
                "cpu_s": cpu,
                "cpu_s_per_1000_messages": per_1000,
                "rss_kib": after.rss_kib,
                "hwm_kib": after.hwm_kib,
                "pss_kib": after.pss_kib,
            })
        });
        serde_json::json!({
            "target": self.args.target,
            "address": self.ctx.addr.to_string(),
            "mode": {
                "sessions": self.args.sessions,
                "reuse": self.ctx.reuse,
                "pipeline": self.ctx.pipeline,
                "bdat": self.ctx.bdat,
                "security": self.ctx.security.name(),
                "auth": self.ctx.auth.is_some(),
                "size_dist": self.ctx.payloads.iter().zip(self.weights()).map(|(p, w)| [p.size as u64, w]).collect::<Vec<_>>(),
            },
            "messages": {
                "planned": self.ctx.messages,
                "attempted": s.attempted,
                "accepted": s.accepted,
                "failed": s.failed,
            },
            "connections": {"opened": s.opened, "failed": s.open_failed},
            "elapsed_s": self.elapsed.as_secs_f64(),
            "messages_per_s": mps,
            "bytes": s.bytes,
            "bytes_per_s": bps,
            "latency_ms": latency,
            "replies": json_map(&s.replies),
            "reply_samples": json_map(&s.reply_samples),
            "errors": json_map(&s.errors),
            "error_samples": json_map(&s.error_samples),
            "client": {"cpu_s": self.client_cpu, "rss_kib": self_rss_kib()},
            "server": server,
        })
    }

    fn weights(&self) -> Vec<u64> {
        let mut prev = 0;
        self.ctx
            .cumulative
            .iter()
            .map(|&c| {
                let w = c - prev;
                prev = c;
                w
            })
            .collect()
    }

    fn text(&self) -> String {
        use std::fmt::Write as _;
        let s = &self.stats;
        let (mps, bps) = self.rates();
        let mut out = String::new();
        let sizes: Vec<String> = self
            .ctx
            .payloads
            .iter()
            .zip(self.weights())
            .map(|(p, w)| {
                if self.ctx.payloads.len() == 1 {
                    format!("{} bytes", p.size)
                } else {
                    format!("{}:{w}", p.size)
                }
            })
            .collect();
        let _ = writeln!(
            out,
            "pillarbox bench {} ({}): {} sessions, {}, {}{}{}{}, messages of {}",
            self.args.target,
            self.ctx.addr,
            self.args.sessions,
            if self.ctx.reuse {
                "many messages per connection"
            } else {
                "one message per connection"
            },
            self.ctx.security.name(),
            if self.ctx.pipeline { ", pipelined" } else { "" },
            if self.ctx.bdat { ", BDAT" } else { ", DATA" },
            if self.ctx.auth.is_some() {
                ", AUTH PLAIN"
            } else {
                ""
            },
            sizes.join(", ")
        );
        let _ = writeln!(
            out,
            "  messages     {} accepted, {} failed, of {} attempted ({} planned) in {:.3} s",
            s.accepted,
            s.failed,
            s.attempted,
            self.ctx.messages,
            self.elapsed.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "  throughput   {mps:.1} messages/s, {:.2} MB/s",
            bps / 1e6
        );
        match self.latencies() {
            Some([p50, p90, p99, max, mean]) => {
                let _ = writeln!(
                    out,
                    "  latency      p50 {p50:.3} ms, p90 {p90:.3} ms, p99 {p99:.3} ms, max {max:.3} ms, mean {mean:.3} ms \
                     (final dot or BDAT LAST to its reply)"
                );
            }
            None => {
                let _ = writeln!(out, "  latency      (no message accepted)");
            }
        }
        if s.replies.is_empty() {
            let _ = writeln!(out, "  non-2xx      none");
        }
        s.write_replies(&mut out);
        s.write_errors(&mut out);
        let _ = writeln!(
            out,
            "  connections  {} opened, {} failed",
            s.opened, s.open_failed
        );
        let _ = writeln!(
            out,
            "  client       {:.2} s CPU, {} KiB RSS",
            self.client_cpu,
            self_rss_kib()
        );
        if let Some((cpu, per_1000, after)) = self.server_figures() {
            let _ = writeln!(
                out,
                "  server       {} process(es): {cpu:.2} s CPU ({per_1000:.3} s per 1,000 messages), \
                 RSS {} KiB, peak {} KiB",
                after.pids.len(),
                after.rss_kib,
                after.hwm_kib
            );
        }
        out
    }
}

// ----------------------------------------------------------------- idle

async fn idle(ctx: Arc<Ctx>, args: &BenchArgs, n: u32) -> u8 {
    check_nofile(u64::from(n) + 64, args.quiet);
    let server_before = args.server_pid.and_then(proc_tree);
    if args.server_pid.is_some() && server_before.is_none() {
        eprintln!(
            "pillarbox bench: no process {:?} to measure",
            args.server_pid
        );
        return EXIT_USAGE;
    }
    let client_before = self_rss_kib();
    let started = Instant::now();
    let held: Arc<Mutex<Vec<Box<dyn Io>>>> = Arc::new(Mutex::new(Vec::with_capacity(n as usize)));
    let next = Arc::new(AtomicU64::new(0));
    let workers = args.connect_concurrency.min(n);
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (ctx, held, next) = (ctx.clone(), held.clone(), next.clone());
            tokio::spawn(async move {
                let mut stats = Stats::default();
                while next.fetch_add(1, Ordering::Relaxed) < u64::from(n) {
                    match open(&ctx, &mut stats).await {
                        // Keep the socket only: the reply buffer goes.
                        Ok(c) => {
                            stats.opened += 1;
                            if let Ok(mut v) = held.lock() {
                                v.push(c.io);
                            }
                        }
                        Err(f) => {
                            stats.open_failed += 1;
                            stats.error(f);
                        }
                    }
                }
                stats
            })
        })
        .collect();
    let mut total = Stats::default();
    for t in tasks {
        if let Ok(s) = t.await {
            total.merge(s);
        }
    }
    let open_s = started.elapsed().as_secs_f64();
    if !args.quiet {
        eprintln!(
            "bench: {} connections open ({} failed) in {open_s:.1} s; holding {:.0} s",
            total.opened,
            total.open_failed,
            args.hold.as_secs_f64()
        );
    }
    tokio::time::sleep(args.hold).await;
    let server_holding = args.server_pid.and_then(proc_tree);
    let client_holding = self_rss_kib();
    let opened = total.opened;
    let per = |before: u64, after: u64| {
        if opened == 0 {
            0.0
        } else {
            (after as f64 - before as f64) / opened as f64
        }
    };
    let server = server_before.zip(server_holding);
    if let Ok(mut v) = held.lock() {
        v.clear();
    }
    if args.json {
        let v = serde_json::json!({
            "mode": "idle",
            "target": args.target,
            "address": ctx.addr.to_string(),
            "security": ctx.security.name(),
            "requested": n,
            "opened": opened,
            "failed": total.open_failed,
            "errors": json_map(&total.errors),
            "error_samples": json_map(&total.error_samples),
            "replies": json_map(&total.replies),
            "open_s": open_s,
            "hold_s": args.hold.as_secs_f64(),
            "server": server.as_ref().map(|(b, h)| serde_json::json!({
                "pids": h.pids.len(),
                "rss_before_kib": b.rss_kib,
                "rss_holding_kib": h.rss_kib,
                "rss_per_connection_kib": per(b.rss_kib, h.rss_kib),
                "pss_before_kib": b.pss_kib,
                "pss_holding_kib": h.pss_kib,
                "pss_per_connection_kib": per(b.pss_kib, h.pss_kib),
            })),
            "client": {
                "rss_before_kib": client_before,
                "rss_holding_kib": client_holding,
                "rss_per_connection_kib": per(client_before, client_holding),
            },
        });
        println!("{v}");
    } else {
        println!(
            "pillarbox bench --idle {n} {} ({}, {}): {opened} connections opened after EHLO, {} failed, in {open_s:.1} s; held {:.0} s",
            args.target,
            ctx.addr,
            ctx.security.name(),
            total.open_failed,
            args.hold.as_secs_f64()
        );
        let mut counted = String::new();
        total.write_errors(&mut counted);
        total.write_replies(&mut counted);
        print!("{counted}");
        match &server {
            Some((b, h)) => println!(
                "  server       {} process(es): RSS {} KiB before, {} KiB holding: {:.2} KiB per connection \
                 (PSS {:.2} KiB per connection)",
                h.pids.len(),
                b.rss_kib,
                h.rss_kib,
                per(b.rss_kib, h.rss_kib),
                per(b.pss_kib, h.pss_kib)
            ),
            None => println!("  server       (give --server-pid PID to measure its RSS)"),
        }
        println!(
            "  client       RSS {client_before} KiB before, {client_holding} KiB holding: {:.2} KiB per connection",
            per(client_before, client_holding)
        );
    }
    if opened == 0 {
        EXIT_USAGE
    } else if total.open_failed > 0 {
        EXIT_SOME_FAILED
    } else {
        EXIT_OK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_has_the_asked_size_and_no_leading_dot() {
        for size in [200, 256, 1000, 4096, 4097, 4098, 65_536, 100_003] {
            let m = build_message(size, "a@b.test", "c@d.test");
            assert_eq!(m.len(), size, "size {size}");
            assert!(m.ends_with(b"\r\n"));
            assert!(!m.windows(3).any(|w| w == b"\n.\r" || w == b"\n.."));
            assert!(m.split(|&b| b == b'\n').all(|l| l.len() <= 80));
        }
        // Too small for the headers: the headers and one line.
        let m = build_message(10, "a@b.test", "c@d.test");
        assert!(m.ends_with(b"\r\n\r\nx\r\n"));
    }

    #[test]
    fn sizes_and_distributions_parse() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert!(parse_size("0").is_err());
        assert!(parse_size("4x").is_err());
        let d = parse_size_dist("1k:50,4k:30,64k:20").expect("parses");
        assert_eq!(d.0, vec![(1024, 50), (4096, 30), (65536, 20)]);
        assert!(parse_size_dist("1k").is_err());
    }

    #[test]
    fn targets_split_and_loopback_is_recognised() {
        assert_eq!(
            split_target("127.0.0.1:25"),
            Ok(("127.0.0.1".to_string(), 25))
        );
        assert_eq!(split_target("[::1]:2525"), Ok(("::1".to_string(), 2525)));
        assert!(split_target("localhost").is_err());
        assert!(split_target("h:0").is_err());
        assert!(is_loopback(&"127.3.2.1".parse().expect("ip")));
        assert!(is_loopback(&"::ffff:127.0.0.1".parse().expect("ip")));
        assert!(!is_loopback(&"192.0.2.1".parse().expect("ip")));
    }

    #[test]
    fn reply_codes_parse_strictly() {
        assert_eq!(parse_code(b"250 ok"), Some(250));
        assert_eq!(parse_code(b"250-PIPELINING"), Some(250));
        assert_eq!(parse_code(b"354"), Some(354));
        assert_eq!(parse_code(b"25x ok"), None);
        assert_eq!(parse_code(b"250x"), None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u32> = (1..=100).map(|x| x * 1000).collect();
        assert_eq!(percentile_ms(&v, 50.0), 50.0);
        assert_eq!(percentile_ms(&v, 99.0), 99.0);
        assert_eq!(percentile_ms(&v, 100.0), 100.0);
    }

    #[test]
    fn sizes_are_picked_by_weight() {
        let cumulative = [50u64, 80, 100];
        let mut counts = [0u32; 3];
        for i in 0..10_000u64 {
            let r = splitmix64(i) % 100;
            counts[cumulative.partition_point(|&c| c <= r)] += 1;
        }
        assert!((4500..5500).contains(&counts[0]), "{counts:?}");
        assert!((2500..3500).contains(&counts[1]), "{counts:?}");
    }
}
