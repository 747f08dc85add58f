//! [`StateStore`] on the embedded SQLite database (`<data_dir>/state.sqlite`).
//!
//! [`StateDb`] is synchronous and waits up to its busy timeout when another
//! process (`pillarbox mailbox lock`, a backup, `sqlite3`) holds the write lock.
//! Every call therefore runs on the runtime's blocking pool: a locked database
//! delays the sessions waiting for an answer, not a runtime worker.
//!
//! Mailbox states are asked at every RCPT and nearly never change, so they are
//! read once and cached until [`StateStore::change_token`] changes. The token is
//! a stat of the database: in WAL mode every write goes to the `-wal` file, which
//! lives while any connection is open (ours is), and the main file changes only
//! when a checkpoint copies in what the WAL already said, so the WAL's length and
//! time tell a change. Without a WAL (a filesystem where SQLite cannot keep one),
//! the main file's do.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use pillarbox_store::greylist;
use pillarbox_store::state::StateDb;

use crate::{
    Ban, Decision, FailureCounts, GreylistConfig, MailboxState, Purged, Retention, StateError,
    StateFuture, StateStore, Triplet,
};

/// Locked and disabled mailboxes by lower-cased name.
type MailboxMap = Arc<HashMap<String, MailboxState>>;

/// The SQLite state store. Cheap to share: one per server.
pub struct SqliteState {
    db: Arc<StateDb>,
    /// `<db>-wal`, spelled once.
    wal: PathBuf,
    /// The mailbox states, with the token they were read under.
    mailboxes: Mutex<Option<(u64, MailboxMap)>>,
}

impl SqliteState {
    /// Opens (creating when missing) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StateError> {
        Ok(Self::new(StateDb::open(path)?))
    }

    /// Serves an open database.
    pub fn new(db: StateDb) -> Self {
        let mut wal = db.path().to_path_buf().into_os_string();
        wal.push("-wal");
        Self {
            db: Arc::new(db),
            wal: wal.into(),
            mailboxes: Mutex::new(None),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        self.db.path()
    }

    /// Runs `f` with the database on the blocking pool.
    fn run<T, F>(&self, f: F) -> StateFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&StateDb) -> Result<T, StateError> + Send + 'static,
    {
        let db = self.db.clone();
        StateFuture::boxed(async move {
            match tokio::task::spawn_blocking(move || f(&db)).await {
                Ok(r) => r,
                Err(e) => Err(StateError::Unavailable(format!(
                    "the state database's worker ended: {e}"
                ))),
            }
        })
    }

    /// The cached mailbox states if they are still current.
    fn cached_mailboxes(&self, token: u64) -> Option<MailboxMap> {
        let cache = self.mailboxes.lock().unwrap_or_else(|p| p.into_inner());
        match &*cache {
            Some((t, map)) if *t == token => Some(map.clone()),
            _ => None,
        }
    }
}

