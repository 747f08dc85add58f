//! The queue's worker: it takes messages from the queue, tries their pending
//! recipients, records each outcome, and sends the DSNs the outcomes call for.
//!
//! - Straight after a message's `250` the session hands its id over (the fast
//!   path: the copy is in `new/` milliseconds later); once a second the
//!   worker also takes every message whose next attempt is due; at start it
//!   takes what was under way when the last process stopped (and what is
//!   due), while a deferred recipient keeps its next attempt.
//! - The local transport: the recipient checks that run again at delivery
//!   (mailbox locked or disabled, quota, disk reserve) decide first; then the
//!   body is hard-linked into `new/` under a name made of the queue id and
//!   the recipient's index, and `new/` is fsync'd (shared by every delivery
//!   of the batch). A replay after a crash finds a copy it made already by
//!   that name (also in `cur/`, read since) and does not make a second.
//! - A refusal for now defers the recipient (`[queue] retry_min` doubling up
//!   to `retry_max`); a permanent one, or the end of `[queue] lifetime`,
//!   fails it. When no recipient is pending any more, one DSN per kind goes
//!   to the sender (failed; delivered, where NOTIFY asked for success); a
//!   delay notice goes once a recipient has waited `[queue] delay_warning`.
//!   A message from the null sender gets no DSN: its failure is logged and
//!   reported to the postmaster instead.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};

use pillarbox_codes::registry::Lang;
use pillarbox_codes::{Reply, ReplyClass, Row};
use pillarbox_proto::address::{parse_forward_path, parse_reverse_path};
use pillarbox_proto::ReversePath;
use pillarbox_queue::commit::Committer;
use pillarbox_queue::dsn;
use pillarbox_queue::{Message, Queue, QueueId, Recipient, Schedule, State, Target};
use pillarbox_store::{MailboxAddr, StoreError};

use crate::config::Config;
use crate::policy::{Client, Decision, LocalRecipients, SessionInfo};
use crate::server::{Settings, Shared};

/// How many messages one pass of the worker takes at most.
const BATCH: usize = 256;

/// The queue, its committer, and the way to the worker.
pub(crate) struct Delivery {
    pub(crate) queue: Arc<Queue>,
    /// `[storage] group_commit`: one thread commits batches; otherwise each
    /// message commits on a blocking thread of its own.
    committer: Option<Committer>,
    wake: mpsc::UnboundedSender<QueueId>,
    wake_rx: Mutex<Option<mpsc::UnboundedReceiver<QueueId>>>,
}

impl Delivery {
    /// Around an opened queue; `group_commit` with batches of at most
    /// `max_batch` messages, or none.
    pub(crate) fn new(
        queue: Arc<Queue>,
        group_commit: bool,
        max_batch: usize,
    ) -> std::io::Result<Self> {
        let committer = match group_commit {
            true => Some(Committer::start(queue.clone(), max_batch)?),
            false => None,
        };
        let (wake, rx) = mpsc::unbounded_channel();
        Ok(Self {
            queue,
            committer,
            wake,
            wake_rx: Mutex::new(Some(rx)),
        })
    }

    /// Makes `body` and `envelope` durable in the queue; `done` is called
    /// (on a blocking thread) with the outcome.
    pub(crate) fn commit(
        &self,
        body: pillarbox_store::IncomingMessage,
        envelope: Message,
        done: pillarbox_queue::commit::Done,
    ) {
        match &self.committer {
            Some(c) => c.submit(body, envelope, done),
            None => {
                let queue = self.queue.clone();
                tokio::task::spawn_blocking(move || {
                    pillarbox_queue::commit::commit_one(&queue, body, envelope, done)
                });
            }
        }
    }

    /// Asks the worker to try message `id` now (after its `250`).
    pub(crate) fn deliver_now(&self, id: QueueId) {
        let _ = self.wake.send(id);
    }
}

/// Gives back the quota room still reserved for `m`'s copies (a message
/// deleted or returned by the administrator before its first attempt).
pub(crate) fn give_back_room(rt: &Settings, m: &Message) {
    for r in m.rcpts.iter().filter(|r| r.room_reserved) {
        if let Target::Local { domain, user } = &r.target {
            let mb = MailboxAddr {
                domain: domain.clone(),
                user: user.clone(),
            };
            rt.quotas.release(&mb, m.size);
        }
    }
}

