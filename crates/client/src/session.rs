//! One SMTP client connection: the operations of RFC 5321 and its
//! extensions, each returning the server's [`Reply`], with every line kept
//! in the [`Transcript`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pillarbox_codes::Reply;
use pillarbox_proto::sasl::{self, ClientExchange, Mechanism};
use rustls::pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::capabilities::Capabilities;
use crate::dot_stuffing::dot_stuff;
use crate::error::ClientError;
use crate::line_reader::{LineReader, ReadError};
use crate::reply_reader::{ReplyAssembler, ReplyLimits};
use crate::tls::{self, TlsInfo, TrustAnchors};
use crate::transcript::{Direction, Transcript, BODY_LINES_KEPT};

/// How to begin the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Security {
    /// Plain TCP; [`Client::starttls`] may upgrade it (RFC 3207).
    Plain,
    /// TLS from the first byte (RFC 8314, port 465).
    ImplicitTls,
}

/// Timeouts, limits and trust for a connection.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// TCP connect (and, for implicit TLS, the handshake).
    pub connect_timeout: Duration,
    /// Each reply to a command, and each write.
    pub command_timeout: Duration,
    /// The reply after the end of data (RFC 5321 4.5.3.2.6 suggests 10 min).
    pub data_timeout: Duration,
    pub limits: ReplyLimits,
    pub trust: TrustAnchors,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(60),
            data_timeout: Duration::from_secs(600),
            limits: ReplyLimits::default(),
            trust: TrustAnchors::system(),
        }
    }
}

/// A reply with the command it answered.
#[derive(Clone, Debug)]
pub struct ReplyRecord {
    /// The command as sent (credentials hidden), `None` for the greeting,
    /// `<end of data>` after a message.
    pub answered: Option<String>,
    pub reply: Reply,
    /// Whether it came under TLS.
    pub tls: bool,
}

/// The sender, recipients and MAIL parameters of one transaction.
#[derive(Clone, Debug, Default)]
pub struct Envelope {
    /// The reverse-path without angle brackets; empty for `<>`.
    pub from: String,
    pub to: Vec<String>,
    /// ESMTP parameters for MAIL (`SIZE=1234`, `BODY=8BITMIME`).
    pub mail_params: Vec<String>,
}

/// How the message content goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transfer {
    /// `DATA`, dot-stuffed, ended by CRLF.CRLF (RFC 5321 4.1.1.4).
    Data,
    /// `BDAT` chunks of at most this many octets, the last one `LAST`
    /// (RFC 3030 2).
    Bdat { chunk_size: usize },
}

/// The replies of one transaction, in the order the commands went.
#[derive(Clone, Debug)]
pub struct TransactionOutcome {
    /// MAIL, RCPTs and DATA went in one write (RFC 2920).
    pub pipelined: bool,
    pub mail: Reply,
    pub rcpts: Vec<(String, Reply)>,
    /// The reply to `DATA` (354 or a refusal); `None` with BDAT or when
    /// DATA was not reached.
    pub data: Option<Reply>,
    /// The reply to each BDAT chunk but the last.
    pub chunks: Vec<Reply>,
    /// The reply after the end of data or to `BDAT ... LAST`.
    pub final_reply: Option<Reply>,
}

impl TransactionOutcome {
    /// The message was taken for at least one recipient.
    pub fn delivered(&self) -> bool {
        self.final_reply
            .as_ref()
            .is_some_and(|r| r.code.get() / 100 == 2)
            && self.rcpts.iter().any(|(_, r)| r.code.get() / 100 == 2)
    }

