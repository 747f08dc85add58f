//! Drives one connection: reads bytes into the sans-IO session, carries out
//! its events (replies, policy questions, storage), enforces the timeouts of
//! RFC 5321 4.5.3.2, and ends the session on shutdown.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::Instrument;

use pillarbox_codes::{Reply, ReplyClass, Row};
use pillarbox_proto::sasl::Mechanism;
use pillarbox_proto::session::AuthPolicy;
use pillarbox_proto::spare;
use pillarbox_proto::{Event, Input, Question, Session, SessionConfig};
use pillarbox_proto::{ForwardPath, ReversePath};
use pillarbox_queue::{Message, Recipient, Target};
use pillarbox_store::{IncomingMessage, MailboxAddr, StoreError};

use crate::auth::AfterFailure;
use crate::config::{Listen, Protocol};
use crate::pace::{Bound, Pace, PaceLimits};
use crate::policy::{Client, DataCx, Decision, RecipientAddress, SenderCx, SessionInfo};
use crate::received::Trace;
use crate::server::{Settings, Shared};
use crate::tls::SwappableAcceptor;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;

/// Room for one read in `buf`: a spare buffer of this thread's when it has
/// none (an idle session gave its own back).
fn make_room(buf: &mut Vec<u8>) {
    if buf.capacity() == 0 {
        *buf = spare::take(READ_CHUNK);
    }
    buf.reserve(READ_CHUNK);
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    Closed,
}

impl Conn {
    /// Reads into `buf`. A plain connection waits for data before any buffer
    /// is allocated, so an idle session holds no receive buffer.
    async fn read(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => loop {
                s.readable().await?;
                make_room(buf);
                match s.try_read_buf(buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        // Readiness can be stale: give the buffer back before
                        // waiting again, or an idle session keeps 16 KiB.
                        if buf.is_empty() {
                            spare::give(std::mem::take(buf));
                        }
                        continue;
                    }
                    r => return r,
                }
            },
            Conn::Tls(s) => {
                make_room(buf);
                s.read_buf(buf).await
            }
            Conn::Closed => Ok(0),
        }
    }

    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.write_all(data).await,
            Conn::Tls(s) => {
                s.write_all(data).await?;
                s.flush().await
            }
            Conn::Closed => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// `TLSv1_3 with cipher TLS13_AES_256_GCM_SHA384`, under TLS.
    fn tls_summary(&self) -> Option<String> {
        let Conn::Tls(s) = self else { return None };
        let c = s.get_ref().1;
        Some(format!(
            "{:?} with cipher {:?}",
            c.protocol_version()?,
            c.negotiated_cipher_suite()?.suite()
        ))
    }
}