/// The retry rules of `[queue]`.
pub(crate) fn schedule(cfg: &Config) -> Schedule {
    Schedule {
        retry_min: cfg.queue.retry_min.0,
        retry_max: cfg.queue.retry_max.0,
        lifetime: cfg.queue.lifetime.0,
        delay_warning: cfg.queue.delay_warning.0,
    }
}

/// Runs the worker until `shutdown` turns true.
pub(crate) async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let Some(mut rx) = shared
        .delivery
        .wake_rx
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    else {
        return;
    };
    // What the last process left: what was under way (and what is due) is
    // tried now; a deferred recipient keeps its next attempt.
    let now = shared.services.clock.now();
    let first = shared.delivery.queue.due(now);
    for chunk in first.chunks(BATCH) {
        attempt(&shared, chunk.to_vec(), false).await;
    }
    // Set once the server stops: sessions finishing their transactions
    // within the grace period still get their messages delivered.
    let mut stopping: Option<std::time::Instant> = None;
    loop {
        if let Some(since) = stopping {
            let mut ids = Vec::new();
            while let Ok(id) = rx.try_recv() {
                ids.push(id);
            }
            if !ids.is_empty() {
                for chunk in ids.chunks(BATCH) {
                    attempt(&shared, chunk.to_vec(), false).await;
                }
                continue;
            }
            let grace = shared.settings().cfg.limits.shutdown_grace.0 + Duration::from_secs(5);
            let idle = shared
                .open_sessions
                .load(std::sync::atomic::Ordering::SeqCst)
                == 0;
            if idle || since.elapsed() > grace {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let mut ids = Vec::new();
        tokio::select! {
            got = rx.recv() => {
                let Some(id) = got else { return };
                ids.push(id);
                while ids.len() < BATCH {
                    match rx.try_recv() {
                        Ok(id) => ids.push(id),
                        Err(_) => break,
                    }
                }
                attempt(&shared, ids, false).await;
            }
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                let now = shared.services.clock.now();
                let due = shared.delivery.queue.due(now);
                for chunk in due.chunks(BATCH) {
                    attempt(&shared, chunk.to_vec(), false).await;
                }
            }
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    stopping = Some(std::time::Instant::now());
                }
            }
        }
    }
}

