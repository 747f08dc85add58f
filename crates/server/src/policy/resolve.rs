//! Which recipients we take, and the mailboxes each one is delivered to.
//!
//! The domain must be local (a configured domain, or an address literal of
//! the address the client connected to). Then, in order (as Postfix's virtual
//! aliases and `recipient_delimiter` do):
//! 1. the whole address as an alias (`[aliases] file`),
//! 2. with the part from the recipient delimiter on dropped (`alice+news` is
//!    `alice`), as an alias,
//! 3. a mailbox: postmaster (RFC 5321 4.5.1 requires it), any local part
//!    with `catch_all`, or a user of the users file,
//! 4. the domain's catch-all alias (`@domain`): the lowest precedence, so a
//!    user never loses mail to it.
//!
//! Alias targets are resolved the same way, to a depth of `[aliases]
//! recursion_limit` and at most `expansion_limit` mailboxes; a
//! target at a domain that is not ours cannot be delivered by this server yet
//! and defers the recipient.

use std::net::IpAddr;
use std::sync::Arc;

use pillarbox_codes::{Reply, Row};
use pillarbox_proto::address::{AddressLiteral, Domain};
use pillarbox_proto::ForwardPath;
use pillarbox_store::aliases::AliasTable;
use pillarbox_store::{MailboxAddr, UserDirectory};

use super::{ready, Decision, PolicyFuture, RecipientAddress, Resolve};
use crate::aliases::Aliases;
use crate::config::Config;
use crate::services::Services;

/// Resolves recipients to local mailboxes.
pub struct LocalRecipients {
    /// Local domains, lower case.
    domains: Vec<String>,
    /// The primary domain (postmaster's, an address literal's, a bare user's).
    primary: String,
    catch_all: bool,
    /// Empty: no recipient delimiter.
    delimiter: String,
    aliases: Arc<Aliases>,
    /// `[aliases] recursion_limit`: how deep aliases may point at aliases.
    recursion_limit: usize,
    /// `[aliases] expansion_limit`: most mailboxes one recipient expands to.
    expansion_limit: usize,
}

/// What one lookup needs, for one RCPT.
struct Lookup<'a> {
    users: &'a UserDirectory,
    aliases: &'a AliasTable,
    /// The users file could be read the last time.
    users_current: bool,
}

impl LocalRecipients {
    /// As `[domains]` configures it, with the aliases of `aliases`.
    pub fn new(cfg: &Config, aliases: Arc<Aliases>) -> Self {
        Self {
            domains: cfg.domains.local.iter().map(|d| d.to_lowercase()).collect(),
            primary: cfg.primary_domain().to_lowercase(),
            catch_all: cfg.domains.catch_all,
            delimiter: cfg.domains.recipient_delimiter.clone(),
            aliases,
            recursion_limit: cfg.aliases.recursion_limit,
            expansion_limit: cfg.aliases.expansion_limit,
        }
    }

    fn is_local(&self, domain: &str) -> bool {
        self.domains.iter().any(|d| d == domain)
    }

