//! Free space on the data filesystem, and the disk reserve (452 4.3.1). Our
//! own resource trouble is temporary, never 5xx.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pillarbox_codes::{Reply, Row};
use pillarbox_store::DiskSpace;

use crate::config::Reserve;

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
