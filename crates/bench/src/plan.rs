//! What a run sends, built once before it starts: the target checked and
//! resolved, every command line and message body shared by every session.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

use crate::error::BenchError;

/// How the connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// Plain SMTP.
    Plain,
    /// STARTTLS after EHLO (RFC 3207).
    StartTls,
    /// TLS from the first byte (RFC 8314).
    Tls,
}

impl Security {
    /// The name in the report: plain, starttls, tls.
    pub fn name(self) -> &'static str {
        match self {
            Security::Plain => "plain",
            Security::StartTls => "starttls",
            Security::Tls => "tls",
        }
    }
}

/// AUTH PLAIN credentials (RFC 4954, RFC 4616).
#[derive(Clone)]
pub struct Credentials {
    /// The authentication identity.
    pub user: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Everything a run is asked to do.
#[derive(Clone, Debug)]
pub struct Options {
    /// `HOST:PORT` or `[IPv6]:PORT`.
    pub target: String,
    /// Concurrent sessions (load mode).
    pub sessions: u32,
    /// The message budget the sessions share.
    pub messages: u64,
    /// Message sizes in bytes and their weights.
    pub sizes: Vec<(usize, u32)>,
    /// Many messages per connection.
    pub reuse: bool,
    /// MAIL, RCPT and DATA (or BDAT) in one write (RFC 2920).
    pub pipeline: bool,
    /// `BDAT n LAST` (RFC 3030) instead of DATA.
    pub bdat: bool,
    /// Plain, STARTTLS or implicit TLS; the certificate is not verified.
    pub security: Security,
    /// AUTH PLAIN on every connection.
    pub auth: Option<Credentials>,
    /// The envelope sender.
    pub from: String,
    /// The envelope recipient.
    pub to: String,
    /// The EHLO name.
    pub ehlo: String,
    /// No new messages after this long.
    pub duration: Option<Duration>,
    /// Connect, TLS handshake and per-reply timeout.
    pub timeout: Duration,
    /// Host names or addresses allowed although not loopback.
    pub allow_targets: Vec<String>,
    /// Runtime threads.
    pub threads: u32,
    /// The server process to measure, with its descendants.
    pub server_pid: Option<u32>,
    /// Idle mode: how long to hold the connections.
    pub hold: Duration,
    /// Idle mode: connections being opened at the same time.
    pub connect_concurrency: u32,
}

/// One message size, with everything sent for it built once.
pub(crate) struct Payload {
    pub(crate) size: usize,
    /// Non-pipelined DATA: the message, then `.` CRLF.
    pub(crate) data: Arc<[u8]>,
    /// Pipelined BDAT: MAIL, RCPT and `BDAT n LAST` with the message, one write.
    /// Non-pipelined BDAT: `BDAT n LAST` CRLF and the message.
    pub(crate) bdat: Arc<[u8]>,
}

/// What every session shares: the target, the prebuilt commands and bodies,
/// the budget and the live counters.
pub(crate) struct Plan {
    pub(crate) addr: SocketAddr,
    pub(crate) server_name: ServerName<'static>,
    pub(crate) security: Security,
    pub(crate) tls: Option<TlsConnector>,
    pub(crate) timeout: Duration,
    pub(crate) reuse: bool,
    pub(crate) pipeline: bool,
    pub(crate) bdat: bool,
    pub(crate) ehlo: Vec<u8>,
    pub(crate) auth: Option<Vec<u8>>,
    pub(crate) mail: Vec<u8>,
    pub(crate) rcpt: Vec<u8>,
    /// MAIL, RCPT and DATA in one write (RFC 2920 3.1: DATA ends the group).
    pub(crate) mail_rcpt_data: Vec<u8>,
    pub(crate) payloads: Vec<Payload>,
    /// Cumulative weights of `payloads`, for the pick.
    pub(crate) cumulative: Vec<u64>,
    pub(crate) messages: u64,
    pub(crate) deadline: Option<Instant>,
    pub(crate) next: AtomicU64,
    pub(crate) done: AtomicU64,
    pub(crate) accepted: AtomicU64,
}

/// True when `value` can go into a command line as one word.
pub fn is_word(value: &str) -> bool {
    !value
        .bytes()
        .any(|b| b.is_ascii_control() || b == b' ' || b == b'<' || b == b'>')
}

impl Plan {
    pub(crate) async fn new(opts: &Options) -> Result<Plan, BenchError> {
        let (host, port) = pillarbox_client::parse_target(&opts.target, None)?;
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|source| BenchError::Resolve {
                target: opts.target.clone(),
                source,
            })?
            .collect();
        let allowed = |ip: &IpAddr| {
            opts.allow_targets.iter().any(|a| {
                a.eq_ignore_ascii_case(&host)
                    || a.trim_matches(|c| c == '[' || c == ']')
                        .parse::<IpAddr>()
                        .ok()
                        == Some(*ip)
            })
        };
        let addr = *addrs
            .first()
            .ok_or_else(|| BenchError::NoAddress(opts.target.clone()))?;
        // Every address the name resolves to must pass, not only the first.
        if let Some(bad) = addrs
            .iter()
            .find(|a| !is_loopback(&a.ip()) && !allowed(&a.ip()))
        {
            return Err(BenchError::NotLoopback {
                target: opts.target.clone(),
                ip: bad.ip(),
            });
        }
        let server_name = match host.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(host.clone()).map_err(|e| BenchError::ServerName {
                host: host.clone(),
                reason: e.to_string(),
            })?,
        };
        let tls = (opts.security != Security::Plain)
            .then(tls_connector)
            .transpose()?;
        for (what, v) in [
            ("--from", &opts.from),
            ("--to", &opts.to),
            ("--ehlo", &opts.ehlo),
        ] {
            if !is_word(v) {
                return Err(BenchError::BadWord {
                    what,
                    value: v.clone(),
                });
            }
        }
        let auth = opts.auth.as_ref().map(|c| {
            // RFC 4616 2: authzid NUL authcid NUL passwd, with an empty authzid.
            let mut message = Vec::with_capacity(c.user.len() + c.password.len() + 2);
            message.push(0);
            message.extend_from_slice(c.user.as_bytes());
            message.push(0);
            message.extend_from_slice(c.password.as_bytes());
            let encoded = pillarbox_proto::sasl::encode(&message);
            format!("AUTH PLAIN {encoded}\r\n").into_bytes()
        });
        let mail = format!("MAIL FROM:<{}>\r\n", opts.from).into_bytes();
        let rcpt = format!("RCPT TO:<{}>\r\n", opts.to).into_bytes();
        let mut mail_rcpt_data = [mail.as_slice(), rcpt.as_slice()].concat();
        mail_rcpt_data.extend_from_slice(b"DATA\r\n");
        let mut payloads = Vec::with_capacity(opts.sizes.len());
        let mut cumulative = Vec::with_capacity(opts.sizes.len());
        let mut total = 0u64;
        for &(size, weight) in &opts.sizes {
            let message = build_message(size, &opts.from, &opts.to);
            let mut data = message.clone();
            data.extend_from_slice(b".\r\n");
            let mut bdat = Vec::with_capacity(message.len() + 128);
            if opts.pipeline {
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
        if payloads.is_empty() {
            return Err(BenchError::NoSizes);
        }
        Ok(Plan {
            addr,
            server_name,
            security: opts.security,
            tls,
            timeout: opts.timeout,
            reuse: opts.reuse,
            pipeline: opts.pipeline,
            bdat: opts.bdat,
            ehlo: format!("EHLO {}\r\n", opts.ehlo).into_bytes(),
            auth,
            mail,
            rcpt,
            mail_rcpt_data,
            payloads,
            cumulative,
            messages: opts.messages,
            deadline: opts.duration.map(|d| Instant::now() + d),
            next: AtomicU64::new(0),
            done: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
        })
    }

    /// The next message of the budget, or `None` when the budget or the
    /// duration is spent.
    pub(crate) fn claim(&self) -> Option<u64> {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        (i < self.messages).then_some(i)
    }

    /// The payload of message `i`: a fixed pseudo-random pick by weight, so
    /// two runs send the same sizes in the same order.
    pub(crate) fn payload(&self, i: u64) -> &Payload {
        if self.payloads.len() == 1 {
            return &self.payloads[0];
        }
        let total = self.cumulative.last().copied().unwrap_or(1);
        let r = splitmix64(i) % total;
        let k = self.cumulative.partition_point(|&c| c <= r);
        &self.payloads[k.min(self.payloads.len() - 1)]
    }

    /// Each message size as built and its weight.
    pub(crate) fn sizes(&self) -> Vec<(usize, u64)> {
        let mut prev = 0;
        self.payloads
            .iter()
            .zip(&self.cumulative)
            .map(|(p, &c)| {
                let w = c - prev;
                prev = c;
                (p.size, w)
            })
            .collect()
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

/// The bench only talks to this machine and measures the server, not a PKI:
/// the certificate is accepted unchecked (the client crate's unverified config).
fn tls_connector() -> Result<TlsConnector, BenchError> {
    let config =
        pillarbox_client::tls::unverified_config().map_err(|e| BenchError::Tls(e.to_string()))?;
    Ok(TlsConnector::from(config))
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
    fn loopback_is_recognised() {
        assert!(is_loopback(&"127.3.2.1".parse().expect("ip")));
        assert!(is_loopback(&"::ffff:127.0.0.1".parse().expect("ip")));
        assert!(!is_loopback(&"192.0.2.1".parse().expect("ip")));
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
