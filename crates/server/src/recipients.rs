//! Which recipients we take, and the mailbox each one is delivered to.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
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
        .get(&shared.state, mb, crate::auth::now())
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
/// it changed (one stat per RCPT instead of a query), so `pillarbox mailbox
/// lock` takes effect at once. In WAL mode every write goes to the `-wal`
/// file, which lives while any connection is open (ours is), and the main
/// file changes only when a checkpoint copies in what the WAL already said:
/// the WAL's length and time tell a change. Without a WAL (a filesystem where
/// SQLite cannot keep one), the main file's do.
pub struct MailboxStates {
    db: PathBuf,
    /// `<db>-wal`, spelled once.
    wal: PathBuf,
    cache: Mutex<Option<(Stamp, HashMap<String, MailboxState>)>>,
}

/// Which file was measured (the WAL or the main file), its length and time.
type Stamp = (bool, u64, Option<SystemTime>);

impl MailboxStates {
    pub fn new(db: PathBuf) -> Self {
        let mut wal = db.clone().into_os_string();
        wal.push("-wal");
        Self {
            db,
            wal: wal.into(),
            cache: Mutex::new(None),
        }
    }

    fn stamp(&self) -> Stamp {
        if let Ok(m) = std::fs::metadata(&self.wal) {
            return (true, m.len(), m.modified().ok());
        }
        match std::fs::metadata(&self.db) {
            Ok(m) => (false, m.len(), m.modified().ok()),
            Err(_) => (false, 0, None),
        }
    }

    /// The state of `mailbox` (`user@domain`, any case) at `now`.
    pub fn get(
        &self,
        db: &StateDb,
        mailbox: &dyn std::fmt::Display,
        now: u64,
    ) -> Result<MailboxState, StateError> {
        let stamp = self.stamp();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = matches!(&*cache, Some((s, _)) if *s == stamp);
        if !fresh {
            let map = db.list_mailbox_states(now)?.into_iter().collect();
            *cache = Some((stamp, map));
        }
        let state = cache
            .as_ref()
            // Most of the time no mailbox is locked or disabled: then no key
            // is spelled out.
            .filter(|(_, map)| !map.is_empty())
            .and_then(|(_, map)| {
                let key = mailbox.to_string();
                map.get(pillarbox_store::users::lowercase(&key).as_ref())
                    .cloned()
            })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_change_made_through_another_handle_is_seen_at_the_next_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        let ours = StateDb::open(&path).unwrap();
        // `pillarbox mailbox ...` is another process with its own connection.
        let cli = StateDb::open(&path).unwrap();
        let states = MailboxStates::new(path.clone());
        let mb = "alice@example.test";
        assert_eq!(states.get(&ours, &mb, 100).unwrap(), MailboxState::Open);
        for i in 0..40 {
            let reason = format!("restore {i}");
            cli.lock(mb, &reason, None).unwrap();
            assert_eq!(
                states.get(&ours, &mb, 100).unwrap(),
                MailboxState::Locked {
                    reason,
                    until: None
                },
                "round {i}"
            );
            assert!(cli.unlock(mb).unwrap());
            assert_eq!(
                states.get(&ours, &mb, 100).unwrap(),
                MailboxState::Open,
                "round {i}"
            );
        }
        // The other connection closes: the WAL stays while ours is open.
        drop(cli);
        let cli = StateDb::open(&path).unwrap();
        cli.disable(mb, "left").unwrap();
        drop(cli);
        assert_eq!(
            states.get(&ours, &mb, 100).unwrap(),
            MailboxState::Disabled {
                reason: "left".into()
            }
        );
    }
}
