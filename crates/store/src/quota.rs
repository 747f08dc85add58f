//! Mailbox quotas kept in the Maildir++ `maildirsize` file, as Dovecot's
//! `quota = maildir` backend (and Courier, maildrop, Exim) read and write it.
//!
//! The file's first line is the limit, `<bytes>S,<count>C`; every other line is
//! a change `<bytes> <count>` (negative for expunges: Dovecot appends those when
//! a message is deleted through IMAP, which is how we see space come back).
//! The usage is the sum of the change lines. The file is rebuilt from the
//! Maildir when it is missing, when its limit line is not ours, when it has
//! grown past 5120 bytes, or when it says "over quota" and is older than 15
//! minutes (Maildir++ spec, "Calculating maildirsize").

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Maildir++: a `maildirsize` larger than this is recalculated.
const MAX_FILE: u64 = 5120;
/// Maildir++: an over-quota `maildirsize` older than this is recalculated.
const STALE_WHEN_OVER: Duration = Duration::from_secs(15 * 60);
/// A last line without its newline in a file written this recently is an
/// append in progress; in an older file, a crash tore it.
const IN_FLIGHT: Duration = Duration::from_secs(5);
/// The file's name in the Maildir root.
pub const FILE: &str = "maildirsize";

/// A mailbox's limits; `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuotaLimit {
    pub bytes: Option<u64>,
    pub messages: Option<u64>,
}

/// What a mailbox holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub messages: u64,
}

impl QuotaLimit {
    /// Any limit at all.
    pub fn is_limited(&self) -> bool {
        self.bytes.is_some() || self.messages.is_some()
    }

    /// The `maildirsize` header, as Dovecot writes it: `<bytes>S` and/or `<count>C`.
    pub fn header(&self) -> String {
        let mut parts = Vec::new();
        if let Some(b) = self.bytes {
            parts.push(format!("{b}S"));
        }
        if let Some(c) = self.messages {
            parts.push(format!("{c}C"));
        }
        if parts.is_empty() {
            parts.push("0S".into());
        }
        parts.join(",")
    }

    fn parse_header(line: &str) -> Option<Self> {
        let mut q = QuotaLimit::default();
        for part in line.trim().split(',') {
            let part = part.trim();
            let (num, kind) = part.split_at(part.len().checked_sub(1)?);
            let n: u64 = num.parse().ok()?;
            match kind {
                "S" if n > 0 => q.bytes = Some(n),
                "C" if n > 0 => q.messages = Some(n),
                "S" | "C" => {}
                _ => return None,
            }
        }
        Some(q)
    }

    /// Parses a Dovecot quota rule for all mailboxes, `*:storage=1G:messages=1000`
    /// (`storage` in kilobytes unless it has a unit, `bytes` in bytes; units
    /// b, k, M, G, T are powers of 1024; `+`/`-` relative rules are not supported).
    pub fn parse_dovecot_rule(rule: &str) -> Option<Self> {
        let rest = rule.trim().strip_prefix("*:")?;
        let mut q = QuotaLimit::default();
        for kv in rest.split(':') {
            let (k, v) = kv.split_once('=')?;
            match k.trim().to_ascii_lowercase().as_str() {
                "storage" => q.bytes = Some(dovecot_size(v, 1024)?).filter(|b| *b > 0),
                "bytes" => q.bytes = Some(dovecot_size(v, 1)?).filter(|b| *b > 0),
                "messages" => q.messages = Some(v.trim().parse().ok()?).filter(|m| *m > 0),
                "ignore" | "backend" => {}
                _ => return None,
            }
        }
        Some(q)
    }

    /// Would adding `bytes` in `messages` messages to `usage` go over a limit?
    pub fn would_exceed(&self, usage: Usage, bytes: u64, messages: u64) -> bool {
        self.bytes
            .is_some_and(|l| usage.bytes.saturating_add(bytes) > l)
            || self
                .messages
                .is_some_and(|l| usage.messages.saturating_add(messages) > l)
    }
}

fn dovecot_size(v: &str, default_unit: u64) -> Option<u64> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" => default_unit,
        "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// The usage of the Maildir at `maildir`, from `maildirsize`, rebuilt when the
/// Maildir++ rules say so, a long file compacted without a turn (the tests'
/// way in; the server goes through [`UsageCache::usage`]).
#[cfg(test)]
fn usage(maildir: &Path, limit: &QuotaLimit) -> io::Result<Usage> {
    usage_stamped(maildir, limit, None, DEFAULT_FILE_MODE).map(|(u, _)| u)
}

/// The usage `maildirsize` says, for a reader beside a live server (`pillarbox
/// quota get`): a long file is summed, not compacted (the server's appends to
/// it take a turn another process cannot take), and a line being appended is
/// left out. A missing, foreign or long-torn file is rebuilt from the messages,
/// as Maildir++ says (with `file_mode`, `[storage] file_mode`).
pub fn peek(maildir: &Path, limit: &QuotaLimit, file_mode: u32) -> io::Result<Usage> {
    match summed(maildir, limit) {
        Some(s) => Ok(s.usage),
        None => recalc(maildir, limit, file_mode),
    }
}