    /// Every reply, in order.
    pub fn replies(&self) -> Vec<&Reply> {
        let mut out = vec![&self.mail];
        out.extend(self.rcpts.iter().map(|(_, r)| r));
        out.extend(self.data.iter());
        out.extend(self.chunks.iter());
        out.extend(self.final_reply.iter());
        out
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only while STARTTLS swaps the stream.
    Swapping,
}

/// The most challenges one AUTH exchange may take (SCRAM needs two).
const MAX_AUTH_STEPS: usize = 8;

/// An SMTP client connection.
pub struct Client {
    stream: Stream,
    host: String,
    config: ClientConfig,
    lines: LineReader,
    transcript: Transcript,
    replies: Vec<ReplyRecord>,
    pending: VecDeque<String>,
    capabilities: Option<Capabilities>,
    tls: Option<TlsInfo>,
    peer: SocketAddr,
    local: SocketAddr,
}

impl Client {
    /// Connects to `host:port` (`host` a name or an IP address, without
    /// brackets). With [`Security::ImplicitTls`] the handshake follows at
    /// once. The greeting is not read yet: see [`Client::read_greeting`].
    pub async fn connect(
        host: &str,
        port: u16,
        security: Security,
        config: ClientConfig,
    ) -> Result<Client, ClientError> {
        let start = Instant::now();
        let mut transcript = Transcript::new(start);
        let target = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        transcript.push(
            Direction::Event,
            false,
            format!("connecting to {target}"),
            None,
        );
        let tcp = match timeout(config.connect_timeout, TcpStream::connect((host, port))).await {
            Err(_) => {
                return Err(ClientError::Timeout {
                    during: format!("connecting to {target}"),
                    after: config.connect_timeout,
                })
            }
            Ok(Err(source)) => return Err(ClientError::Connect { target, source }),
            Ok(Ok(tcp)) => tcp,
        };
        let io_err = |source| ClientError::Io {
            during: "connecting".into(),
            source,
        };
        let peer = tcp.peer_addr().map_err(io_err)?;
        let local = tcp.local_addr().map_err(io_err)?;
        let _ = tcp.set_nodelay(true);
        transcript.push(
            Direction::Event,
            false,
            format!("connected to {peer} from {local}"),
            None,
        );
        let lines = LineReader::new(config.limits);
        let mut client = Client {
            stream: Stream::Plain(tcp),
            host: host.to_string(),
            config,
            lines,
            transcript,
            replies: Vec::new(),
            pending: VecDeque::new(),
            capabilities: None,
            tls: None,
            peer,
            local,
        };
        if security == Security::ImplicitTls {
            client.handshake().await?;
        }
        Ok(client)
    }

    pub fn transcript(&self) -> &Transcript {
        &self.transcript
    }

    /// Every reply so far, with the command it answered.
    pub fn replies(&self) -> &[ReplyRecord] {
        &self.replies
    }

    /// From the last positive EHLO; forgotten by STARTTLS (RFC 3207 4.2).
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.capabilities.as_ref()
    }

    /// Set once TLS is up.
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Adds a note to the transcript (not on the wire).
    pub fn note(&mut self, text: impl Into<String>) {
        let tls = self.is_tls();
        self.transcript
            .push(Direction::Event, tls, text.into(), None);
    }

    /// The server's `220` (or `554`, `421`) opening reply (RFC 5321 4.3.1).
    pub async fn read_greeting(&mut self) -> Result<Reply, ClientError> {
        self.read_reply_for(None, self.config.command_timeout).await
    }

    /// `EHLO name`; a positive reply's capabilities are kept.
    pub async fn ehlo(&mut self, name: &str) -> Result<Reply, ClientError> {
        let reply = self.command(&format!("EHLO {}", check_arg(name)?)).await?;
        if reply.code.get() == 250 {
            self.capabilities = Some(Capabilities::from_ehlo(&reply));
        }
        Ok(reply)
    }

    /// `HELO name` (RFC 5321 4.1.1.1), for servers that refuse EHLO.
    pub async fn helo(&mut self, name: &str) -> Result<Reply, ClientError> {
        let reply = self.command(&format!("HELO {}", check_arg(name)?)).await?;
        if reply.code.get() == 250 {
            self.capabilities = Some(Capabilities::default());
        }
        Ok(reply)
    }

    /// `STARTTLS`; on `220` the handshake follows and the capabilities are
    /// forgotten: send EHLO again (RFC 3207 4.2).
    pub async fn starttls(&mut self) -> Result<Reply, ClientError> {
        if self.is_tls() {
            return Err(ClientError::AlreadyTls);
        }
        let reply = self.command("STARTTLS").await?;
        if reply.code.get() != 220 {
            return Ok(reply);
        }
        if !self.lines.buffered().is_empty() {
            let extra = String::from_utf8_lossy(self.lines.buffered()).into_owned();
            self.note(format!("data after 220, before the handshake: {extra:?}"));
            return Err(ClientError::DataBeforeTls);
        }
        self.capabilities = None;
        self.handshake().await?;
        Ok(reply)
    }

