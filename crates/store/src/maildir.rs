//! Durable Maildir delivery: "never lose a message".
//!
//! The server answers `250` to the end of DATA only once the message is
//! durable in the queue (RFC 5321 4.1.1.4: the receiver must not lose the
//! message once it has said so). The path of one message:
//!
//! 1. [`MaildirStore::begin`] creates the spool file
//!    `<data_dir>/queue/messages/<queue_id>`; [`IncomingMessage::write`]
//!    appends the body, turning CRLF into LF.
//! 2. [`persist_batch`] fsyncs the spool files of every message that ended at
//!    the same moment, then the spool directory once, and keeps them: the
//!    queue (crate `pillarbox-queue`) records their envelopes, and only then
//!    is the client answered.
//! 3. [`MaildirStore::place_named`] hard-links the kept file into a
//!    recipient's `new/` under a name made of the queue id and the recipient,
//!    and [`MaildirStore::sync_new_dirs`] fsyncs each `new/` once for all the
//!    copies of a batch. The queue removes the spool file once every copy is
//!    made. (`IncomingMessage::commit` does steps 2 and 3 at once, for one
//!    message, without a queue.)
//!
//! A crash at any point leaves either a complete message in `new/` or nothing a
//! reader can see: a spool file the queue does not name is removed at the next
//! start ([`MaildirStore::clear_spool_except`]); its client never got its
//! `250`, so it still holds the message and will send it again.
//!
//! The file is not fsync'd again after the links. The count on disk may then be
//! lower than the names the file has (1 against 2 or more), never 0: with a
//! journal the links and the count commit together; without one, the check every
//! boot after a crash runs (`e2fsck`) raises the count to the names it finds. A
//! file made durable with a count of 0 (an `O_TMPFILE` file before its link) would
//! instead be taken for a deleted one and cleared, names and all
//! (crates/pillarbox/tests/e2e_power_loss.rs).
//!
//! The layout is Dovecot's `mail_location = maildir:<data_dir>/mail/%d/%n/Maildir`,
//! and file names follow the Maildir convention (<https://cr.yp.to/proto/maildir.html>)
//! with Dovecot's `,S=` and `,W=` size fields, so Dovecot can serve the mail directly.

use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::StoreError;

/// Size of the write buffer over a spool file: large enough that a typical message
/// costs a handful of system calls, small enough to hold per message being
/// received. It comes from the thread's spare buffers (`pillarbox_proto::spare`)
/// and goes back there once the message is written out.
const WRITE_BUFFER: usize = 64 * 1024;

/// How many fresh names to try when a name is already taken in `new/`. A clash needs
/// the same second, microsecond, pid and counter (a clock stepped back across a
/// restart that reused our pid), so a second attempt practically always succeeds.
const NAME_ATTEMPTS: u32 = 8;

/// Mode of the data directory's lock file: only this server opens it.
const LOCK_MODE: u32 = 0o600;

/// The permission bits of what the store creates (`[storage] file_mode` and
/// `dir_mode`): message and spool files and `maildirsize` get `file`, the
/// directories it makes (the data directory, `mail/`, `spool/`, each Maildir
/// and its `cur/ new/ tmp/`) get `dir`.
///
/// They are handed to `open(2)` and `mkdir(2)` as they are, so the process
/// umask can still take bits away: `pillarbox serve` sets its umask at start so
/// that it takes none of these (see `pillarbox_server::privileges::set_umask`).
/// No call is added per message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Modes {
    /// Mode of the files: message, spool file, `maildirsize`.
    pub file: u32,
    /// Mode of the directories.
    pub dir: u32,
}

impl Default for Modes {
    /// Mail private to its owner (as Postfix local(8) and Dovecot write it):
    /// 0600 files, 0700 directories.
    fn default() -> Self {
        Modes {
            file: 0o600,
            dir: 0o700,
        }
    }
}

/// The `Q<n>` part of Maildir names: unique within this process, so two sessions
/// delivering in the same microsecond still pick different names.
static DELIVERY_COUNTER: AtomicU64 = AtomicU64::new(0);

/// This process's id, asked of the kernel once (it goes into every file name).
fn pid() -> u32 {
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *PID.get_or_init(std::process::id)
}

/// A local mailbox: the `%d` and `%n` of the Maildir path.
///
/// Both parts become directory names, so [`MailboxAddr::validate`] refuses anything
/// that could leave its directory or hide in it. The caller lower-cases both parts
/// before building one; the store does not change them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MailboxAddr {
    /// The domain, e.g. `example.test`.
    pub domain: String,
    /// The local part, e.g. `alice`.
    pub user: String,
}

impl MailboxAddr {
    /// Builds a mailbox address, refusing names [`MailboxAddr::validate`] refuses.
    pub fn new(domain: impl Into<String>, user: impl Into<String>) -> Result<Self, StoreError> {
        let addr = MailboxAddr {
            domain: domain.into(),
            user: user.into(),
        };
        addr.validate()?;
        Ok(addr)
    }

    /// Checks that both parts are safe directory names: not empty, not starting with
    /// `.` (which also rules out `.` and `..`, and keeps Maildir++ folder names and
    /// hidden files out), and without `/` or NUL.
    pub fn validate(&self) -> Result<(), StoreError> {
        check_name(&self.domain)?;
        check_name(&self.user)
    }
}

impl fmt::Display for MailboxAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user, self.domain)
    }
}

/// Refuses a name that would not stay one directory entry below its parent.
fn check_name(name: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.starts_with('.') || name.contains(['/', '\0']) {
        return Err(StoreError::BadMailbox(name.to_string()));
    }
    Ok(())
}

/// The Maildir store under one data directory.
#[derive(Debug, Clone)]
pub struct MaildirStore {
    data_dir: PathBuf,
    mail_dir: Arc<Path>,
    spool_dir: PathBuf,
    /// Where kept bodies go (`<data_dir>/queue/messages`).
    kept_dir: Arc<Path>,
    /// The host name as it goes into file names, already escaped.
    name_host: Arc<str>,
    /// Quota usage of the Maildirs delivered to, shared by every clone.
    quota: Arc<crate::quota::UsageCache>,
    /// Shared fsyncs of `new/` directories.
    dir_syncs: Arc<crate::dir_sync::DirSyncs>,
    /// The modes of the files and directories it creates.
    modes: Modes,
    /// The data directory's lock, released when the last clone is dropped.
    _lock: Arc<DataDirLock>,
}

/// Where message bodies are written as they arrive, relative to the data
/// directory. Nothing there is needed after a crash (no client was told
/// `250` for it), so the directory is never synced, and creating a file in
/// it never waits for a sync of the directory the kept bodies are in.
pub const SPOOL_DIR: &str = "queue/incoming";

/// Where message bodies are kept while the queue holds them, relative to the
/// data directory: [`persist_batch`] moves them here.
pub const KEPT_DIR: &str = "queue/messages";

/// The name of the lock file in the data directory.
pub const LOCK_FILE: &str = "pillarbox.lock";

/// An exclusive `flock` on `<data_dir>/pillarbox.lock`, which also holds the
/// holder's pid (for the message another process gets). The kernel drops it
/// when the process ends, however it ends, so no stale lock outlives a crash.
/// The file is left in place: removing it would let two processes lock two
/// different inodes.
#[derive(Debug)]
struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    fn take(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(LOCK_MODE)
            .open(&path)
            .map_err(|e| StoreError::io("open lock file", &path, e))?;
        match crate::flock_exclusive(&file, false) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let mut text = String::new();
                // The holder's pid, if it is readable: only for the message
                // (and only its first bytes: the file is anyone's to fill).
                let _ = io::Read::read_to_string(&mut io::Read::take(&mut file, 32), &mut text);
                return Err(StoreError::InUse {
                    path,
                    pid: text.trim().parse().ok(),
                });
            }
            Err(e) => return Err(StoreError::io("lock", &path, e)),
        }
        let pid = format!("{}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.write_all_at(pid.as_bytes(), 0))
            .map_err(|e| StoreError::io("write lock file", &path, e))?;
        Ok(DataDirLock { _file: file })
    }
}

