//! Which recipients we take, and the mailbox each one is delivered to.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use pillarbox_codes::{Reply, Row};
use pillarbox_proto::address::{AddressLiteral, Domain};
use pillarbox_proto::ForwardPath;
use pillarbox_store::state::{MailboxState, StateDb, StateError};
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
    match shared
        .mailbox_states
        .get(&shared.state, &mb.to_string(), crate::auth::now())
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

/// The locked and disabled mailboxes, read from the state database only when
/// it changed (its file or WAL grew or was written: one stat each per RCPT
/// instead of a query), so `pillarbox mailbox lock` takes effect at once.
pub struct MailboxStates {
    db: PathBuf,
    cache: Mutex<Option<(Stamp, HashMap<String, MailboxState>)>>,
}

type Stamp = [(u64, Option<SystemTime>); 2];

impl MailboxStates {
    pub fn new(db: PathBuf) -> Self {
        Self {
            db,
            cache: Mutex::new(None),
        }
    }

    fn stamp(&self) -> Stamp {
        let of = |p: &Path| match std::fs::metadata(p) {
            Ok(m) => (m.len(), m.modified().ok()),
            Err(_) => (0, None),
        };
        let mut wal = self.db.clone().into_os_string();
        wal.push("-wal");
        [of(&self.db), of(Path::new(&wal))]
    }

    /// The state of `mailbox` (lower-case `user@domain`) at `now`.
    pub fn get(&self, db: &StateDb, mailbox: &str, now: u64) -> Result<MailboxState, StateError> {
        let stamp = self.stamp();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = matches!(&*cache, Some((s, _)) if *s == stamp);
        if !fresh {
            let map = db.list_mailbox_states(now)?.into_iter().collect();
            *cache = Some((stamp, map));
        }
        let state = cache
            .as_ref()
            .and_then(|(_, map)| map.get(&mailbox.to_lowercase()).cloned())
            .unwrap_or(MailboxState::Open);
        // A lock that ran out since the list was read is over.
        Ok(match state {
            MailboxState::Locked { until: Some(t), .. } if t <= now => MailboxState::Open,
            other => other,
        })
    }
}

fn mailbox(domain: &str, user: &str) -> Verdict {
    match MailboxAddr::new(domain, user) {
        Ok(m) => Verdict::Local(m),
        // A local part that cannot name a mailbox directory ("..", "a/b") is no user of ours.
        Err(_) => Verdict::Refuse(Row::NoSuchUser.reply()),
    }
}