impl StateStore for SqliteState {
    fn greylist(
        &self,
        cfg: &GreylistConfig,
        triplet: Triplet,
        now: u64,
    ) -> StateFuture<'_, Decision> {
        let cfg = cfg.clone();
        self.run(move |db| {
            db.greylist_update(&triplet, |stored| greylist::decide(&cfg, stored, now))
        })
    }

    fn record_auth_failure(
        &self,
        address: String,
        account: Option<String>,
        now: u64,
        window: u64,
    ) -> StateFuture<'_, FailureCounts> {
        self.run(move |db| {
            let (from_address, for_account) =
                db.record_auth_failure(&address, account.as_deref(), now, window)?;
            Ok(FailureCounts {
                from_address,
                for_account,
            })
        })
    }

    fn clear_auth_failures(&self, address: String, account: String) -> StateFuture<'_, ()> {
        self.run(move |db| db.clear_account_failures(&address, &account))
    }

    fn clear_address_failures(&self, address: String) -> StateFuture<'_, ()> {
        self.run(move |db| db.clear_auth_failures(&address))
    }

    fn ban(&self, address: String, reason: String, until: Option<u64>) -> StateFuture<'_, ()> {
        self.run(move |db| db.ban(&address, &reason, until))
    }

    fn unban(&self, address: String) -> StateFuture<'_, bool> {
        self.run(move |db| db.unban(&address))
    }

    fn ban_of(&self, address: String, now: u64) -> StateFuture<'_, Option<Ban>> {
        self.run(move |db| db.ban_of(&address, now))
    }

    fn list_bans(&self, now: u64) -> StateFuture<'_, Vec<(String, Ban)>> {
        self.run(move |db| db.list_bans(now))
    }

    fn mailbox_state<'a>(
        &'a self,
        mailbox: &'a (dyn std::fmt::Display + Sync),
        now: u64,
    ) -> StateFuture<'a, MailboxState> {
        let token = self.change_token();
        if let Some(map) = self.cached_mailboxes(token) {
            return StateFuture::ready(Ok(state_in(&map, mailbox, now)));
        }
        StateFuture::boxed(async move {
            // Every state is read, expired locks included: a lock that runs
            // out later is judged at each call against `now`.
            let list = self.run(|db| db.list_mailbox_states(0)).await?;
            let map: MailboxMap = Arc::new(list.into_iter().collect());
            *self.mailboxes.lock().unwrap_or_else(|p| p.into_inner()) = Some((token, map.clone()));
            Ok(state_in(&map, mailbox, now))
        })
    }

    fn list_mailbox_states(&self, now: u64) -> StateFuture<'_, Vec<(String, MailboxState)>> {
        self.run(move |db| db.list_mailbox_states(now))
    }

    fn lock_mailbox(
        &self,
        mailbox: String,
        reason: String,
        until: Option<u64>,
    ) -> StateFuture<'_, ()> {
        self.run(move |db| db.lock(&mailbox, &reason, until))
    }

    fn unlock_mailbox(&self, mailbox: String) -> StateFuture<'_, bool> {
        self.run(move |db| db.unlock(&mailbox))
    }

    fn disable_mailbox(&self, mailbox: String, reason: String) -> StateFuture<'_, ()> {
        self.run(move |db| db.disable(&mailbox, &reason))
    }

    fn enable_mailbox(&self, mailbox: String) -> StateFuture<'_, bool> {
        self.run(move |db| db.enable(&mailbox))
    }

    fn purge(&self, now: u64, keep: Retention) -> StateFuture<'_, Purged> {
        self.run(move |db| db.purge(now, &keep))
    }

    fn secret(&self, name: String, fresh: Vec<u8>) -> StateFuture<'_, Vec<u8>> {
        self.run(move |db| db.secret(&name, || fresh))
    }

    fn change_token(&self) -> u64 {
        let stamp = match std::fs::metadata(&self.wal) {
            Ok(m) => (true, m.len(), m.modified().ok()),
            Err(_) => match std::fs::metadata(self.db.path()) {
                Ok(m) => (false, m.len(), m.modified().ok()),
                Err(_) => (false, 0, None),
            },
        };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        stamp.hash(&mut h);
        h.finish()
    }
}

/// The state of `mailbox` at `now` in `map`. Most of the time no mailbox is
/// locked or disabled: then the name is not even spelled.
fn state_in(map: &MailboxMap, mailbox: &dyn std::fmt::Display, now: u64) -> MailboxState {
    if map.is_empty() {
        return MailboxState::Open;
    }
    let key = mailbox.to_string();
    match map.get(pillarbox_store::users::lowercase(&key).as_ref()) {
        // A lock that ran out since the list was read is over.
        Some(MailboxState::Locked { until: Some(t), .. }) if *t <= now => MailboxState::Open,
        Some(state) => state.clone(),
        None => MailboxState::Open,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> u64 {
        100
    }

    #[tokio::test]
    async fn every_change_made_through_another_handle_is_seen_at_the_next_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        let ours = SqliteState::open(&path).unwrap();
        // `pillarbox mailbox ...` is another process with its own connection.
        let cli = StateDb::open(&path).unwrap();
        let mb = "alice@example.test".to_string();
        assert_eq!(
            ours.mailbox_state(&mb, now()).await.unwrap(),
            MailboxState::Open
        );
        for i in 0..40 {
            let reason = format!("restore {i}");
            cli.lock(&mb, &reason, None).unwrap();
            assert_eq!(
                ours.mailbox_state(&mb, now()).await.unwrap(),
                MailboxState::Locked {
                    reason,
                    until: None
                },
                "round {i}"
            );
            assert!(cli.unlock(&mb).unwrap());
            assert_eq!(
                ours.mailbox_state(&mb, now()).await.unwrap(),
                MailboxState::Open,
                "round {i}"
            );
        }
        // The other connection closes: the WAL stays while ours is open.
        drop(cli);
        let cli = StateDb::open(&path).unwrap();
        cli.disable(&mb, "left").unwrap();
        drop(cli);
        assert_eq!(
            ours.mailbox_state(&"ALICE@example.test", now())
                .await
                .unwrap(),
            MailboxState::Disabled {
                reason: "left".into()
            }
        );
    }

    #[tokio::test]
    async fn a_lock_that_ran_out_since_the_cache_was_read_is_over() {
        let dir = tempfile::tempdir().unwrap();
        let ours = SqliteState::open(dir.path().join("state.sqlite")).unwrap();
        ours.lock_mailbox("bob@example.test".into(), "move".into(), Some(150))
            .await
            .unwrap();
        let at = |t| ours.mailbox_state(&"bob@example.test", t);
        assert!(matches!(
            at(149).await.unwrap(),
            MailboxState::Locked { .. }
        ));
        assert_eq!(at(150).await.unwrap(), MailboxState::Open);
    }
}
