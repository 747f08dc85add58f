//! Mailbox states: lock a mailbox for maintenance (deliveries get `450 4.2.1`),
//! disable it (`550 5.2.1`), undo either, list them.
//!
//! The states live in the state store, which the running server asks at every RCPT
//! and again at the end of data; so a lock takes effect at once, even on deliveries
//! already under way, without signalling the server.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use pillarbox_state::MailboxState;
use pillarbox_store::users::split_account;

use crate::{Admin, AdminError};

/// Longest reason stored: it is shown in listings and logs, not a document.
pub const MAX_REASON: usize = 200;

/// A mailbox name checked and normalised: `user@domain`, lower-cased, the way the
/// server looks mailboxes up. Made by [`Admin::mailbox_name`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct MailboxName(String);

impl MailboxName {
    /// `user@domain`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MailboxName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a mailbox is locked or disabled: one printable line of at most
/// [`MAX_REASON`] characters, trimmed (it goes into logs and listings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Reason(String);

impl Reason {
    /// Checks `text` and trims it.
    pub fn new(text: &str) -> Result<Self, AdminError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(AdminError::EmptyReason);
        }
        if text.chars().any(char::is_control) {
            return Err(AdminError::ReasonNotOneLine);
        }
        if text.chars().count() > MAX_REASON {
            return Err(AdminError::ReasonTooLong { max: MAX_REASON });
        }
        Ok(Reason(text.to_string()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A mailbox that is not open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum MailboxStatus {
    /// Locked for maintenance.
    Locked {
        /// Why.
        reason: String,
        /// When the lock ends by itself (unix seconds); `None`: at `unlock`.
        until: Option<u64>,
    },
    /// Disabled.
    Disabled {
        /// Why.
        reason: String,
    },
}

/// One line of the mailbox states listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MailboxStateEntry {
    /// `user@domain`.
    pub mailbox: String,
    /// Its state.
    #[serde(flatten)]
    pub status: MailboxStatus,
}

/// A lock placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MailboxLocked {
    /// The mailbox.
    pub mailbox: MailboxName,
    /// Why.
    pub reason: Reason,
    /// When it ends by itself (unix seconds); `None`: at `unlock`.
    pub until: Option<u64>,
}

/// A lock lifted, or not there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MailboxUnlocked {
    /// The mailbox.
    pub mailbox: MailboxName,
    /// There was a lock.
    pub was_locked: bool,
    /// The mailbox is still disabled, for this reason.
    pub still_disabled: Option<String>,
}

/// A mailbox disabled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MailboxDisabled {
    /// The mailbox.
    pub mailbox: MailboxName,
    /// Why.
    pub reason: Reason,
}

/// A mailbox enabled, or not disabled in the first place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MailboxEnabled {
    /// The mailbox.
    pub mailbox: MailboxName,
    /// It was disabled.
    pub was_disabled: bool,
    /// The mailbox is still locked, for this reason.
    pub still_locked: Option<String>,
}

impl Admin {
    /// Checks a mailbox name: `user@domain`, or `user` at the primary domain;
    /// surrounding blanks are ignored, inner ones refused.
    pub fn mailbox_name(&self, user: &str) -> Result<MailboxName, AdminError> {
        let user = user.trim();
        let default_domain = self.primary_domain();
        if !user.contains('@') && default_domain.is_empty() {
            return Err(AdminError::NoDomain { user: user.into() });
        }
        let (local, domain) = split_account(user, default_domain);
        let usable = !local.is_empty()
            && !domain.is_empty()
            && !local
                .chars()
                .chain(domain.chars())
                .any(|c| c.is_whitespace() || c.is_control());
        if !usable {
            return Err(AdminError::NotAMailbox { user: user.into() });
        }
        Ok(MailboxName(format!("{local}@{domain}")))
    }