    async fn handshake(&mut self) -> Result<(), ClientError> {
        let (config, verdict, anchors) =
            tls::client_config(&self.config.trust).map_err(|e| ClientError::Tls(e.to_string()))?;
        let name = ServerName::try_from(self.host.clone())
            .map_err(|_| ClientError::ServerName(self.host.clone()))?;
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Swapping) else {
            return Err(ClientError::AlreadyTls);
        };
        self.note("TLS handshake");
        let connector = TlsConnector::from(config);
        let tls = match timeout(self.config.connect_timeout, connector.connect(name, tcp)).await {
            Err(_) => {
                return Err(ClientError::Timeout {
                    during: "the TLS handshake".into(),
                    after: self.config.connect_timeout,
                })
            }
            Ok(Err(e)) => return Err(ClientError::Tls(e.to_string())),
            Ok(Ok(tls)) => tls,
        };
        let info = tls::describe(tls.get_ref().1, &self.host, &verdict, anchors);
        self.stream = Stream::Tls(Box::new(tls));
        let verdict = match &info.verification {
            tls::Verification::Verified => "certificate verifies".to_string(),
            tls::Verification::Failed(why) => format!("certificate does not verify: {why}"),
            tls::Verification::NotChecked(why) => format!("certificate not checked: {why}"),
        };
        self.transcript.push(
            Direction::Event,
            true,
            format!(
                "TLS established: {} {}, {verdict}",
                info.version, info.cipher_suite
            ),
            None,
        );
        self.tls = Some(info);
        Ok(())
    }

    /// `AUTH mechanism` and its exchange (RFC 4954 4), with the SASL client
    /// of `pillarbox_proto::sasl`. Returns the final reply (`235`, `535`
    /// ...). Credentials never enter the transcript: each response line is
    /// recorded as its length only.
    pub async fn auth(
        &mut self,
        mechanism: Mechanism,
        user: &str,
        password: &str,
    ) -> Result<Reply, ClientError> {
        let (mut exchange, initial) =
            ClientExchange::start(mechanism, user, password, &random_nonce());
        let (line, shown) = match initial {
            Some(data) if data.is_empty() => (
                format!("AUTH {} =", mechanism.name()),
                format!("AUTH {} =", mechanism.name()),
            ),
            Some(data) => {
                let b64 = sasl::encode(&data);
                let shown = format!("AUTH {} {}", mechanism.name(), hidden(&b64));
                (format!("AUTH {} {b64}", mechanism.name()), shown)
            }
            None => (
                format!("AUTH {}", mechanism.name()),
                format!("AUTH {}", mechanism.name()),
            ),
        };
        self.send_hidden(&line, &shown).await?;
        for _ in 0..MAX_AUTH_STEPS {
            let reply = self.read_reply().await?;
            if reply.code.get() == 235 {
                return match exchange.finish() {
                    Ok(()) => Ok(reply),
                    Err(source) => Err(ClientError::Sasl { mechanism, source }),
                };
            }
            if reply.code.get() != 334 {
                return Ok(reply);
            }
            let challenge = reply.lines.first().map(String::as_str).unwrap_or("");
            let step = match sasl::decode(challenge) {
                Ok(data) => exchange
                    .step(&data)
                    .map_err(|source| ClientError::Sasl { mechanism, source }),
                Err(_) => Err(ClientError::BadChallenge(mechanism)),
            };
            match step {
                Ok(response) => {
                    let b64 = sasl::encode(&response);
                    let shown = hidden(&b64);
                    self.send_hidden(&b64, &shown).await?;
                }
                Err(e) => {
                    // RFC 4954 4: `*` cancels; the server answers 501.
                    self.command("*").await?;
                    return Err(e);
                }
            }
        }
        Err(ClientError::AuthTooLong {
            mechanism,
            steps: MAX_AUTH_STEPS,
        })
    }

    /// `MAIL FROM:<from> params`.
    pub async fn mail(&mut self, from: &str, params: &[String]) -> Result<Reply, ClientError> {
        let line = mail_line(from, params)?;
        self.command(&line).await
    }

    /// `RCPT TO:<to>`.
    pub async fn rcpt(&mut self, to: &str) -> Result<Reply, ClientError> {
        self.command(&format!("RCPT TO:<{}>", check_arg(to)?)).await
    }

    /// `DATA`, and on `354` the dot-stuffed message and its end (RFC 5321
    /// 4.1.1.4). Returns (reply to DATA, reply after the end of data).
    pub async fn data(&mut self, message: &[u8]) -> Result<(Reply, Option<Reply>), ClientError> {
        let first = self.command("DATA").await?;
        if first.code.get() != 354 {
            return Ok((first, None));
        }
        let last = self.send_content(message).await?;
        Ok((first, Some(last)))
    }

    /// `BDAT` chunks (RFC 3030 2); returns every chunk's reply, the last
    /// for `BDAT n LAST`. Stops at the first refused chunk.
    pub async fn bdat(
        &mut self,
        message: &[u8],
        chunk_size: usize,
    ) -> Result<Vec<Reply>, ClientError> {
        let chunk_size = chunk_size.max(1);
        let mut out = Vec::new();
        let mut budget = BODY_LINES_KEPT;
        let chunks: Vec<&[u8]> = if message.is_empty() {
            vec![&[][..]]
        } else {
            message.chunks(chunk_size).collect()
        };
        let n = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let last = i + 1 == n;
            let line = if last {
                format!("BDAT {} LAST", chunk.len())
            } else {
                format!("BDAT {}", chunk.len())
            };
            let mut wire = format!("{line}\r\n").into_bytes();
            wire.extend_from_slice(chunk);
            let tls = self.is_tls();
            self.transcript
                .push(Direction::Sent, tls, line.clone(), None);
            if budget > 0 {
                let before = self.transcript.entries().len();
                self.transcript.push_body(tls, chunk);
                budget = budget.saturating_sub(self.transcript.entries().len() - before);
            }
            self.pending.push_back(line);
            self.write(&wire).await?;
            let wait = if last {
                self.config.data_timeout
            } else {
                self.config.command_timeout
            };
            let reply = self.read_reply_within(wait).await?;
            let ok = reply.code.get() / 100 == 2;
            out.push(reply);
            if !ok {
                break;
            }
        }
        Ok(out)
    }

    /// A whole transaction. With `pipeline` and PIPELINING advertised,
    /// MAIL, every RCPT and DATA go in one write (RFC 2920 3.1); with BDAT
    /// the envelope goes in one write and the chunks follow. Stops where
    /// the server refuses: no DATA without an accepted recipient (when
    /// pipelined and DATA got `354` anyway, a lone `.` ends it, RFC 2920 3.1).
    /// The caller sends RSET after a refused transaction if it goes on.
    pub async fn send_mail(
        &mut self,
        envelope: &Envelope,
        message: &[u8],
        transfer: Transfer,
        pipeline: bool,
    ) -> Result<TransactionOutcome, ClientError> {
        let pipelined = pipeline && self.capabilities.as_ref().is_some_and(|c| c.pipelining());
        let mail_cmd = mail_line(&envelope.from, &envelope.mail_params)?;
        let mut rcpt_cmds = Vec::with_capacity(envelope.to.len());
        for to in &envelope.to {
            rcpt_cmds.push(format!("RCPT TO:<{}>", check_arg(to)?));
        }
        if !pipelined {
            let mail = self.command(&mail_cmd).await?;
            let mut outcome = TransactionOutcome {
                pipelined,
                mail,
                rcpts: Vec::new(),
                data: None,
                chunks: Vec::new(),
                final_reply: None,
            };
            if outcome.mail.code.get() / 100 != 2 {
                return Ok(outcome);
            }
            for (to, cmd) in envelope.to.iter().zip(&rcpt_cmds) {
                let r = self.command(cmd).await?;
                outcome.rcpts.push((to.clone(), r));
            }
            if !outcome.rcpts.iter().any(|(_, r)| r.code.get() / 100 == 2) {
                return Ok(outcome);
            }
            self.transfer(&mut outcome, message, transfer).await?;
            return Ok(outcome);
        }
        let mut batch = vec![mail_cmd];
        batch.extend(rcpt_cmds);
        if transfer == Transfer::Data {
            batch.push("DATA".to_string());
        }
        self.send_batch(&batch).await?;
        let mail = self.read_reply().await?;
        let mut rcpts = Vec::with_capacity(envelope.to.len());
        for to in &envelope.to {
            rcpts.push((to.clone(), self.read_reply().await?));
        }
        let mut outcome = TransactionOutcome {
            pipelined,
            mail,
            rcpts,
            data: None,
            chunks: Vec::new(),
            final_reply: None,
        };
        let any_rcpt = outcome.rcpts.iter().any(|(_, r)| r.code.get() / 100 == 2);
        match transfer {
            Transfer::Data => {
                let data = self.read_reply().await?;
                let go = data.code.get() == 354;
                outcome.data = Some(data);
                if go && any_rcpt && outcome.mail.code.get() / 100 == 2 {
                    outcome.final_reply = Some(self.send_content(message).await?);
                } else if go {
                    outcome.final_reply = Some(self.send_content_raw(b".\r\n").await?);
                }
            }
            Transfer::Bdat { .. } => {
                if any_rcpt && outcome.mail.code.get() / 100 == 2 {
                    self.transfer(&mut outcome, message, transfer).await?;
                }
            }
        }
        Ok(outcome)
    }

    async fn transfer(
        &mut self,
        outcome: &mut TransactionOutcome,
        message: &[u8],
        transfer: Transfer,
    ) -> Result<(), ClientError> {
        match transfer {
            Transfer::Data => {
                let (data, last) = self.data(message).await?;
                outcome.data = Some(data);
                outcome.final_reply = last;
            }
            Transfer::Bdat { chunk_size } => {
                let mut replies = self.bdat(message, chunk_size).await?;
                let last_sent = replies.len() == message.len().div_ceil(chunk_size.max(1)).max(1);
                if last_sent || replies.last().is_some_and(|r| r.code.get() / 100 != 2) {
                    outcome.final_reply = replies.pop();
                }
                outcome.chunks = replies;
            }
        }
        Ok(())
    }

    /// `RSET`.
    pub async fn rset(&mut self) -> Result<Reply, ClientError> {
        self.command("RSET").await
    }

    /// `NOOP`.
    pub async fn noop(&mut self) -> Result<Reply, ClientError> {
        self.command("NOOP").await
    }

    /// `HELP` or `HELP topic`.
    pub async fn help(&mut self, topic: Option<&str>) -> Result<Reply, ClientError> {
        match topic {
            Some(t) => self.command(&format!("HELP {}", check_arg(t)?)).await,
            None => self.command("HELP").await,
        }
    }

    /// `QUIT`, its reply, then the connection is shut down.
    pub async fn quit(&mut self) -> Result<Reply, ClientError> {
        let reply = self.command("QUIT").await?;
        self.shutdown().await;
        Ok(reply)
    }

    /// Closes the write side (after a TLS close_notify under TLS).
    pub async fn shutdown(&mut self) {
        let _ = match &mut self.stream {
            Stream::Plain(s) => timeout(self.config.command_timeout, s.shutdown()).await,
            Stream::Tls(s) => timeout(self.config.command_timeout, s.shutdown()).await,
            Stream::Swapping => return,
        };
        self.note("connection closed");
    }

    /// Any command line (CRLF added) and its reply.
    pub async fn command(&mut self, line: &str) -> Result<Reply, ClientError> {
        self.send_batch(&[check_arg(line)?.to_string()]).await?;
        self.read_reply().await
    }

    /// Several command lines in one write (RFC 2920); read their replies
    /// with [`Client::read_reply`], one each, in order.
    pub async fn send_batch(&mut self, lines: &[String]) -> Result<(), ClientError> {
        let mut wire = Vec::new();
        let tls = self.is_tls();
        for line in lines {
            check_arg(line)?;
            wire.extend_from_slice(line.as_bytes());
            wire.extend_from_slice(b"\r\n");
            self.transcript
                .push(Direction::Sent, tls, line.clone(), None);
            self.pending.push_back(line.clone());
        }
        self.write(&wire).await
    }

    async fn send_hidden(&mut self, line: &str, shown: &str) -> Result<(), ClientError> {
        let tls = self.is_tls();
        self.transcript
            .push(Direction::Sent, tls, shown.to_string(), None);
        self.pending.push_back(shown.to_string());
        self.write(format!("{line}\r\n").as_bytes()).await
    }

    /// The message after `354`: dot-stuffed, then the reply after its end.
    async fn send_content(&mut self, message: &[u8]) -> Result<Reply, ClientError> {
        self.send_content_raw(&dot_stuff(message)).await
    }

    async fn send_content_raw(&mut self, wire: &[u8]) -> Result<Reply, ClientError> {
        let tls = self.is_tls();
        self.transcript.push_body(tls, wire);
        self.pending.push_back("<end of data>".to_string());
        self.write(wire).await?;
        self.read_reply_within(self.config.data_timeout).await
    }

    /// The next reply, with the command timeout.
    pub async fn read_reply(&mut self) -> Result<Reply, ClientError> {
        self.read_reply_within(self.config.command_timeout).await
    }

    async fn read_reply_within(&mut self, wait: Duration) -> Result<Reply, ClientError> {
        let answered = self.pending.pop_front();
        self.read_reply_for(answered, wait).await
    }

    async fn read_reply_for(
        &mut self,
        answered: Option<String>,
        wait: Duration,
    ) -> Result<Reply, ClientError> {
        let during = match &answered {
            Some(cmd) => format!("waiting for the reply to {cmd}"),
            None => "waiting for the greeting".to_string(),
        };
        let mut assembler = ReplyAssembler::new(self.config.limits);
        let index = self.replies.len();
        // Bounded by the assembler's line limit; the +1 covers the last line.
        for _ in 0..=self.config.limits.max_lines {
            let line = self.read_line(&during, wait).await?;
            let tls = self.is_tls();
            let text = String::from_utf8_lossy(&line);
            let text = text.strip_suffix("\r\n").unwrap_or(&text).to_string();
            self.transcript
                .push(Direction::Received, tls, text, Some(index));
            if let Some(reply) = assembler.push_line(&line)? {
                self.replies.push(ReplyRecord {
                    answered,
                    reply: reply.clone(),
                    tls,
                });
                return Ok(reply);
            }
        }
        Err(crate::reply_reader::ReplyError::TooManyLines {
            limit: self.config.limits.max_lines,
        }
        .into())
    }

    /// One line, CRLF included (or whatever ends at LF: the assembler
    /// judges it), bounded by the line limit and `wait`.
    async fn read_line(&mut self, during: &str, wait: Duration) -> Result<Vec<u8>, ClientError> {
        let deadline = tokio::time::Instant::now() + wait;
        let read = match &mut self.stream {
            Stream::Plain(s) => self.lines.read_line(s, deadline).await,
            Stream::Tls(s) => self.lines.read_line(s.as_mut(), deadline).await,
            Stream::Swapping => return Err(ClientError::Tls("no connection".into())),
        };
        match read {
            Ok(line) => Ok(line.to_vec()),
            Err(ReadError::Timeout) => Err(ClientError::Timeout {
                during: during.to_string(),
                after: wait,
            }),
            Err(ReadError::Io(source)) => Err(ClientError::Io {
                during: during.to_string(),
                source,
            }),
            Err(ReadError::Reply(e)) => Err(e.into()),
            Err(ReadError::Closed) => {
                let tls = self.is_tls();
                if !self.lines.buffered().is_empty() {
                    let partial = String::from_utf8_lossy(self.lines.buffered()).into_owned();
                    self.transcript
                        .push(Direction::Received, tls, partial, None);
                }
                self.transcript
                    .push(Direction::Event, tls, "closed by the server".into(), None);
                Err(ClientError::Closed {
                    during: during.to_string(),
                })
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let wait = self.config.command_timeout;
        let result = match &mut self.stream {
            Stream::Plain(s) => {
                timeout(wait, async {
                    s.write_all(bytes).await?;
                    s.flush().await
                })
                .await
            }
            Stream::Tls(s) => {
                timeout(wait, async {
                    s.write_all(bytes).await?;
                    s.flush().await
                })
                .await
            }
            Stream::Swapping => return Err(ClientError::Tls("no connection".into())),
        };
        match result {
            Err(_) => Err(ClientError::Timeout {
                during: "sending".into(),
                after: wait,
            }),
            Ok(Err(source)) => Err(ClientError::Io {
                during: "sending".into(),
                source,
            }),
            Ok(Ok(())) => Ok(()),
        }
    }
}

/// `MAIL FROM:<from> params`.
fn mail_line(from: &str, params: &[String]) -> Result<String, ClientError> {
    let mut line = format!("MAIL FROM:<{}>", check_arg(from)?);
    for p in params {
        line.push(' ');
        line.push_str(check_arg(p)?);
    }
    Ok(line)
}

/// Refuses CR and LF in anything that goes into a command line: they
/// would end it early and start another command.
fn check_arg(arg: &str) -> Result<&str, ClientError> {
    if arg.contains(['\r', '\n']) {
        Err(ClientError::BadArgument(arg.to_string()))
    } else {
        Ok(arg)
    }
}

fn hidden(b64: &str) -> String {
    format!("[credentials: {} octets of base64 hidden]", b64.len())
}

/// Fresh printable text for the SCRAM client nonce (RFC 5802 5.1).
fn random_nonce() -> String {
    let mut bytes = [0u8; 18];
    if getrandom::getrandom(&mut bytes).is_err() {
        // No entropy source: a nonce from the clock still differs per
        // exchange; SCRAM's security rests on the password, not on this.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        bytes[..16].copy_from_slice(&t.to_le_bytes());
    }
    sasl::encode(&bytes)
}
