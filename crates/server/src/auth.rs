//! AUTH policy: checking credentials against the users file, sender
//! ownership, and the brute-force defence (RFC 4954 leaves these to us).

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pillarbox_codes::{Reply, Row};
use pillarbox_proto::sasl::{Mechanism, Secret};
use pillarbox_proto::{PasswordAnswer, ReversePath};
use pillarbox_store::password::{PasswordError, Scheme};
use pillarbox_store::UserEntry;

use crate::server::Shared;

/// Longest wait before a 535, however many failures.
const MAX_DELAY: Duration = Duration::from_secs(15);

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `user@domain` in lower case; a bare user name is at the primary domain.
pub fn account(shared: &Shared, authcid: &str) -> (String, String) {
    match authcid.rsplit_once('@') {
        Some((l, d)) => (l.to_lowercase(), d.to_lowercase()),
        None => (
            authcid.to_lowercase(),
            shared.cfg.primary_domain().to_lowercase(),
        ),
    }
}

fn lookup(shared: &Shared, authcid: &str) -> Option<UserEntry> {
    let (user, domain) = account(shared, authcid);
    shared.users.current().lookup(&user, &domain).cloned()
}

/// AUTH PLAIN/LOGIN: verify the password. Slow schemes (Argon2, bcrypt) run
/// off the async threads. An unknown user or one without a usable password
/// gets the same 535 as a wrong password, after as long: the password is
/// checked against a decoy with the cost of one of the users' hashes, the
/// same one every time for that name ([`pillarbox_store::password::Decoys`]).
pub async fn check_password(shared: &Shared, authcid: &str, password: String) -> PasswordAnswer {
    if !shared.users.healthy() {
        return PasswordAnswer::Unavailable(Row::AuthTemporary.reply());
    }
    let stored = match lookup(shared, authcid).map(|e| e.stored_password()) {
        Some(Ok(s)) => Some(s),
        None | Some(Err(PasswordError::NoPassword)) => None,
        Some(Err(e)) => {
            tracing::warn!(user = %authcid, error = %e, "stored password unusable");
            None
        }
    };
    if stored.as_ref().is_some_and(|s| s.scheme() == Scheme::Plain) {
        tracing::warn!(user = %authcid, "password stored as {{PLAIN}}; rehash it with `pillarbox users passwd`");
    }
    let against = match stored {
        Some(s) => Against::User(s),
        None => {
            let (user, domain) = account(shared, authcid);
            Against::Decoy {
                decoys: shared.users.decoys(),
                key: shared.decoy_key.clone(),
                name: format!("{user}@{domain}"),
            }
        }
    };
    let verify = move || match against {
        Against::User(s) => s.verify(&password),
        Against::Decoy { decoys, key, name } => {
            if let Some(d) = decoys.for_name(&key, &name) {
                d.verify(&password);
            }
            false
        }
    };
    match tokio::task::spawn_blocking(verify).await {
        Ok(true) => PasswordAnswer::Valid,
        Ok(false) => PasswordAnswer::Invalid,
        Err(_) => PasswordAnswer::Unavailable(Row::AuthTemporary.reply()),
    }
}

/// What a PLAIN/LOGIN password is checked against.
enum Against {
    /// The user's stored password.
    User(pillarbox_store::password::StoredPassword),
    /// No usable password: the decoy for this name, and the answer is no.
    Decoy {
        decoys: std::sync::Arc<pillarbox_store::password::Decoys>,
        key: Vec<u8>,
        name: String,
    },
}

/// AUTH CRAM-MD5/SCRAM-SHA-256: the secret the mechanism needs, if the
/// stored password provides it.
pub fn secret(
    shared: &Shared,
    authcid: &str,
    mechanism: Mechanism,
) -> Result<Option<Secret>, Reply> {
    if !shared.users.healthy() {
        return Err(Row::AuthTemporary.reply());
    }
    let stored = lookup(shared, authcid).and_then(|e| e.stored_password().ok());
    let secret = stored.and_then(|s| match mechanism {
        Mechanism::CramMd5 => s.cram_md5().map(Secret::CramMd5),
        Mechanism::ScramSha256 => s.scram_sha256().map(Secret::Scram),
        Mechanism::Plain | Mechanism::Login => None,
    });
    Ok(secret)
}

/// May the authenticated `authcid` send as `from`? Its own address, an alias
/// from its `aliases=a@x,b@y` extra field, or the null path.
pub fn owns(shared: &Shared, authcid: &str, from: &ReversePath) -> bool {
    let ReversePath::Mailbox(m) = from else {
        return true;
    };
    let (user, domain) = account(shared, authcid);
    let from = format!(
        "{}@{}",
        m.local_unquoted().to_lowercase(),
        m.domain.lowercase()
    );
    if from == format!("{user}@{domain}") {
        return true;
    }
    lookup(shared, authcid)
        .and_then(|e| e.extra_field("aliases").map(str::to_lowercase))
        .is_some_and(|aliases| aliases.split(',').any(|a| a.trim() == from))
}

/// What to do after a failed AUTH.
pub enum AfterFailure {
    /// Wait this long, then answer 535.
    Delay(Duration),
    /// The address is now banned: answer 421 and close.
    Banned,
}

/// Counts a failure for the address and the account; bans the address after
/// `auth.max_failures` within `auth.window` (trusted and loopback addresses
/// only when `auth.ban_trusted`).
pub fn record_failure(
    shared: &Shared,
    ip: IpAddr,
    trusted: bool,
    authcid: Option<&str>,
) -> AfterFailure {
    let cfg = &shared.cfg.auth;
    let now = now();
    let account = authcid.map(|a| {
        let (u, d) = account(shared, a);
        format!("{u}@{d}")
    });
    let (for_ip, for_account) = match shared.state.record_auth_failure(
        &ip.to_string(),
        account.as_deref(),
        now,
        cfg.window.0.as_secs(),
    ) {
        Ok(counts) => counts,
        Err(e) => {
            tracing::error!(error = %e, "cannot record an authentication failure");
            (1, 1)
        }
    };
    let failures = for_ip.max(for_account);
    let exempt = (trusted || ip.is_loopback()) && !cfg.ban_trusted;
    if failures >= cfg.max_failures && !exempt {
        let reason = if for_ip >= cfg.max_failures {
            format!(
                "{for_ip} failed logins from this address within {}s",
                cfg.window.0.as_secs()
            )
        } else {
            format!(
                "{for_account} failed logins for {} within {}s",
                account.as_deref().unwrap_or("?"),
                cfg.window.0.as_secs()
            )
        };
        let until = now + cfg.ban_for.0.as_secs();
        if let Err(e) = shared.state.ban(&ip.to_string(), &reason, Some(until)) {
            tracing::error!(error = %e, "cannot record a ban");
        }
        tracing::warn!(client = %ip, reason, until, "banned");
        return AfterFailure::Banned;
    }
    AfterFailure::Delay((cfg.failure_delay.0 * failures).min(MAX_DELAY))
}

/// The ban on `ip` now, if any.
pub fn ban_of(shared: &Shared, ip: IpAddr) -> Option<pillarbox_store::state::Ban> {
    shared
        .state
        .ban_of(&ip.to_string(), now())
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read bans");
            None
        })
}
