//! [`StateStore`] in memory: for tests of the policies that use the store, and
//! for state that may die with the process. Same rules as the SQLite store
//! (the greylisting decision is the shared [`greylist::decide`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use pillarbox_store::greylist;
use pillarbox_store::state::{ClientRecord, GreylistRecords, TripletRecord};

use crate::{
    Ban, Decision, FailureCounts, GreylistConfig, MailboxState, Purged, Retention, StateError,
    StateFuture, StateStore, Triplet,
};

#[derive(Default)]
struct Tables {
    triplets: HashMap<Triplet, TripletRecord>,
    clients: HashMap<String, ClientRecord>,
    /// (address, account, at)
    failures: Vec<(String, Option<String>, u64)>,
    bans: BTreeMap<String, Ban>,
    locks: BTreeMap<String, (String, Option<u64>)>,
    disabled: BTreeMap<String, String>,
    secrets: HashMap<String, Vec<u8>>,
}

/// The in-memory state store.
#[derive(Default)]
pub struct MemoryState {
    tables: Mutex<Tables>,
    changes: AtomicU64,
    failing: AtomicBool,
}

impl MemoryState {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// From now on every call fails (`fail = true`) as a broken backend's would,
    /// or works again: for tests of what a policy does when its state is gone.
    pub fn set_failing(&self, fail: bool) {
        self.failing.store(fail, Ordering::SeqCst);
    }

    /// Runs `f` on the tables; a writer passes `changes = true`.
    fn with<T: Send + 'static>(
        &self,
        changes: bool,
        f: impl FnOnce(&mut Tables) -> T,
    ) -> StateFuture<'_, T> {
        let r = if self.failing.load(Ordering::SeqCst) {
            Err(StateError::Unavailable(
                "the in-memory store is set to fail".into(),
            ))
        } else {
            let mut t = self.tables.lock().unwrap_or_else(|p| p.into_inner());
            if changes {
                self.changes.fetch_add(1, Ordering::SeqCst);
            }
            Ok(f(&mut t))
        };
        StateFuture::ready(r)
    }
}

fn lower(s: &str) -> String {
    s.to_lowercase()
}

impl Tables {
    fn mailbox_state(&self, mailbox: &str, now: u64) -> MailboxState {
        if let Some(reason) = self.disabled.get(mailbox) {
            return MailboxState::Disabled {
                reason: reason.clone(),
            };
        }
        match self.locks.get(mailbox) {
            Some((reason, until)) if until.is_none_or(|t| t > now) => MailboxState::Locked {
                reason: reason.clone(),
                until: *until,
            },
            _ => MailboxState::Open,
        }
    }
}