/// What one read of `maildirsize` says.
struct Summed {
    /// The sum of its whole lines.
    usage: Usage,
    /// The file as it was stat'd before the read.
    stamp: Stamp,
    /// The read got exactly the stamped file, all in whole lines. Appends only
    /// lengthen the file, so the sum is then exactly the stamped file's.
    exact: bool,
}

/// The file's sum, or `None` when Maildir++ says to rebuild it: missing, not
/// ours (another limit line, a line that does not parse), or ending in a line
/// torn long enough ago to be a crash's rather than an append in flight (a
/// write that crosses a page is seen page by page; the torn part is left out).
fn summed(maildir: &Path, limit: &QuotaLimit) -> Option<Summed> {
    let (_, text, meta) = read_file(maildir).ok()?;
    let (usage, whole) = sum(&text, limit)?;
    let stamp = Stamp::of(&meta);
    if whole < text.len() && stamp.age() > IN_FLIGHT {
        return None;
    }
    Some(Summed {
        usage,
        exact: whole == text.len() && text.len() as u64 == stamp.len,
        stamp,
    })
}

/// [`usage`], with the stamp of the file the figure was summed from, or `None`
/// when the file was rebuilt or changed while it was read (the figure then
/// counts bytes the stamp does not: caching the pair would let our next
/// append's line be counted twice). `turn` is the one our appends to this
/// Maildir take, held while a long file is compacted.
fn usage_stamped(
    maildir: &Path,
    limit: &QuotaLimit,
    turn: Option<&Turn>,
    mode: u32,
) -> io::Result<(Usage, Option<Stamp>)> {
    // A rebuilt file has no stamp worth keeping: the next check reads it.
    let rebuild = || recalc(maildir, limit, mode).map(|u| (u, None));
    let Some(Summed {
        usage: u,
        stamp,
        exact,
    }) = summed(maildir, limit)
    else {
        return rebuild();
    };
    if stamp.len > MAX_FILE {
        // Maildir++ rebuilds a file this long. Rebuilding by rescanning the
        // Maildir costs a readdir of every message each few hundred deliveries;
        // the sum of its own lines is the same figure, so write that instead.
        // (An over-quota file older than 15 minutes is still rescanned below.)
        return compact(maildir, limit, turn, mode).map(|u| (u, None));
    }
    if stamp.age() > STALE_WHEN_OVER && limit.would_exceed(u, 0, 0) {
        return rebuild();
    }
    Ok((u, exact.then_some(stamp)))
}

/// Replaces a long file by its sum. Our appends wait meanwhile and the file is
/// read again under that turn, or a line appended to the old file after it
/// was read would be lost with it; another writer's (Dovecot's expunge) lines
/// appended to the old file while it is replaced are carried over.
fn compact(
    maildir: &Path,
    limit: &QuotaLimit,
    turn: Option<&Turn>,
    mode: u32,
) -> io::Result<Usage> {
    let _turn = turn.map(Turn::take);
    let Ok((mut old, text, _)) = read_file(maildir) else {
        return recalc(maildir, limit, mode);
    };
    let Some((u, whole)) = sum(&text, limit) else {
        return recalc(maildir, limit, mode);
    };
    write_file(maildir, limit, u, mode)?;
    let mut tail = text[whole..].to_string();
    io::Read::read_to_string(&mut old, &mut tail)?;
    let Some(more) = tail.rfind('\n').and_then(|end| sum_lines(&tail[..end])) else {
        return Ok(u);
    };
    if more != (0, 0) {
        append(maildir, limit, more.0, more.1, mode)?;
    }
    Ok(add(u, more.0, more.1))
}

/// The file, opened and read to its end, with its metadata from before the read.
fn read_file(maildir: &Path) -> io::Result<(fs::File, String, fs::Metadata)> {
    let mut f = fs::File::open(maildir.join(FILE))?;
    let meta = f.metadata()?;
    let mut text = String::with_capacity(meta.len() as usize + 64);
    io::Read::read_to_string(&mut f, &mut text)?;
    Ok((f, text, meta))
}

/// The usage a file's text says and the length of its whole lines (a read can
/// end inside a line another writer is appending: a write that crosses a page
/// is seen page by page), or `None` when it must be rebuilt (not our limit
/// line, or a line that does not parse).
fn sum(text: &str, limit: &QuotaLimit) -> Option<(Usage, usize)> {
    let whole = text.rfind('\n')? + 1;
    let (header, changes) = text[..whole].split_once('\n')?;
    if QuotaLimit::parse_header(header.trim_end_matches('\r'))? != *limit {
        return None;
    }
    let (bytes, messages) = sum_lines(changes)?;
    Some((add(Usage::default(), bytes, messages), whole))
}