/// The pid of the process that holds `<data_dir>/pillarbox.lock` (a running
/// server), found in `/proc/locks` by the lock file's device and inode rather
/// than read from the file, which anyone may have written. Looking takes no
/// lock of ours, so it can never stop a server that is starting. `None`: no
/// process holds it (or there is no lock file).
pub fn lock_holder(data_dir: &Path) -> io::Result<Option<u32>> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::metadata(data_dir.join(LOCK_FILE)) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let locks = std::fs::read_to_string("/proc/locks")?;
    Ok(flock_holder(&locks, meta.dev(), meta.ino()))
}

/// The pid holding an exclusive `flock` on the file (`dev`, `ino`) in the text
/// of `/proc/locks`, whose lines read
/// `1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF` (major and minor in hex,
/// the inode in decimal); `->` lines are waiters, not holders.
fn flock_holder(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    let (major, minor) = (libc::major(dev) as u64, libc::minor(dev) as u64);
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) != Some(&"FLOCK") || fields.get(3) != Some(&"WRITE") {
            return None;
        }
        let pid: u32 = fields.get(4)?.parse().ok()?;
        let mut id = fields.get(5)?.split(':');
        let ma = u64::from_str_radix(id.next()?, 16).ok()?;
        let mi = u64::from_str_radix(id.next()?, 16).ok()?;
        let i: u64 = id.next()?.parse().ok()?;
        (ma == major && mi == minor && i == ino).then_some(pid)
    })
}

impl MaildirStore {
    /// Opens the store under `data_dir`, creating `<data_dir>/mail` and
    /// `<data_dir>/spool` when missing (and fsyncing the parent of each directory it
    /// creates). `hostname` goes into every message file name; `modes` are the
    /// modes of every file and directory the store creates.
    ///
    /// The store holds `<data_dir>/pillarbox.lock` (an exclusive `flock`) until
    /// its last clone is dropped, and refuses a data directory another process
    /// holds ([`StoreError::InUse`]): two servers on one spool would each take
    /// the other's messages in flight for a crash's remnants.
    ///
    /// Every file left in the spool is then removed: no session runs while the
    /// store is opened and nobody else holds the lock, so a spool file is the
    /// remnant of a crash before the `250`, and its client still has the message.
    pub fn open(data_dir: &Path, hostname: &str, modes: Modes) -> Result<Self, StoreError> {
        let mail_dir = data_dir.join("mail");
        let spool_dir = data_dir.join(SPOOL_DIR);
        let kept_dir = data_dir.join(KEPT_DIR);
        ensure_dir(&mail_dir, modes.dir)?;
        ensure_dir(&spool_dir, modes.dir)?;
        ensure_dir(&kept_dir, modes.dir)?;
        let lock = DataDirLock::take(data_dir)?;
        // The spool of the releases before the queue: what is left there is a
        // crash's remnant whose client never got its 250.
        let legacy = data_dir.join("spool");
        if legacy.is_dir() {
            clear_spool(&legacy, |_| false)?;
        }
        Ok(MaildirStore {
            data_dir: data_dir.to_path_buf(),
            mail_dir: mail_dir.into(),
            spool_dir,
            kept_dir: kept_dir.into(),
            _lock: Arc::new(lock),
            name_host: escape_host(hostname).into(),
            quota: Arc::new(crate::quota::UsageCache::with_file_mode(modes.file)),
            dir_syncs: Default::default(),
            modes,
        })
    }

    /// The directory message bodies are written to as they arrive
    /// (`<data_dir>/queue/incoming`).
    pub fn spool_dir(&self) -> &Path {
        &self.spool_dir
    }

    /// The directory kept bodies are in (`<data_dir>/queue/messages`).
    pub fn kept_dir(&self) -> &Path {
        &self.kept_dir
    }

    /// Removes every body being received (a crash's: its client was not
    /// answered) and every kept body for which `keep` (given the file name)
    /// says no: at start, the queue keeps the bodies it holds and the rest
    /// are remnants of messages that never got their 250. Returns how many went.
    pub fn clear_spool_except(&self, keep: impl Fn(&str) -> bool) -> Result<usize, StoreError> {
        Ok(clear_spool(&self.spool_dir, |_| false)? + clear_spool(&self.kept_dir, keep)?)
    }

    /// The Maildir name of a queued message's copy for one recipient,
    /// `<secs>.<unique>.<host>,S=<stored>,W=<wire>`. The same message and
    /// recipient always get the same name (`unique` is made of the queue id
    /// and the recipient), so a delivery replayed after a crash finds the copy
    /// it already made instead of making a second one.
    pub fn queued_name(&self, secs: u64, unique: &str, stored: u64, wire: u64) -> String {
        format!("{secs}.{unique}.{},S={stored},W={wire}", self.name_host)
    }

    /// Places the queued body `body` into `rcpt`'s `new/` as `name` (a hard
    /// link; a copy when the Maildir is on another filesystem), creating the
    /// Maildir when missing. Does not sync `new/`: see [`Self::sync_new_dirs`].
    ///
    /// When a message of that name is already in `new/`, or in `cur/` (read
    /// by a client since, with its `:2,` flags), this is a replay of a
    /// delivery that happened: nothing is placed and
    /// [`Placed::already`] says so. `cur/` is looked at only when
    /// `look_in_cur` (a replay after a restart): a delivery in the normal
    /// course cannot have a copy there.
    pub fn place_named(
        &self,
        body: &Path,
        rcpt: &MailboxAddr,
        name: &str,
        look_in_cur: bool,
    ) -> Result<Placed, StoreError> {
        rcpt.validate()?;
        let maildir = self.maildir_path(rcpt);
        if look_in_cur && in_cur(&maildir, name) {
            return Ok(Placed {
                path: maildir.join("cur").join(name),
                already: true,
            });
        }
        let dest = maildir.join("new").join(name);
        let link = |dest: &Path| match fs::hard_link(body, dest) {
            Ok(()) => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(true),
            Err(e) => Err(e),
        };
        let placed = match link(&dest) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                ["cur", "new", "tmp"]
                    .iter()
                    .try_for_each(|sub| ensure_dir(&maildir.join(sub), self.modes.dir))?;
                link(&dest)
            }
            other => other,
        };
        match placed {
            Ok(already) => Ok(Placed {
                path: dest,
                already,
            }),
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                if dest.exists() {
                    return Ok(Placed {
                        path: dest,
                        already: true,
                    });
                }
                let file =
                    File::open(body).map_err(|e| StoreError::io("open queued message", body, e))?;
                let path = copy_into(&file, &maildir, name, self.modes.file)?;
                Ok(Placed {
                    path,
                    already: false,
                })
            }
            Err(e) => Err(StoreError::io("link message into", &dest, e)),
        }
    }

    /// Makes the entries placed at `paths` durable: one fsync of each
    /// distinct directory, shared with the other deliveries into it that end
    /// now (see [`crate::dir_sync`]).
    pub fn sync_new_dirs(&self, paths: &[&Path]) -> Result<(), StoreError> {
        let dirs: Vec<&Path> = paths.iter().filter_map(|p| p.parent()).collect();
        sync_dirs(&dir_tickets(&dirs, &self.dir_syncs))
    }

    /// The quota usage of Maildirs, cached while their `maildirsize` is unchanged.
    pub fn quota(&self) -> &crate::quota::UsageCache {
        &self.quota
    }

    /// The modes of the files and directories the store creates.
    pub fn modes(&self) -> Modes {
        self.modes
    }

    /// The data directory the store was opened on.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// `<data_dir>/mail/<domain>/<user>/Maildir`, the directory Dovecot finds with
    /// `mail_location = maildir:<data_dir>/mail/%d/%n/Maildir`.
    ///
    /// The names are not checked here; [`IncomingMessage::commit`] refuses bad ones
    /// before touching the disk.
    pub fn maildir_path(&self, rcpt: &MailboxAddr) -> PathBuf {
        maildir_path(&self.mail_dir, rcpt)
    }

    /// [`Self::maildir_path`] without opening the store, for a command run beside
    /// a live server (opening takes the data directory's lock and clears the
    /// spool).
    pub fn maildir_path_in(data_dir: &Path, rcpt: &MailboxAddr) -> PathBuf {
        maildir_path(&data_dir.join("mail"), rcpt)
    }

    /// Starts one incoming message: creates `<data_dir>/spool/<queue_id>`, which
    /// must not exist yet. `queue_id` must be a plain file name.
    pub fn begin(&self, queue_id: &str) -> Result<IncomingMessage, StoreError> {
        let spool = self.spool_dir.join(queue_id);
        if queue_id.is_empty() || queue_id.starts_with('.') || queue_id.contains(['/', '\0']) {
            return Err(StoreError::io(
                "create spool file",
                &spool,
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "queue id is not a plain file name",
                ),
            ));
        }
        // Readable too: a Maildir on another filesystem gets a copy read back
        // through this descriptor.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(self.modes.file)
            .open(&spool)
            .map_err(|e| StoreError::io("create spool file", &spool, e))?;
        Ok(IncomingMessage {
            out: Some(SpoolOut {
                file,
                buf: Vec::new(),
                state: SpoolState::Writing,
            }),
            spool,
            kept_dir: self.kept_dir.clone(),
            spool_exists: true,
            dir_syncs: self.dir_syncs.clone(),
            mail_dir: self.mail_dir.clone(),
            name_host: self.name_host.clone(),
            modes: self.modes,
            lf: LfConverter::default(),
        })
    }
}

