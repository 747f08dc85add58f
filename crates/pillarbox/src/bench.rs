//! `pillarbox bench`: its arguments and its report. The load generator is
//! the `pillarbox-bench` crate; this parses the flags into its options,
//! prints progress and warnings on stderr, and the report as text or JSON.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use pillarbox_bench::{
    Bench, Credentials, IdleReport, LoadReport, Observer, Options, Progress, Security, Stats,
};

/// Exit status: every message attempted was accepted (idle: every connection opened).
const EXIT_OK: u8 = 0;
/// Exit status: the run finished, but some messages were refused or failed.
const EXIT_SOME_FAILED: u8 = 1;
/// Exit status: usage error, a refused target, or not one connection made.
const EXIT_USAGE: u8 = 2;

/// Largest message size accepted by --size.
const MAX_SIZE: usize = 100 << 20;
/// Largest --messages and --idle.
const MAX_MESSAGES: u64 = 100_000_000;
/// Largest --idle.
const MAX_IDLE: u32 = 1_000_000;

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
    let options = match options(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("pillarbox bench: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let bench = match Bench::new(options) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("pillarbox bench: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let observer = Arc::new(Stderr::new(args.quiet));
    let code = match args.idle {
        Some(n) => match bench.run_idle(n, observer.as_ref()) {
            Ok(report) => print_idle(&bench, args, &report),
            Err(e) => {
                eprintln!("pillarbox bench: {e}");
                EXIT_USAGE
            }
        },
        None => {
            let report = bench.run_load(observer);
            print_load(&bench, args, &report)
        }
    };
    ExitCode::from(code)
}

/// The library's options from the flags.
fn options(args: &BenchArgs) -> Result<Options, String> {
    let security = if args.tls {
        Security::Tls
    } else if args.starttls {
        Security::StartTls
    } else {
        Security::Plain
    };
    let auth = match (&args.auth, &args.password_env) {
        (Some(user), Some(var)) => Some(Credentials {
            user: user.clone(),
            password: std::env::var(var)
                .map_err(|_| format!("--password-env {var}: the variable is not set"))?,
        }),
        _ => None,
    };
    let sizes = match &args.size_dist {
        Some(d) => d.0.clone(),
        None => vec![(args.size, 1)],
    };
    Ok(Options {
        target: args.target.clone(),
        sessions: args.sessions,
        messages: args.messages,
        sizes,
        reuse: args.reuse,
        pipeline: args.pipeline,
        bdat: args.bdat,
        security,
        auth,
        from: args.from.clone(),
        to: args.to.clone(),
        ehlo: args.ehlo.clone(),
        duration: args.duration,
        timeout: args.timeout,
        allow_targets: args.allow_target.clone(),
        threads: args.threads,
        server_pid: args.server_pid,
        hold: args.hold,
        connect_concurrency: args.connect_concurrency,
    })
}

/// Warnings and progress on stderr: a line redrawn in place on a terminal,
/// a line every 5 s otherwise; nothing with --quiet.
struct Stderr {
    quiet: bool,
    tty: bool,
}

impl Stderr {
    fn new(quiet: bool) -> Stderr {
        Stderr {
            quiet,
            tty: std::io::stderr().is_terminal(),
        }
    }
}

impl Observer for Stderr {
    fn warning(&self, text: &str) {
        if !self.quiet {
            eprintln!("pillarbox bench: warning: {text}");
        }
    }

    fn progress_every(&self) -> Option<Duration> {
        (!self.quiet).then(|| {
            if self.tty {
                Duration::from_millis(500)
            } else {
                Duration::from_secs(5)
            }
        })
    }

    fn progress(&self, p: &Progress) {
        let line = format!(
            "bench: {}/{} done, {} accepted, {} failed, {:.0} msg/s now, {:.1} s",
            p.done,
            p.planned,
            p.accepted,
            p.done - p.accepted.min(p.done),
            p.rate_per_s,
            p.elapsed.as_secs_f64()
        );
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[K{line}");
            if p.finished {
                let _ = writeln!(err);
            }
        } else if !p.finished {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }

    fn holding(&self, opened: u64, failed: u64, open_s: f64, hold: Duration) {
        if !self.quiet {
            eprintln!(
                "bench: {opened} connections open ({failed} failed) in {open_s:.1} s; holding {:.0} s",
                hold.as_secs_f64()
            );
        }
    }
}

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

/// The `non-2xx` lines of the report: each code, its count and a sample
/// (quoted: it is the server's text).
fn write_replies(out: &mut String, s: &Stats) {
    write_counted(out, "non-2xx", &s.replies, &s.reply_samples, true);
}

/// The `errors` lines of the report: each kind, its count and a sample.
fn write_errors(out: &mut String, s: &Stats) {
    write_counted(out, "errors", &s.errors, &s.error_samples, false);
}

/// Prints the load report; returns the exit status.
fn print_load(bench: &Bench, args: &BenchArgs, report: &LoadReport) -> u8 {
    if args.json {
        println!("{}", load_json(bench, args, report));
    } else {
        print!("{}", load_text(bench, args, report));
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

fn load_json(bench: &Bench, args: &BenchArgs, report: &LoadReport) -> serde_json::Value {
    let s = &report.stats;
    let opts = bench.options();
    let (mps, bps) = report.rates();
    let latency = s.latency().map(|l| {
        serde_json::json!({"p50": l.p50, "p90": l.p90, "p99": l.p99, "max": l.max, "mean": l.mean})
    });
    let server = report.server_figures().map(|(cpu, per_1000, after)| {
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
        "target": args.target,
        "address": report.address.to_string(),
        "mode": {
            "sessions": args.sessions,
            "reuse": opts.reuse,
            "pipeline": opts.pipeline,
            "bdat": opts.bdat,
            "security": opts.security.name(),
            "auth": opts.auth.is_some(),
            "size_dist": bench.sizes().iter().map(|&(size, w)| [size as u64, w]).collect::<Vec<_>>(),
        },
        "messages": {
            "planned": opts.messages,
            "attempted": s.attempted,
            "accepted": s.accepted,
            "failed": s.failed,
        },
        "connections": {"opened": s.opened, "failed": s.open_failed},
        "elapsed_s": report.elapsed.as_secs_f64(),
        "messages_per_s": mps,
        "bytes": s.bytes,
        "bytes_per_s": bps,
        "latency_ms": latency,
        "replies": json_map(&s.replies),
        "reply_samples": json_map(&s.reply_samples),
        "errors": json_map(&s.errors),
        "error_samples": json_map(&s.error_samples),
        "client": {"cpu_s": report.client_cpu_s, "rss_kib": report.client_rss_kib},
        "server": server,
    })
}

fn load_text(bench: &Bench, args: &BenchArgs, report: &LoadReport) -> String {
    use std::fmt::Write as _;
    let s = &report.stats;
    let opts = bench.options();
    let (mps, bps) = report.rates();
    let mut out = String::new();
    let sizes = bench.sizes();
    let shown: Vec<String> = sizes
        .iter()
        .map(|&(size, w)| {
            if sizes.len() == 1 {
                format!("{size} bytes")
            } else {
                format!("{size}:{w}")
            }
        })
        .collect();
    let _ = writeln!(
        out,
        "pillarbox bench {} ({}): {} sessions, {}, {}{}{}{}, messages of {}",
        args.target,
        report.address,
        args.sessions,
        if opts.reuse {
            "many messages per connection"
        } else {
            "one message per connection"
        },
        opts.security.name(),
        if opts.pipeline { ", pipelined" } else { "" },
        if opts.bdat { ", BDAT" } else { ", DATA" },
        if opts.auth.is_some() {
            ", AUTH PLAIN"
        } else {
            ""
        },
        shown.join(", ")
    );
    let _ = writeln!(
        out,
        "  messages     {} accepted, {} failed, of {} attempted ({} planned) in {:.3} s",
        s.accepted,
        s.failed,
        s.attempted,
        opts.messages,
        report.elapsed.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "  throughput   {mps:.1} messages/s, {:.2} MB/s",
        bps / 1e6
    );
    match s.latency() {
        Some(l) => {
            let _ = writeln!(
                out,
                "  latency      p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms, mean {:.3} ms \
                 (final dot or BDAT LAST to its reply)",
                l.p50, l.p90, l.p99, l.max, l.mean
            );
        }
        None => {
            let _ = writeln!(out, "  latency      (no message accepted)");
        }
    }
    if s.replies.is_empty() {
        let _ = writeln!(out, "  non-2xx      none");
    }
    write_replies(&mut out, s);
    write_errors(&mut out, s);
    let _ = writeln!(
        out,
        "  connections  {} opened, {} failed",
        s.opened, s.open_failed
    );
    let _ = writeln!(
        out,
        "  client       {:.2} s CPU, {} KiB RSS",
        report.client_cpu_s, report.client_rss_kib
    );
    if let Some((cpu, per_1000, after)) = report.server_figures() {
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

/// Prints the idle report; returns the exit status.
fn print_idle(bench: &Bench, args: &BenchArgs, r: &IdleReport) -> u8 {
    let n = r.requested;
    let total = &r.stats;
    let opened = total.opened;
    let open_s = r.open_s;
    let security = bench.options().security.name();
    let (client_before, client_holding) = (r.client_rss_before_kib, r.client_rss_holding_kib);
    if args.json {
        let v = serde_json::json!({
            "mode": "idle",
            "target": args.target,
            "address": r.address.to_string(),
            "security": security,
            "requested": n,
            "opened": opened,
            "failed": total.open_failed,
            "errors": json_map(&total.errors),
            "error_samples": json_map(&total.error_samples),
            "replies": json_map(&total.replies),
            "open_s": open_s,
            "hold_s": r.hold.as_secs_f64(),
            "server": r.server.as_ref().map(|(b, h)| serde_json::json!({
                "pids": h.pids.len(),
                "rss_before_kib": b.rss_kib,
                "rss_holding_kib": h.rss_kib,
                "rss_per_connection_kib": r.per_connection(b.rss_kib, h.rss_kib),
                "pss_before_kib": b.pss_kib,
                "pss_holding_kib": h.pss_kib,
                "pss_per_connection_kib": r.per_connection(b.pss_kib, h.pss_kib),
            })),
            "client": {
                "rss_before_kib": client_before,
                "rss_holding_kib": client_holding,
                "rss_per_connection_kib": r.per_connection(client_before, client_holding),
            },
        });
        println!("{v}");
    } else {
        println!(
            "pillarbox bench --idle {n} {} ({}, {security}): {opened} connections opened after EHLO, {} failed, in {open_s:.1} s; held {:.0} s",
            args.target,
            r.address,
            total.open_failed,
            r.hold.as_secs_f64()
        );
        let mut counted = String::new();
        write_errors(&mut counted, total);
        write_replies(&mut counted, total);
        print!("{counted}");
        match &r.server {
            Some((b, h)) => println!(
                "  server       {} process(es): RSS {} KiB before, {} KiB holding: {:.2} KiB per connection \
                 (PSS {:.2} KiB per connection)",
                h.pids.len(),
                b.rss_kib,
                h.rss_kib,
                r.per_connection(b.rss_kib, h.rss_kib),
                r.per_connection(b.pss_kib, h.pss_kib)
            ),
            None => println!("  server       (give --server-pid PID to measure its RSS)"),
        }
        println!(
            "  client       RSS {client_before} KiB before, {client_holding} KiB holding: {:.2} KiB per connection",
            r.per_connection(client_before, client_holding)
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
}