/// The sum of change lines `<bytes> <count>`; `None` when one does not parse.
fn sum_lines(lines: &str) -> Option<(i64, i64)> {
    let (mut bytes, mut count) = (0i64, 0i64);
    for line in lines.lines() {
        let mut it = line.split_whitespace();
        let b = it.next()?.parse::<i64>().ok()?;
        let c = it.next()?.parse::<i64>().ok()?;
        bytes = bytes.saturating_add(b);
        count = count.saturating_add(c);
    }
    Some((bytes, count))
}

/// `u` changed by a line's figures, never below zero.
fn add(u: Usage, bytes: i64, messages: i64) -> Usage {
    Usage {
        bytes: (u.bytes as i64).saturating_add(bytes).max(0) as u64,
        messages: (u.messages as i64).saturating_add(messages).max(0) as u64,
    }
}

/// Recounts the Maildir (every folder's `cur/` and `new/`, sizes from `,S=`)
/// and rewrites `maildirsize` atomically, a new file of mode `file_mode`.
pub fn recalc(maildir: &Path, limit: &QuotaLimit, file_mode: u32) -> io::Result<Usage> {
    let mut u = Usage::default();
    let mut folders = vec![maildir.to_path_buf()];
    if let Ok(entries) = fs::read_dir(maildir) {
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            // Maildir++ folders are `.Name` directories.
            if name.starts_with('.') && name != "." && name != ".." && e.path().is_dir() {
                folders.push(e.path());
            }
        }
    }
    for folder in folders {
        for sub in ["cur", "new"] {
            let Ok(entries) = fs::read_dir(folder.join(sub)) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') {
                    continue;
                }
                let size = size_from_name(&name).or_else(|| e.metadata().ok().map(|m| m.len()));
                if let Some(s) = size {
                    u.bytes += s;
                    u.messages += 1;
                }
            }
        }
    }
    if !maildir.is_dir() {
        return Ok(u);
    }
    write_file(maildir, limit, u, file_mode)?;
    Ok(u)
}

/// Creates `maildirsize` holding only the limit line (usage zero) unless it
/// exists, whole at once (linked in from a private name), so no reader sees it
/// half written. Nothing is made while the Maildir itself does not exist.
fn start_file(maildir: &Path, limit: &QuotaLimit, mode: u32) -> io::Result<()> {
    if !maildir.is_dir() {
        return Ok(());
    }
    let tmp = tmp_name(maildir);
    let made = (|| -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(format!("{}\n", limit.header()).as_bytes())?;
        match fs::hard_link(&tmp, maildir.join(FILE)) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
            _ => Ok(()),
        }
    })();
    let _ = fs::remove_file(&tmp);
    made
}

/// A private name beside `maildirsize` for a file being written.
fn tmp_name(maildir: &Path) -> std::path::PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    maildir.join(format!(
        "{FILE}.{}.{}.tmp",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Replaces `maildirsize` atomically with the limit line and one usage line.
fn write_file(maildir: &Path, limit: &QuotaLimit, u: Usage, mode: u32) -> io::Result<()> {
    let tmp = tmp_name(maildir);
    let write = || -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(format!("{}\n{} {}\n", limit.header(), u.bytes, u.messages).as_bytes())?;
        fs::rename(&tmp, maildir.join(FILE))
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

/// Records a change after a delivery (or removal): one appended line, which
/// O_APPEND keeps whole against concurrent writers. A missing file is rebuilt
/// from the Maildir instead (which already holds the new message). Returns the
/// file's stamp after the append and the line's length, or `None` when rebuilt.
fn append(
    maildir: &Path,
    limit: &QuotaLimit,
    bytes: i64,
    messages: i64,
    mode: u32,
) -> io::Result<Option<(Stamp, u64)>> {
    let mut f = match OpenOptions::new().append(true).open(maildir.join(FILE)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return recalc(maildir, limit, mode).map(|_| None);
        }
        Err(e) => return Err(e),
    };
    let line = format!("{bytes} {messages}\n");
    f.write_all(line.as_bytes())?;
    Ok(Some((Stamp::of(&f.metadata()?), line.len() as u64)))
}

/// What tells one version of `maildirsize` from another without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    fn of(m: &fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
        }
    }

    /// How long ago the file was last written (zero if in the future).
    fn age(&self) -> Duration {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        Duration::from_nanos(u64::try_from(now - self.mtime_ns).unwrap_or(0))
    }
}

/// At most this many Maildirs' usage is remembered; the cache starts over when full.
const CACHE_ENTRIES: usize = 10_000;
/// Our appends to one Maildir's file are made one at a time; Maildirs share
/// these turns by a hash of their path, so an append waits only for appends
/// to the Maildirs it shares a turn with, and a quota check for none.
const APPEND_TURNS: usize = 32;