/// Where [`MaildirStore::place_named`] put a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// The message file in the recipient's Maildir.
    pub path: PathBuf,
    /// It was there before (a replayed delivery): nothing was placed now.
    pub already: bool,
}

/// Is a message named `name` (with any `:2,` flags) in `<maildir>/cur`?
fn in_cur(maildir: &Path, name: &str) -> bool {
    let Ok(entries) = fs::read_dir(maildir.join("cur")) else {
        return false;
    };
    entries.flatten().any(|e| {
        let n = e.file_name();
        let n = n.as_encoded_bytes();
        n.starts_with(name.as_bytes()) && matches!(n.get(name.len()), None | Some(b':'))
    })
}

/// A message body made durable in the spool by [`persist_batch`]: it stays
/// there (the queue holds it) until the queue removes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// The body file.
    pub path: PathBuf,
    /// Bytes on disk (LF line ends): the `S=` of Maildir names.
    pub stored_size: u64,
    /// Size with CRLF line ends: the `W=`.
    pub wire_size: u64,
}

/// Makes several messages' bodies durable together and keeps them in the
/// spool: each file written out and fsync'd (data, size; concurrently), then
/// the spool directory fsync'd once for the whole batch, so every name is
/// findable after a power cut. Results come back in the batch's order; a
/// message that failed has its file removed.
pub fn persist_batch(batch: Vec<IncomingMessage>) -> Vec<Result<Kept, StoreError>> {
    let mut results: Vec<Option<Result<Kept, StoreError>>> =
        (0..batch.len()).map(|_| None).collect();
    let mut msgs: Vec<(usize, IncomingMessage)> = Vec::with_capacity(batch.len());
    let mut files: Vec<File> = Vec::with_capacity(batch.len());
    for (i, mut msg) in batch.into_iter().enumerate() {
        match msg.written_file() {
            Ok(f) => {
                files.push(f);
                msgs.push((i, msg));
            }
            Err(e) => results[i] = Some(Err(e)),
        }
    }
    let written: Vec<(&File, &Path)> = files
        .iter()
        .zip(msgs.iter().map(|(_, m)| m.spool.as_path()))
        .collect();
    let mut synced = sync_spool_files(&written);
    drop(written);
    // Moved among the kept bodies (their data and inode durable already),
    // then that directory synced once: every name findable after a power cut.
    if synced.is_ok() {
        let mut moved: Vec<(usize, IncomingMessage)> = Vec::with_capacity(msgs.len());
        for (i, mut msg) in msgs {
            let Some(name) = msg.spool.file_name().map(|n| msg.kept_dir.join(n)) else {
                results[i] = Some(Err(closed_error(&msg.spool)));
                continue;
            };
            match fs::rename(&msg.spool, &name) {
                Ok(()) => {
                    msg.spool = name;
                    moved.push((i, msg));
                }
                Err(e) => results[i] = Some(Err(StoreError::io("move message into", &name, e))),
            }
        }
        msgs = moved;
        if let Some((_, m)) = msgs.first() {
            let dirs: Vec<&Path> = vec![&*m.kept_dir];
            synced = sync_dirs(&dir_tickets(&dirs, &m.dir_syncs));
        }
    }
    drop(files);
    for (i, mut msg) in msgs {
        results[i] = Some(match &synced {
            Ok(()) => {
                // Kept: the drop no longer removes it.
                msg.spool_exists = false;
                Ok(Kept {
                    path: msg.spool.clone(),
                    stored_size: msg.lf.stored,
                    wire_size: msg.lf.wire,
                })
            }
            Err(e) => Err(e.duplicate()),
        });
    }
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(StoreError::io(
                    "persist batch",
                    Path::new("?"),
                    io::Error::other("lost"),
                ))
            })
        })
        .collect()
}

/// The result of a successful [`IncomingMessage::commit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The message file in each recipient's `new/`, one per distinct recipient, in
    /// the order the recipients were given.
    pub paths: Vec<PathBuf>,
    /// Bytes on disk (LF line ends): the `S=` of the file names.
    pub stored_size: u64,
    /// Size with CRLF line ends (the RFC 822 size IMAP reports): the `W=`.
    pub wire_size: u64,
}

/// One message being received, spooled in `<data_dir>/spool/<queue_id>`.
///
/// Dropping it without [`commit`](IncomingMessage::commit) removes the spool file,
/// so a session that ends mid-DATA leaves nothing behind.
#[derive(Debug)]
pub struct IncomingMessage {
    /// `None` once the file has been handed to the commit or thrown away.
    out: Option<SpoolOut>,
    /// The spool file's name.
    spool: PathBuf,
    /// Where [`persist_batch`] moves it.
    kept_dir: Arc<Path>,
    /// The spool name is not unlinked yet.
    spool_exists: bool,
    /// The modes of a copied message file and of the Maildir directories made.
    modes: Modes,
    dir_syncs: Arc<crate::dir_sync::DirSyncs>,
    mail_dir: Arc<Path>,
    name_host: Arc<str>,
    lf: LfConverter,
}

impl IncomingMessage {
    /// Appends message bytes in SMTP wire form (lines ended by CRLF).
    ///
    /// They are stored with LF line ends, the Maildir convention (what Postfix
    /// local(8) and Dovecot's own deliveries write): every CR immediately followed by
    /// LF is dropped, also when the CR ends one call and the LF starts the next. A CR
    /// not followed by LF is kept.
    pub fn write(&mut self, wire: &[u8]) -> Result<(), StoreError> {
        let Some(out) = self.out.as_mut() else {
            // Unreachable: only commit, abort and drop take the writer, and they
            // consume the message. An error is still better than a panic.
            return Err(closed_error(&self.spool));
        };
        self.lf
            .write(out, wire)
            .map_err(|e| StoreError::io("write spool file", &self.spool, e))
    }

    /// Bytes stored so far (LF line ends): what goes into `S=`.
    pub fn stored_size(&self) -> u64 {
        self.lf.stored
    }

    /// The size of what has been stored so far with every LF counted as CRLF: what
    /// goes into `W=`. Dovecot computes the same from the file, so it is the RFC 822
    /// size IMAP reports; for all-CRLF input it equals the bytes received.
    pub fn wire_size(&self) -> u64 {
        self.lf.wire
    }