/// Tries every message of `ids` that is due: `all` takes every pending
/// recipient whatever its next attempt says (`queue retry`, `bounce`).
pub(crate) async fn attempt(shared: &Arc<Shared>, ids: Vec<QueueId>, all: bool) {
    let rt = shared.settings();
    let now = shared.services.clock.now();
    let mut work: Vec<Message> = ids
        .iter()
        .filter_map(|id| shared.delivery.queue.claim(id, false))
        .collect();
    if work.is_empty() {
        return;
    }
    // Which recipients go now, and where.
    let mut plan: Vec<Placement> = Vec::new();
    for (mi, m) in work.iter_mut().enumerate() {
        // Held from the last process: its first attempt now also looks in
        // `cur/` for a copy that process made (and a client read since).
        let replay = m.restored;
        let from = sender_path(&m.sender);
        for ri in 0..m.rcpts.len() {
            let r = &m.rcpts[ri];
            if !r.is_pending() || (!all && r.next_attempt > now) {
                continue;
            }
            // Once tried, what the last process did is known.
            m.restored = false;
            let mb = match &r.target {
                Target::Local { domain, user } => MailboxAddr {
                    domain: domain.clone(),
                    user: user.clone(),
                },
                Target::Remote { .. } => {
                    outcome(&rt, m, ri, now, Err(Row::RemoteNotAvailable.reply()));
                    continue;
                }
            };
            // Reserved by the session at the end of data, whose checks
            // stand; otherwise they are asked again, and the room reserved.
            let reserved = std::mem::take(&mut m.rcpts[ri].room_reserved);
            if !reserved {
                if let Err(reply) = recheck(shared, &rt, &from, &mb, m.size).await {
                    outcome(&rt, m, ri, now, Err(reply));
                    continue;
                }
            }
            let holds_room = reserved
                || match rt.quotas.reserve(&shared.services, &mb, m.size) {
                    Ok(held) => held,
                    Err(reply) => {
                        outcome(&rt, m, ri, now, Err(reply));
                        continue;
                    }
                };
            let name =
                shared
                    .store
                    .queued_name(m.arrival, &format!("{}R{ri}", m.id), m.size, m.wire_size);
            plan.push(Placement {
                message: mi,
                rcpt: ri,
                body: shared.delivery.queue.body_path(&m.id),
                mailbox: mb,
                name,
                replay,
                holds_room,
                result: None,
            });
        }
    }
    // The file work and the bookkeeping, off the runtime: link each copy,
    // sync each `new/` once, record the outcomes and the quota usage, and
    // give back in one journal write every message that calls for no DSN.
    let (sh, rt2) = (shared.clone(), rt.clone());
    let done = tokio::task::spawn_blocking(move || {
        if !plan.is_empty() {
            place(&sh.store, &mut plan);
        }
        record_outcomes(&sh, &rt2, &mut work, plan, now);
        let sch = schedule(&rt2.cfg);
        let (mut loud, mut quiet) = (Vec::new(), Vec::new());
        for mut m in work {
            let notices = Notices::of(&sch, &mut m, now);
            if notices.is_empty() {
                quiet.push(m);
            } else {
                loud.push((m, notices));
            }
        }
        if let Err(e) = sh.delivery.queue.finish_all(quiet, false) {
            tracing::error!(error = %e, "cannot record delivery outcomes");
        }
        loud
    })
    .await;
    let loud = match done {
        Ok(loud) => loud,
        Err(e) => {
            // Its messages stay claimed until the next start, which tries
            // them again; nothing is lost.
            tracing::error!(error = %e, "delivery thread failed");
            return;
        }
    };
    for (m, notices) in loud {
        let id = m.id.clone();
        let (m, durable) = notify(shared, &rt, m, notices, now).await;
        if let Err(e) = shared.delivery.queue.finish(m, durable) {
            tracing::error!(queue_id = %id, error = %e, "cannot record the delivery outcome");
        }
    }
}

/// Applies what each placement came to: the recipient's outcome, the
/// quota usage of a copy made, the room reserved given back.
fn record_outcomes(
    shared: &Shared,
    rt: &Settings,
    work: &mut [Message],
    plan: Vec<Placement>,
    now: u64,
) {
    let users = shared.services.users.current();
    for p in plan {
        let m = &mut work[p.message];
        match p.result {
            Some(Ok(already)) => {
                if !already {
                    rt.quotas
                        .record_delivery(&users, std::slice::from_ref(&p.mailbox), m.size);
                }
                tracing::info!(queue_id = %m.id, to = %p.mailbox, replayed = already, "delivered");
                outcome(rt, m, p.rcpt, now, Ok(()));
            }
            Some(Err(e)) => {
                shared.disk.invalidate();
                tracing::warn!(queue_id = %m.id, to = %p.mailbox, error = %e, "delivery failed");
                outcome(
                    rt,
                    m,
                    p.rcpt,
                    now,
                    Err(crate::session_driver::store_reply(&e)),
                );
            }
            None => outcome(rt, m, p.rcpt, now, Err(Row::LocalError.reply())),
        }
        if p.holds_room {
            rt.quotas.release(&p.mailbox, m.size);
        }
    }
}

/// The notices a message's outcomes call for now, by recipient index.
#[derive(Debug, Default)]
struct Notices {
    /// Still waiting past `[queue] delay_warning`, with NOTIFY=DELAY.
    delayed: Vec<usize>,
    /// Failed, with NOTIFY=FAILURE (the default).
    failed: Vec<usize>,
    /// Delivered, with NOTIFY=SUCCESS.
    delivered: Vec<usize>,
}

