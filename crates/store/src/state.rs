//! The embedded state database, `<data_dir>/state.sqlite`.
//!
//! One SQLite file holds what the server must remember across restarts that is not
//! mail itself:
//!
//! * locked and disabled mailboxes (`450 4.2.1` / `550 5.2.1`);
//! * greylisting triplets and auto-whitelisted client networks (`450 4.2.0`); the
//!   decisions are in [`crate::greylist`], this module only stores the records;
//! * authentication failures and bans (`421 4.7.0 too many authentication failures`),
//!   storage only: the server's policy decides what counts and when to ban;
//! * the server's secrets that must outlive a restart (the AUTH decoy key: an
//!   unknown user's SCRAM salt and decoy cost must not change when the server
//!   restarts, or a restart tells unknown names from users).
//!
//! Time is always passed in as unix seconds, never read here, so callers and tests
//! control the clock.
//!
//! The file is opened in WAL mode with `synchronous=NORMAL`: readers never wait for
//! the writer, and a power cut can lose the last few updates but not corrupt the
//! file. That is the right trade for this state: a lost greylist pass costs one more
//! retry, a lost auth failure one more attempt. The server and the CLI
//! (`pillarbox mailbox lock`) open the same file at once; a 5 s busy timeout absorbs
//! each other's short write transactions.
//!
//! The schema version is SQLite's `PRAGMA user_version`; [`StateDb::open`] creates
//! or upgrades the schema and refuses a file written by a newer Pillarbox.

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

/// How long one statement waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Mode of the database file: it names users, client addresses and correspondents.
/// SQLite gives its `-wal` and `-shm` files the mode of the database file.
const FILE_MODE: u32 = 0o600;

/// The schema, one entry per version: entry `i` takes a database from version `i`
/// to `i + 1`. Append only; never edit a released entry.
const MIGRATIONS: &[&str] = &[
    // Version 1.
    "
    CREATE TABLE mailbox_lock (
        mailbox TEXT NOT NULL PRIMARY KEY,
        reason  TEXT NOT NULL,
        until   INTEGER           -- unix seconds; NULL: until unlocked
    ) WITHOUT ROWID;

    CREATE TABLE mailbox_disabled (
        mailbox TEXT NOT NULL PRIMARY KEY,
        reason  TEXT NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE greylist_triplet (
        network    TEXT NOT NULL,
        sender     TEXT NOT NULL,
        recipient  TEXT NOT NULL,
        first_seen INTEGER NOT NULL,
        last_seen  INTEGER NOT NULL,
        passed     INTEGER NOT NULL,
        PRIMARY KEY (network, sender, recipient)
    ) WITHOUT ROWID;

    CREATE TABLE greylist_client (
        network   TEXT NOT NULL PRIMARY KEY,
        passes    INTEGER NOT NULL,
        last_seen INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE auth_failure (
        ip      TEXT NOT NULL,
        account TEXT,
        at      INTEGER NOT NULL
    );
    CREATE INDEX auth_failure_by_ip ON auth_failure (ip, at);
    CREATE INDEX auth_failure_by_account ON auth_failure (account, at);

    CREATE TABLE ban (
        ip     TEXT NOT NULL PRIMARY KEY,
        reason TEXT NOT NULL,
        until  INTEGER            -- unix seconds; NULL: until unbanned
    ) WITHOUT ROWID;
    ",
    // Version 2.
    "
    CREATE TABLE secret (
        name  TEXT NOT NULL PRIMARY KEY,
        value BLOB NOT NULL
    ) WITHOUT ROWID;
    ",
];

/// Why the state database could not be opened or used. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The directory that should hold the database could not be created.
    #[error("create directory {} for the state database: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// SQLite refused an operation (a damaged file, a full disk, another process
    /// holding the write lock for longer than the busy timeout, ...).
    // The source is spelled in the message: callers log with `Display` alone.
    #[error("{op} in state database {}: {source}", path.display())]
    Sqlite {
        /// What we were doing, e.g. `"lock mailbox"`.
        op: &'static str,
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The backend could not run the operation at all (its worker ended).
    #[error("state database unavailable: {0}")]
    Unavailable(String),
    /// The file was written by a newer Pillarbox whose schema this one does not know.
    #[error(
        "state database {} has schema version {found}, but this Pillarbox knows only up to \
         {supported}: upgrade Pillarbox or use another data_dir",
        path.display()
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// The `user_version` found in the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
}

/// Whether a mailbox takes mail now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxState {
    /// Takes mail.
    Open,
    /// Locked for maintenance: the server answers `450 4.2.1`, at RCPT and again at
    /// the end of data, so a lock set during a transaction still covers it.
    Locked {
        /// Why, as the administrator wrote it.
        reason: String,
        /// When the lock ends by itself (unix seconds); `None` until unlocked.
        until: Option<u64>,
    },
    /// Disabled: the server answers `550 5.2.1`. Wins over a lock.
    Disabled {
        /// Why, as the administrator wrote it.
        reason: String,
    },
}

/// A client address banned after too many authentication failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    /// Why, for the log and the admin listing.
    pub reason: String,
    /// When the ban ends by itself (unix seconds); `None` until unbanned.
    pub until: Option<u64>,
}