    /// Delivers the message durably to every recipient, then removes the spool file.
    ///
    /// Flushes and fsyncs the spool file; then for each recipient creates its
    /// Maildir (`cur`, `new`, `tmp`, fsyncing each created directory and its parent)
    /// when missing, hard-links the spool file into `new/` under a unique Maildir name,
    /// or, when the Maildir is on another filesystem, copies it into `tmp/`, fsyncs it
    /// and renames it into `new/`; then fsyncs each `new/`. Duplicate recipients get
    /// one copy.
    ///
    /// All or nothing: if any recipient fails, the files already placed in other
    /// `new/` directories are removed again and the error is returned, so the client's
    /// retry after our 4xx does not duplicate the message. (If that removal itself
    /// fails, a duplicate is the price; a loss never is.) An empty recipient list
    /// delivers nothing and succeeds.
    pub fn commit(mut self, rcpts: &[MailboxAddr]) -> Result<Delivered, StoreError> {
        let result = self.deliver(rcpts);
        // Delivered or not, the spool file has done its job. A failed unlink after a
        // good delivery is not reported: the mail is safe, an error would make the
        // client send it again, and `open` removes the leftover at the next start.
        self.discard();
        result
    }

    /// Drops the message and removes its spool file (e.g. after RSET, or a body over
    /// the size limit).
    pub fn abort(mut self) {
        self.discard();
    }

    /// Writes out every byte still buffered (no fsync) and gives the write
    /// buffer back to this thread's spares. No write may follow. The session
    /// calls it on its own thread before handing the message to a commit
    /// thread, so the buffer is reused where it was taken; `commit` calls it
    /// itself otherwise (a second call writes nothing).
    pub fn write_out(&mut self) -> Result<(), StoreError> {
        let Some(out) = self.out.as_mut() else {
            return Err(closed_error(&self.spool));
        };
        // A failed write stays failed, however often this is asked.
        out.check()
            .map_err(|e| StoreError::io("write spool file", &self.spool, e))?;
        if out.state == SpoolState::WrittenOut {
            return Ok(());
        }
        let written = self.lf.finish(out).and_then(|()| out.flush());
        if written.is_ok() {
            out.state = SpoolState::WrittenOut;
        }
        pillarbox_proto::spare::give(std::mem::take(&mut out.buf));
        written.map_err(|e| StoreError::io("write spool file", &self.spool, e))
    }

    /// The spool file, written out (no fsync yet), taken for the commit.
    fn written_file(&mut self) -> Result<File, StoreError> {
        self.write_out()?;
        match self.out.take() {
            Some(out) => Ok(out.file),
            None => Err(closed_error(&self.spool)),
        }
    }

    /// Links the (already durable) spool file into every recipient's `new/`
    /// without syncing the directories; returns the paths placed. On error,
    /// what was placed is removed again. A bad name is found before any link.
    fn place_all(&self, file: &File, rcpts: &[MailboxAddr]) -> Result<Vec<PathBuf>, StoreError> {
        let mut distinct: Vec<&MailboxAddr> = Vec::with_capacity(rcpts.len());
        for rcpt in rcpts {
            if !distinct.contains(&rcpt) {
                rcpt.validate()?;
                distinct.push(rcpt);
            }
        }
        let mut placed = Vec::with_capacity(distinct.len());
        for rcpt in distinct {
            let maildir = maildir_path(&self.mail_dir, rcpt);
            // Link first: an existing Maildir (the usual case) costs no stat;
            // a missing one is created and the link tried again.
            let step = match self.place(file, &maildir, &maildir.join("new")) {
                Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                    ["cur", "new", "tmp"]
                        .iter()
                        .try_for_each(|sub| ensure_dir(&maildir.join(sub), self.modes.dir))
                        .and_then(|()| self.place(file, &maildir, &maildir.join("new")))
                }
                other => other,
            };
            match step {
                Ok(path) => placed.push(path),
                Err(err) => {
                    unplace(&placed);
                    return Err(err);
                }
            }
        }
        Ok(placed)
    }
}

/// Threads a batch's syncs are spread over: concurrent syncs share journal
/// commits (ext4's jbd2, XFS's log) or, without a journal, the block layer's
/// cache flushes; sequential ones each wait for their own.
const SYNC_THREADS: usize = 8;

/// Runs `sync` for every item, on up to [`SYNC_THREADS`] threads at once;
/// the first error wins.
fn sync_concurrently<T: Sync>(
    items: &[T],
    sync: impl Fn(&T) -> Result<(), StoreError> + Sync,
) -> Result<(), StoreError> {
    if items.len() <= 1 {
        return items.iter().try_for_each(&sync);
    }
    let per = items.len().div_ceil(SYNC_THREADS);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(per)
            .map(|chunk| scope.spawn(|| chunk.iter().try_for_each(&sync)))
            .collect();
        let mut result = Ok(());
        for h in handles {
            let r = h.join().unwrap_or_else(|_| {
                Err(StoreError::io(
                    "sync",
                    Path::new("?"),
                    io::Error::other("sync thread panicked"),
                ))
            });
            if result.is_ok() {
                result = r;
            }
        }
        result
    })
}

/// Fsyncs each of `files` (data, size and link count), concurrently (a
/// batch's files after the whole batch was written; no syncfs(2): that would
/// flush other processes' data on the filesystem too).
fn sync_spool_files(files: &[(&File, &Path)]) -> Result<(), StoreError> {
    sync_concurrently(files, |(f, p)| {
        f.sync_all()
            .map_err(|e| StoreError::io("fsync spool file", p, e))
    })
}

/// Places in the shared fsync rounds of each distinct directory of `dirs`
/// (see [`crate::dir_sync`]), for the entries made in them so far. Taken
/// right after the links.
fn dir_tickets<'a>(
    dirs: &[&'a Path],
    syncs: &crate::dir_sync::DirSyncs,
) -> Vec<crate::dir_sync::Ticket<'a>> {
    let mut distinct: Vec<&Path> = Vec::new();
    for d in dirs {
        if !distinct.contains(d) {
            distinct.push(d);
        }
    }
    distinct.into_iter().map(|d| syncs.ticket(d)).collect()
}