impl Notices {
    /// What `m` calls for at `now`. A recipient whose NOTIFY asks for no
    /// notice (or that no one could be told of: a delay or a success of the
    /// null sender's mail) is marked as reported on the spot. Final reports
    /// wait until no recipient is pending: one DSN per message and kind.
    fn of(sch: &Schedule, m: &mut Message, now: u64) -> Notices {
        let mut n = Notices::default();
        let bounce = m.is_bounce();
        if m.rcpts.iter().any(Recipient::is_pending) {
            if sch.delay_due(m.arrival, now) {
                for (i, r) in m.rcpts.iter_mut().enumerate() {
                    if !r.is_pending() || r.delay_reported || r.attempts == 0 {
                        continue;
                    }
                    if r.notify.delay && !bounce {
                        n.delayed.push(i);
                    } else {
                        r.delay_reported = true;
                    }
                }
            }
            return n;
        }
        for (i, r) in m.rcpts.iter_mut().enumerate().filter(|(_, r)| !r.reported) {
            match r.state {
                State::Failed if r.notify.failure => n.failed.push(i),
                State::Delivered if r.notify.success && !bounce => n.delivered.push(i),
                _ => r.reported = true,
            }
        }
        n
    }

    fn is_empty(&self) -> bool {
        self.delayed.is_empty() && self.failed.is_empty() && self.delivered.is_empty()
    }
}

/// One copy to place.
struct Placement {
    message: usize,
    rcpt: usize,
    body: PathBuf,
    mailbox: MailboxAddr,
    name: String,
    replay: bool,
    holds_room: bool,
    /// `Ok(true)`: it was there already (a replay).
    result: Option<Result<bool, StoreError>>,
}

/// Links every copy of `plan`, then syncs each `new/` touched (shared rounds).
fn place(store: &pillarbox_store::MaildirStore, plan: &mut [Placement]) {
    let mut fresh: Vec<PathBuf> = Vec::new();
    let mut which: Vec<usize> = Vec::new();
    for (i, p) in plan.iter_mut().enumerate() {
        match store.place_named(&p.body, &p.mailbox, &p.name, p.replay) {
            Ok(placed) => {
                if placed.already {
                    p.result = Some(Ok(true));
                } else {
                    fresh.push(placed.path);
                    which.push(i);
                }
            }
            Err(e) => p.result = Some(Err(e)),
        }
    }
    let paths: Vec<&std::path::Path> = fresh.iter().map(PathBuf::as_path).collect();
    let synced = store.sync_new_dirs(&paths);
    for (i, path) in which.into_iter().zip(&fresh) {
        plan[i].result = Some(match &synced {
            Ok(()) => Ok(false),
            Err(e) => {
                // Not durable: taken back, tried again later.
                let _ = std::fs::remove_file(path);
                Err(e.duplicate())
            }
        });
    }
}

/// The delivery-time recipient checks for one mailbox, as the queue asks them.
async fn recheck(
    shared: &Shared,
    rt: &Settings,
    from: &ReversePath,
    mb: &MailboxAddr,
    size: u64,
) -> Result<(), Reply> {
    let client = Client {
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        local_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        trusted: true,
    };
    let info = SessionInfo {
        client: &client,
        helo: None,
        authenticated: None,
        tls: false,
    };
    match rt
        .policies
        .recheck(&shared.services, info, from, mb, size)
        .await
    {
        Decision::Continue(()) => Ok(()),
        Decision::Refuse(r) | Decision::Defer(r) => Err(r),
    }
}

/// The reverse path of a stored sender.
fn sender_path(sender: &str) -> ReversePath {
    parse_reverse_path(sender, true).unwrap_or(ReversePath::Null)
}

/// Records the outcome of one attempt for recipient `ri` of `m`: delivered,
/// deferred (next attempt by the schedule) or failed (a permanent refusal,
/// or the lifetime is over).
pub(crate) fn outcome(
    rt: &Settings,
    m: &mut Message,
    ri: usize,
    now: u64,
    result: Result<(), Reply>,
) {
    let sch = schedule(&rt.cfg);
    let arrival = m.arrival;
    let jitter = jitter(&m.id, m.rcpts[ri].attempts);
    let r = &mut m.rcpts[ri];
    match result {
        Ok(()) => r.record(now, State::Delivered, Row::Ok.reply().to_string(), 0),
        Err(reply) if reply.class() == ReplyClass::PermanentNegative => {
            r.record(now, State::Failed, reply.to_string(), 0);
        }
        Err(reply) => match sch.next_attempt(arrival, now, r.attempts + 1, jitter) {
            Some(next) => r.record(now, State::Deferred, reply.to_string(), next),
            None => r.record(now, State::Failed, reply.to_string(), 0),
        },
    }
}