/// Usage figures of recently seen Maildirs, each trusted only while its
/// `maildirsize` is exactly as it was (same file, length and times): a check
/// costs one `stat` instead of reading the file, and every other writer
/// (Dovecot appending an expunge, rewriting the file) is noticed by the stamp.
/// The figures' lock is held only in memory, never across a file operation;
/// the reservations' lock is held across the usage read of
/// [`UsageCache::reserve`] (check and reservation must be one step).
#[derive(Debug)]
pub struct UsageCache {
    entries: Mutex<std::collections::HashMap<std::path::PathBuf, Cached>>,
    /// What is committed to the queue for each Maildir and not in it yet
    /// (see [`UsageCache::reserve`]).
    pending: Mutex<std::collections::HashMap<std::path::PathBuf, Usage>>,
    appends: [Turn; APPEND_TURNS],
    /// The mode of a `maildirsize` this cache creates (`[storage] file_mode`).
    file_mode: u32,
}

/// The mode of a `maildirsize` when none is configured: private to its owner.
const DEFAULT_FILE_MODE: u32 = 0o600;

impl Default for UsageCache {
    fn default() -> Self {
        Self::with_file_mode(DEFAULT_FILE_MODE)
    }
}

/// One of the turns our appends take (see [`APPEND_TURNS`]).
#[derive(Debug, Default)]
struct Turn {
    lock: Mutex<()>,
    /// Someone holds the turn: a check reads this without taking the lock.
    held: AtomicBool,
}

/// A turn, held until dropped.
struct Held<'a> {
    turn: &'a Turn,
    _lock: std::sync::MutexGuard<'a, ()>,
}

impl Turn {
    fn take(&self) -> Held<'_> {
        let lock = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.held.store(true, Ordering::Release);
        Held {
            turn: self,
            _lock: lock,
        }
    }

    fn is_held(&self) -> bool {
        self.held.load(Ordering::Acquire)
    }
}

impl Drop for Held<'_> {
    /// Runs before the lock is let go (fields drop after this).
    fn drop(&mut self) {
        self.turn.held.store(false, Ordering::Release);
    }
}

#[derive(Debug)]
struct Cached {
    /// `None`: the Maildir did not exist at the last check, so every message
    /// in it since came through our deliveries, each of which records itself.
    stamp: Option<Stamp>,
    limit: QuotaLimit,
    usage: Usage,
}

impl UsageCache {
    /// An empty cache whose new `maildirsize` files get `file_mode`.
    pub fn with_file_mode(file_mode: u32) -> Self {
        UsageCache {
            entries: Mutex::default(),
            pending: Mutex::default(),
            appends: Default::default(),
            file_mode,
        }
    }

    fn entries(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<std::path::PathBuf, Cached>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The turn our appends to `maildir` take.
    fn turn(&self, maildir: &Path) -> &Turn {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        maildir.hash(&mut h);
        &self.appends[h.finish() as usize % APPEND_TURNS]
    }

    /// What is reserved for `maildir`: messages in the queue on their way in.
    pub fn pending(&self, maildir: &Path) -> Usage {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(maildir)
            .copied()
            .unwrap_or_default()
    }

    /// Reserves room for one message of `bytes` in `maildir` if it fits
    /// beside what is there and what is reserved already; `false` when it
    /// would overflow `limit`. Check and reservation are one step, so
    /// messages ending at the same time cannot together overshoot the quota.
    /// Undone with [`Self::release`] once the message is in (and recorded)
    /// or will not come.
    pub fn reserve(&self, maildir: &Path, limit: &QuotaLimit, bytes: u64) -> io::Result<bool> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let mut u = self.usage(maildir, limit)?;
        let p = pending.get(maildir).copied().unwrap_or_default();
        u.bytes += p.bytes;
        u.messages += p.messages;
        if limit.would_exceed(u, bytes, 1) {
            return Ok(false);
        }
        let e = pending.entry(maildir.to_path_buf()).or_default();
        e.bytes += bytes;
        e.messages += 1;
        Ok(true)
    }