/// Makes the entries the tickets stand for durable: waits for (or runs) each
/// directory's round, the directories concurrently.
fn sync_dirs(tickets: &[crate::dir_sync::Ticket<'_>]) -> Result<(), StoreError> {
    sync_concurrently(tickets, |t| {
        t.wait()
            .map_err(|e| StoreError::io("fsync directory", t.dir(), e))
    })
}

impl IncomingMessage {
    fn deliver(&mut self, rcpts: &[MailboxAddr]) -> Result<Delivered, StoreError> {
        let file = self.written_file()?;
        // The bytes and the inode (a count of 1) before any name in new/.
        sync_spool_files(&[(&file, self.spool.as_path())])?;

        // Link into every new/ first, then sync each new/ (shared with the
        // other deliveries into it that end now): the entries are durable
        // before we report success.
        let placed = self.place_all(&file, rcpts)?;
        let dirs: Vec<&Path> = placed.iter().filter_map(|p| p.parent()).collect();
        if let Err(e) = sync_dirs(&dir_tickets(&dirs, &self.dir_syncs)) {
            unplace(&placed);
            return Err(e);
        }
        Ok(Delivered {
            paths: placed,
            stored_size: self.lf.stored,
            wire_size: self.lf.wire,
        })
    }

    /// Links the spool file into `new_dir` under a fresh name, falling back to a copy
    /// when the Maildir is on another filesystem.
    fn place(&self, file: &File, maildir: &Path, new_dir: &Path) -> Result<PathBuf, StoreError> {
        for _ in 0..NAME_ATTEMPTS {
            let name = self.unique_name();
            let dest = new_dir.join(&name);
            match fs::hard_link(&self.spool, &dest) {
                Ok(()) => return Ok(dest),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                    return copy_into(file, maildir, &name, self.modes.file);
                }
                Err(e) => return Err(StoreError::io("link message into", &dest, e)),
            }
        }
        Err(StoreError::io(
            "link message into",
            new_dir,
            io::Error::new(io::ErrorKind::AlreadyExists, "no unused file name found"),
        ))
    }

    /// `<secs>.M<usecs>P<pid>Q<counter>.<host>,S=<stored>,W=<wire>`: the Maildir
    /// unique name, with the sizes Dovecot reads instead of stat'ing the file.
    fn unique_name(&self) -> String {
        // A clock before 1970 only makes the name less pretty; pid and counter keep
        // it unique.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let counter = DELIVERY_COUNTER.fetch_add(1, Ordering::Relaxed);
        use std::fmt::Write as _;
        // Sized for the usual name at once (format! would grow it twice).
        let mut name = String::with_capacity(64 + self.name_host.len());
        // Writing to a String cannot fail.
        let _ = write!(
            name,
            "{}.M{}P{}Q{}.{},S={},W={}",
            now.as_secs(),
            now.subsec_micros(),
            pid(),
            counter,
            self.name_host,
            self.lf.stored,
            self.lf.wire,
        );
        name
    }

    /// Throws away the writer (without flushing it) and unlinks the spool file.
    fn discard(&mut self) {
        if let Some(out) = self.out.take() {
            // The buffered bytes are dropped, not written to a file we are
            // about to delete.
            pillarbox_proto::spare::give(out.buf);
        }
        if self.spool_exists {
            self.spool_exists = false;
            let _ = fs::remove_file(&self.spool);
        }
    }
}

impl Drop for IncomingMessage {
    /// An uncommitted message (the session died, the client went away) removes its
    /// spool file.
    fn drop(&mut self) {
        self.discard();
    }
}

/// The spool file and the bytes not yet written to it.
#[derive(Debug)]
struct SpoolOut {
    file: File,
    /// At most [`WRITE_BUFFER`] bytes not yet written; no capacity until the
    /// first write and after [`IncomingMessage::write_out`].
    buf: Vec<u8>,
    state: SpoolState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SpoolState {
    /// Taking bytes.
    Writing,
    /// Everything was written out: no more writes.
    WrittenOut,
    /// A write to the file failed: the file lacks bytes, for good.
    Failed,
}

impl SpoolOut {
    fn check(&self) -> io::Result<()> {
        if self.state == SpoolState::Failed {
            return Err(io::Error::other(
                "an earlier write to the spool file failed",
            ));
        }
        Ok(())
    }

    /// Notes a failed write to the file, for good.
    fn record(&mut self, written: io::Result<()>) -> io::Result<()> {
        if written.is_err() {
            self.state = SpoolState::Failed;
        }
        written
    }
}

impl Write for SpoolOut {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.check()?;
        if self.state == SpoolState::WrittenOut {
            return Err(io::Error::other("the spool file was already written out"));
        }
        if self.buf.len() + data.len() > WRITE_BUFFER {
            self.flush()?;
        }
        if data.len() >= WRITE_BUFFER {
            let written = self.file.write_all(data);
            self.record(written)?;
        } else {
            if self.buf.capacity() == 0 {
                self.buf = pillarbox_proto::spare::take(WRITE_BUFFER);
            }
            self.buf.extend_from_slice(data);
        }
        Ok(data.len())
    }

    /// Writes the buffered bytes to the file (no fsync). After an error the
    /// message is refused, so the bytes are dropped either way.
    fn flush(&mut self) -> io::Result<()> {
        self.check()?;
        if self.buf.is_empty() {
            return Ok(());
        }
        let written = self.file.write_all(&self.buf);
        self.buf.clear();
        self.record(written)
    }
}

/// Turns CRLF into LF across a stream of writes and counts both sizes.
#[derive(Debug, Default)]
struct LfConverter {
    /// The last byte of the previous write was a CR, held back until we see whether
    /// an LF follows.
    pending_cr: bool,
    /// Bytes written to the output.
    stored: u64,
    /// Bytes written, with every LF counted as CRLF.
    wire: u64,
}

impl LfConverter {
    fn write<W: Write>(&mut self, out: &mut W, wire: &[u8]) -> io::Result<()> {
        let mut rest = wire;
        if self.pending_cr {
            if let Some(&first) = rest.first() {
                self.pending_cr = false;
                if first != b'\n' {
                    self.put(out, b"\r")?;
                }
            }
        }
        // Hold back a final CR: its LF may start the next write.
        if let Some((&b'\r', head)) = rest.split_last() {
            self.pending_cr = true;
            rest = head;
        }
        let mut start = 0;
        let mut lfs = 0;
        for at in memchr::memchr_iter(b'\n', rest) {
            lfs += 1;
            // `start` is 0 or just after the previous LF, so a CR before this
            // LF is at or after it.
            if at > start && rest[at - 1] == b'\r' {
                self.put(out, &rest[start..at - 1])?;
                // The LF begins the next segment; the CR is skipped.
                start = at;
            }
        }
        self.put(out, &rest[start..])?;
        // Every stored LF was CRLF on the wire (or, for a bare LF, counts as
        // one, as Dovecot counts it).
        self.wire += lfs;
        Ok(())
    }

    /// Ends the message: a CR still held back had no LF after it, so it is kept.
    fn finish<W: Write>(&mut self, out: &mut W) -> io::Result<()> {
        if self.pending_cr {
            self.pending_cr = false;
            self.put(out, b"\r")?;
        }
        Ok(())
    }

    /// Stores `bytes` (the caller counts their LFs into `wire`).
    fn put<W: Write>(&mut self, out: &mut W, bytes: &[u8]) -> io::Result<()> {
        out.write_all(bytes)?;
        let len = bytes.len() as u64;
        self.stored += len;
        self.wire += len;
        Ok(())
    }
}

fn closed_error(spool: &Path) -> StoreError {
    StoreError::io(
        "write spool file",
        spool,
        io::Error::other("message already committed or aborted"),
    )
}

fn maildir_path(mail_dir: &Path, rcpt: &MailboxAddr) -> PathBuf {
    // One allocation: it is built several times per message (quota, links).
    let len = mail_dir.as_os_str().len() + rcpt.domain.len() + rcpt.user.len() + "//Maildir/".len();
    let mut path = PathBuf::with_capacity(len);
    path.push(mail_dir);
    path.push(&rcpt.domain);
    path.push(&rcpt.user);
    path.push("Maildir");
    path
}

/// Escapes the host name for a Maildir file name: `/` would make a path and `:`
/// starts the info part, so both become octal escapes as the convention says.
fn escape_host(hostname: &str) -> String {
    let host = if hostname.is_empty() {
        "localhost"
    } else {
        hostname
    };
    host.replace('/', "\\057").replace(':', "\\072")
}

/// Copies the spool file `src` into `<maildir>/tmp/<name>`, fsyncs it and renames it to
/// `<maildir>/new/<name>`: the classic Maildir delivery, for a Maildir on another
/// filesystem than the spool. The caller fsyncs `new/`.
fn copy_into(src: &File, maildir: &Path, name: &str, mode: u32) -> Result<PathBuf, StoreError> {
    let tmp = maildir.join("tmp").join(name);
    let dest = maildir.join("new").join(name);
    let result = (|| {
        // Read from the start, through a descriptor of our own (the spool file's
        // offset is at its end after writing).
        let mut src = std::io::BufReader::new(ReadFrom { file: src, at: 0 });
        let mut dst = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(|e| StoreError::io("create message file", &tmp, e))?;
        // A failed copy is nearly always the destination filling up, so it is
        // blamed on the destination.
        io::copy(&mut src, &mut dst).map_err(|e| StoreError::io("copy message to", &tmp, e))?;
        dst.sync_all()
            .map_err(|e| StoreError::io("fsync message file", &tmp, e))?;
        fs::rename(&tmp, &dest).map_err(|e| StoreError::io("move message into", &dest, e))
    })();
    match result {
        Ok(()) => Ok(dest),
        Err(err) => {
            let _ = fs::remove_file(&tmp);
            Err(err)
        }
    }
}

