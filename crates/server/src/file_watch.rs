//! When to read a watched file again (the users file, the aliases file): its
//! modification time is looked at no more than once per [`CHECK_EVERY`], and
//! a time other than the one of the last good read means "read it again".

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// How often a watched file's time is looked at.
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The modification time of `path`; `None` when there is none to read.
pub(crate) fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// What is known of a watched file: its time at the last good read, and
/// when it was last looked at.
pub(crate) struct FileStamp {
    mtime: Option<SystemTime>,
    checked: Instant,
}

impl FileStamp {
    /// Nothing read yet.
    pub(crate) fn new() -> Self {
        Self {
            mtime: None,
            checked: Instant::now(),
        }
    }

    /// Whether `path` should be read again: at most once per
    /// [`CHECK_EVERY`], when its time differs from the last good read's.
    pub(crate) fn due(&mut self, path: &Path) -> bool {
        if self.checked.elapsed() < CHECK_EVERY {
            return false;
        }
        self.checked = Instant::now();
        modified(path) != self.mtime
    }

    /// A good read of the file as it was at `mtime` (taken before reading,
    /// so a change during the read is seen at the next look).
    pub(crate) fn read(&mut self, mtime: Option<SystemTime>) {
        self.mtime = mtime;
        self.checked = Instant::now();
    }

    /// A read that failed: the last good read's time stays, so the file is
    /// tried again at the next look for as long as it differs.
    pub(crate) fn failed(&mut self) {
        self.checked = Instant::now();
    }
}