/// Runs one session to its end.
///
/// The driver is built before the task starts, so the task holds it once
/// rather than beside the arguments it was built from (an async fn keeps its
/// arguments' room for its whole life): that is in every idle session.
pub(crate) fn run(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    listener: &Listen,
    shutdown: watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> {
    let id = shared.session_id();
    let span = tracing::info_span!("session", id = %id);
    let implicit_tls = listener.protocol == Protocol::Submissions;
    let protocol = listener.protocol;
    let mut d = Driver::new(shared, stream, peer, id, listener, shutdown);
    async move {
        let _slot = match d.shared.admit(peer.ip(), &d.rt.cfg.limits) {
            Ok(slot) => slot,
            Err(hit) => {
                tracing::warn!(peer = %peer, limit = ?hit, "refused: too many connections");
                d.refuse(implicit_tls, hit.row().reply()).await;
                return;
            }
        };
        if let Decision::Refuse(r) | Decision::Defer(r) =
            d.rt.policies.connect(&d.shared.services, &d.client).await
        {
            d.refuse(implicit_tls, r).await;
            return;
        }
        tracing::info!(peer = %peer, listener = %protocol, "connect");
        let reason = d.drive(implicit_tls).await;
        if let Some(m) = d.msg.take() {
            m.abort();
        }
        tracing::info!(reason, messages = d.delivered, "disconnect");
    }
    .instrument(span)
}

/// Sends a refusal and closes; on an implicit-TLS listener the client can
/// only read it after the handshake (RFC 8314 3.3), so that comes first.
async fn refuse(shared: &Shared, stream: TcpStream, implicit_tls: bool, reply: Reply) {
    let wire = reply.to_wire();
    let timeout = Duration::from_secs(10);
    if implicit_tls {
        let Some(acceptor) = shared.tls.as_ref().map(SwappableAcceptor::current) else {
            return;
        };
        if let Ok(Ok(mut tls)) = tokio::time::timeout(timeout, acceptor.accept(stream)).await {
            let _ = tokio::time::timeout(timeout, async {
                let _ = tls.write_all(wire.as_bytes()).await;
                let _ = tls.shutdown().await;
            })
            .await;
        }
    } else {
        let mut s = stream;
        let _ = tokio::time::timeout(timeout, s.write_all(wire.as_bytes())).await;
    }
}

struct Driver {
    shared: Arc<Shared>,
    /// The settings in force when the session started, kept to its end.
    rt: Arc<Settings>,
    conn: Conn,
    /// Who the client is, for the policy checks.
    client: Client,
    id: String,
    /// The session; each accepted recipient keeps its mailboxes (several
    /// through an alias).
    session: Session<Vec<MailboxAddr>>,
    input: Input,
    out: Vec<u8>,
    shutdown: watch::Receiver<bool>,
    /// The message being received, and the first storage error it met.
    /// Boxed: allocated only while a message comes in (idle sessions stay small).
    msg: Option<Box<IncomingMessage>>,
    msg_error: Option<StoreError>,
    queue_id: String,
    messages: u32,
    delivered: u32,
    /// The time budget of the command or message data being waited for.
    pace: Pace,
}

impl Driver {
    fn new(
        shared: Arc<Shared>,
        stream: TcpStream,
        peer: SocketAddr,
        id: String,
        listener: &Listen,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let rt = shared.settings();
        let cfg = &rt.cfg;
        let trusted = cfg
            .relay
            .trusted_networks
            .iter()
            .any(|n| n.contains(peer.ip()));
        let local_ip = stream
            .local_addr()
            .map(|a| a.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let _ = stream.set_nodelay(true);
        let session = Session::new(SessionConfig {
            hostname: cfg.hostname.clone(),
            max_message_size: cfg.limits.message_size.0,
            max_recipients: cfg.limits.recipients,
            max_errors: cfg.limits.errors,
            max_hops: cfg.limits.hops,
            max_line: cfg.limits.command_line,
            starttls: shared.tls.is_some(),
            tls: false,
            status_allowed: trusted || peer.ip().is_loopback(),
            auth: auth_policy(&shared, &rt, listener),
        });
        Self {
            conn: Conn::Plain(stream),
            client: Client {
                ip: peer.ip(),
                local_ip,
                trusted,
            },
            id,
            session,
            input: Input::new(),
            out: Vec::new(),
            shutdown,
            msg: None,
            msg_error: None,
            queue_id: String::new(),
            messages: 0,
            delivered: 0,
            pace: Pace::new(Instant::now()),
            shared,
            rt,
        }
    }

    /// Refuses the connection before its greeting ([`refuse`], on the heap).
    async fn refuse(&mut self, implicit_tls: bool, reply: Reply) {
        if let Conn::Plain(stream) = std::mem::replace(&mut self.conn, Conn::Closed) {
            Box::pin(refuse(&self.shared, stream, implicit_tls, reply)).await;
        }
    }

    /// The session loop; returns why it ended.
    async fn drive(&mut self, implicit_tls: bool) -> &'static str {
        // Limits are read where used, not copied: what the loop holds across
        // its waits is in every idle session's task.
        if implicit_tls {
            // RFC 8314 3.3: on port 465 TLS starts at once, before the greeting.
            if let Err(reason) =
                Box::pin(self.handshake(self.rt.cfg.limits.command_timeout.0)).await
            {
                return reason;
            }
        } else if let Some(reason) =
            Box::pin(self.early_talker(self.rt.cfg.limits.greeting_delay.0)).await
        {
            return reason;
        }
        self.session.greeting().write_to(&mut self.out);
        let mut draining = *self.shutdown.borrow();
        let mut grace_deadline = draining.then(Instant::now);
        self.pace.command(Instant::now());
        loop {
            // Any event means a whole command line was read (or body bytes
            // passed on): the wait for the next command starts afresh.
            let mut progressed = false;
            while let Some(ev) = self.session.handle(&mut self.input) {
                progressed = true;
                match ev {
                    Event::Reply(r) => self.send(r),
                    Event::Ask(q) => Box::pin(self.answer(q)).await,
                    Event::Body(bytes) => {
                        self.write_body(&bytes);
                        spare::give(bytes);
                    }
                    Event::AbortMessage => self.abort_message(),
                    Event::StartTls => {
                        if let Err(reason) =
                            Box::pin(self.start_tls(self.rt.cfg.limits.command_timeout.0)).await
                        {
                            return reason;
                        }
                    }
                    Event::Close => {
                        let _ = self.flush().await;
                        return "closed";
                    }
                    Event::AuthAttempt { authcid, ok } => {
                        if let Some(reason) = Box::pin(self.auth_attempt(authcid, ok)).await {
                            return reason;
                        }
                    }
                }
            }
            if self.flush().await.is_err() {
                return "write failed";
            }
            if draining && !self.session.in_transaction() {
                return self
                    .close_with_boxed(
                        Row::ShuttingDown.reply_with(&self.rt.cfg.hostname),
                        "shutdown",
                    )
                    .await;
            }
            self.input.release();
            self.session.release();
            let now = Instant::now();
            // A message's data runs from its first body byte to its end; for
            // BDAT that spans its chunks and the command lines between them.
            if self.session.reading_body() || self.msg.is_some() {
                self.pace.data(now);
            } else if progressed || self.pace.in_data() {
                self.pace.command(now);
            }
            // RFC 5321 4.5.3.2: the idle gap between two reads is bounded by
            // the timeout of what is awaited; the pace bounds the command or
            // the message's data as a whole.
            let timeout = if self.session.reading_body() {
                self.rt.cfg.limits.data_timeout.0
            } else {
                self.rt.cfg.limits.command_timeout.0
            };
            let mut wait = match grace_deadline {
                Some(d) => timeout.min(d.saturating_duration_since(now)),
                None => timeout,
            };
            let mut bound = None;
            if let Some((at, b)) = self.pace.deadline(&PaceLimits::from(&self.rt.cfg.limits)) {
                let left = at.saturating_duration_since(now);
                // A command's time includes the wait for it: an idle client
                // has hit it too. In data, a silence is the idle gap's.
                if left < wait || (left == wait && b == Bound::CommandTime) {
                    (wait, bound) = (left, Some(b));
                }
            }
            let target = self.input.read_target();
            tokio::select! {
                r = self.conn.read(target) => match r {
                    Ok(0) => return "client closed the connection",
                    Ok(n) => self.pace.received(n),
                    Err(e) => {
                        tracing::info!(error = %e, "read failed");
                        return "read failed";
                    }
                },
                _ = tokio::time::sleep(wait) => {
                    if let Some(b) = bound {
                        tracing::info!(bound = b.as_str(), "client too slow");
                        return self.close_with_boxed(Row::Timeout.reply(), "timeout").await;
                    }
                    if grace_deadline.is_some_and(|d| Instant::now() >= d) {
                        return self.close_with_boxed(Row::ShuttingDown.reply_with(&self.rt.cfg.hostname), "shutdown").await;
                    }
                    return self.close_with_boxed(Row::Timeout.reply(), "timeout").await;
                }
                r = self.shutdown.changed(), if !draining => {
                    if r.is_err() || *self.shutdown.borrow() {
                        draining = true;
                        grace_deadline = Some(Instant::now() + self.rt.cfg.limits.shutdown_grace.0);
                    }
                }
            }
        }
    }

    /// RFC 5321 4.3.1 leaves the client to wait for the greeting; one that
    /// talks first during `delay` is not speaking SMTP (or is a spam engine).
    async fn early_talker(&mut self, delay: Duration) -> Option<&'static str> {
        if delay.is_zero() {
            return None;
        }
        let Conn::Plain(s) = &self.conn else {
            return None;
        };
        let mut probe = [0u8; 1];
        match tokio::time::timeout(delay, s.peek(&mut probe)).await {
            Ok(Ok(0)) => Some("client closed the connection"),
            Ok(Ok(_)) => {
                tracing::warn!("early talker");
                Some(
                    self.close_with(Row::EarlyTalker.reply(), "early talker")
                        .await,
                )
            }
            Ok(Err(_)) => Some("read failed"),
            Err(_) => None,
        }
    }

    fn send(&mut self, r: Reply) {
        let first = r.lines.first().map(String::as_str).unwrap_or("");
        let command = self.session.last_command();
        macro_rules! reply_event {
            ($level:ident) => {
                match r.enhanced {
                    Some(e) => tracing::$level!(command, "reply {} {} {}", r.code, e, first),
                    None => tracing::$level!(command, "reply {} {}", r.code, first),
                }
            };
        }
        // The positive replies of a mail transaction (MAIL, RCPT, 354, the 250
        // after the data) are summed up by its one `delivered` line, which names
        // the sender, the recipients and the queue id: they are debug events.
        // Every other reply, each refusal and deferral among them, is an info
        // event.
        if in_transaction_and_positive(command, &r) {
            reply_event!(debug)
        } else {
            reply_event!(info)
        }
        if self.out.capacity() == 0 {
            // From this thread's spares: no allocation per reply.
            self.out = pillarbox_proto::spare::take(pillarbox_proto::spare::SMALLEST);
        }
        r.write_to(&mut self.out);
    }

    async fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        // A client that sends and never reads would block this write for
        // ever once the socket's buffers are full: a send gets as long as a
        // command may take.
        let limit = self.rt.cfg.limits.command_timeout.0;
        let r = match tokio::time::timeout(limit, self.conn.write_all(&self.out)).await {
            Ok(r) => r,
            Err(_) => {
                tracing::info!(
                    bound = "reply write",
                    "client too slow: it does not read its replies"
                );
                Err(io::ErrorKind::TimedOut.into())
            }
        };
        // Nothing is kept between replies: an idle session holds no send
        // buffer. It goes back to the spares of the thread that sent it.
        pillarbox_proto::spare::give(std::mem::take(&mut self.out));
        r
    }

    /// [`Self::close_with`] on the heap: the session loop's future stays small
    /// for the time it spends idle (no per-connection weight while idle).
    async fn close_with_boxed(&mut self, reply: Reply, reason: &'static str) -> &'static str {
        Box::pin(self.close_with(reply, reason)).await
    }

    async fn close_with(&mut self, reply: Reply, reason: &'static str) -> &'static str {
        for ev in self.session.close_with(reply) {
            match ev {
                Event::Reply(r) => self.send(r),
                Event::AbortMessage => self.abort_message(),
                _ => {}
            }
        }
        let _ = self.flush().await;
        reason
    }

    async fn start_tls(&mut self, timeout: Duration) -> Result<(), &'static str> {
        self.flush().await.map_err(|_| "write failed")?;
        self.handshake(timeout).await
    }

    /// The TLS handshake on the plain connection (after STARTTLS, or at once on 465).
    async fn handshake(&mut self, timeout: Duration) -> Result<(), &'static str> {
        let Some(acceptor) = self.shared.tls.as_ref().map(SwappableAcceptor::current) else {
            return Err("TLS not configured");
        };
        let Conn::Plain(stream) = std::mem::replace(&mut self.conn, Conn::Closed) else {
            return Err("TLS under TLS");
        };
        match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                self.conn = Conn::Tls(Box::new(tls));
                self.session.tls_established();
                tracing::info!(tls = self.conn.tls_summary().unwrap_or_default(), "tls");
                Ok(())
            }
            Ok(Err(e)) => {
                tracing::info!(error = %e, "TLS handshake failed");
                Err("TLS handshake failed")
            }
            Err(_) => Err("TLS handshake timeout"),
        }
    }

    /// After an AUTH exchange: log it, and on failure count it, wait, or ban.
    async fn auth_attempt(&mut self, authcid: Option<String>, ok: bool) -> Option<&'static str> {
        let user = authcid.as_deref().unwrap_or("-");
        let (sh, rt) = (&*self.shared, &*self.rt);
        if ok {
            tracing::info!(user, "authenticated");
            rt.auth.succeeded(&sh.services, self.client.ip, user).await;
            return None;
        }
        tracing::warn!(user, "authentication failed");
        match rt
            .auth
            .failed(
                &sh.services,
                self.client.ip,
                self.client.trusted,
                authcid.as_deref(),
            )
            .await
        {
            AfterFailure::Delay(d) => {
                // Progressive delay: each failure costs the client more time.
                tokio::time::sleep(d).await;
                None
            }
            AfterFailure::Banned => Some(
                self.close_with(Row::AuthTooManyFailures.reply(), "banned")
                    .await,
            ),
        }
    }

    /// What the policy checks see of this session.
    fn info(&self) -> SessionInfo<'_> {
        SessionInfo {
            client: &self.client,
            helo: self.session.client_greeting().map(|g| g.name.as_str()),
            authenticated: self.session.authenticated(),
            tls: self.session.is_tls(),
        }
    }

    /// Answers the session's question; each kind of question has its own
    /// kind of answer.
    async fn answer(&mut self, q: Question) {
        let (sh, rt) = (&*self.shared, &*self.rt);
        match q {
            Question::Sender(q) => {
                tracing::debug!(from = %q.from, size = q.params.size, "sender");
                let cx = SenderCx {
                    session: self.info(),
                    from: &q.from,
                    size: q.params.size,
                };
                let a = rt.policies.sender(&sh.services, cx).await.into_result();
                self.session.answer_sender(q, a);
            }
            Question::Recipient(q) => {
                let a = match self.session.transaction() {
                    Some(tx) => {
                        let cx = RecipientAddress {
                            session: self.info(),
                            from: &tx.from,
                            to: &q.to,
                            size: q.size,
                        };
                        rt.policies.recipient(&sh.services, cx).await.into_result()
                    }
                    None => Err(Row::LocalError.reply()),
                };
                self.session.answer_recipient(q, a);
            }
            Question::CheckPassword(mut q) => {
                let password = std::mem::take(&mut q.password);
                let a = rt
                    .auth
                    .check_password(&sh.services, &q.authcid, password)
                    .await;
                self.session.answer_password(q, a);
            }
            Question::Secret(q) => {
                let a = rt.auth.secret(&sh.services, &q.authcid, q.mechanism);
                self.session.answer_secret(q, a);
            }
            Question::BeginMessage(q) => {
                let a = self.begin_message();
                self.session.answer_begin(q, a);
            }
            Question::Deliver(q) => {
                let a = self.deliver(q.size).await;
                self.session.answer_deliver(q, a);
            }
            Question::Status(q) => {
                let lines = self.status_lines();
                self.session.answer_status(q, lines);
            }
        }
    }

    fn begin_message(&mut self) -> Result<(), Reply> {
        self.messages += 1;
        // Letters and digits only: it names the body file and is part of
        // each Maildir copy's name.
        self.queue_id = format!("{}Q{}", self.id, self.messages);
        self.msg_error = None;
        let mut msg = match self.shared.store.begin(&self.queue_id) {
            Ok(m) => m,
            Err(e) => return Err(store_reply(&e)),
        };
        let Some(tx) = self.session.transaction() else {
            return Err(Row::LocalError.reply());
        };
        let greeting = self.session.client_greeting();
        let esmtp = greeting.is_some_and(|g| g.esmtp);
        let tls = self.conn.tls_summary();
        // RFC 3848: ESMTPS when under TLS; plain SMTP for HELO.
        // RFC 3848: ESMTPA/ESMTPSA after AUTH.
        let protocol = match (esmtp, tls.is_some(), self.session.authenticated().is_some()) {
            (true, true, true) => "ESMTPSA",
            (true, false, true) => "ESMTPA",
            (true, true, false) => "ESMTPS",
            (true, false, false) => "ESMTP",
            (false, _, _) => "SMTP",
        };
        let trace = Trace {
            helo: greeting.map(|g| g.name.as_str()).unwrap_or("unknown"),
            client_ip: self.client.ip,
            hostname: &self.rt.cfg.hostname,
            protocol,
            tls,
            queue_id: &self.queue_id,
            session_id: &self.id,
            single_rcpt: match tx.rcpts.as_slice() {
                [one] => Some(&one.to),
                _ => None,
            },
            return_path: &tx.from,
        };
        if let Err(e) = msg.write(trace.header(SystemTime::now()).as_bytes()) {
            return Err(store_reply(&e));
        }
        self.msg = Some(Box::new(msg));
        Ok(())
    }

    fn write_body(&mut self, bytes: &[u8]) {
        if self.msg_error.is_some() {
            return;
        }
        if let Some(m) = self.msg.as_mut() {
            if let Err(e) = m.write(bytes) {
                if e.is_no_space() {
                    self.shared.disk.invalidate();
                }
                tracing::warn!(queue_id = %self.queue_id, error = %e, "writing the message failed");
                self.msg_error = Some(e);
            }
        }
    }

    fn abort_message(&mut self) {
        if let Some(m) = self.msg.take() {
            m.abort();
            // The spool file's space is free again.
            self.shared.disk.invalidate();
        }
        self.msg_error = None;
    }

    async fn deliver(&mut self, size: u64) -> Result<String, Reply> {
        let Some(mut msg) = self.msg.take().map(|m| *m) else {
            return Err(Row::LocalError.reply());
        };
        // The bytes did not all reach the spool file: while they came in
        // (logged then), or now, as the last buffered ones are written out.
        // Written out here, on the session's thread, the write buffer goes
        // back to this thread's spares; the commit thread only syncs and links.
        let unwritten = self.msg_error.take().or_else(|| {
            let e = msg.write_out().err()?;
            tracing::warn!(queue_id = %self.queue_id, error = %e, "writing the message failed");
            Some(e)
        });
        if let Some(e) = unwritten {
            msg.abort();
            self.shared.disk.invalidate();
            return Err(store_reply(&e));
        }
        let Some(tx) = self.session.transaction() else {
            msg.abort();
            return Err(Row::LocalError.reply());
        };
        let (sh, rt) = (&*self.shared, &*self.rt);
        // One queue recipient per distinct mailbox, in the order given (a
        // recipient whose aliases name a mailbox twice gets one copy).
        let mut boxes: Vec<MailboxAddr> = Vec::new();
        let mut rcpts: Vec<Recipient> = Vec::new();
        for r in &tx.rcpts {
            for mb in &r.data {
                if boxes.contains(mb) {
                    continue;
                }
                boxes.push(mb.clone());
                let address = match &r.to {
                    ForwardPath::Postmaster => "postmaster".to_string(),
                    ForwardPath::Mailbox(m) => m.to_string(),
                };
                let mut rcpt = Recipient::new(
                    address,
                    Target::Local {
                        domain: mb.domain.clone(),
                        user: mb.user.clone(),
                    },
                );
                // RFC 3461 4.1, 4.2: what the sender asked to hear of, and
                // the address it gave, travel with the recipient.
                if let Some(n) = r.params.notify {
                    rcpt.notify = pillarbox_queue::Notify {
                        success: n.success,
                        failure: n.failure,
                        delay: n.delay,
                    };
                }
                rcpt.orcpt = r
                    .params
                    .orcpt
                    .as_ref()
                    .map(|o| (o.addr_type.clone(), o.address.clone()));
                rcpts.push(rcpt);
            }
        }
        let stored = msg.stored_size();
        // A lock set, or a quota filled, while the message was coming in
        // still counts: each mailbox is asked again, with the stored size.
        let cx = DataCx {
            session: self.info(),
            from: &tx.from,
            mailboxes: &boxes,
            size: stored,
        };
        let decisions = match rt.policies.delivery(&sh.services, cx).await {
            Ok(d) => d,
            Err(r) => {
                msg.abort();
                return Err(r);
            }
        };
        // The room in each accepted mailbox is reserved now: messages that
        // end together cannot overshoot a quota between here and the copy.
        let verdicts: Vec<Result<bool, Reply>> = decisions
            .into_iter()
            .zip(&boxes)
            .map(|(d, mb)| match d {
                Decision::Continue(()) => rt.quotas.reserve(&sh.services, mb, stored),
                Decision::Refuse(r) | Decision::Defer(r) => Err(r),
            })
            .collect();
        if verdicts.iter().all(Result::is_err) {
            // Every recipient refused: the reply says why (a temporary
            // reason first, so the client tries again for all of them).
            msg.abort();
            let mut refusals = verdicts.into_iter().filter_map(Result::err);
            let first = refusals.next().unwrap_or_else(|| Row::LocalError.reply());
            let temporary = std::iter::once(first.clone())
                .chain(refusals)
                .find(|r| r.class() == ReplyClass::TransientNegative);
            return Err(temporary.unwrap_or(first));
        }
        let now = sh.services.clock.now();
        let from = match &tx.from {
            ReversePath::Null => String::new(),
            ReversePath::Mailbox(m) => m.to_string(),
        };
        let mut envelope = Message {
            id: self.queue_id.clone(),
            arrival: now,
            sender: from,
            envid: tx.params.envid.clone(),
            ret: tx.params.ret.map(|r| match r {
                pillarbox_proto::Ret::Full => pillarbox_queue::Ret::Full,
                pillarbox_proto::Ret::Hdrs => pillarbox_queue::Ret::Hdrs,
            }),
            size: stored,
            wire_size: msg.wire_size(),
            held: false,
            restored: false,
            rcpts,
        };
        // Refused at the end of data while others were accepted: they wait
        // in the queue (or fail) and the sender hears of them by DSN.
        let mut reserved = Vec::new();
        for (i, v) in verdicts.iter().enumerate() {
            match v {
                Ok(held) => {
                    if *held {
                        envelope.rcpts[i].room_reserved = true;
                        reserved.push(i);
                    }
                }
                Err(reply) => {
                    crate::delivery::outcome(rt, &mut envelope, i, now, Err(reply.clone()));
                }
            }
        }
        let refused = boxes.len() - verdicts.iter().filter(|v| v.is_ok()).count();
        // Shared by the log line and the commit's settlement, not copied.
        let boxes: Arc<[MailboxAddr]> = boxes.into();
        let landed = boxes.clone();
        let timeout = self.rt.cfg.limits.commit_timeout.0;
        let (done_tx, mut rx) = tokio::sync::oneshot::channel();
        let done: pillarbox_queue::commit::Done = Box::new(move |r| {
            let _ = done_tx.send(r);
        });
        self.shared.delivery.commit(msg, envelope, done);
        let shared = self.shared.clone();
        let rt = self.rt.clone();
        let queue_id = self.queue_id.clone();
        // What a commit's outcome means, whenever it comes: a message in the
        // queue goes to its worker (with the room reserved for it); one that
        // is not gives the room back.
        let settle = move |r: &Result<pillarbox_store::Kept, StoreError>| match r {
            Ok(kept) => {
                shared.disk.consumed(kept.stored_size);
                shared.delivery.deliver_now(queue_id.clone());
            }
            Err(_) => {
                shared.disk.invalidate();
                for &i in &reserved {
                    rt.quotas.release(&landed[i], stored);
                }
            }
        };
        match tokio::time::timeout(timeout, &mut rx).await {
            Ok(Ok(r)) => {
                settle(&r);
                match r {
                    Ok(kept) => {
                        self.delivered += 1;
                        // The recipients are written out only when the event is
                        // logged (not at `warn`), without a string of their own.
                        tracing::info!(queue_id = %self.queue_id, from = %tx.from, to = %Joined(&boxes), rcpts = tx.rcpts.len(), refused, size, stored = kept.stored_size, "queued");
                        Ok(self.queue_id.clone())
                    }
                    Err(e) => {
                        tracing::warn!(queue_id = %self.queue_id, error = %e, "queue commit failed");
                        Err(store_reply(&e))
                    }
                }
            }
            Ok(Err(e)) => {
                tracing::error!(queue_id = %self.queue_id, error = %e, "queue commit was dropped before it finished");
                Err(Row::LocalError.reply())
            }
            Err(_) => {
                tracing::error!(queue_id = %self.queue_id, "queue commit took longer than limits.commit_timeout");
                // The commit cannot be called back and goes on; if it lands,
                // the message is queued and delivered. Say what became of it.
                let queue_id = self.queue_id.clone();
                tokio::spawn(async move {
                    if let Ok(r) = rx.await {
                        settle(&r);
                        match r {
                            Ok(_) => {
                                tracing::warn!(queue_id = %queue_id, "queued after its 451 (limits.commit_timeout); the client may send it again")
                            }
                            Err(e) => {
                                tracing::warn!(queue_id = %queue_id, error = %e, "queue commit failed after its 451 (limits.commit_timeout)")
                            }
                        }
                    }
                });
                Err(Row::LocalError.reply())
            }
        }
    }

    fn status_lines(&self) -> Vec<String> {
        let up = self.shared.started.elapsed().as_secs();
        let mut lines = vec![
            format!("Pillarbox {}", env!("CARGO_PKG_VERSION")),
            format!(
                "uptime {}d {}h {}m {}s",
                up / 86400,
                up % 86400 / 3600,
                up % 3600 / 60,
                up % 60
            ),
            format!(
                "sessions open {}",
                self.shared.open_sessions.load(Ordering::SeqCst)
            ),
        ];
        match pillarbox_store::disk::space(self.shared.store.data_dir()) {
            Ok(s) => lines.push(format!("storage free {} of {} bytes", s.available, s.total)),
            Err(e) => lines.push(format!("storage free unknown ({e})")),
        }
        let (mut messages, mut deferred, mut held) = (0, 0, 0);
        self.shared.delivery.queue.for_each(|m| {
            messages += 1;
            if m.held {
                held += 1;
            } else if m
                .rcpts
                .iter()
                .any(|r| r.state == pillarbox_queue::State::Deferred)
            {
                deferred += 1;
            }
        });
        lines.push(format!(
            "queue {messages} messages ({deferred} deferred, {held} held)"
        ));
        lines
    }
}