/// Reads a file from a position of its own, leaving the file's offset alone.
struct ReadFrom<'a> {
    file: &'a File,
    at: u64,
}

impl io::Read for ReadFrom<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = std::os::unix::fs::FileExt::read_at(self.file, buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// Undoes the deliveries of a failed commit. Best effort: see `commit`.
fn unplace(placed: &[PathBuf]) {
    for path in placed {
        if fs::remove_file(path).is_ok() {
            if let Some(dir) = path.parent() {
                let _ = fsync_dir(dir);
            }
        }
    }
}

/// Creates `path` and any missing ancestors with `mode`, fsyncing the parent of each directory
/// created so the new entry survives a crash (fsync(2): syncing a file does not sync
/// the directory entry pointing to it).
fn ensure_dir(path: &Path, mode: u32) -> Result<(), StoreError> {
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => {
            return Err(StoreError::io(
                "create directory",
                path,
                io::Error::from_raw_os_error(libc::ENOTDIR),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::io("create directory", path, e)),
    }
    // A relative path's last ancestor is "", which means the current directory.
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    ensure_dir(parent, mode)?;
    match DirBuilder::new().mode(mode).create(path) {
        // The new directory itself (its `.` and `..`, its inode), then the
        // entry naming it: without a journal, fsync of the parent alone leaves
        // a directory that `e2fsck` after a crash finds corrupt or deleted.
        Ok(()) => fsync_dir(path).and_then(|()| fsync_dir(parent)),
        // Another session created it between our stat and mkdir.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(StoreError::io("create directory", path, e)),
    }
}

fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("fsync directory", dir, e))
}

