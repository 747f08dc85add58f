//! Which recipients we take, and the mailbox each one is delivered to.

use std::net::IpAddr;

use pillarbox_codes::{Reply, Row};
use pillarbox_proto::address::{AddressLiteral, Domain};
use pillarbox_proto::ForwardPath;
use pillarbox_store::MailboxAddr;

use crate::config::Config;
use crate::directory::Directory;

/// The answer for one RCPT.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Local(MailboxAddr),
    Refuse(Reply),
}

/// Maps a recipient to a local mailbox: the domain must be local (a configured
/// domain, or an address literal of the address the client connected to), and
/// the mailbox must exist (catch-all, a user of the users file, or postmaster,
/// which RFC 5321 4.5.1 requires us to take).
pub fn resolve(
    to: &ForwardPath,
    cfg: &Config,
    users: &Directory,
    local_ip: IpAddr,
    relay_allowed: bool,
) -> Verdict {
    let primary = cfg.primary_domain().to_lowercase();
    let m = match to {
        ForwardPath::Postmaster => return mailbox(&primary, "postmaster"),
        ForwardPath::Mailbox(m) => m,
    };
    let domain = match &m.domain {
        Domain::Name(n) => {
            let n = n.to_lowercase();
            cfg.domains
                .local
                .iter()
                .find(|d| d.to_lowercase() == n)
                .map(|_| n)
        }
        Domain::Literal(AddressLiteral::V4(ip)) if IpAddr::V4(*ip) == local_ip => {
            Some(primary.clone())
        }
        Domain::Literal(AddressLiteral::V6(ip)) if IpAddr::V6(*ip) == local_ip => {
            Some(primary.clone())
        }
        Domain::Literal(_) => None,
    };
    let Some(domain) = domain else {
        return Verdict::Refuse(if relay_allowed {
            // Until the outbound queue exists, we say so rather than accept and drop.
            Row::RemoteNotAvailable.reply()
        } else {
            Row::RelayDenied.reply()
        });
    };
    let user = m.local_unquoted().to_lowercase();
    if user == "postmaster"
        || cfg.domains.catch_all
        || users.current().lookup(&user, &domain).is_some()
    {
        return mailbox(&domain, &user);
    }
    Verdict::Refuse(Row::NoSuchUser.reply())
}

/// A mailbox locked for maintenance (450 4.2.1) or disabled (550 5.2.1).
pub fn mailbox_state(shared: &crate::server::Shared, mb: &MailboxAddr) -> Result<(), Reply> {
    use pillarbox_store::state::MailboxState;
    match shared
        .state
        .mailbox_state(&mb.to_string(), crate::auth::now())
    {
        Ok(MailboxState::Open) => Ok(()),
        Ok(MailboxState::Locked { reason, .. }) => {
            tracing::info!(mailbox = %mb, reason, "mailbox locked");
            Err(Row::MailboxUnavailable.reply())
        }
        Ok(MailboxState::Disabled { reason }) => {
            tracing::info!(mailbox = %mb, reason, "mailbox disabled");
            Err(Row::MailboxDisabled.reply())
        }
        Err(e) => {
            // Unknown state: defer rather than deliver into a mailbox under maintenance.
            tracing::error!(mailbox = %mb, error = %e, "cannot read mailbox state");
            Err(Row::MailboxUnavailable.reply())
        }
    }
}

fn mailbox(domain: &str, user: &str) -> Verdict {
    match MailboxAddr::new(domain, user) {
        Ok(m) => Verdict::Local(m),
        // A local part that cannot name a mailbox directory ("..", "a/b") is no user of ours.
        Err(_) => Verdict::Refuse(Row::NoSuchUser.reply()),
    }
}
