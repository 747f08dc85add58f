//! One SMTP connection of the bench: open it (greeting, EHLO, TLS, AUTH),
//! run transactions on it with the prebuilt bytes, close it.
//!
//! Replies are read with `pillarbox_client`'s [`LineReader`]: one buffer
//! per connection, each line checked and none kept, so a reply costs no
//! allocation; only a reply outside what is expected is sampled as text.

use std::time::{Duration, Instant};

use pillarbox_client::{LineReader, ReadError, ReplyLimits};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::plan::{Payload, Plan, Security};
use crate::stats::{Failure, Stats};

/// Most bytes of one reply line (RFC 5321 4.5.3.1.5 says 512; servers add
/// long texts), and most lines of one multi-line reply (EHLO has a dozen).
const REPLY_LIMITS: ReplyLimits = ReplyLimits {
    max_line: 4096,
    max_lines: 100,
};
/// How long a QUIT may take at the end of a session.
const QUIT_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection's byte stream, plain or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An open SMTP connection, after EHLO (and TLS and AUTH when asked).
pub(crate) struct Conn {
    pub(crate) io: Box<dyn Io>,
    rd: LineReader,
}

/// How one transaction ended.
pub(crate) enum Outcome {
    Accepted(Duration),
    /// Refused; `true` when the server is closing (421) or would not reset.
    Refused(bool),
}

fn read_failure(e: ReadError) -> Failure {
    match e {
        ReadError::Timeout => Failure::new("timeout", "no reply in time"),
        ReadError::Io(e) => Failure::new("io", e.to_string()),
        ReadError::Closed => Failure::new("closed", "the server closed the connection"),
        ReadError::Reply(e) => Failure::new("protocol", e.to_string()),
    }
}