    /// The mailboxes of `to`, or the refusal. `users_current` says whether
    /// `users` is the file as it is now: when the file could not be read, a
    /// name it does not list may still be a user, so the answer is a
    /// temporary `451 4.3.0`, never a `550` that would bounce mail for a
    /// mailbox that exists.
    pub fn mailboxes_of(
        &self,
        users: &UserDirectory,
        users_current: bool,
        to: &ForwardPath,
        local_ip: IpAddr,
        relay_allowed: bool,
    ) -> Result<Vec<MailboxAddr>, Reply> {
        let (local, domain) = match to {
            ForwardPath::Postmaster => ("postmaster".to_string(), self.primary.clone()),
            ForwardPath::Mailbox(m) => {
                let domain = match &m.domain {
                    Domain::Name(n) => {
                        let n = n.to_lowercase();
                        self.is_local(&n).then_some(n)
                    }
                    Domain::Literal(AddressLiteral::V4(ip)) if IpAddr::V4(*ip) == local_ip => {
                        Some(self.primary.clone())
                    }
                    Domain::Literal(AddressLiteral::V6(ip)) if IpAddr::V6(*ip) == local_ip => {
                        Some(self.primary.clone())
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
                (m.local_unquoted().to_lowercase(), domain)
            }
        };
        let aliases = self.aliases.current();
        let lookup = Lookup {
            users,
            aliases: &aliases,
            users_current,
        };
        let mut out = Vec::new();
        self.expand(&lookup, &local, &domain, 0, &mut out)?;
        Ok(out)
    }

    /// Adds the mailboxes of `local@domain` (a local domain) to `out`.
    fn expand(
        &self,
        l: &Lookup<'_>,
        local: &str,
        domain: &str,
        depth: usize,
        out: &mut Vec<MailboxAddr>,
    ) -> Result<(), Reply> {
        if depth > self.recursion_limit || out.len() >= self.expansion_limit {
            tracing::error!(
                address = %format_args!("{local}@{domain}"),
                "aliases nest deeper than aliases.recursion_limit ({}) or expand to more than aliases.expansion_limit ({}) mailboxes: a loop?",
                self.recursion_limit,
                self.expansion_limit
            );
            return Err(Row::LocalError.reply());
        }
        // Without aliases (the common case) no address is spelled for them.
        let aliased = !l.aliases.is_empty();
        if aliased {
            let address = format!("{local}@{domain}");
            if let Some(targets) = l.aliases.address(&address) {
                return self.targets(l, targets, local, &address, depth, out);
            }
        }
        let base = match self.delimiter.as_str() {
            "" => local,
            d => local.split_once(d).map_or(local, |(b, _)| b),
        };
        if aliased && base != local && !base.is_empty() {
            let base_address = format!("{base}@{domain}");
            if let Some(targets) = l.aliases.address(&base_address) {
                return self.targets(l, targets, base, &base_address, depth, out);
            }
        }
        for user in [local, base] {
            if user == "postmaster" || self.catch_all || l.users.lookup(user, domain).is_some() {
                let mb = MailboxAddr::new(domain, user)
                    // A local part that cannot name a mailbox directory ("..", "a/b") is no user of ours.
                    .map_err(|_| Row::NoSuchUser.reply())?;
                if !out.contains(&mb) {
                    out.push(mb);
                }
                return Ok(());
            }
        }
        if let Some(targets) = l.aliases.domain(domain) {
            return self.targets(l, targets, local, &format!("@{domain}"), depth, out);
        }
        if !l.users_current {
            tracing::warn!(
                address = %format_args!("{local}@{domain}"),
                "the users file cannot be read: deferring a recipient it may list"
            );
            return Err(Row::LocalError.reply());
        }
        Err(Row::NoSuchUser.reply())
    }

    /// Adds the mailboxes of an alias's targets. `local` is the local part
    /// the alias matched, for `@domain` targets.
    fn targets(
        &self,
        l: &Lookup<'_>,
        targets: &[String],
        local: &str,
        source: &str,
        depth: usize,
        out: &mut Vec<MailboxAddr>,
    ) -> Result<(), Reply> {
        for t in targets {
            let (tl, td) = match t.rsplit_once('@') {
                Some(("", d)) => (local, d),
                Some((tl, td)) => (tl, td),
                None => (t.as_str(), self.primary.as_str()),
            };
            if !self.is_local(td) {
                tracing::warn!(alias = source, target = %t, "an alias to another domain cannot be delivered until remote delivery exists");
                return Err(Row::RemoteNotAvailable.reply());
            }
            // An alias that names itself (`a@x  a@x, b@x`) keeps its own
            // mailbox, as in Postfix's virtual table.
            if format!("{tl}@{td}") == source {
                let mb = MailboxAddr::new(td, tl).map_err(|_| Row::NoSuchUser.reply())?;
                if !out.contains(&mb) {
                    out.push(mb);
                }
                continue;
            }
            self.expand(l, tl, td, depth + 1, out)?;
        }
        Ok(())
    }
}

/// The role addresses every local domain should take: postmaster (RFC 5321
/// 4.5.1 requires it) and abuse (RFC 2142).
pub const ROLE_ADDRESSES: [&str; 2] = ["postmaster", "abuse"];

impl LocalRecipients {
    /// The role addresses ([`ROLE_ADDRESSES`]) of the local domains that
    /// `users` and the aliases do not deliver, as `role@domain`.
    pub fn undeliverable_role_addresses(&self, users: &UserDirectory) -> Vec<String> {
        let aliases = self.aliases.current();
        let lookup = Lookup {
            users,
            aliases: &aliases,
            users_current: true,
        };
        let mut missing = Vec::new();
        for domain in &self.domains {
            for role in ROLE_ADDRESSES {
                let mut out = Vec::new();
                if self.expand(&lookup, role, domain, 0, &mut out).is_err() {
                    missing.push(format!("{role}@{domain}"));
                }
            }
        }
        missing
    }
}

impl Resolve for LocalRecipients {
    fn resolve<'a>(
        &'a self,
        s: &'a Services,
        cx: RecipientAddress<'a>,
    ) -> PolicyFuture<'a, Vec<MailboxAddr>> {
        let users = s.users.current();
        let r = self.mailboxes_of(
            &users,
            s.users.healthy(),
            cx.to,
            cx.session.client.local_ip,
            cx.session.privileged(),
        );
        ready(match r {
            Ok(mbs) => Decision::Continue(mbs),
            Err(reply) => {
                tracing::info!(to = %cx.to, "recipient refused");
                Decision::stop(reply)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pillarbox_proto::address::parse_forward_path;

    fn resolver(aliases: &str, catch_all: bool) -> LocalRecipients {
        let mut cfg = Config::embedded();
        cfg.domains.local = vec!["example.test".into(), "other.test".into()];
        cfg.domains.catch_all = catch_all;
        let (table, errors) = AliasTable::parse(aliases);
        assert!(errors.is_empty(), "{errors:?}");
        LocalRecipients::new(&cfg, Arc::new(Aliases::fixed(table)))
    }

    fn users() -> UserDirectory {
        UserDirectory::parse(
            "alice@example.test::::::\nbob@example.test::::::\ncarol+x@example.test::::::\n",
            "example.test",
        )
        .0
    }

    fn resolve(r: &LocalRecipients, to: &str) -> Result<Vec<String>, Reply> {
        let to = parse_forward_path(to, false).unwrap();
        r.mailboxes_of(&users(), true, &to, IpAddr::from([192, 0, 2, 1]), false)
            .map(|v| v.iter().map(|m| m.to_string()).collect())
    }

    #[test]
    fn the_recipient_delimiter_finds_the_users_mailbox() {
        let r = resolver("", false);
        assert_eq!(
            resolve(&r, "Alice+News@example.test").unwrap(),
            ["alice@example.test"]
        );
        // A user whose name has the delimiter in it is found whole first.
        assert_eq!(
            resolve(&r, "carol+x@example.test").unwrap(),
            ["carol+x@example.test"]
        );
        assert_eq!(
            resolve(&r, "nobody+x@example.test"),
            Err(Row::NoSuchUser.reply())
        );
    }

    #[test]
    fn an_alias_expands_to_each_of_its_local_targets_once() {
        let r = resolver(
            "team@example.test alice@example.test, bob, team2@example.test\n\
             team2@example.test bob@example.test\n",
            false,
        );
        assert_eq!(
            resolve(&r, "team@example.test").unwrap(),
            ["alice@example.test", "bob@example.test"]
        );
        assert_eq!(resolve(&r, "team+list@example.test").unwrap().len(), 2);
    }

    #[test]
    fn a_domain_catch_all_takes_only_what_no_user_or_alias_takes() {
        let r = resolver(
            "@other.test bob@example.test\n@example.test @other.test\n",
            false,
        );
        assert_eq!(
            resolve(&r, "anyone@other.test").unwrap(),
            ["bob@example.test"]
        );
        assert_eq!(
            resolve(&r, "alice@example.test").unwrap(),
            ["alice@example.test"]
        );
        // `@domain` to `@domain`: the same local part at the other domain.
        assert_eq!(
            resolve(&r, "zed@example.test").unwrap(),
            ["bob@example.test"]
        );
    }

    #[test]
    fn an_alias_that_names_itself_keeps_its_own_mailbox() {
        let r = resolver(
            "alice@example.test alice@example.test, bob@example.test\n",
            false,
        );
        assert_eq!(
            resolve(&r, "alice@example.test").unwrap(),
            ["alice@example.test", "bob@example.test"]
        );
    }

    #[test]
    fn an_alias_loop_defers_instead_of_spinning() {
        let r = resolver(
            "a@example.test b@example.test\nb@example.test a@example.test\n",
            false,
        );
        assert_eq!(resolve(&r, "a@example.test"), Err(Row::LocalError.reply()));
    }

    #[test]
    fn the_recursion_and_expansion_limits_come_from_the_config() {
        let chain = "a@example.test b@example.test\nb@example.test alice\n";
        let mut cfg = Config::embedded();
        cfg.domains.local = vec!["example.test".into()];
        cfg.aliases.recursion_limit = 0;
        let (table, _) = AliasTable::parse(chain);
        let r = LocalRecipients::new(&cfg, Arc::new(Aliases::fixed(table)));
        assert_eq!(resolve(&r, "a@example.test"), Err(Row::LocalError.reply()));
        cfg.aliases.recursion_limit = 10;
        cfg.aliases.expansion_limit = 1;
        let (table, _) = AliasTable::parse("team@example.test alice, bob\n");
        let r = LocalRecipients::new(&cfg, Arc::new(Aliases::fixed(table)));
        assert_eq!(
            resolve(&r, "team@example.test"),
            Err(Row::LocalError.reply())
        );
    }

    #[test]
    fn an_alias_to_another_domain_is_deferred_until_remote_delivery_exists() {
        let r = resolver("fwd@example.test someone@elsewhere.example\n", false);
        assert_eq!(
            resolve(&r, "fwd@example.test"),
            Err(Row::RemoteNotAvailable.reply())
        );
    }

    #[test]
    fn abuse_without_a_user_or_alias_is_reported_and_an_alias_covers_it() {
        let r = resolver("abuse@example.test postmaster\n", false);
        assert_eq!(
            r.undeliverable_role_addresses(&users()),
            ["abuse@other.test"]
        );
        let r = resolver("", true);
        assert!(
            r.undeliverable_role_addresses(&users()).is_empty(),
            "catch-all takes them"
        );
    }

    #[test]
    fn postmaster_and_the_primary_domain_for_bare_targets() {
        let r = resolver("abuse@other.test postmaster\n", false);
        assert_eq!(
            resolve(&r, "Postmaster").unwrap(),
            ["postmaster@example.test"]
        );
        assert_eq!(
            resolve(&r, "abuse@other.test").unwrap(),
            ["postmaster@example.test"]
        );
    }
}