/// A number that differs between messages and attempts, for the retry jitter.
fn jitter(id: &str, attempts: u32) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (id, attempts).hash(&mut h);
    h.finish()
}

/// Sends the notices `n` (see [`Notices::of`]) and marks them sent; returns
/// the message to record and whether the record must be durable (a DSN was
/// queued: losing the mark would send it twice). What could not be queued
/// stays unmarked, for the next pass.
async fn notify(
    shared: &Arc<Shared>,
    rt: &Settings,
    mut m: Message,
    n: Notices,
    now: u64,
) -> (Message, bool) {
    let mut durable = false;
    if !n.delayed.is_empty() {
        let notice = Notice {
            about: &m,
            which: &n.delayed,
            action: dsn::Action::Delayed,
            retry_until: Some(schedule(&rt.cfg).expires(m.arrival)),
        };
        if !send_notice(shared, rt, notice, To::Sender, now).await {
            return (m, durable);
        }
        durable = true;
        for &i in &n.delayed {
            m.rcpts[i].delay_reported = true;
        }
    }
    for (which, action) in [
        (&n.failed, dsn::Action::Failed),
        (&n.delivered, dsn::Action::Delivered),
    ] {
        if which.is_empty() {
            continue;
        }
        let notice = Notice {
            about: &m,
            which,
            action,
            retry_until: None,
        };
        if m.is_bounce() {
            // Only failures get here (Notices::of): reported to the postmaster.
            tracing::warn!(queue_id = %m.id, rcpts = which.len(), "a message from the null sender failed; no DSN is sent about it (the postmaster gets a report)");
            send_notice(shared, rt, notice, To::Postmaster, now).await;
        } else if send_notice(shared, rt, notice, To::Sender, now).await {
            durable = true;
        } else {
            return (m, durable);
        }
        for &i in which {
            m.rcpts[i].reported = true;
        }
    }
    (m, durable)
}

/// What one notice is about: recipients `which` of `about`, what became of
/// them, and (for a delay) until when they are tried.
struct Notice<'a> {
    about: &'a Message,
    which: &'a [usize],
    action: dsn::Action,
    retry_until: Option<u64>,
}

/// Whom a notice goes to.
#[derive(Clone, Copy)]
enum To {
    /// The envelope sender: a DSN, id `<id>F`, `<id>D` or `<id>S`.
    Sender,
    /// The postmaster of the first local domain (a failure of the null
    /// sender's mail, about which no DSN is sent): id `<id>P`.
    Postmaster,
}

/// Builds notice `n` and queues it (from `<>`). `false` when it could not
/// be queued (tried again next pass); `true` too when no one can receive it
/// (logged).
async fn send_notice(shared: &Arc<Shared>, rt: &Settings, n: Notice<'_>, to: To, now: u64) -> bool {
    let m = n.about;
    let (address, suffix) = match to {
        To::Sender => (
            m.sender.clone(),
            match n.action {
                dsn::Action::Failed => 'F',
                dsn::Action::Delayed => 'D',
                _ => 'S',
            },
        ),
        To::Postmaster => (format!("postmaster@{}", rt.cfg.primary_domain()), 'P'),
    };
    let id = format!("{}{suffix}", m.id);
    let Some(target) = sender_target(
        rt,
        shared.aliases(),
        &shared.services.users.current(),
        shared.services.users.healthy(),
        &address,
    ) else {
        tracing::warn!(queue_id = %m.id, to = %address, "no one can receive the notice; none is sent");
        return true;
    };
    let bytes = build_dsn(shared, rt, &n, now, &id, &address);
    enqueue_report(shared, &id, &address, target, bytes, now).await
}