/// The code of the next reply, within `timeout`.
async fn reply<S: AsyncRead + Unpin + ?Sized>(
    rd: &mut LineReader,
    io: &mut S,
    timeout: Duration,
) -> Result<u16, Failure> {
    let deadline = tokio::time::Instant::now() + timeout;
    match rd.read_reply_code(io, deadline).await {
        Ok(code) => Ok(code.get()),
        Err(e) => Err(read_failure(e)),
    }
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

/// A reply outside 2xx during setup: counted, and the connection given up.
fn refused(stats: &mut Stats, rd: &LineReader, code: u16, step: &str) -> Failure {
    stats.reply(code, rd.last_line());
    Failure::new(
        "refused",
        format!("{step}: {code} {}", String::from_utf8_lossy(rd.last_line())),
    )
}

async fn expect<S: AsyncRead + Unpin + ?Sized>(
    io: &mut S,
    rd: &mut LineReader,
    stats: &mut Stats,
    timeout: Duration,
    want: u16,
    step: &str,
) -> Result<(), Failure> {
    let code = reply(rd, io, timeout).await?;
    if code == want || (want == 250 && (200..300).contains(&code)) {
        Ok(())
    } else {
        Err(refused(stats, rd, code, step))
    }
}

async fn handshake(plan: &Plan, tcp: TcpStream) -> Result<Box<dyn Io>, Failure> {
    let connector = plan
        .tls
        .as_ref()
        .ok_or_else(|| Failure::new("tls", "no TLS configuration"))?;
    match tokio::time::timeout(
        plan.timeout,
        connector.connect(plan.server_name.clone(), tcp),
    )
    .await
    {
        Err(_) => Err(Failure::new("timeout", "TLS handshake timed out")),
        Ok(Err(e)) => Err(Failure::new("tls", e.to_string())),
        Ok(Ok(s)) => Ok(Box::new(s)),
    }
}

/// Connects and completes the greeting, EHLO, TLS and AUTH as asked.
pub(crate) async fn open(plan: &Plan, stats: &mut Stats) -> Result<Conn, Failure> {
    let t = plan.timeout;
    let mut tcp = match tokio::time::timeout(t, TcpStream::connect(plan.addr)).await {
        Err(_) => return Err(Failure::new("connect", "connect timed out")),
        Ok(Err(e)) => return Err(Failure::new("connect", e.to_string())),
        Ok(Ok(s)) => s,
    };
    let _ = tcp.set_nodelay(true);
    let mut rd = LineReader::new(REPLY_LIMITS);
    let mut io: Box<dyn Io> = match plan.security {
        Security::Tls => handshake(plan, tcp).await?,
        Security::Plain => Box::new(tcp),
        Security::StartTls => {
            expect(&mut tcp, &mut rd, stats, t, 220, "greeting").await?;
            send(&mut tcp, &plan.ehlo, t).await?;
            expect(&mut tcp, &mut rd, stats, t, 250, "EHLO").await?;
            send(&mut tcp, b"STARTTLS\r\n", t).await?;
            expect(&mut tcp, &mut rd, stats, t, 220, "STARTTLS").await?;
            if !rd.buffered().is_empty() {
                // RFC 3207 5: nothing may follow the 220 before the handshake.
                return Err(Failure::new("protocol", "bytes after the STARTTLS reply"));
            }
            handshake(plan, tcp).await?
        }
    };
    if plan.security != Security::StartTls {
        expect(&mut io, &mut rd, stats, t, 220, "greeting").await?;
    }
    send(&mut io, &plan.ehlo, t).await?;
    expect(&mut io, &mut rd, stats, t, 250, "EHLO").await?;
    if let Some(auth) = &plan.auth {
        send(&mut io, auth, t).await?;
        expect(&mut io, &mut rd, stats, t, 235, "AUTH").await?;
    }
    Ok(Conn { io, rd })
}

/// One message: MAIL, RCPT, DATA or BDAT; RSET after a refusal.
pub(crate) async fn transact(
    plan: &Plan,
    c: &mut Conn,
    p: &Payload,
    stats: &mut Stats,
) -> Result<Outcome, Failure> {
    let t = plan.timeout;
    let io = &mut c.io;
    let rd = &mut c.rd;
    // Replies before the final one: MAIL, RCPT, and DATA's 354.
    let mut refusal: Option<u16> = None;
    let mut note = |code: u16, rd: &LineReader, stats: &mut Stats, want: u16| {
        let ok = if want == 354 {
            code == 354
        } else {
            (200..300).contains(&code)
        };
        if !ok {
            stats.reply(code, rd.last_line());
            refusal.get_or_insert(code);
        }
        ok
    };
    // Without pipelining, MAIL and RCPT each wait for their reply, whether
    // DATA or BDAT follows.
    if !plan.pipeline {
        for cmd in [&plan.mail, &plan.rcpt] {
            send(io, cmd, t).await?;
            let code = reply(rd, io, t).await?;
            if !note(code, rd, stats, 250) {
                return finish_refused(plan, c, stats, code).await;
            }
        }
    }
    if plan.bdat {
        send(io, &p.bdat, t).await?;
        let start = Instant::now();
        if plan.pipeline {
            for _ in 0..2 {
                let code = reply(rd, io, t).await?;
                note(code, rd, stats, 250);
            }
        }
        // The BDAT LAST reply (sent even when MAIL or RCPT failed).
        let code = reply(rd, io, t).await?;
        if note(code, rd, stats, 250) && refusal.is_none() {
            return Ok(Outcome::Accepted(start.elapsed()));
        }
        let code = refusal.unwrap_or(code);
        return finish_refused(plan, c, stats, code).await;
    }
    if plan.pipeline {
        send(io, &plan.mail_rcpt_data, t).await?;
        let mut data_ok = false;
        for want in [250, 250, 354] {
            let code = reply(rd, io, t).await?;
            data_ok = note(code, rd, stats, want);
        }
        if !data_ok {
            let code = refusal.unwrap_or(0);
            return finish_refused(plan, c, stats, code).await;
        }
    } else {
        send(io, b"DATA\r\n", t).await?;
        let code = reply(rd, io, t).await?;
        if !note(code, rd, stats, 354) {
            return finish_refused(plan, c, stats, code).await;
        }
    }
    send(io, &p.data, t).await?;
    let start = Instant::now();
    let code = reply(rd, io, t).await?;
    if note(code, rd, stats, 250) && refusal.is_none() {
        return Ok(Outcome::Accepted(start.elapsed()));
    }
    let code = refusal.unwrap_or(code);
    finish_refused(plan, c, stats, code).await
}

/// After a refusal: RSET so the next transaction starts clean (RFC 5321
/// 4.1.1.5), unless the server said it is closing.
async fn finish_refused(
    plan: &Plan,
    c: &mut Conn,
    stats: &mut Stats,
    code: u16,
) -> Result<Outcome, Failure> {
    if code == 421 {
        return Ok(Outcome::Refused(true));
    }
    send(&mut c.io, b"RSET\r\n", plan.timeout).await?;
    let code = reply(&mut c.rd, &mut c.io, plan.timeout).await?;
    if !(200..300).contains(&code) {
        stats.reply(code, c.rd.last_line());
        return Ok(Outcome::Refused(true));
    }
    Ok(Outcome::Refused(false))
}

/// QUIT, its reply and the close, each bounded; failures do not count.
pub(crate) async fn quit(mut c: Conn) {
    let _ = send(&mut c.io, b"QUIT\r\n", QUIT_TIMEOUT).await;
    let _ = reply(&mut c.rd, &mut c.io, QUIT_TIMEOUT).await;
    let _ = tokio::time::timeout(QUIT_TIMEOUT, c.io.shutdown()).await;
}