    /// Gives back a reservation made by [`Self::reserve`].
    pub fn release(&self, maildir: &Path, bytes: u64) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = pending.get_mut(maildir) {
            e.bytes = e.bytes.saturating_sub(bytes);
            e.messages = e.messages.saturating_sub(1);
            if e.messages == 0 {
                pending.remove(maildir);
            }
        }
    }

    /// [`usage`], from the cache while the file is unchanged.
    pub fn usage(&self, maildir: &Path, limit: &QuotaLimit) -> io::Result<Usage> {
        let file = fs::metadata(maildir.join(FILE));
        let turn = self.turn(maildir);
        if let Ok(meta) = &file {
            let now = Stamp::of(meta);
            if let Some(c) = self.entries().get(maildir) {
                let rebuild = limit.would_exceed(c.usage, 0, 0) && now.age() > STALE_WHEN_OVER;
                if c.limit == *limit && !rebuild {
                    if c.stamp == Some(now) {
                        return Ok(c.usage);
                    }
                    // The file grew while one of our appends holds the turn:
                    // that append is landing, and counts itself when done.
                    // The figure of a moment before it is as good as a check
                    // made then (reading the file now would race it, and a
                    // check cannot count every delivery in flight anyway).
                    // Should the append be to a Maildir sharing the turn, and
                    // the growth another writer's, the next check sees it.
                    let growing = c
                        .stamp
                        .is_some_and(|s| (s.dev, s.ino) == (now.dev, now.ino) && s.len < now.len);
                    if growing && turn.is_held() {
                        return Ok(c.usage);
                    }
                }
            }
        }
        // Without a Maildir, read no further: a rebuild that found it made
        // meanwhile would count messages landing in it now, which record
        // themselves.
        let absent = file.is_err() && !maildir.is_dir();
        if file.is_err() && !absent && self.was_absent(maildir, limit) {
            let _turn = turn.take();
            start_file(maildir, limit, self.file_mode)?;
        }
        let (u, stamp) = if absent {
            (Usage::default(), None)
        } else {
            usage_stamped(maildir, limit, Some(turn), self.file_mode)?
        };
        // Every entry is the exact sum of the bytes its stamp measured, so an
        // entry the file has moved past only misses; a figure that could not
        // be stamped leaves the entry alone, and so does a read older than
        // what a record has counted meanwhile (appends only lengthen a file).
        let mut entries = self.entries();
        let behind = |c: &Cached| match (c.stamp, stamp) {
            (Some(have), Some(read)) => {
                c.limit == *limit
                    && (have.dev, have.ino) == (read.dev, read.ino)
                    && have.len > read.len
            }
            _ => false,
        };
        if (stamp.is_some() || absent) && !entries.get(maildir).is_some_and(behind) {
            if entries.len() >= CACHE_ENTRIES && !entries.contains_key(maildir) {
                entries.clear();
            }
            entries.insert(
                maildir.to_path_buf(),
                Cached {
                    stamp,
                    limit: *limit,
                    usage: u,
                },
            );
        }
        Ok(u)
    }

    /// Whether the Maildir did not exist at the last check (with this limit).
    /// Its file is then started empty instead of rebuilt: a rebuild would count
    /// messages that have landed but not yet recorded themselves, and their
    /// records would count them again (a burst of first deliveries to a new
    /// mailbox overcounted it by several messages).
    fn was_absent(&self, maildir: &Path, limit: &QuotaLimit) -> bool {
        self.entries()
            .get(maildir)
            .is_some_and(|c| c.stamp.is_none() && c.limit == *limit)
    }

    /// Records a change (one appended line; when the file is missing, it is
    /// started empty first if the Maildir was new at the last check, or else
    /// rebuilt from the Maildir, which holds the message already), keeping
    /// the cached figure when the file grew by exactly our line (nobody else
    /// wrote in between); otherwise it is forgotten and read again at the
    /// next check. Our own appends to one Maildir are made one at
    /// a time, and a cached figure is always the sum of exactly the bytes its
    /// stamp measured, so "grew by exactly our line" means nobody else wrote.
    pub fn record(
        &self,
        maildir: &Path,
        limit: &QuotaLimit,
        bytes: i64,
        messages: i64,
    ) -> io::Result<()> {
        let _turn = self.turn(maildir).take();
        if self.was_absent(maildir, limit) {
            start_file(maildir, limit, self.file_mode)?;
        }
        let appended = append(maildir, limit, bytes, messages, self.file_mode);
        let mut entries = self.entries();
        let keep = match (&appended, entries.get_mut(maildir)) {
            (Ok(Some((after, n))), Some(c))
                if c.limit == *limit
                    && c.stamp.is_some_and(|s| {
                        (s.dev, s.ino) == (after.dev, after.ino) && s.len + n == after.len
                    }) =>
            {
                c.stamp = Some(*after);
                c.usage = add(c.usage, bytes, messages);
                true
            }
            // A check read the file after our line landed: it counted it.
            (Ok(Some((after, _))), Some(c)) => c.limit == *limit && c.stamp == Some(*after),
            _ => false,
        };
        if !keep {
            entries.remove(maildir);
        }
        appended.map(|_| ())
    }
}