/// Where a DSN to `address` goes: a local mailbox (aliases followed), or
/// the world; `None` when no one can receive it (no such local user).
fn sender_target(
    rt: &Settings,
    aliases: Arc<crate::aliases::Aliases>,
    users: &pillarbox_store::UserDirectory,
    users_current: bool,
    address: &str,
) -> Option<Target> {
    if address.is_empty() {
        return None;
    }
    let path = parse_forward_path(address, true).ok()?;
    let resolver = LocalRecipients::new(&rt.cfg, aliases);
    match resolver.mailboxes_of(
        users,
        users_current,
        &path,
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        true,
    ) {
        Ok(boxes) => boxes.into_iter().next().map(|mb| Target::Local {
            domain: mb.domain,
            user: mb.user,
        }),
        Err(r) if r == Row::RemoteNotAvailable.reply() => Some(Target::Remote {
            address: address.to_string(),
        }),
        Err(_) => None,
    }
}

/// Notice `n` as a DSN with Message-ID `id`, addressed to `to`.
fn build_dsn(
    shared: &Shared,
    rt: &Settings,
    n: &Notice<'_>,
    now: u64,
    id: &str,
    to: &str,
) -> Vec<u8> {
    let (m, action, retry_until) = (n.about, n.action, n.retry_until);
    let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
    let recipients: Vec<dsn::DsnRecipient> = n
        .which
        .iter()
        .map(|&i| {
            let r = &m.rcpts[i];
            dsn::DsnRecipient {
                final_recipient: r.target.to_string(),
                original_recipient: r.orcpt.clone(),
                action,
                // The last reply's enhanced code (the builder reads it).
                status: None,
                reply: r.last_reply().map(str::to_string),
                remote_mta: None,
                last_attempt: r.history.last().map(|a| at(a.at)),
                will_retry_until: retry_until.map(at),
            }
        })
        .collect();
    let original = std::fs::read(shared.delivery.queue.body_path(&m.id)).unwrap_or_default();
    let ret = m.ret.unwrap_or(dsn::Ret::Full);
    let language = Lang::from_tag(&rt.cfg.queue.dsn_language).unwrap_or(Lang::En);
    dsn::build(&dsn::Report {
        reporting_mta: &rt.cfg.hostname,
        envid: m.envid.as_deref(),
        arrival: at(m.arrival),
        original_sender: to,
        recipients: &recipients,
        ret,
        original: &original,
        language,
        now: at(now),
        message_id: id,
        max_original: rt.cfg.limits.message_size.0 as usize,
    })
}

/// Queues a report (a DSN) from the null sender to `to`, durably, and asks
/// for its delivery. `true` once queued, or when it was queued before (an
/// id is made of the message's and the kind).
async fn enqueue_report(
    shared: &Arc<Shared>,
    id: &str,
    to: &str,
    target: Target,
    bytes: Vec<u8>,
    now: u64,
) -> bool {
    if shared.delivery.queue.contains(id) {
        return true;
    }
    let mut body = match shared.store.begin(id) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(queue_id = %id, error = %e, "cannot queue a DSN");
            return false;
        }
    };
    // RFC 5321 4.4: the envelope sender, as every delivered message carries it.
    if let Err(e) = body
        .write(b"Return-Path: <>\r\n")
        .and_then(|()| body.write(&bytes))
    {
        tracing::warn!(queue_id = %id, error = %e, "cannot queue a DSN");
        return false;
    }
    let envelope = Message {
        id: id.to_string(),
        arrival: now,
        sender: String::new(),
        envid: None,
        ret: None,
        size: 0,
        wire_size: 0,
        held: false,
        restored: false,
        rcpts: vec![Recipient {
            notify: pillarbox_queue::Notify::NEVER,
            ..Recipient::new(to.to_string(), target)
        }],
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    shared.delivery.commit(
        body,
        envelope,
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    match rx.await {
        Ok(Ok(_)) => {
            tracing::info!(queue_id = %id, to = %to, "DSN queued");
            shared.delivery.deliver_now(id.to_string());
            true
        }
        Ok(Err(e)) => {
            tracing::warn!(queue_id = %id, error = %e, "cannot queue a DSN");
            false
        }
        Err(_) => false,
    }
}