/// The key of one greylisting triplet, already normalised by [`crate::greylist`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Triplet {
    /// The client's network, e.g. `192.0.2.0/24`.
    pub network: String,
    /// The normalised envelope sender; empty for the null sender.
    pub sender: String,
    /// The lower-cased recipient.
    pub recipient: String,
}

/// What is stored for one greylisting triplet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TripletRecord {
    /// When the current greylisting round began (unix seconds).
    pub first_seen: u64,
    /// The latest attempt with this triplet.
    pub last_seen: u64,
    /// The triplet has waited out its delay once; it passes from now on.
    pub passed: bool,
}

/// What is stored for one client network, for auto-whitelisting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientRecord {
    /// How many triplets from this network waited out their delay (counted at most
    /// once per [`crate::greylist::GreylistConfig::pass_count_interval`]).
    pub passes: u32,
    /// When a pass was last counted, or a whitelisted pass last refreshed the entry.
    pub last_seen: u64,
}

/// The greylisting records of one attempt: the triplet's and its network's.
///
/// Read from the database, it says what is stored (`None`: nothing). Returned by the
/// decision, it says what to store (`None`: leave unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GreylistRecords {
    /// The triplet's record.
    pub triplet: Option<TripletRecord>,
    /// The client network's record.
    pub client: Option<ClientRecord>,
}

/// How long [`StateDb::purge`] keeps what it keeps (seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// A triplet unused for longer is removed (postgrey `--max-age`).
    pub greylist_max_age: u64,
    /// A triplet that never passed is removed once its round is older than this.
    pub greylist_retry_window: u64,
    /// A client network not seen for longer is removed from the auto-whitelist.
    pub auto_whitelist_for: u64,
    /// Authentication failures older than this are removed.
    pub auth_failure_window: u64,
}

impl Default for Retention {
    fn default() -> Self {
        const DAY: u64 = 86_400;
        Retention {
            greylist_max_age: 35 * DAY,
            greylist_retry_window: 2 * DAY,
            auto_whitelist_for: 35 * DAY,
            auth_failure_window: DAY,
        }
    }
}

/// How many rows [`StateDb::purge`] removed, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Purged {
    /// Greylisting triplets.
    pub triplets: usize,
    /// Auto-whitelist entries.
    pub clients: usize,
    /// Expired mailbox locks.
    pub locks: usize,
    /// Expired bans.
    pub bans: usize,
    /// Old authentication failures.
    pub auth_failures: usize,
}

/// The open state database. `Send + Sync`: one instance serves every session, and
/// each method holds the connection only for its own statements.
pub struct StateDb {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl fmt::Debug for StateDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateDb").field("path", &self.path).finish()
    }
}