/// Removes every file in the spool. Subdirectories are left alone: we never create
/// them, so they are someone else's.
fn clear_spool(spool_dir: &Path, keep: impl Fn(&str) -> bool) -> Result<usize, StoreError> {
    let entries =
        fs::read_dir(spool_dir).map_err(|e| StoreError::io("read spool", spool_dir, e))?;
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io("read spool", spool_dir, e))?;
        let path = entry.path();
        let file_type = entry
            .file_type()
            .map_err(|e| StoreError::io("stat spool file", &path, e))?;
        if file_type.is_dir() || entry.file_name().to_str().is_some_and(&keep) {
            continue;
        }
        match fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("remove spool file", &path, e)),
        }
    }
    if removed > 0 {
        fsync_dir(spool_dir)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_lock_holder_is_found_by_device_and_inode_and_waiters_are_not_holders() {
        let dev = libc::makedev(0xfd, 0x01);
        let locks = "1: POSIX  ADVISORY  WRITE 99 fd:01:5678 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF\n\
                     2: -> FLOCK  ADVISORY  WRITE 77 fd:01:5678 0 EOF\n\
                     3: FLOCK  ADVISORY  WRITE 555 fd:02:5678 0 EOF\n";
        assert_eq!(flock_holder(locks, dev, 5678), Some(1234));
        assert_eq!(flock_holder(locks, dev, 42), None);
        assert_eq!(
            flock_holder(locks, libc::makedev(0xfd, 0x02), 5678),
            Some(555)
        );
    }

    #[test]
    fn an_open_store_is_found_holding_its_data_dir_and_a_closed_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(lock_holder(dir.path()).unwrap(), None);
        let store = MaildirStore::open(dir.path(), "h", Modes::default()).unwrap();
        assert_eq!(lock_holder(dir.path()).unwrap(), Some(std::process::id()));
        drop(store);
        assert_eq!(lock_holder(dir.path()).unwrap(), None);
    }

    use super::*;
    use proptest::strategy::Just;
    use std::os::unix::fs::MetadataExt;

    fn store() -> (tempfile::TempDir, MaildirStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            MaildirStore::open(dir.path(), "mx.example.test", Modes::default()).expect("open");
        (dir, store)
    }

    #[test]
    fn a_second_store_on_one_data_directory_is_refused_until_the_first_is_gone() {
        let (dir, store) = store();
        let mut msg = store.begin("q1").expect("begin");
        msg.write(b"Subject: x\r\n\r\nbody\r\n").expect("write");
        match MaildirStore::open(dir.path(), "mx.example.test", Modes::default()) {
            Err(StoreError::InUse { path, pid }) => {
                assert_eq!(path, dir.path().join(LOCK_FILE));
                assert_eq!(pid, Some(std::process::id()));
            }
            other => panic!("a second store on one data directory: {other:?}"),
        }
        // The message in flight kept its spool file and is delivered.
        let rcpt = MailboxAddr::new("example.test", "bob").unwrap();
        msg.commit(&[rcpt]).expect("commit");
        // A clone keeps the lock; the last one gone releases it.
        let clone = store.clone();
        drop(store);
        assert!(MaildirStore::open(dir.path(), "mx.example.test", Modes::default()).is_err());
        drop(clone);
        MaildirStore::open(dir.path(), "mx.example.test", Modes::default())
            .expect("open after the first is gone");
    }

    #[test]
    fn the_spool_file_is_named_until_commit_and_gone_after() {
        let (_dir, store) = store();
        let mut msg = store.begin("q1").expect("begin");
        msg.write(&vec![b'x'; WRITE_BUFFER * 2]).expect("write");
        assert_eq!(spool_entries(&store), vec![store.spool_dir().join("q1")]);
        let delivered = msg.commit(&[rcpt("alice")]).expect("commit");
        assert_eq!(
            fs::read(&delivered.paths[0]).expect("read").len(),
            WRITE_BUFFER * 2
        );
        assert_eq!(fs::metadata(&delivered.paths[0]).expect("stat").nlink(), 1);
        assert!(spool_entries(&store).is_empty());
    }

    fn rcpt(user: &str) -> MailboxAddr {
        MailboxAddr::new("example.test", user).expect("valid mailbox")
    }

    fn entries(dir: &Path) -> Vec<PathBuf> {
        match fs::read_dir(dir) {
            Ok(rd) => rd.map(|e| e.expect("dir entry").path()).collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("read_dir {}: {e}", dir.display()),
        }
    }

    fn spool_entries(store: &MaildirStore) -> Vec<PathBuf> {
        entries(store.spool_dir())
    }

    fn new_entries(store: &MaildirStore, user: &str) -> Vec<PathBuf> {
        entries(&store.maildir_path(&rcpt(user)).join("new"))
    }

    fn convert(chunks: &[&[u8]]) -> (Vec<u8>, u64, u64) {
        let mut lf = LfConverter::default();
        let mut out = Vec::new();
        for chunk in chunks {
            lf.write(&mut out, chunk).expect("write to vec");
        }
        lf.finish(&mut out).expect("finish");
        (out, lf.stored, lf.wire)
    }

    #[test]
    fn two_recipients_share_one_inode() {
        let (_dir, store) = store();
        let store = &store;
        let mut msg = store.begin("q1").expect("begin");
        msg.write(b"Subject: hi\r\n\r\nbody\r\n").expect("write");
        let delivered = msg.commit(&[rcpt("alice"), rcpt("bob")]).expect("commit");

        assert_eq!(delivered.paths.len(), 2);
        let a = fs::metadata(&delivered.paths[0]).expect("alice's file");
        let b = fs::metadata(&delivered.paths[1]).expect("bob's file");
        assert_eq!(a.ino(), b.ino());
        assert_eq!(a.dev(), b.dev());
        // Two links, not three: the spool link is gone.
        assert_eq!(a.nlink(), 2);
        assert!(spool_entries(store).is_empty());
        assert_eq!(
            new_entries(store, "alice"),
            vec![delivered.paths[0].clone()]
        );
        assert_eq!(new_entries(store, "bob"), vec![delivered.paths[1].clone()]);
    }

    #[test]
    fn maildir_gets_cur_new_tmp() {
        let (_dir, store) = store();
        let msg = store.begin("q1").expect("begin");
        msg.commit(&[rcpt("alice")]).expect("commit");
        let maildir = store.maildir_path(&rcpt("alice"));
        assert_eq!(
            maildir,
            store.data_dir().join("mail/example.test/alice/Maildir")
        );
        for sub in ["cur", "new", "tmp"] {
            assert!(maildir.join(sub).is_dir(), "{sub}");
        }
    }

    #[test]
    fn stored_content_has_lf_line_ends_and_sizes_in_name() {
        let (_dir, store) = store();
        let wire = b"Subject: hi\r\n\r\nline one\r\nline two\r\n";
        let mut msg = store.begin("q1").expect("begin");
        msg.write(wire).expect("write");
        assert_eq!(msg.wire_size(), wire.len() as u64);
        let delivered = msg.commit(&[rcpt("alice")]).expect("commit");

        let stored = fs::read(&delivered.paths[0]).expect("read message");
        assert_eq!(stored, b"Subject: hi\n\nline one\nline two\n");
        assert_eq!(delivered.stored_size, stored.len() as u64);
        assert_eq!(delivered.wire_size, wire.len() as u64);

        let name = delivered.paths[0]
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 name");
        let suffix = format!(",S={},W={}", stored.len(), wire.len());
        assert!(name.ends_with(&suffix), "{name}");
        assert!(name.contains(".mx.example.test,S="), "{name}");
        let pid = format!("P{}Q", std::process::id());
        assert!(name.contains(&pid), "{name}");
    }

    #[test]
    fn a_message_written_out_on_one_thread_is_committed_whole_on_another() {
        let (_dir, store) = store();
        // Lines across the write buffer's bound, one write larger than it,
        // and a CR held back at the very end.
        let line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopq\r\n";
        let small: Vec<u8> = line.repeat(WRITE_BUFFER / line.len() + 3);
        // One line longer than the buffer: written past it, after what it holds.
        let mut large = vec![b'x'; 2 * WRITE_BUFFER];
        large.extend_from_slice(b"\r\n");
        let mut msg = store.begin("q1").expect("begin");
        for chunk in [
            &small[..],
            &large[..],
            &small[..100],
            &small[100..],
            b"end\r",
        ] {
            msg.write(chunk).expect("write");
        }
        msg.write_out().expect("write out");
        assert!(msg.write(b"more").is_err(), "no write after write_out");
        msg.write_out().expect("a second write_out writes nothing");
        let delivered = std::thread::spawn(move || msg.commit(&[rcpt("alice")]))
            .join()
            .expect("commit thread")
            .expect("commit");

        let mut wire = [&small[..], &large[..], &small[..]].concat();
        wire.extend_from_slice(b"end\r");
        let expected: Vec<u8> = String::from_utf8(wire.clone())
            .expect("ascii")
            .replace("\r\n", "\n")
            .into_bytes();
        let stored = fs::read(&delivered.paths[0]).expect("read message");
        assert_eq!(stored.len(), expected.len());
        assert!(stored == expected, "the stored bytes differ");
        assert_eq!(delivered.stored_size, expected.len() as u64);
        assert_eq!(delivered.wire_size, wire.len() as u64);
        assert!(spool_entries(&store).is_empty());
    }

    #[test]
    fn a_failed_write_fails_write_out_and_commit_for_good() {
        let (_dir, store) = store();
        let mut msg = store.begin("q1").expect("begin");
        msg.write(b"Subject: x\r\n\r\n").expect("buffered");
        // Every write to /dev/full fails with ENOSPC, as on a full disk.
        let full = OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full");
        msg.out.as_mut().expect("open").file = full;
        let long = vec![b'x'; WRITE_BUFFER + 1];
        assert!(msg.write(&long).is_err(), "the write reaches the file");
        assert!(msg.write_out().is_err(), "write_out reports it");
        assert!(msg.write_out().is_err(), "and again");
        assert!(msg.commit(&[rcpt("alice")]).is_err(), "commit too");
        assert!(new_entries(&store, "alice").is_empty(), "nothing delivered");
        assert!(spool_entries(&store).is_empty());
    }

    #[test]
    fn crlf_split_across_two_writes_becomes_one_lf() {
        let (_dir, store) = store();
        let mut msg = store.begin("q1").expect("begin");
        msg.write(b"a\r").expect("write");
        msg.write(b"\nb\r\n").expect("write");
        assert_eq!(msg.stored_size(), 4);
        assert_eq!(msg.wire_size(), 6);
        let delivered = msg.commit(&[rcpt("alice")]).expect("commit");
        assert_eq!(fs::read(&delivered.paths[0]).expect("read"), b"a\nb\n");
    }

    #[test]
    fn bare_cr_is_kept_even_at_a_write_boundary_or_the_end() {
        assert_eq!(convert(&[b"a\rb\r\n"]).0, b"a\rb\n");
        assert_eq!(convert(&[b"a\r", b"b"]).0, b"a\rb");
        assert_eq!(convert(&[b"a\r", b"\r", b"\n"]).0, b"a\r\n");
        assert_eq!(convert(&[b"a\r"]), (b"a\r".to_vec(), 2, 2));
        assert_eq!(convert(&[b"\r", b"", b"\n"]).0, b"\n");
    }

    proptest::proptest! {
        /// In any pieces, the stored bytes are the input with the CR of every
        /// CRLF dropped, and the sizes agree with them.
        #[test]
        fn crlf_becomes_lf_in_any_pieces(body in proptest::collection::vec(
                proptest::prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'a')], 0..80),
                cuts in proptest::collection::vec(0usize..81, 0..6)) {
            let expected: Vec<u8> = body
                .iter()
                .enumerate()
                .filter(|&(i, &b)| !(b == b'\r' && body.get(i + 1) == Some(&b'\n')))
                .map(|(_, &b)| b)
                .collect();
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
            points.push(body.len());
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut pos = 0;
            for end in points {
                chunks.push(&body[pos..end]);
                pos = end;
            }
            let lfs = expected.iter().filter(|&&b| b == b'\n').count() as u64;
            let stored = expected.len() as u64;
            proptest::prop_assert_eq!(convert(&chunks), (expected, stored, stored + lfs));
        }
    }

    #[test]
    fn bare_lf_counts_as_crlf_in_wire_size() {
        // Dovecot computes W= as if every LF were CRLF; ours must agree with it.
        assert_eq!(convert(&[b"a\nb\r\n"]), (b"a\nb\n".to_vec(), 4, 6));
    }

    #[test]
    fn abort_leaves_no_spool_file_and_nothing_delivered() {
        let (_dir, store) = store();
        let mut msg = store.begin("q1").expect("begin");
        msg.write(b"x\r\n").expect("write");
        assert_eq!(spool_entries(&store).len(), 1);
        msg.abort();
        assert!(spool_entries(&store).is_empty());
        assert!(new_entries(&store, "alice").is_empty());
    }

    #[test]
    fn drop_without_commit_leaves_no_spool_file() {
        let (_dir, store) = store();
        {
            let mut msg = store.begin("q1").expect("begin");
            // Bigger than the buffer, so part of it reached the file.
            msg.write(&vec![b'x'; WRITE_BUFFER * 2]).expect("write");
        }
        assert!(spool_entries(&store).is_empty());
        assert!(new_entries(&store, "alice").is_empty());
    }

    #[test]
    fn open_removes_what_the_spool_of_earlier_releases_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = dir.path().join("spool");
        fs::create_dir_all(&spool).expect("mkdir spool");
        fs::write(spool.join("crashed-1"), b"half a message").expect("write");
        fs::write(spool.join("crashed-2"), b"").expect("write");
        MaildirStore::open(dir.path(), "mx", Modes::default()).expect("open");
        assert!(entries(&spool).is_empty());
        assert!(dir.path().join("mail").is_dir());
    }

    #[test]
    fn the_spool_sweep_keeps_what_the_queue_names_and_removes_the_rest() {
        let (_dir, store) = store();
        fs::write(store.kept_dir().join("queued"), b"a message\n").expect("write");
        fs::write(store.kept_dir().join("crashed"), b"half a").expect("write");
        fs::write(store.spool_dir().join("arriving"), b"half a").expect("write");
        assert_eq!(
            store.clear_spool_except(|n| n == "queued").expect("sweep"),
            2
        );
        assert!(
            spool_entries(&store).is_empty(),
            "nothing being received survives"
        );
        assert_eq!(
            entries(store.kept_dir()),
            vec![store.kept_dir().join("queued")]
        );
    }

    #[test]
    fn persisted_bodies_stay_in_the_spool_and_a_named_copy_is_recognised_on_replay() {
        let (_dir, store) = store();
        let mut msg = store.begin("Q1").expect("begin");
        msg.write(b"Subject: x\r\n\r\nbody\r\n").expect("write");
        let kept = persist_batch(vec![msg]).pop().expect("one").expect("kept");
        assert_eq!(kept.path, store.kept_dir().join("Q1"));
        assert!(
            spool_entries(&store).is_empty(),
            "moved out of the incoming directory"
        );
        assert!(kept.path.exists(), "kept after the message is dropped");
        let name = store.queued_name(1, "Q1R0", kept.stored_size, kept.wire_size);
        let first = store
            .place_named(&kept.path, &rcpt("alice"), &name, false)
            .expect("place");
        assert!(!first.already);
        store.sync_new_dirs(&[first.path.as_path()]).expect("sync");
        let again = store
            .place_named(&kept.path, &rcpt("alice"), &name, false)
            .expect("place again");
        assert!(again.already, "the same name is not placed twice");
        // Read by a client since: moved to cur/ with flags.
        let maildir = store.maildir_path(&rcpt("alice"));
        fs::rename(&first.path, maildir.join("cur").join(format!("{name}:2,S"))).expect("move");
        let replay = store
            .place_named(&kept.path, &rcpt("alice"), &name, true)
            .expect("replay");
        assert!(replay.already, "found in cur/");
        assert!(new_entries(&store, "alice").is_empty());
    }

    #[test]
    fn open_creates_a_missing_data_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("a/b/data");
        let store = MaildirStore::open(&data, "mx", Modes::default()).expect("open");
        assert!(data.join("mail").is_dir());
        assert!(data.join("queue/messages").is_dir());
        assert_eq!(store.data_dir(), data);
    }

    #[test]
    fn failing_second_recipient_undoes_the_first() {
        let (_dir, store) = store();
        let store = &store;
        let bob = store.maildir_path(&rcpt("bob"));
        fs::create_dir_all(bob.parent().expect("parent")).expect("mkdir");
        // bob's Maildir is a regular file: his delivery cannot succeed.
        fs::write(&bob, b"not a directory").expect("write");

        let mut msg = store.begin("q1").expect("begin");
        msg.write(b"x\r\n").expect("write");
        let err = msg
            .commit(&[rcpt("alice"), rcpt("bob")])
            .expect_err("bob must fail");
        assert!(!err.is_no_space());
        assert!(matches!(err, StoreError::Io { .. }), "{err}");
        assert!(new_entries(store, "alice").is_empty());
        assert!(spool_entries(store).is_empty());
    }

    #[test]
    fn duplicate_recipients_are_delivered_once() {
        let (_dir, store) = store();
        let msg = store.begin("q1").expect("begin");
        let delivered = msg
            .commit(&[rcpt("alice"), rcpt("alice"), rcpt("bob")])
            .expect("commit");
        assert_eq!(delivered.paths.len(), 2);
        assert_eq!(new_entries(&store, "alice").len(), 1);
    }

    #[test]
    fn bad_mailbox_names_are_refused() {
        for bad in ["", ".", "..", ".hidden", "a/b", "a\0b", "../etc"] {
            assert!(
                matches!(
                    MailboxAddr::new("example.test", bad),
                    Err(StoreError::BadMailbox(_))
                ),
                "user {bad:?}"
            );
            assert!(
                matches!(
                    MailboxAddr::new(bad, "alice"),
                    Err(StoreError::BadMailbox(_))
                ),
                "domain {bad:?}"
            );
        }
    }

    #[test]
    fn commit_refuses_a_bad_mailbox_before_delivering_anything() {
        let (_dir, store) = store();
        let msg = store.begin("q1").expect("begin");
        let evil = MailboxAddr {
            domain: "example.test".to_string(),
            user: "..".to_string(),
        };
        let err = msg.commit(&[rcpt("alice"), evil]).expect_err("must refuse");
        assert!(matches!(err, StoreError::BadMailbox(_)), "{err}");
        assert!(new_entries(&store, "alice").is_empty());
        assert!(spool_entries(&store).is_empty());
    }

    #[test]
    fn begin_refuses_an_existing_or_unsafe_queue_id() {
        let (_dir, store) = store();
        let _first = store.begin("q1").expect("begin");
        assert!(store.begin("q1").is_err());
        for bad in ["", ".", "..", "a/b", ".x"] {
            assert!(store.begin(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn host_name_slash_and_colon_are_escaped() {
        assert_eq!(escape_host("a/b:c"), "a\\057b\\072c");
        assert_eq!(escape_host(""), "localhost");
    }

    #[test]
    fn copy_path_moves_through_tmp_into_new() {
        // The EXDEV fallback, run directly: a second filesystem is not available
        // everywhere the tests run.
        let (dir, _store) = store();
        let spool = dir.path().join("queue/messages/q1");
        fs::write(&spool, b"body\n").expect("write");
        let maildir = dir.path().join("Maildir");
        for sub in ["cur", "new", "tmp"] {
            ensure_dir(&maildir.join(sub), 0o700).expect("mkdir");
        }
        let src = File::open(&spool).expect("open");
        let path = copy_into(&src, &maildir, "1.M2P3Q4.host,S=5,W=6", 0o600).expect("copy");
        assert_eq!(path, maildir.join("new/1.M2P3Q4.host,S=5,W=6"));
        assert_eq!(fs::read(&path).expect("read"), b"body\n");
        assert!(entries(&maildir.join("tmp")).is_empty());
        let meta = fs::metadata(&path).expect("stat");
        assert_ne!(meta.ino(), fs::metadata(&spool).expect("stat").ino());
        assert_eq!(meta.mode() & 0o777, 0o600);
    }

    #[test]
    fn maildir_on_another_filesystem_gets_a_copy() {
        let (dir, store) = store();
        let store = &store;
        // Runs only where /dev/shm is a separate filesystem from the temp dir.
        let Ok(other) = tempfile::tempdir_in("/dev/shm") else {
            return;
        };
        let dev = |p: &Path| fs::metadata(p).map(|m| m.dev()).ok();
        if dev(other.path()).is_none() || dev(other.path()) == dev(dir.path()) {
            return;
        }
        let domain_dir = dir.path().join("mail/example.test");
        std::os::unix::fs::symlink(other.path(), &domain_dir).expect("symlink");

        let mut msg = store.begin("q1").expect("begin");
        msg.write(b"x\r\n").expect("write");
        let delivered = msg.commit(&[rcpt("alice")]).expect("commit");
        assert_eq!(fs::read(&delivered.paths[0]).expect("read"), b"x\n");
        let meta = fs::metadata(&delivered.paths[0]).expect("stat");
        // A copy on the other filesystem, not a link to the spool file.
        assert_eq!(Some(meta.dev()), dev(other.path()));
        assert_eq!(meta.nlink(), 1);
        assert!(entries(&other.path().join("alice/Maildir/tmp")).is_empty());
        assert!(spool_entries(store).is_empty());
    }
}