/// `,S=<size>` from a Maildir file name.
fn size_from_name(name: &str) -> Option<u64> {
    let base = name.split(':').next()?;
    let start = base.find(",S=")? + 3;
    let digits: String = base[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A limit on bytes only.
    fn bytes_limit(bytes: u64) -> QuotaLimit {
        QuotaLimit {
            bytes: Some(bytes),
            messages: None,
        }
    }

    fn at(bytes: u64, messages: u64) -> Usage {
        Usage { bytes, messages }
    }

    fn maildir() -> (tempfile::TempDir, std::path::PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let m = t.path().join("Maildir");
        for d in ["cur", "new", "tmp", ".Sent/cur", ".Sent/new"] {
            fs::create_dir_all(m.join(d)).unwrap();
        }
        (t, m)
    }

    #[test]
    fn dovecot_rules_parse() {
        let q = QuotaLimit::parse_dovecot_rule("*:storage=1G").unwrap();
        assert_eq!(q.bytes, Some(1 << 30));
        let q = QuotaLimit::parse_dovecot_rule("*:storage=100:messages=10").unwrap();
        assert_eq!((q.bytes, q.messages), (Some(100 * 1024), Some(10)));
        assert_eq!(
            QuotaLimit::parse_dovecot_rule("*:bytes=500").unwrap().bytes,
            Some(500)
        );
        assert!(QuotaLimit::parse_dovecot_rule("Trash:storage=+10M").is_none());
        assert!(QuotaLimit::parse_dovecot_rule("*:storage=1X").is_none());
    }

    #[test]
    fn header_is_dovecots_form() {
        let q = QuotaLimit {
            bytes: Some(1000),
            messages: Some(5),
        };
        assert_eq!(q.header(), "1000S,5C");
        assert_eq!(
            QuotaLimit {
                bytes: Some(7),
                messages: None
            }
            .header(),
            "7S"
        );
        assert_eq!(QuotaLimit::parse_header("1000S,5C"), Some(q));
    }

    #[test]
    fn recalc_counts_cur_new_and_folders_by_s_size() {
        let (_t, m) = maildir();
        fs::write(m.join("new/1.M1P1.h,S=100,W=102"), b"x").unwrap();
        fs::write(m.join("cur/2.M2P2.h,S=50:2,S"), b"x").unwrap();
        fs::write(m.join(".Sent/cur/3.M3P3.h,S=25:2,S"), b"x").unwrap();
        fs::write(m.join("tmp/4.M4P4.h,S=999"), b"x").unwrap();
        let q = bytes_limit(1000);
        let u = usage(&m, &q).unwrap();
        assert_eq!(
            u,
            Usage {
                bytes: 175,
                messages: 3
            }
        );
        assert_eq!(fs::read_to_string(m.join(FILE)).unwrap(), "1000S\n175 3\n");
    }

    #[test]
    fn appended_changes_and_expunges_are_summed() {
        let (_t, m) = maildir();
        let q = bytes_limit(1000);
        usage(&m, &q).unwrap();
        append(&m, &q, 300, 1, 0o600).unwrap();
        append(&m, &q, 200, 1, 0o600).unwrap();
        // As Dovecot appends on expunge:
        let mut f = OpenOptions::new().append(true).open(m.join(FILE)).unwrap();
        f.write_all(b"-300 -1\n").unwrap();
        assert_eq!(
            usage(&m, &q).unwrap(),
            Usage {
                bytes: 200,
                messages: 1
            }
        );
    }

    #[test]
    fn a_changed_limit_or_torn_line_rebuilds_the_file() {
        let (_t, m) = maildir();
        fs::write(m.join("new/1.M1P1.h,S=10"), b"x").unwrap();
        fs::write(m.join(FILE), "5S\n999 9\n").unwrap();
        let q = bytes_limit(1000);
        assert_eq!(usage(&m, &q).unwrap().bytes, 10);
        fs::write(m.join(FILE), "1000S\n10 1\n12").unwrap();
        assert_eq!(usage(&m, &q).unwrap().bytes, 10);
    }

    /// A Maildir whose `maildirsize` is past the length Maildir++ rebuilds at:
    /// 2,000 lines of `10 1` under a 1 GiB limit, and no message files.
    fn long_file() -> (tempfile::TempDir, std::path::PathBuf, QuotaLimit) {
        let (t, m) = maildir();
        let q = bytes_limit(1 << 30);
        usage(&m, &q).unwrap();
        for _ in 0..2000 {
            append(&m, &q, 10, 1, 0o600).unwrap();
        }
        assert!(fs::metadata(m.join(FILE)).unwrap().len() > MAX_FILE);
        (t, m, q)
    }

    #[test]
    fn a_long_file_is_compacted_to_its_sum_without_rescanning() {
        let (_t, m, q) = long_file();
        // No message files exist: a rescan would say 0; the lines say 20,000 in 2,000.
        assert_eq!(
            usage(&m, &q).unwrap(),
            Usage {
                bytes: 20_000,
                messages: 2000
            }
        );
        assert_eq!(
            fs::read_to_string(m.join(FILE)).unwrap(),
            "1073741824S\n20000 2000\n"
        );
    }

    #[test]
    fn peek_sums_a_long_file_and_leaves_it_as_it_is() {
        let (_t, m, q) = long_file();
        let before = fs::read_to_string(m.join(FILE)).unwrap();
        assert_eq!(peek(&m, &q, 0o600).unwrap(), at(20_000, 2000));
        assert_eq!(fs::read_to_string(m.join(FILE)).unwrap(), before);
        // A line being appended is left out; a file that is not ours is rebuilt.
        let mut f = OpenOptions::new().append(true).open(m.join(FILE)).unwrap();
        f.write_all(b"10").unwrap();
        assert_eq!(peek(&m, &q, 0o600).unwrap(), at(20_000, 2000));
        fs::write(m.join("new/1.M1P1.h,S=10"), b"x").unwrap();
        fs::write(m.join(FILE), "5S\n999 9\n").unwrap();
        assert_eq!(peek(&m, &q, 0o600).unwrap(), at(10, 1));
    }

    #[test]
    fn the_cache_follows_our_records_and_every_other_writer() {
        let (_t, m) = maildir();
        let q = bytes_limit(1000);
        let cache = UsageCache::default();
        assert_eq!(cache.usage(&m, &q).unwrap(), at(0, 0));
        cache.record(&m, &q, 300, 1).unwrap();
        cache.record(&m, &q, 200, 1).unwrap();
        assert_eq!(cache.usage(&m, &q).unwrap(), at(500, 2));
        // What our records wrote is what a fresh reader sums.
        assert_eq!(usage(&m, &q).unwrap(), at(500, 2));
        // Dovecot appends an expunge.
        let mut f = OpenOptions::new().append(true).open(m.join(FILE)).unwrap();
        f.write_all(b"-300 -1\n").unwrap();
        assert_eq!(cache.usage(&m, &q).unwrap(), at(200, 1));
        // Another writer appends between two of ours: the next check re-reads.
        cache.record(&m, &q, 10, 1).unwrap();
        let mut f = OpenOptions::new().append(true).open(m.join(FILE)).unwrap();
        f.write_all(b"7 1\n").unwrap();
        cache.record(&m, &q, 1, 1).unwrap();
        assert_eq!(cache.usage(&m, &q).unwrap(), at(218, 4));
        // The file is replaced (Dovecot's recalculation renames a new one in).
        let tmp = m.join("maildirsize.new");
        fs::write(&tmp, "1000S\n42 1\n").unwrap();
        fs::rename(&tmp, m.join(FILE)).unwrap();
        assert_eq!(cache.usage(&m, &q).unwrap(), at(42, 1));
        // A new limit rebuilds from the Maildir (which holds no message files).
        let bigger = bytes_limit(2000);
        assert_eq!(cache.usage(&m, &bigger).unwrap(), at(0, 0));
        // The file removed: rebuilt on the next record, and counted again.
        fs::remove_file(m.join(FILE)).unwrap();
        fs::write(m.join("new/1.M1P1.h,S=70,W=72"), b"x").unwrap();
        cache.record(&m, &bigger, 70, 1).unwrap();
        assert_eq!(cache.usage(&m, &bigger).unwrap(), at(70, 1));
    }

    #[test]
    fn concurrent_records_and_checks_keep_the_cached_figure_exact() {
        let (_t, m) = maildir();
        let q = bytes_limit(1 << 40);
        let cache = UsageCache::default();
        // The file is made first: a record that finds none rebuilds it from
        // the Maildir's message files, which this test does not write.
        assert_eq!(cache.usage(&m, &q).unwrap(), Usage::default());
        // Each append lands while checks read the file: a check that summed a
        // line its stamp did not measure must not be cached (the append's own
        // update would count that line twice), and a compaction (every 400 or
        // so of these lines) must not lose a line appended while it runs.
        let (writers, each) = (4, 1500);
        let running = std::sync::atomic::AtomicUsize::new(writers);
        std::thread::scope(|s| {
            for _ in 0..writers {
                s.spawn(|| {
                    for _ in 0..each {
                        cache.record(&m, &q, 123_456_789, 1).unwrap();
                    }
                    running.fetch_sub(1, Ordering::SeqCst);
                });
            }
            for _ in 0..2 {
                s.spawn(|| {
                    while running.load(Ordering::SeqCst) > 0 {
                        cache.usage(&m, &q).unwrap();
                    }
                });
            }
        });
        let n = (writers * each) as u64;
        let sum = usage(&m, &q).unwrap();
        assert_eq!(
            sum,
            Usage {
                bytes: n * 123_456_789,
                messages: n
            },
            "the file"
        );
        assert_eq!(cache.usage(&m, &q).unwrap(), sum, "the cache");
    }

    #[test]
    fn a_line_being_appended_is_left_out_and_a_line_torn_long_ago_rebuilds() {
        let (_t, m) = maildir();
        let q = bytes_limit(1000);
        fs::write(m.join("new/1.M1P1.h,S=70,W=72"), b"x").unwrap();
        // Another writer's append, seen half done.
        fs::write(m.join(FILE), "1000S\n300 1\n20").unwrap();
        let cache = UsageCache::default();
        assert_eq!(cache.usage(&m, &q).unwrap(), at(300, 1));
        assert_eq!(usage(&m, &q).unwrap(), at(300, 1));
        // Not cached: the line's end is read at the next check.
        let mut f = OpenOptions::new().append(true).open(m.join(FILE)).unwrap();
        f.write_all(b"0 1\n").unwrap();
        assert_eq!(cache.usage(&m, &q).unwrap(), at(500, 2));
        // A line torn by a crash a minute ago: the Maildir is counted again.
        f.write_all(b"55").unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(60))
            .unwrap();
        drop(f);
        assert_eq!(cache.usage(&m, &q).unwrap(), at(70, 1));
        assert_eq!(fs::read_to_string(m.join(FILE)).unwrap(), "1000S\n70 1\n");
    }

    #[test]
    fn a_new_mailboxs_first_deliveries_are_counted_once_each() {
        let t = tempfile::tempdir().unwrap();
        let m = t.path().join("Maildir");
        let q = bytes_limit(1 << 30);
        let cache = UsageCache::default();
        // Checked before the Maildir exists (RCPT of its first messages).
        assert_eq!(cache.usage(&m, &q).unwrap(), at(0, 0));
        // Three deliveries land together; none has recorded itself yet when
        // a fourth is checked, with no maildirsize there to read.
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(m.join(sub)).unwrap();
        }
        for i in 0..3 {
            fs::write(m.join(format!("new/{i}.M1P1.h,S=100,W=102")), b"x").unwrap();
        }
        assert_eq!(cache.usage(&m, &q).unwrap(), at(0, 0));
        for _ in 0..3 {
            cache.record(&m, &q, 100, 1).unwrap();
        }
        assert_eq!(cache.usage(&m, &q).unwrap(), at(300, 3));
        assert_eq!(usage(&m, &q).unwrap(), at(300, 3));
        // A Maildir that existed without the file (made by another program)
        // is still counted from its messages.
        fs::remove_file(m.join(FILE)).unwrap();
        assert_eq!(UsageCache::default().usage(&m, &q).unwrap(), at(300, 3));
    }

    #[test]
    fn a_check_while_our_append_lands_takes_the_figure_before_it() {
        let (_t, m) = maildir();
        let q = bytes_limit(1000);
        let cache = UsageCache::default();
        assert_eq!(cache.usage(&m, &q).unwrap(), at(0, 0));
        cache.record(&m, &q, 300, 1).unwrap();
        assert_eq!(cache.usage(&m, &q).unwrap(), at(300, 1));
        // Our append has written its line and not yet counted it.
        let held = cache.turn(&m).take();
        let mut f = OpenOptions::new().append(true).open(m.join(FILE)).unwrap();
        f.write_all(b"200 1\n").unwrap();
        assert_eq!(cache.usage(&m, &q).unwrap(), at(300, 1));
        // Anyone else's change, seen with no append of ours under way, is read.
        drop(held);
        assert_eq!(cache.usage(&m, &q).unwrap(), at(500, 2));
    }

    #[test]
    fn reservations_count_against_the_quota_until_released() {
        let (_t, m) = maildir();
        let q = bytes_limit(1000);
        let cache = UsageCache::default();
        assert_eq!(cache.usage(&m, &q).unwrap(), at(0, 0));
        cache.record(&m, &q, 300, 1).unwrap();
        // Two messages on their way in: the second no longer fits beside
        // what is there and what is reserved.
        assert!(cache.reserve(&m, &q, 400).unwrap());
        assert_eq!(cache.pending(&m), at(400, 1));
        assert!(!cache.reserve(&m, &q, 400).unwrap());
        assert_eq!(cache.pending(&m), at(400, 1), "a refusal reserves nothing");
        // The first lands: recorded, then given back; the room is the file's.
        cache.record(&m, &q, 400, 1).unwrap();
        cache.release(&m, 400);
        assert_eq!(cache.pending(&m), at(0, 0));
        assert!(cache.reserve(&m, &q, 300).unwrap());
        assert!(
            !cache.reserve(&m, &q, 1).unwrap(),
            "700 + 300 reserved is the limit"
        );
    }

    #[test]
    fn concurrent_reservations_never_overshoot() {
        let (_t, m) = maildir();
        let q = bytes_limit(10_000);
        let cache = UsageCache::default();
        let granted = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..50 {
                        if cache.reserve(&m, &q, 300).unwrap() {
                            granted.fetch_add(300, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        let granted = granted.into_inner();
        assert!(
            granted <= 10_000,
            "{granted} reserved over a limit of 10000"
        );
        assert_eq!(cache.pending(&m).bytes, granted);
    }

    #[test]
    fn exceeding_is_strictly_over_the_limit() {
        let q = QuotaLimit {
            bytes: Some(100),
            messages: Some(2),
        };
        let u = at(60, 1);
        assert!(!q.would_exceed(u, 40, 1));
        assert!(q.would_exceed(u, 41, 1));
        assert!(q.would_exceed(u, 1, 2));
        assert!(!QuotaLimit::default().would_exceed(u, u64::MAX, u64::MAX));
    }
}