    /// Locks `mailbox` for maintenance, for `duration` (rounded up to whole
    /// seconds) or until [`Admin::unlock_mailbox`].
    pub async fn lock_mailbox(
        &self,
        mailbox: &MailboxName,
        reason: &Reason,
        duration: Option<Duration>,
    ) -> Result<MailboxLocked, AdminError> {
        let seconds = match duration {
            Some(d) if d.is_zero() => return Err(AdminError::ZeroDuration),
            Some(d) => Some(d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0))),
            None => None,
        };
        let until = seconds.map(|s| self.now().saturating_add(s));
        self.state()?
            .lock_mailbox(mailbox.0.clone(), reason.0.clone(), until)
            .await?;
        Ok(MailboxLocked {
            mailbox: mailbox.clone(),
            reason: reason.clone(),
            until,
        })
    }

    /// Lifts the lock of `mailbox`, and tells whether it stays disabled.
    pub async fn unlock_mailbox(
        &self,
        mailbox: &MailboxName,
    ) -> Result<MailboxUnlocked, AdminError> {
        let state = self.state()?;
        let was_locked = state.unlock_mailbox(mailbox.0.clone()).await?;
        let still_disabled = match state.mailbox_state(mailbox, self.now()).await? {
            MailboxState::Disabled { reason } => Some(reason),
            _ => None,
        };
        Ok(MailboxUnlocked {
            mailbox: mailbox.clone(),
            was_locked,
            still_disabled,
        })
    }

    /// Disables `mailbox`.
    pub async fn disable_mailbox(
        &self,
        mailbox: &MailboxName,
        reason: &Reason,
    ) -> Result<MailboxDisabled, AdminError> {
        self.state()?
            .disable_mailbox(mailbox.0.clone(), reason.0.clone())
            .await?;
        Ok(MailboxDisabled {
            mailbox: mailbox.clone(),
            reason: reason.clone(),
        })
    }

    /// Enables `mailbox` again, and tells whether it stays locked.
    pub async fn enable_mailbox(
        &self,
        mailbox: &MailboxName,
    ) -> Result<MailboxEnabled, AdminError> {
        let state = self.state()?;
        let was_disabled = state.enable_mailbox(mailbox.0.clone()).await?;
        let still_locked = match state.mailbox_state(mailbox, self.now()).await? {
            MailboxState::Locked { reason, .. } => Some(reason),
            _ => None,
        };
        Ok(MailboxEnabled {
            mailbox: mailbox.clone(),
            was_disabled,
            still_locked,
        })
    }

    /// Every locked or disabled mailbox now, sorted by name.
    pub async fn mailbox_states(&self) -> Result<Vec<MailboxStateEntry>, AdminError> {
        let states = self.state()?.list_mailbox_states(self.now()).await?;
        Ok(states
            .into_iter()
            .filter_map(|(mailbox, state)| {
                let status = match state {
                    MailboxState::Open => return None,
                    MailboxState::Locked { reason, until } => {
                        MailboxStatus::Locked { reason, until }
                    }
                    MailboxState::Disabled { reason } => MailboxStatus::Disabled { reason },
                };
                Some(MailboxStateEntry { mailbox, status })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_env::Env;
    use pillarbox_state::StateStore;

    const NOW: u64 = 1_700_000_000;

    fn reason(text: &str) -> Reason {
        Reason::new(text).expect("reason")
    }

    #[tokio::test]
    async fn lock_for_a_duration_then_unlock() {
        let env = Env::new();
        let (admin, state) = env.admin_at(NOW);
        let alice = admin.mailbox_name(" Alice ").expect("name");
        assert_eq!(alice.as_str(), "alice@example.test");
        let locked = admin
            .lock_mailbox(
                &alice,
                &reason("migration"),
                Some(Duration::from_millis(7_199_500)),
            )
            .await
            .expect("lock");
        assert_eq!(locked.until, Some(NOW + 7_200), "rounded up");
        assert_eq!(
            state
                .mailbox_state(&"alice@example.test", NOW + 7_199)
                .await
                .expect("state"),
            MailboxState::Locked {
                reason: "migration".into(),
                until: Some(NOW + 7_200)
            }
        );
        assert_eq!(
            admin.mailbox_states().await.expect("list"),
            vec![MailboxStateEntry {
                mailbox: "alice@example.test".into(),
                status: MailboxStatus::Locked {
                    reason: "migration".into(),
                    until: Some(NOW + 7_200)
                },
            }]
        );
        let unlocked = admin.unlock_mailbox(&alice).await.expect("unlock");
        assert!(unlocked.was_locked && unlocked.still_disabled.is_none());
        assert!(admin.mailbox_states().await.expect("list").is_empty());
        let again = admin.unlock_mailbox(&alice).await.expect("unlock");
        assert!(!again.was_locked);
    }

    #[tokio::test]
    async fn disable_and_lock_are_reported_by_the_undo_of_the_other() {
        let env = Env::new();
        let (admin, _) = env.admin_at(NOW);
        let carol = admin.mailbox_name("carol@other.test").expect("name");
        admin
            .lock_mailbox(&carol, &reason("maintenance"), None)
            .await
            .expect("lock");
        admin
            .disable_mailbox(&carol, &reason("left"))
            .await
            .expect("disable");
        let list = admin.mailbox_states().await.expect("list");
        assert_eq!(
            list[0].status,
            MailboxStatus::Disabled {
                reason: "left".into()
            }
        );
        let enabled = admin.enable_mailbox(&carol).await.expect("enable");
        assert!(enabled.was_disabled);
        assert_eq!(enabled.still_locked.as_deref(), Some("maintenance"));
        admin
            .disable_mailbox(&carol, &reason("left"))
            .await
            .expect("disable");
        let unlocked = admin.unlock_mailbox(&carol).await.expect("unlock");
        assert_eq!(unlocked.still_disabled.as_deref(), Some("left"));
    }

    #[tokio::test]
    async fn bad_names_reasons_and_durations_are_refused() {
        let env = Env::new();
        let (admin, _) = env.admin_at(NOW);
        for name in ["@example.test", "al ice", "alice@", "a\u{7}@x.test"] {
            assert!(
                matches!(
                    admin.mailbox_name(name),
                    Err(AdminError::NotAMailbox { .. })
                ),
                "{name:?}"
            );
        }
        assert!(matches!(Reason::new("  "), Err(AdminError::EmptyReason)));
        assert!(matches!(
            Reason::new("two\nlines"),
            Err(AdminError::ReasonNotOneLine)
        ));
        assert!(matches!(
            Reason::new(&"x".repeat(MAX_REASON + 1)),
            Err(AdminError::ReasonTooLong { .. })
        ));
        let bob = admin.mailbox_name("bob").expect("name");
        assert!(matches!(
            admin
                .lock_mailbox(&bob, &reason("x"), Some(Duration::ZERO))
                .await,
            Err(AdminError::ZeroDuration)
        ));
        assert!(admin.mailbox_states().await.expect("list").is_empty());
    }

    #[tokio::test]
    async fn the_state_file_is_opened_only_when_needed() {
        let env = Env::new();
        let admin = Admin::open(env.cfg.clone());
        assert!(admin.mailbox_name("al ice").is_err());
        admin.list_users().expect("users");
        assert!(!env.cfg.state_path().exists(), "nothing asked of the state");
        let bob = admin.mailbox_name("bob").expect("name");
        admin
            .lock_mailbox(&bob, &reason("restore"), None)
            .await
            .expect("lock");
        assert!(env.cfg.state_path().is_file());
    }
}
