//! Sender ownership at MAIL (`553 5.7.1`): an authenticated user sends as its
//! own address, an alias from its `aliases=a@x,b@y` extra field, or the null
//! path; nobody else's.

use pillarbox_codes::Row;
use pillarbox_proto::ReversePath;
use pillarbox_store::UserDirectory;

use super::{ready, Decision, PolicyFuture, SenderCheck, SenderCx};
use crate::auth::account;
use crate::config::Config;
use crate::services::Services;

/// Refuses an authenticated sender that is not the user's.
pub struct SenderOwnership {
    primary_domain: String,
}

impl SenderOwnership {
    /// Bare user names are at `cfg`'s primary domain.
    pub fn new(cfg: &Config) -> Self {
        Self {
            primary_domain: cfg.primary_domain().to_lowercase(),
        }
    }

    /// May the authenticated `authcid` send as `from`?
    pub fn owns(&self, users: &UserDirectory, authcid: &str, from: &ReversePath) -> bool {
        let ReversePath::Mailbox(m) = from else {
            return true;
        };
        let (user, domain) = account(authcid, &self.primary_domain);
        let from = format!(
            "{}@{}",
            m.local_unquoted().to_lowercase(),
            m.domain.lowercase()
        );
        if from == format!("{user}@{domain}") {
            return true;
        }
        users
            .lookup(&user, &domain)
            .and_then(|e| e.extra_field("aliases").map(str::to_lowercase))
            .is_some_and(|aliases| aliases.split(',').any(|a| a.trim() == from))
    }
}

impl SenderCheck for SenderOwnership {
    fn name(&self) -> &'static str {
        "sender-ownership"
    }

    fn check<'a>(&'a self, s: &'a Services, cx: SenderCx<'a>) -> PolicyFuture<'a> {
        let Some(user) = cx.session.authenticated else {
            return ready(Decision::GO_ON);
        };
        ready(if self.owns(&s.users.current(), user, cx.from) {
            Decision::GO_ON
        } else {
            tracing::warn!(user, from = %cx.from, "sender not owned");
            Decision::stop(Row::SenderNotOwned.reply())
        })
    }
}