impl StateDb {
    /// Opens `path`, creating the file, its directory and the schema when missing.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StateError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|source| StateError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let existed = path.exists();
        let sqlite = |op| {
            let path = path.clone();
            move |source| StateError::Sqlite { op, path, source }
        };
        let mut conn = Connection::open(&path).map_err(sqlite("open"))?;
        if !existed {
            // Best effort: on a filesystem without modes the file stays as created.
            let _ = fs::set_permissions(&path, fs::Permissions::from_mode(FILE_MODE));
        }
        // Before anything that takes a lock: switching to WAL needs one.
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(sqlite("set busy timeout"))?;
        // `journal_mode` answers with the mode in force; WAL persists in the file.
        let _mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(sqlite("switch to WAL"))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sqlite("set synchronous"))?;
        migrate(&mut conn, &path)?;
        Ok(StateDb {
            path,
            conn: Mutex::new(conn),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the connection, naming the file and `op` in any error.
    fn with<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StateError> {
        let mut conn = self.conn();
        f(&mut conn).map_err(|source| StateError::Sqlite {
            op,
            path: self.path.clone(),
            source,
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-way: an unfinished
        // rusqlite transaction rolls back when dropped. So a poisoned lock is usable.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ---- secrets ------------------------------------------------------------------

    /// The secret called `name`: the one stored, or else `fresh()`, stored now
    /// and returned. Two processes asking at once get the same value.
    pub fn secret(
        &self,
        name: &str,
        fresh: impl FnOnce() -> Vec<u8>,
    ) -> Result<Vec<u8>, StateError> {
        self.with("read or store a secret", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let found: Option<Vec<u8>> = tx
                .query_row("SELECT value FROM secret WHERE name = ?1", [name], |r| {
                    r.get(0)
                })
                .optional()?;
            let value = match found {
                Some(v) => v,
                None => {
                    let v = fresh();
                    tx.execute(
                        "INSERT INTO secret (name, value) VALUES (?1, ?2)",
                        params![name, v],
                    )?;
                    v
                }
            };
            tx.commit()?;
            Ok(value)
        })
    }

    // ---- mailbox state ------------------------------------------------------------

    /// Locks `mailbox` (`user@domain`) for maintenance until `until` (unix seconds) or
    /// until [`StateDb::unlock`]. Replaces an earlier lock of the same mailbox.
    pub fn lock(&self, mailbox: &str, reason: &str, until: Option<u64>) -> Result<(), StateError> {
        let mailbox = mailbox.to_lowercase();
        self.with("lock mailbox", |c| {
            c.prepare_cached(
                "INSERT INTO mailbox_lock (mailbox, reason, until) VALUES (?1, ?2, ?3)
                 ON CONFLICT (mailbox) DO UPDATE SET reason = excluded.reason, until = excluded.until",
            )?
            .execute(params![mailbox, reason, until.map(to_sql)])
            .map(drop)
        })
    }

    /// Removes the lock of `mailbox`. True when there was one (even an expired one).
    pub fn unlock(&self, mailbox: &str) -> Result<bool, StateError> {
        let mailbox = mailbox.to_lowercase();
        self.with("unlock mailbox", |c| {
            c.prepare_cached("DELETE FROM mailbox_lock WHERE mailbox = ?1")?
                .execute([mailbox])
                .map(|n| n > 0)
        })
    }

    /// Disables `mailbox` until [`StateDb::enable`]. Replaces an earlier reason.
    pub fn disable(&self, mailbox: &str, reason: &str) -> Result<(), StateError> {
        let mailbox = mailbox.to_lowercase();
        self.with("disable mailbox", |c| {
            c.prepare_cached(
                "INSERT INTO mailbox_disabled (mailbox, reason) VALUES (?1, ?2)
                 ON CONFLICT (mailbox) DO UPDATE SET reason = excluded.reason",
            )?
            .execute(params![mailbox, reason])
            .map(drop)
        })
    }

    /// Enables `mailbox` again. True when it was disabled.
    pub fn enable(&self, mailbox: &str) -> Result<bool, StateError> {
        let mailbox = mailbox.to_lowercase();
        self.with("enable mailbox", |c| {
            c.prepare_cached("DELETE FROM mailbox_disabled WHERE mailbox = ?1")?
                .execute([mailbox])
                .map(|n| n > 0)
        })
    }

    /// The state of `mailbox` at `now`: disabled wins over locked, and a lock whose
    /// `until` has come is open.
    pub fn mailbox_state(&self, mailbox: &str, now: u64) -> Result<MailboxState, StateError> {
        let mailbox = mailbox.to_lowercase();
        self.with("read mailbox state", |c| {
            let disabled: Option<String> = c
                .prepare_cached("SELECT reason FROM mailbox_disabled WHERE mailbox = ?1")?
                .query_row([&mailbox], |r| r.get(0))
                .optional()?;
            if let Some(reason) = disabled {
                return Ok(MailboxState::Disabled { reason });
            }
            let lock: Option<(String, Option<i64>)> = c
                .prepare_cached(
                    "SELECT reason, until FROM mailbox_lock
                     WHERE mailbox = ?1 AND (until IS NULL OR until > ?2)",
                )?
                .query_row(params![mailbox, to_sql(now)], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            Ok(match lock {
                Some((reason, until)) => MailboxState::Locked {
                    reason,
                    until: until.map(from_sql),
                },
                None => MailboxState::Open,
            })
        })
    }

    /// Every mailbox that is not open at `now`, sorted by name, with the state that
    /// applies (a disabled mailbox is listed as disabled even if also locked).
    pub fn list_mailbox_states(&self, now: u64) -> Result<Vec<(String, MailboxState)>, StateError> {
        self.with("list mailbox states", |c| {
            let mut out: Vec<(String, MailboxState)> = c
                .prepare("SELECT mailbox, reason FROM mailbox_disabled")?
                .query_map([], |r| {
                    Ok((r.get(0)?, MailboxState::Disabled { reason: r.get(1)? }))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let locked: Vec<(String, MailboxState)> = c
                .prepare(
                    "SELECT mailbox, reason, until FROM mailbox_lock
                     WHERE (until IS NULL OR until > ?1)
                       AND mailbox NOT IN (SELECT mailbox FROM mailbox_disabled)",
                )?
                .query_map([to_sql(now)], |r| {
                    let until: Option<i64> = r.get(2)?;
                    Ok((
                        r.get(0)?,
                        MailboxState::Locked {
                            reason: r.get(1)?,
                            until: until.map(from_sql),
                        },
                    ))
                })?
                .collect::<rusqlite::Result<_>>()?;
            out.extend(locked);
            out.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(out)
        })
    }

    // ---- greylisting --------------------------------------------------------------

    /// Reads the records of `triplet` and its network, lets `decide` say what to
    /// store, and stores it, all in one write transaction (so two sessions, or two
    /// processes, checking the same triplet at once see each other's update).
    pub fn greylist_update<T>(
        &self,
        triplet: &Triplet,
        decide: impl FnOnce(GreylistRecords) -> (T, GreylistRecords),
    ) -> Result<T, StateError> {
        self.with("update greylist", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let stored = GreylistRecords {
                triplet: tx
                    .prepare_cached(
                        "SELECT first_seen, last_seen, passed FROM greylist_triplet
                         WHERE network = ?1 AND sender = ?2 AND recipient = ?3",
                    )?
                    .query_row(
                        params![triplet.network, triplet.sender, triplet.recipient],
                        |r| {
                            Ok(TripletRecord {
                                first_seen: from_sql(r.get(0)?),
                                last_seen: from_sql(r.get(1)?),
                                passed: r.get(2)?,
                            })
                        },
                    )
                    .optional()?,
                client: tx
                    .prepare_cached(
                        "SELECT passes, last_seen FROM greylist_client WHERE network = ?1",
                    )?
                    .query_row([&triplet.network], |r| {
                        Ok(ClientRecord {
                            passes: r.get(0)?,
                            last_seen: from_sql(r.get(1)?),
                        })
                    })
                    .optional()?,
            };
            let (answer, store) = decide(stored);
            if let Some(t) = store.triplet {
                tx.prepare_cached(
                    "INSERT INTO greylist_triplet
                         (network, sender, recipient, first_seen, last_seen, passed)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (network, sender, recipient) DO UPDATE SET
                         first_seen = excluded.first_seen,
                         last_seen = excluded.last_seen,
                         passed = excluded.passed",
                )?
                .execute(params![
                    triplet.network,
                    triplet.sender,
                    triplet.recipient,
                    to_sql(t.first_seen),
                    to_sql(t.last_seen),
                    t.passed,
                ])?;
            }
            if let Some(cl) = store.client {
                tx.prepare_cached(
                    "INSERT INTO greylist_client (network, passes, last_seen) VALUES (?1, ?2, ?3)
                     ON CONFLICT (network) DO UPDATE SET
                         passes = excluded.passes, last_seen = excluded.last_seen",
                )?
                .execute(params![
                    triplet.network,
                    cl.passes,
                    to_sql(cl.last_seen)
                ])?;
            }
            tx.commit()?;
            Ok(answer)
        })
    }

    // ---- authentication throttling ------------------------------------------------

    /// Records a failed authentication from `client_ip` (for `account`, when the
    /// client named one) at `now`, and returns how many failures that address and
    /// that account have had in the last `window` seconds, this one included.
    pub fn record_auth_failure(
        &self,
        client_ip: &str,
        account: Option<&str>,
        now: u64,
        window: u64,
    ) -> Result<(u32, u32), StateError> {
        let account = account.map(str::to_lowercase);
        let since = to_sql(now.saturating_sub(window));
        self.with("record authentication failure", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.prepare_cached("INSERT INTO auth_failure (ip, account, at) VALUES (?1, ?2, ?3)")?
                .execute(params![client_ip, account, to_sql(now)])?;
            // Keep each address's history bounded by the window as we go; `purge`
            // sweeps addresses that stopped trying.
            tx.prepare_cached("DELETE FROM auth_failure WHERE ip = ?1 AND at <= ?2")?
                .execute(params![client_ip, since])?;
            let for_ip: u32 = tx
                .prepare_cached("SELECT count(*) FROM auth_failure WHERE ip = ?1 AND at > ?2")?
                .query_row(params![client_ip, since], |r| r.get(0))?;
            let for_account: u32 = match &account {
                Some(account) => tx
                    .prepare_cached(
                        "SELECT count(*) FROM auth_failure WHERE account = ?1 AND at > ?2",
                    )?
                    .query_row(params![account, since], |r| r.get(0))?,
                None => 0,
            };
            tx.commit()?;
            Ok((for_ip, for_account))
        })
    }

    /// Forgets the failures `client_ip` had for `account` (after it authenticated
    /// as that account). Failures for other accounts from the same address stay:
    /// knowing one password proves nothing about the others.
    pub fn clear_account_failures(&self, client_ip: &str, account: &str) -> Result<(), StateError> {
        let account = account.to_lowercase();
        self.with("clear authentication failures", |c| {
            c.prepare_cached("DELETE FROM auth_failure WHERE ip = ?1 AND account = ?2")?
                .execute(params![client_ip, account])
                .map(drop)
        })
    }

    /// Forgets every failure recorded for `client_ip` (an administrator's unban).
    pub fn clear_auth_failures(&self, client_ip: &str) -> Result<(), StateError> {
        self.with("clear authentication failures", |c| {
            c.prepare_cached("DELETE FROM auth_failure WHERE ip = ?1")?
                .execute([client_ip])
                .map(drop)
        })
    }

    /// Bans `ip` until `until` (unix seconds) or until [`StateDb::unban`]. Replaces an
    /// earlier ban of the same address.
    pub fn ban(&self, ip: &str, reason: &str, until: Option<u64>) -> Result<(), StateError> {
        self.with("ban address", |c| {
            c.prepare_cached(
                "INSERT INTO ban (ip, reason, until) VALUES (?1, ?2, ?3)
                 ON CONFLICT (ip) DO UPDATE SET reason = excluded.reason, until = excluded.until",
            )?
            .execute(params![ip, reason, until.map(to_sql)])
            .map(drop)
        })
    }

    /// Lifts the ban of `ip`. True when there was one (even an expired one).
    pub fn unban(&self, ip: &str) -> Result<bool, StateError> {
        self.with("unban address", |c| {
            c.prepare_cached("DELETE FROM ban WHERE ip = ?1")?
                .execute([ip])
                .map(|n| n > 0)
        })
    }

    /// The ban in force for `ip` at `now`, if any.
    pub fn ban_of(&self, ip: &str, now: u64) -> Result<Option<Ban>, StateError> {
        self.with("read ban", |c| {
            c.prepare_cached(
                "SELECT reason, until FROM ban WHERE ip = ?1 AND (until IS NULL OR until > ?2)",
            )?
            .query_row(params![ip, to_sql(now)], |r| {
                let until: Option<i64> = r.get(1)?;
                Ok(Ban {
                    reason: r.get(0)?,
                    until: until.map(from_sql),
                })
            })
            .optional()
        })
    }

    /// Every ban in force at `now`, sorted by address.
    pub fn list_bans(&self, now: u64) -> Result<Vec<(String, Ban)>, StateError> {
        self.with("list bans", |c| {
            c.prepare(
                "SELECT ip, reason, until FROM ban WHERE until IS NULL OR until > ?1 ORDER BY ip",
            )?
            .query_map([to_sql(now)], |r| {
                let until: Option<i64> = r.get(2)?;
                Ok((
                    r.get(0)?,
                    Ban {
                        reason: r.get(1)?,
                        until: until.map(from_sql),
                    },
                ))
            })?
            .collect()
        })
    }

    // ---- maintenance --------------------------------------------------------------

    /// Removes what has expired at `now`: stale greylisting triplets and
    /// auto-whitelist entries (as postgrey's maintenance does), expired locks and
    /// bans, and authentication failures older than their window.
    pub fn purge(&self, now: u64, keep: &Retention) -> Result<Purged, StateError> {
        let before = |age: u64| to_sql(now.saturating_sub(age));
        self.with("purge expired state", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let purged = Purged {
                triplets: tx.execute(
                    "DELETE FROM greylist_triplet
                     WHERE last_seen < ?1 OR (passed = 0 AND first_seen < ?2)",
                    params![
                        before(keep.greylist_max_age),
                        before(keep.greylist_retry_window)
                    ],
                )?,
                clients: tx.execute(
                    "DELETE FROM greylist_client WHERE last_seen < ?1",
                    [before(keep.auto_whitelist_for)],
                )?,
                locks: tx.execute("DELETE FROM mailbox_lock WHERE until <= ?1", [to_sql(now)])?,
                bans: tx.execute("DELETE FROM ban WHERE until <= ?1", [to_sql(now)])?,
                auth_failures: tx.execute(
                    "DELETE FROM auth_failure WHERE at <= ?1",
                    [before(keep.auth_failure_window)],
                )?,
            };
            tx.commit()?;
            Ok(purged)
        })
    }
}

/// Creates or upgrades the schema to the newest version this build knows.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StateError> {
    let supported = MIGRATIONS.len() as i64;
    let sqlite = |source| StateError::Sqlite {
        op: "create schema",
        path: path.to_path_buf(),
        source,
    };
    // IMMEDIATE: two processes opening a new file at once take turns, and the second
    // finds the schema the first created.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite)?;
    let found: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sqlite)?;
    if found > supported {
        return Err(StateError::NewerSchema {
            path: path.to_path_buf(),
            found,
            supported,
        });
    }
    for step in &MIGRATIONS[usize::try_from(found).unwrap_or(0)..] {
        tx.execute_batch(step).map_err(sqlite)?;
    }
    if found < supported {
        tx.pragma_update(None, "user_version", supported)
            .map_err(sqlite)?;
    }
    tx.commit().map_err(sqlite)
}

/// Unix seconds as SQLite stores them (signed 64-bit). Times past year 292 billion
/// saturate.
fn to_sql(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// Unix seconds back from SQLite; a negative value (a hand-edited file) reads as 0.
fn from_sql(t: i64) -> u64 {
    u64::try_from(t).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_temp() -> (tempfile::TempDir, StateDb) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = StateDb::open(dir.path().join("state.sqlite")).expect("open");
        (dir, db)
    }

    fn locked(reason: &str, until: Option<u64>) -> MailboxState {
        MailboxState::Locked {
            reason: reason.into(),
            until,
        }
    }

    #[test]
    fn state_db_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<StateDb>();
    }

    #[test]
    fn open_creates_file_directory_and_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data").join("state.sqlite");
        let db = StateDb::open(&path).expect("open");
        assert_eq!(db.path(), path);
        assert!(path.is_file());
        let mode = fs::metadata(&path).expect("metadata").permissions().mode();
        assert_eq!(mode & 0o777, FILE_MODE);
        let conn = db.conn();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("user_version");
        assert_eq!(version, MIGRATIONS.len() as i64);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("journal_mode");
        assert_eq!(mode, "wal");
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .expect("synchronous");
        assert_eq!(sync, 1, "NORMAL");
    }

    #[test]
    fn reopening_keeps_schema_and_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.sqlite");
        StateDb::open(&path)
            .expect("open")
            .disable("a@example.test", "left")
            .expect("disable");
        let db = StateDb::open(&path).expect("reopen");
        assert_eq!(
            db.mailbox_state("a@example.test", 0).expect("state"),
            MailboxState::Disabled {
                reason: "left".into()
            }
        );
    }

    #[test]
    fn a_secret_is_made_once_and_kept_across_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.sqlite");
        let first = StateDb::open(&path)
            .expect("open")
            .secret("k", || vec![1, 2, 3])
            .expect("secret");
        assert_eq!(first, [1, 2, 3]);
        let db = StateDb::open(&path).expect("reopen");
        let again = db.secret("k", || panic!("made again")).expect("secret");
        assert_eq!(again, [1, 2, 3]);
        assert_eq!(db.secret("other", || vec![9]).expect("secret"), [9]);
    }

    #[test]
    fn a_version_1_file_is_upgraded_keeping_its_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.sqlite");
        {
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch(MIGRATIONS[0]).expect("version 1");
            conn.pragma_update(None, "user_version", 1).expect("set");
            conn.execute(
                "INSERT INTO mailbox_disabled (mailbox, reason) VALUES ('a@example.test', 'left')",
                [],
            )
            .expect("insert");
        }
        let db = StateDb::open(&path).expect("upgrade");
        assert_eq!(
            db.mailbox_state("a@example.test", 0).expect("state"),
            MailboxState::Disabled {
                reason: "left".into()
            }
        );
        assert_eq!(db.secret("k", || vec![7]).expect("secret"), [7]);
    }

    #[test]
    fn newer_schema_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.sqlite");
        {
            let conn = Connection::open(&path).expect("open");
            conn.pragma_update(None, "user_version", 99).expect("set");
        }
        let err = StateDb::open(&path).expect_err("newer schema");
        assert!(
            matches!(err, StateError::NewerSchema { found: 99, .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn open_error_names_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A directory where the file should be: SQLite cannot open it.
        let path = dir.path().join("state.sqlite");
        fs::create_dir(&path).expect("mkdir");
        let err = StateDb::open(&path).expect_err("a directory is no database");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn unknown_mailbox_is_open() {
        let (_dir, db) = open_temp();
        assert_eq!(
            db.mailbox_state("nobody@example.test", 100).expect("state"),
            MailboxState::Open
        );
    }

    #[test]
    fn lock_holds_until_its_expiry() {
        let (_dir, db) = open_temp();
        db.lock("a@example.test", "migration", Some(1_000))
            .expect("lock");
        assert_eq!(
            db.mailbox_state("a@example.test", 999).expect("state"),
            locked("migration", Some(1_000))
        );
    }

    #[test]
    fn expired_lock_is_open() {
        let (_dir, db) = open_temp();
        db.lock("a@example.test", "migration", Some(1_000))
            .expect("lock");
        assert_eq!(
            db.mailbox_state("a@example.test", 1_000).expect("state"),
            MailboxState::Open
        );
        assert!(db.list_mailbox_states(1_000).expect("list").is_empty());
    }

    #[test]
    fn lock_without_expiry_holds_until_unlocked() {
        let (_dir, db) = open_temp();
        db.lock("a@example.test", "restore", None).expect("lock");
        assert_eq!(
            db.mailbox_state("a@example.test", u64::MAX).expect("state"),
            locked("restore", None)
        );
        assert!(db.unlock("a@example.test").expect("unlock"));
        assert!(!db.unlock("a@example.test").expect("unlock again"));
        assert_eq!(
            db.mailbox_state("a@example.test", 0).expect("state"),
            MailboxState::Open
        );
    }

    #[test]
    fn relocking_replaces_reason_and_expiry() {
        let (_dir, db) = open_temp();
        db.lock("a@example.test", "first", Some(10)).expect("lock");
        db.lock("a@example.test", "second", None).expect("relock");
        assert_eq!(
            db.mailbox_state("a@example.test", 20).expect("state"),
            locked("second", None)
        );
    }

    #[test]
    fn mailbox_names_are_case_insensitive() {
        let (_dir, db) = open_temp();
        db.lock("Alice@Example.TEST", "x", None).expect("lock");
        assert_eq!(
            db.mailbox_state("alice@example.test", 0).expect("state"),
            locked("x", None)
        );
        assert!(db.unlock("ALICE@example.test").expect("unlock"));
    }

    #[test]
    fn disabled_wins_over_lock_and_enable_reveals_it() {
        let (_dir, db) = open_temp();
        db.lock("a@example.test", "maintenance", None)
            .expect("lock");
        db.disable("a@example.test", "account closed")
            .expect("disable");
        let disabled = MailboxState::Disabled {
            reason: "account closed".into(),
        };
        assert_eq!(
            db.mailbox_state("a@example.test", 0).expect("state"),
            disabled
        );
        assert_eq!(
            db.list_mailbox_states(0).expect("list"),
            vec![("a@example.test".to_string(), disabled)]
        );
        assert!(db.enable("a@example.test").expect("enable"));
        assert!(!db.enable("a@example.test").expect("enable again"));
        assert_eq!(
            db.mailbox_state("a@example.test", 0).expect("state"),
            locked("maintenance", None)
        );
    }

    #[test]
    fn list_shows_locked_and_disabled_mailboxes_sorted() {
        let (_dir, db) = open_temp();
        db.lock("c@example.test", "c", Some(50)).expect("lock c");
        db.lock("old@example.test", "old", Some(5))
            .expect("lock old");
        db.disable("b@example.test", "b").expect("disable b");
        let list = db.list_mailbox_states(10).expect("list");
        assert_eq!(
            list,
            vec![
                (
                    "b@example.test".to_string(),
                    MailboxState::Disabled { reason: "b".into() }
                ),
                ("c@example.test".to_string(), locked("c", Some(50))),
            ]
        );
    }

    #[test]
    fn state_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.sqlite");
        {
            let db = StateDb::open(&path).expect("open");
            db.lock("a@example.test", "m", Some(100)).expect("lock");
            db.ban("192.0.2.7", "auth", None).expect("ban");
            db.record_auth_failure("192.0.2.8", None, 10, 60)
                .expect("failure");
        }
        let db = StateDb::open(&path).expect("reopen");
        assert_eq!(
            db.mailbox_state("a@example.test", 50).expect("state"),
            locked("m", Some(100))
        );
        assert!(db.ban_of("192.0.2.7", 50).expect("ban").is_some());
        assert_eq!(
            db.record_auth_failure("192.0.2.8", None, 20, 60)
                .expect("failure"),
            (2, 0)
        );
    }

    #[test]
    fn lock_set_by_another_handle_is_seen_at_once() {
        // The CLI and the server hold separate connections to one file.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.sqlite");
        let server = StateDb::open(&path).expect("server");
        let cli = StateDb::open(&path).expect("cli");
        assert_eq!(
            server.mailbox_state("a@example.test", 0).expect("state"),
            MailboxState::Open
        );
        cli.lock("a@example.test", "now", None).expect("lock");
        assert_eq!(
            server.mailbox_state("a@example.test", 0).expect("state"),
            locked("now", None)
        );
    }

    #[test]
    fn auth_failures_count_per_address_and_account_within_window() {
        let (_dir, db) = open_temp();
        let ip = "192.0.2.1";
        assert_eq!(
            db.record_auth_failure(ip, Some("alice@example.test"), 100, 60)
                .expect("1"),
            (1, 1)
        );
        assert_eq!(
            db.record_auth_failure(ip, None, 110, 60).expect("2"),
            (2, 0)
        );
        // Another address trying the same account, in different case.
        assert_eq!(
            db.record_auth_failure("198.51.100.9", Some("ALICE@example.test"), 120, 60)
                .expect("3"),
            (1, 2)
        );
        // At 161 the failure at 100 has left the 60 s window; 110 is still in it.
        assert_eq!(
            db.record_auth_failure(ip, Some("alice@example.test"), 161, 60)
                .expect("4"),
            (2, 2)
        );
    }

    #[test]
    fn clearing_auth_failures_forgets_the_address() {
        let (_dir, db) = open_temp();
        db.record_auth_failure("192.0.2.1", None, 100, 60)
            .expect("1");
        db.record_auth_failure("192.0.2.1", None, 101, 60)
            .expect("2");
        db.clear_auth_failures("192.0.2.1").expect("clear");
        assert_eq!(
            db.record_auth_failure("192.0.2.1", None, 102, 60)
                .expect("3"),
            (1, 0)
        );
    }

    #[test]
    fn ban_holds_until_expiry_or_unban() {
        let (_dir, db) = open_temp();
        db.ban("192.0.2.1", "10 failures", Some(200)).expect("ban");
        db.ban("2001:db8::1", "manual", None).expect("ban");
        let first = Ban {
            reason: "10 failures".into(),
            until: Some(200),
        };
        assert_eq!(db.ban_of("192.0.2.1", 199).expect("ban_of"), Some(first));
        assert_eq!(db.ban_of("192.0.2.1", 200).expect("ban_of"), None);
        assert_eq!(db.ban_of("192.0.2.2", 0).expect("ban_of"), None);
        let list = db.list_bans(300).expect("list");
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].0, "2001:db8::1");
        assert!(db.unban("2001:db8::1").expect("unban"));
        assert!(!db.unban("2001:db8::1").expect("unban again"));
        assert!(db.list_bans(300).expect("list").is_empty());
    }

    #[test]
    fn purge_removes_expired_locks_bans_and_failures() {
        let (_dir, db) = open_temp();
        db.lock("old@example.test", "x", Some(10)).expect("lock");
        db.lock("forever@example.test", "x", None).expect("lock");
        db.ban("192.0.2.1", "x", Some(10)).expect("ban");
        db.record_auth_failure("192.0.2.2", None, 10, 100)
            .expect("failure");
        let keep = Retention {
            auth_failure_window: 100,
            ..Retention::default()
        };
        let purged = db.purge(200, &keep).expect("purge");
        assert_eq!((purged.locks, purged.bans, purged.auth_failures), (1, 1, 1));
        assert_eq!(
            db.mailbox_state("forever@example.test", 200)
                .expect("state"),
            locked("x", None)
        );
        assert_eq!(
            db.record_auth_failure("192.0.2.2", None, 200, 100)
                .expect("failure"),
            (1, 0)
        );
    }

    #[test]
    fn greylist_update_stores_what_the_decision_returns() {
        let (_dir, db) = open_temp();
        let key = Triplet {
            network: "192.0.2.0/24".into(),
            sender: "a@example.org".into(),
            recipient: "b@example.test".into(),
        };
        let record = TripletRecord {
            first_seen: 5,
            last_seen: 6,
            passed: true,
        };
        let client = ClientRecord {
            passes: 3,
            last_seen: 6,
        };
        let seen = db
            .greylist_update(&key, |stored| {
                (
                    stored,
                    GreylistRecords {
                        triplet: Some(record),
                        client: Some(client),
                    },
                )
            })
            .expect("first");
        assert_eq!(seen, GreylistRecords::default());
        let seen = db
            .greylist_update(&key, |stored| (stored, GreylistRecords::default()))
            .expect("second");
        assert_eq!(
            seen,
            GreylistRecords {
                triplet: Some(record),
                client: Some(client)
            }
        );
    }

    #[test]
    fn concurrent_greylist_updates_do_not_lose_counts() {
        let (_dir, db) = open_temp();
        let db = std::sync::Arc::new(db);
        let key = Triplet {
            network: "n".into(),
            sender: "s".into(),
            recipient: "r".into(),
        };
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let db = db.clone();
                let key = key.clone();
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        db.greylist_update(&key, |stored| {
                            let passes = stored.client.map_or(0, |c| c.passes) + 1;
                            let client = ClientRecord {
                                passes,
                                last_seen: 0,
                            };
                            (
                                (),
                                GreylistRecords {
                                    triplet: None,
                                    client: Some(client),
                                },
                            )
                        })
                        .expect("update");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let passes = db
            .greylist_update(&key, |stored| (stored, GreylistRecords::default()))
            .expect("read")
            .client
            .map(|c| c.passes);
        assert_eq!(passes, Some(100));
    }
}