impl StateStore for MemoryState {
    fn greylist(
        &self,
        cfg: &GreylistConfig,
        triplet: Triplet,
        now: u64,
    ) -> StateFuture<'_, Decision> {
        let cfg = cfg.clone();
        self.with(true, move |t| {
            let stored = GreylistRecords {
                triplet: t.triplets.get(&triplet).copied(),
                client: t.clients.get(&triplet.network).copied(),
            };
            let (answer, store) = greylist::decide(&cfg, stored, now);
            if let Some(c) = store.client {
                t.clients.insert(triplet.network.clone(), c);
            }
            if let Some(r) = store.triplet {
                t.triplets.insert(triplet, r);
            }
            answer
        })
    }

    fn record_auth_failure(
        &self,
        address: String,
        account: Option<String>,
        now: u64,
        window: u64,
    ) -> StateFuture<'_, FailureCounts> {
        let since = now.saturating_sub(window);
        let account = account.as_deref().map(lower);
        self.with(true, move |t| {
            t.failures.push((address.clone(), account.clone(), now));
            t.failures.retain(|(a, _, at)| *a != address || *at > since);
            let recent = |f: &&(String, Option<String>, u64)| f.2 > since;
            FailureCounts {
                from_address: t
                    .failures
                    .iter()
                    .filter(recent)
                    .filter(|f| f.0 == address)
                    .count() as u32,
                for_account: match &account {
                    Some(acc) => t
                        .failures
                        .iter()
                        .filter(recent)
                        .filter(|f| f.1.as_ref() == Some(acc))
                        .count() as u32,
                    None => 0,
                },
            }
        })
    }

    fn clear_auth_failures(&self, address: String, account: String) -> StateFuture<'_, ()> {
        let account = lower(&account);
        self.with(true, move |t| {
            t.failures
                .retain(|(a, acc, _)| !(*a == address && acc.as_deref() == Some(&account)))
        })
    }

    fn clear_address_failures(&self, address: String) -> StateFuture<'_, ()> {
        self.with(true, move |t| t.failures.retain(|(a, _, _)| *a != address))
    }

    fn ban(&self, address: String, reason: String, until: Option<u64>) -> StateFuture<'_, ()> {
        self.with(true, move |t| {
            t.bans.insert(address, Ban { reason, until });
        })
    }

    fn unban(&self, address: String) -> StateFuture<'_, bool> {
        self.with(true, move |t| t.bans.remove(&address).is_some())
    }

    fn ban_of(&self, address: String, now: u64) -> StateFuture<'_, Option<Ban>> {
        self.with(false, move |t| {
            t.bans
                .get(&address)
                .filter(|b| b.until.is_none_or(|u| u > now))
                .cloned()
        })
    }

    fn list_bans(&self, now: u64) -> StateFuture<'_, Vec<(String, Ban)>> {
        self.with(false, move |t| {
            t.bans
                .iter()
                .filter(|(_, b)| b.until.is_none_or(|u| u > now))
                .map(|(a, b)| (a.clone(), b.clone()))
                .collect()
        })
    }

    fn mailbox_state<'a>(
        &'a self,
        mailbox: &'a (dyn std::fmt::Display + Sync),
        now: u64,
    ) -> StateFuture<'a, MailboxState> {
        let mailbox = lower(&mailbox.to_string());
        self.with(false, move |t| t.mailbox_state(&mailbox, now))
    }

    fn list_mailbox_states(&self, now: u64) -> StateFuture<'_, Vec<(String, MailboxState)>> {
        self.with(false, move |t| {
            let mut names: Vec<&String> = t.disabled.keys().chain(t.locks.keys()).collect();
            names.sort();
            names.dedup();
            names
                .into_iter()
                .map(|m| (m.clone(), t.mailbox_state(m, now)))
                .filter(|(_, s)| *s != MailboxState::Open)
                .collect()
        })
    }

    fn lock_mailbox(
        &self,
        mailbox: String,
        reason: String,
        until: Option<u64>,
    ) -> StateFuture<'_, ()> {
        self.with(true, move |t| {
            t.locks.insert(lower(&mailbox), (reason, until));
        })
    }

    fn unlock_mailbox(&self, mailbox: String) -> StateFuture<'_, bool> {
        self.with(true, move |t| t.locks.remove(&lower(&mailbox)).is_some())
    }

    fn disable_mailbox(&self, mailbox: String, reason: String) -> StateFuture<'_, ()> {
        self.with(true, move |t| {
            t.disabled.insert(lower(&mailbox), reason);
        })
    }

    fn enable_mailbox(&self, mailbox: String) -> StateFuture<'_, bool> {
        self.with(true, move |t| t.disabled.remove(&lower(&mailbox)).is_some())
    }

    fn purge(&self, now: u64, keep: Retention) -> StateFuture<'_, Purged> {
        let before = |age: u64| now.saturating_sub(age);
        self.with(true, move |t| {
            let mut p = Purged::default();
            let n = t.triplets.len();
            t.triplets.retain(|_, r| {
                !(r.last_seen < before(keep.greylist_max_age)
                    || (!r.passed && r.first_seen < before(keep.greylist_retry_window)))
            });
            p.triplets = n - t.triplets.len();
            let n = t.clients.len();
            t.clients
                .retain(|_, c| c.last_seen >= before(keep.auto_whitelist_for));
            p.clients = n - t.clients.len();
            let n = t.locks.len();
            t.locks
                .retain(|_, (_, until)| until.is_none_or(|u| u > now));
            p.locks = n - t.locks.len();
            let n = t.bans.len();
            t.bans.retain(|_, b| b.until.is_none_or(|u| u > now));
            p.bans = n - t.bans.len();
            let n = t.failures.len();
            t.failures
                .retain(|(_, _, at)| *at > before(keep.auth_failure_window));
            p.auth_failures = n - t.failures.len();
            p
        })
    }

    fn secret(&self, name: String, fresh: Vec<u8>) -> StateFuture<'_, Vec<u8>> {
        self.with(true, move |t| {
            t.secrets.entry(name).or_insert(fresh).clone()
        })
    }

    fn change_token(&self) -> u64 {
        self.changes.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failing_store_answers_every_call_with_an_error() {
        let s = MemoryState::new();
        s.set_failing(true);
        assert!(s.ban_of("192.0.2.1".into(), 0).await.is_err());
        s.set_failing(false);
        assert_eq!(s.ban_of("192.0.2.1".into(), 0).await.unwrap(), None);
    }

    #[tokio::test]
    async fn clearing_one_accounts_failures_keeps_the_others_from_that_address() {
        let s = MemoryState::new();
        let ip = || "192.0.2.7".to_string();
        for at in 1..=3 {
            s.record_auth_failure(ip(), Some("carol@example.test".into()), at, 100)
                .await
                .unwrap();
        }
        s.record_auth_failure(ip(), Some("bob@example.test".into()), 4, 100)
            .await
            .unwrap();
        s.clear_auth_failures(ip(), "BOB@example.test".into())
            .await
            .unwrap();
        let c = s
            .record_auth_failure(ip(), Some("carol@example.test".into()), 5, 100)
            .await
            .unwrap();
        assert_eq!(c.from_address, 4, "carol's three and this one");
        assert_eq!(c.for_account, 4);
    }
}
