//! Storage policy: the disk reserve (452 4.3.1) and mailbox quotas (452 4.2.2
//! or 552 5.2.2). Our own resource trouble is temporary, never 5xx
//! (DESIGN.md), except a quota the operator declared permanent.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pillarbox_codes::{Reply, Row};
use pillarbox_store::quota::QuotaLimit;
use pillarbox_store::{DiskSpace, MailboxAddr, MaildirStore};

use crate::config::{Config, QuotaExceeded, Reserve};
use crate::directory::Directory;

/// How long a statvfs result is reused.
const DISK_CACHE: Duration = Duration::from_secs(1);
/// At most one "below the reserve" log line per this period.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Watches free space on the data filesystem.
pub struct DiskWatch {
    path: PathBuf,
    reserve: Reserve,
    cache: Mutex<Option<(Instant, DiskSpace)>>,
    last_log: Mutex<Option<Instant>>,
}

impl DiskWatch {
    pub fn new(path: PathBuf, reserve: Reserve) -> Self {
        Self {
            path,
            reserve,
            cache: Mutex::new(None),
            last_log: Mutex::new(None),
        }
    }

    fn space(&self) -> Option<DiskSpace> {
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, s)) = *c {
            if at.elapsed() < DISK_CACHE {
                return Some(s);
            }
        }
        let s = pillarbox_store::space(&self.path).ok()?;
        *c = Some((Instant::now(), s));
        Some(s)
    }

    /// Forgets the cached figure (after a delivery or an ENOSPC).
    pub fn invalidate(&self) {
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Counts `bytes` just stored against the cached figure, so a busy server
    /// does not ask the filesystem after every delivery; the figure is still
    /// read afresh at least once per second.
    pub fn consumed(&self, bytes: u64) {
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, s)) = c.as_mut() {
            s.available = s.available.saturating_sub(bytes);
        }
    }

    /// Bytes that may still be stored above the reserve; None if unknown.
    pub fn room(&self) -> Option<u64> {
        let s = self.space()?;
        Some(s.available.saturating_sub(self.reserve.bytes(s.total)))
    }

    /// MAIL/RCPT: refuse with 452 4.3.1 when below the reserve, or when the
    /// declared size does not fit above it.
    pub fn check(&self, size: Option<u64>) -> Result<(), Reply> {
        let Some(s) = self.space() else { return Ok(()) };
        let reserve = self.reserve.bytes(s.total);
        let room = s.available.saturating_sub(reserve);
        let why = if s.available <= reserve {
            format!(
                "free space {} bytes is at or below the reserve of {reserve} bytes",
                s.available
            )
        } else if size.is_some_and(|z| z > room) {
            format!(
                "a declared SIZE of {} bytes does not fit in the {room} bytes above the reserve",
                size.unwrap_or(0)
            )
        } else {
            return Ok(());
        };
        self.log_rate_limited(&why);
        Err(Row::InsufficientStorage.reply())
    }

    /// One line naming the cause, at most once a minute.
    pub fn log_rate_limited(&self, why: &str) {
        let mut last = self.last_log.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
            *last = Some(Instant::now());
            tracing::warn!(data_dir = %self.path.display(), "insufficient storage: {why}");
        }
    }
}

/// The quota of a mailbox: the user's `userdb_quota_rule` (or `quota_rule`)
/// from the users file, else `[quota] default` and `messages`.
pub fn limit_for(cfg: &Config, users: &Directory, mb: &MailboxAddr) -> QuotaLimit {
    let dir = users.current();
    if let Some(rule) = dir.lookup(&mb.user, &mb.domain).and_then(|u| {
        u.extra_field("userdb_quota_rule")
            .or_else(|| u.extra_field("quota_rule"))
    }) {
        if let Some(q) = QuotaLimit::parse_dovecot_rule(rule) {
            return q;
        }
        tracing::warn!(user = %mb, rule, "quota rule not understood; using the default");
    }
    QuotaLimit {
        bytes: Some(cfg.quota.default.0).filter(|b| *b > 0),
        messages: Some(cfg.quota.messages).filter(|m| *m > 0),
    }
}

/// Would `bytes` more (one message) overflow this mailbox?
pub fn check_quota(
    store: &MaildirStore,
    cfg: &Config,
    users: &Directory,
    mb: &MailboxAddr,
    bytes: u64,
) -> Result<(), Reply> {
    let limit = limit_for(cfg, users, mb);
    if !limit.is_limited() {
        return Ok(());
    }
    // A mailbox that does not exist yet holds nothing: `usage` says so.
    match store.quota().usage(&store.maildir_path(mb), &limit) {
        Ok(u) if limit.would_exceed(u, bytes, 1) => {
            tracing::info!(mailbox = %mb, used = u.bytes, messages = u.messages, adding = bytes, "over quota");
            Err(full(cfg))
        }
        Ok(_) => Ok(()),
        Err(e) => {
            // Cannot tell: do not refuse mail for a bookkeeping problem.
            tracing::warn!(mailbox = %mb, error = %e, "cannot read quota usage");
            Ok(())
        }
    }
}

/// Records a delivered message in every recipient's `maildirsize`.
pub fn record_delivery(
    store: &MaildirStore,
    cfg: &Config,
    users: &Directory,
    boxes: &[MailboxAddr],
    stored: u64,
) {
    for mb in boxes {
        let limit = limit_for(cfg, users, mb);
        if !limit.is_limited() {
            continue;
        }
        if let Err(e) = store
            .quota()
            .record(&store.maildir_path(mb), &limit, stored as i64, 1)
        {
            tracing::warn!(mailbox = %mb, error = %e, "cannot update maildirsize");
        }
    }
}

fn full(cfg: &Config) -> Reply {
    match cfg.quota.exceeded {
        QuotaExceeded::Temporary => Row::MailboxFull.reply(),
        QuotaExceeded::Permanent => Row::MailboxFullPermanent.reply(),
    }
}