/// Mailboxes displayed comma-separated (a log field).
struct Joined<'a>(&'a [MailboxAddr]);

impl std::fmt::Display for Joined<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{b}")?;
        }
        Ok(())
    }
}

/// Local storage trouble is temporary: 4xx, never 5xx.
pub(crate) fn store_reply(e: &StoreError) -> Reply {
    if e.is_no_space() {
        Row::InsufficientStorage.reply()
    } else {
        Row::LocalError.reply()
    }
}

/// What AUTH this session offers. Only a listener with AUTH pays for the
/// session's nonce (a getrandom call) and a copy of the decoy key.
fn auth_policy(shared: &Shared, rt: &Settings, listener: &Listen) -> AuthPolicy {
    let mut policy = AuthPolicy {
        require_tls: listener.tls_for_auth(),
        required: listener.auth_required(),
        ..AuthPolicy::default()
    };
    if listener.auth_enabled() {
        let support = shared.services.users.mechanism_support();
        policy.mechanisms = rt
            .cfg
            .mechanisms()
            .into_iter()
            .filter(|m| match m {
                Mechanism::CramMd5 => support.cram_md5,
                Mechanism::ScramSha256 => support.scram_sha256,
                Mechanism::Plain | Mechanism::Login => true,
            })
            .collect();
        policy.nonce = session_nonce(shared.services.clock.now());
        policy.decoy_key = rt.auth.decoy_key().to_vec();
        policy.decoy_scram_iterations = support.scram_iterations;
    }
    policy
}

/// Random text for this session's AUTH nonces (RFC 5802 5.1: unpredictable),
/// with the time `now` (unix seconds) for CRAM-MD5's msg-id form; the session
/// appends a counter.
fn session_nonce(now: u64) -> String {
    let mut bytes = [0u8; 18];
    if getrandom::getrandom(&mut bytes).is_err() {
        // No randomness: a nonce from the clock and address of this value is
        // still unique, if guessable; SCRAM's proof stays safe against replay.
        let t = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes[..16].copy_from_slice(&t.to_le_bytes());
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}.{now}.")
}

/// A positive reply (2yz, 3yz) to a command of a mail transaction.
fn in_transaction_and_positive(command: &str, r: &Reply) -> bool {
    matches!(command, "MAIL" | "RCPT" | "DATA" | "BDAT")
        && matches!(
            r.class(),
            ReplyClass::PositiveCompletion | ReplyClass::PositiveIntermediate
        )
}
