//! Which recipients we take, and the mailbox each one is delivered to: the
//! domain must be local (a configured domain, or an address literal of the
//! address the client connected to), and the mailbox must exist (catch-all, a
//! user of the users file, or postmaster, which RFC 5321 4.5.1 requires us to
//! take).

use std::net::IpAddr;

use pillarbox_codes::{Reply, Row};
use pillarbox_proto::address::{AddressLiteral, Domain};
use pillarbox_proto::ForwardPath;
use pillarbox_store::{MailboxAddr, UserDirectory};

use super::{ready, Decision, PolicyFuture, RecipientAddress, Resolve};
use crate::config::Config;
use crate::services::Services;

/// Resolves recipients to local mailboxes.
pub struct LocalRecipients {
    /// Local domains, lower case.
    domains: Vec<String>,
    /// The primary domain (postmaster's, and an address literal's).
    primary: String,
    catch_all: bool,
}

impl LocalRecipients {
    /// As `[domains]` configures it.
    pub fn new(cfg: &Config) -> Self {
        Self {
            domains: cfg.domains.local.iter().map(|d| d.to_lowercase()).collect(),
            primary: cfg.primary_domain().to_lowercase(),
            catch_all: cfg.domains.catch_all,
        }
    }

    fn primary(&self) -> &str {
        &self.primary
    }

    /// The mailbox of `to`, or the refusal. `users_current` says whether
    /// `users` is the file as it is now: when the file could not be read, a
    /// name it does not list may still be a user, so the answer is a
    /// temporary `451 4.3.0`, never a `550` that would bounce mail for a
    /// mailbox that exists.
    pub fn mailbox_of(
        &self,
        users: &UserDirectory,
        users_current: bool,
        to: &ForwardPath,
        local_ip: IpAddr,
        relay_allowed: bool,
    ) -> Result<MailboxAddr, Reply> {
        let m = match to {
            ForwardPath::Postmaster => return mailbox(self.primary(), "postmaster"),
            ForwardPath::Mailbox(m) => m,
        };
        let domain = match &m.domain {
            Domain::Name(n) => {
                let n = n.to_lowercase();
                self.domains.contains(&n).then_some(n)
            }
            Domain::Literal(AddressLiteral::V4(ip)) if IpAddr::V4(*ip) == local_ip => {
                Some(self.primary().to_string())
            }
            Domain::Literal(AddressLiteral::V6(ip)) if IpAddr::V6(*ip) == local_ip => {
                Some(self.primary().to_string())
            }
            Domain::Literal(_) => None,
        };
        let Some(domain) = domain else {
            return Err(if relay_allowed {
                // Without an outbound queue we say so rather than accept and drop.
                Row::RemoteNotAvailable.reply()
            } else {
                Row::RelayDenied.reply()
            });
        };
        let user = m.local_unquoted().to_lowercase();
        if user == "postmaster" || self.catch_all || users.lookup(&user, &domain).is_some() {
            return mailbox(&domain, &user);
        }
        if !users_current {
            tracing::warn!(to = %to, "the users file cannot be read: deferring a recipient it may list");
            return Err(Row::LocalError.reply());
        }
        Err(Row::NoSuchUser.reply())
    }
}

impl Resolve for LocalRecipients {
    fn resolve<'a>(
        &'a self,
        s: &'a Services,
        cx: RecipientAddress<'a>,
    ) -> PolicyFuture<'a, MailboxAddr> {
        let users = s.users.current();
        let r = self.mailbox_of(
            &users,
            s.users.healthy(),
            cx.to,
            cx.session.client.local_ip,
            cx.session.privileged(),
        );
        ready(match r {
            Ok(mb) => Decision::Continue(mb),
            Err(reply) => {
                tracing::info!(to = %cx.to, "recipient refused");
                Decision::stop(reply)
            }
        })
    }
}

fn mailbox(domain: &str, user: &str) -> Result<MailboxAddr, Reply> {
    // A local part that cannot name a mailbox directory ("..", "a/b") is no user of ours.
    MailboxAddr::new(domain, user).map_err(|_| Row::NoSuchUser.reply())
}
