//! Pillarbox's administration operations as one typed API: the users file, mailbox
//! states (lock, disable), quotas, bans, and the running server's queue. The `pillarbox` command line is glue
//! around it (arguments in, text out), and an HTTP console calls the same methods.
//!
//! An [`Admin`] is built from the server's [`Config`] (data directory, users file,
//! primary domain, quota defaults) and a state store. Operations on the users file
//! and on Maildirs are synchronous; those on mailbox states and bans go through
//! [`StateStore`] and are `async`.
//!
//! Every result is a plain struct or enum that serializes with serde, so a console
//! can send it as JSON; every failure is an [`AdminError`] that names the user,
//! mailbox or file involved.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pillarbox_server::config::Config;
use pillarbox_server::services::{Clock, SystemClock};
use pillarbox_state::{SqliteState, StateStore};

mod bans;
mod error;
mod mailboxes;
mod queue;
mod quota;
mod server_process;
mod users;

pub use bans::{BanEntry, Unbanned};
pub use error::AdminError;
pub use mailboxes::{
    MailboxDisabled, MailboxEnabled, MailboxLocked, MailboxName, MailboxStateEntry, MailboxStatus,
    MailboxUnlocked, Reason, MAX_REASON,
};
pub use queue::QueueEntry;
pub use quota::{QuotaFigures, QuotaReport};
pub use server_process::ReloadSent;
pub use users::{PasswordSet, PasswordStatus, UserAdded, UserDeleted, UserList, UserSummary};

/// Re-exported for callers that name password schemes.
pub use pillarbox_store::password::Scheme;

/// The administration operations on one server's configuration and state.
pub struct Admin {
    cfg: Config,
    state: StateSource,
    clock: Arc<dyn Clock>,
}

/// Where the state store comes from.
enum StateSource {
    /// Given by the caller (the running server's store, or one for tests).
    Given(Arc<dyn StateStore>),
    /// The SQLite database at this path, opened at the first operation that needs
    /// it, so that commands on users or quotas never create it and bad arguments
    /// are refused before it is.
    File {
        path: PathBuf,
        opened: Mutex<Option<Arc<dyn StateStore>>>,
    },
}

impl Admin {
    /// Operations on `cfg`, with mailbox states and bans in `state`.
    pub fn new(cfg: Config, state: Arc<dyn StateStore>) -> Self {
        Self {
            cfg,
            state: StateSource::Given(state),
            clock: Arc::new(SystemClock),
        }
    }

    /// Operations on `cfg`, with mailbox states and bans in the SQLite database at
    /// `cfg.state_path()`, opened (and created when missing) at the first operation
    /// that needs it. The open itself is synchronous: meant for the command line,
    /// where nothing else runs meanwhile; a server passes its store to [`Admin::new`].
    pub fn open(cfg: Config) -> Self {
        let path = cfg.state_path();
        Self {
            cfg,
            state: StateSource::File {
                path,
                opened: Mutex::new(None),
            },
            clock: Arc::new(SystemClock),
        }
    }

    /// The same operations with time read from `clock` (the server's
    /// [`Clock`]; a `FixedClock` in tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The configuration the operations work on.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// `name` as the account it denotes, `user@domain` lower-cased; a name without
    /// `@` is at the primary domain. Nothing is checked.
    pub fn account_address(&self, name: &str) -> String {
        let (local, domain) = pillarbox_store::users::split_account(name, self.primary_domain());
        format!("{local}@{domain}")
    }

    fn primary_domain(&self) -> &str {
        self.cfg.primary_domain()
    }

    fn now(&self) -> u64 {
        self.clock.now()
    }

    /// The state store, opened now if it has not been.
    fn state(&self) -> Result<Arc<dyn StateStore>, AdminError> {
        match &self.state {
            StateSource::Given(store) => Ok(store.clone()),
            StateSource::File { path, opened } => {
                let mut opened = opened.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(store) = &*opened {
                    return Ok(store.clone());
                }
                let store: Arc<dyn StateStore> = Arc::new(SqliteState::open(path)?);
                *opened = Some(store.clone());
                Ok(store)
            }
        }
    }
}

/// Serializes a value by its `Display` text (password schemes).
fn serialize_display<S, T>(value: &T, serializer: S) -> Result<S::Ok, S::Error>
where
    S: serde::Serializer,
    T: std::fmt::Display,
{
    serializer.collect_str(value)
}

/// A configuration and a scratch directory for the tests of every module.
#[cfg(test)]
pub(crate) mod test_env {
    use super::*;

    /// A temp data directory with `example.test` as the primary domain.
    pub struct Env {
        _dir: tempfile::TempDir,
        pub cfg: Config,
    }

    impl Env {
        pub fn new() -> Self {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut cfg = Config::embedded();
            cfg.data_dir = dir.path().join("data");
            cfg.users.file = Some(dir.path().join("users"));
            cfg.domains.local = vec!["example.test".to_string()];
            Env { _dir: dir, cfg }
        }

        /// An [`Admin`] with an in-memory state store at a fixed time.
        pub fn admin_at(&self, now: u64) -> (Admin, Arc<pillarbox_state::MemoryState>) {
            let state = Arc::new(pillarbox_state::MemoryState::new());
            let admin = Admin::new(self.cfg.clone(), state.clone())
                .with_clock(Arc::new(pillarbox_server::services::FixedClock::at(now)));
            (admin, state)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_env::Env;

    fn is_send_sync<T: Send + Sync>(_: &T) {}
    fn is_send<T: Send>(_: &T) {}

    #[test]
    fn an_admin_and_its_futures_can_cross_threads() {
        let env = Env::new();
        let (admin, _) = env.admin_at(0);
        is_send_sync(&admin);
        is_send(&admin.bans());
        is_send(&admin.mailbox_states());
        is_send_sync(&Admin::open(env.cfg.clone()));
    }

    #[tokio::test]
    async fn results_serialize_to_plain_json() {
        let env = Env::new();
        let (admin, _) = env.admin_at(1_000);
        let added = admin
            .add_user("alice", Scheme::Sha512Crypt, "pw")
            .expect("add");
        assert_eq!(
            serde_json::to_value(&added).expect("json"),
            serde_json::json!({"address": "alice@example.test", "scheme": "SHA512-CRYPT"})
        );
        std::fs::write(env.cfg.users_file(), "bob:\nbad name:x\n").expect("users");
        let list = admin.list_users().expect("list");
        assert_eq!(
            serde_json::to_value(&list).expect("json"),
            serde_json::json!({
                "users": [{"address": "bob@example.test", "password": {"status": "none"}}],
                "warnings": ["line 2: user \"bad name\" contains ' '"],
            })
        );
        let bob = admin.mailbox_name("bob").expect("name");
        let reason = Reason::new("restore").expect("reason");
        let locked = admin
            .lock_mailbox(&bob, &reason, Some(std::time::Duration::from_secs(60)))
            .await
            .expect("lock");
        assert_eq!(
            serde_json::to_value(&locked).expect("json"),
            serde_json::json!({"mailbox": "bob@example.test", "reason": "restore", "until": 1_060})
        );
        let states = admin.mailbox_states().await.expect("list");
        assert_eq!(
            serde_json::to_value(&states).expect("json"),
            serde_json::json!([{
                "mailbox": "bob@example.test", "state": "locked", "reason": "restore", "until": 1_060
            }])
        );
    }
}
