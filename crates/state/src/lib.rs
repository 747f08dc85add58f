//! The state store: what the server remembers across restarts that is not mail
//! (greylisting, authentication failures and bans, mailbox states), behind one
//! asynchronous, object-safe trait, [`StateStore`].
//!
//! Sessions ask the store through `Arc<dyn StateStore>`. Every method returns a
//! boxed future, so the trait stays object-safe and a backend may answer from
//! another thread ([`SqliteState`] runs SQLite on the runtime's blocking pool) or
//! over the network (a PostgreSQL backend would answer from its own pool). A
//! backend that waits for a lock therefore delays only the sessions that asked it,
//! never a runtime worker and the other sessions scheduled on it.
//!
//! Time is passed in as unix seconds; no backend reads a clock.
//!
//! Two implementations live here: [`SqliteState`] (`<data_dir>/state.sqlite`, the
//! embedded default) and [`MemoryState`] (in memory, for tests of the policies that
//! use the store, and for anything that wants state that dies with the process).

use std::fmt;

pub use pillarbox_store::greylist::{Decision, GreylistConfig};
pub use pillarbox_store::state::{Ban, MailboxState, Purged, Retention, StateError, Triplet};

mod memory;
mod ready_or;
mod sqlite;

pub use memory::MemoryState;
pub use ready_or::ReadyOr;
pub use sqlite::SqliteState;

/// The future every [`StateStore`] method returns: ready at once when the
/// answer is at hand (a cache, memory), boxed when it must be waited for.
pub type StateFuture<'a, T> = ReadyOr<'a, Result<T, StateError>>;

/// Failures recorded for a client address and for the account it named, within
/// the window, the one just recorded included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailureCounts {
    /// From this address, for any account.
    pub from_address: u32,
    /// For this account, from any address (0 when the client named none).
    pub for_account: u32,
}

/// What the server remembers across restarts, asked asynchronously.
///
/// Addresses are the text of an `IpAddr` (`192.0.2.1`, `2001:db8::1`); mailboxes
/// and accounts are `user@domain`, compared without regard to case.
pub trait StateStore: Send + Sync + 'static {
    // ---- greylisting ----------------------------------------------------------

    /// Checks one greylisting attempt of `triplet` at `now` under `cfg`, and records
    /// it, atomically (two sessions checking the same triplet see each other).
    fn greylist(
        &self,
        cfg: &GreylistConfig,
        triplet: Triplet,
        now: u64,
    ) -> StateFuture<'_, Decision>;

    // ---- authentication failures and bans ---------------------------------------

    /// Records a failed authentication from `address` (for `account`, when the
    /// client named one) at `now`, and counts the failures of the last `window`
    /// seconds.
    fn record_auth_failure(
        &self,
        address: String,
        account: Option<String>,
        now: u64,
        window: u64,
    ) -> StateFuture<'_, FailureCounts>;

    /// Forgets the failures `address` had for `account` (after it authenticated as
    /// that account): a success proves only that the client knows this account's
    /// password, so failures for other accounts from the same address stay.
    fn clear_auth_failures(&self, address: String, account: String) -> StateFuture<'_, ()>;

    /// Forgets every failure recorded for `address` (an administrator's unban).
    fn clear_address_failures(&self, address: String) -> StateFuture<'_, ()>;

    /// Bans `address` until `until` (unix seconds), or until lifted.
    fn ban(&self, address: String, reason: String, until: Option<u64>) -> StateFuture<'_, ()>;

    /// Lifts the ban of `address`; true when there was one.
    fn unban(&self, address: String) -> StateFuture<'_, bool>;

    /// The ban in force for `address` at `now`, if any.
    fn ban_of(&self, address: String, now: u64) -> StateFuture<'_, Option<Ban>>;

    /// Every ban in force at `now`, sorted by address.
    fn list_bans(&self, now: u64) -> StateFuture<'_, Vec<(String, Ban)>>;

    // ---- mailbox states -----------------------------------------------------------

    /// The state of `mailbox` (`user@domain`, any case) at `now`. Backends may
    /// answer from a cache that [`StateStore::change_token`] keeps honest: a
    /// change made through another handle (the CLI, another node) is seen at
    /// the next call. The mailbox is a `Display` so that its name is spelled
    /// only when some mailbox is locked or disabled at all (asked at every RCPT).
    fn mailbox_state<'a>(
        &'a self,
        mailbox: &'a (dyn fmt::Display + Sync),
        now: u64,
    ) -> StateFuture<'a, MailboxState>;

    /// Every locked or disabled mailbox at `now`, sorted.
    fn list_mailbox_states(&self, now: u64) -> StateFuture<'_, Vec<(String, MailboxState)>>;

    /// Locks `mailbox` for maintenance (`450 4.2.1`) until `until` or unlocked.
    fn lock_mailbox(
        &self,
        mailbox: String,
        reason: String,
        until: Option<u64>,
    ) -> StateFuture<'_, ()>;

    /// Lifts a lock; true when there was one.
    fn unlock_mailbox(&self, mailbox: String) -> StateFuture<'_, bool>;

    /// Disables `mailbox` (`550 5.2.1`).
    fn disable_mailbox(&self, mailbox: String, reason: String) -> StateFuture<'_, ()>;

    /// Enables a disabled mailbox; true when it was disabled.
    fn enable_mailbox(&self, mailbox: String) -> StateFuture<'_, bool>;

    // ---- maintenance and secrets ----------------------------------------------------

    /// Removes what has expired at `now`.
    fn purge(&self, now: u64, keep: Retention) -> StateFuture<'_, Purged>;

    /// The secret called `name`: the one stored, or `fresh`, stored now. Two
    /// processes asking at once get the same value.
    fn secret(&self, name: String, fresh: Vec<u8>) -> StateFuture<'_, Vec<u8>>;

    /// Change notification: a value that differs whenever the store may have
    /// changed since it was last read, through this handle or any other. Cheap
    /// and synchronous, so a caller may cache what it read under one token.
    fn change_token(&self) -> u64;
}
