//! AUTH policy: checking credentials against the users file and the
//! brute-force defence (RFC 4954 leaves both to us). Sender ownership, the
//! other AUTH rule, is a sender check (`policy::SenderOwnership`).

use std::net::IpAddr;
use std::time::Duration;

use pillarbox_codes::{Reply, Row};
use pillarbox_proto::sasl::{Mechanism, Secret};
use pillarbox_proto::PasswordAnswer;
use pillarbox_store::password::{Decoys, PasswordError, Scheme, StoredPassword};
use pillarbox_store::UserEntry;

use crate::config::Auth;
use crate::services::Services;

/// Longest wait before a 535, however many failures.
const MAX_DELAY: Duration = Duration::from_secs(15);

/// `user@domain` in lower case; a bare user name is at `primary_domain`.
pub use pillarbox_store::users::split_account as account;

/// What to do after a failed AUTH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Wait this long, then answer 535.
    Delay(Duration),
    /// The address is now banned: answer 421 and close.
    Banned,
}

/// Checks credentials and counts failures.
pub struct Authenticator {
    cfg: Auth,
    primary_domain: String,
    /// Decoy SCRAM salts and decoy costs for unknown users, the same across
    /// restarts (kept in the state store).
    decoy_key: Vec<u8>,
}

impl Authenticator {
    /// As `[auth]` configures it, with the server's decoy key.
    pub fn new(cfg: Auth, primary_domain: &str, decoy_key: Vec<u8>) -> Self {
        Self {
            cfg,
            primary_domain: primary_domain.to_lowercase(),
            decoy_key,
        }
    }

    /// The decoy key, for the session's SCRAM decoys.
    pub fn decoy_key(&self) -> &[u8] {
        &self.decoy_key
    }

    fn lookup(&self, s: &Services, authcid: &str) -> Option<UserEntry> {
        let (user, domain) = account(authcid, &self.primary_domain);
        s.users.current().lookup(&user, &domain).cloned()
    }

    /// AUTH PLAIN/LOGIN: verify the password. Slow schemes (Argon2, bcrypt)
    /// run off the async threads. An unknown user or one without a usable
    /// password gets the same 535 as a wrong password, after as long: the
    /// password is checked against a decoy with the cost of one of the users'
    /// hashes, the same one every time for that name ([`Decoys`]).
    pub async fn check_password(
        &self,
        s: &Services,
        authcid: &str,
        password: String,
    ) -> PasswordAnswer {
        if !s.users.healthy() {
            return PasswordAnswer::Unavailable(Row::AuthTemporary.reply());
        }
        let stored = match self.lookup(s, authcid).map(|e| e.stored_password()) {
            Some(Ok(p)) => Some(p),
            None | Some(Err(PasswordError::NoPassword)) => None,
            Some(Err(e)) => {
                tracing::warn!(user = %authcid, error = %e, "stored password unusable");
                None
            }
        };
        if stored.as_ref().is_some_and(|p| p.scheme() == Scheme::Plain) {
            tracing::warn!(user = %authcid, "password stored as {{PLAIN}}; rehash it with `pillarbox users passwd`");
        }
        let against = match stored {
            Some(p) => Against::User(p),
            None => {
                let (user, domain) = account(authcid, &self.primary_domain);
                Against::Decoy {
                    decoys: s.users.decoys(),
                    key: self.decoy_key.clone(),
                    name: format!("{user}@{domain}"),
                }
            }
        };
        let verify = move || match against {
            Against::User(p) => p.verify(&password),
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

    /// AUTH CRAM-MD5/SCRAM-SHA-256: the secret the mechanism needs, if the
    /// stored password provides it (`None` for an unknown user too).
    pub fn secret(
        &self,
        s: &Services,
        authcid: &str,
        mechanism: Mechanism,
    ) -> Result<Option<Secret>, Reply> {
        if !s.users.healthy() {
            return Err(Row::AuthTemporary.reply());
        }
        let stored = self
            .lookup(s, authcid)
            .and_then(|e| e.stored_password().ok());
        Ok(stored.and_then(|p| match mechanism {
            Mechanism::CramMd5 => p.cram_md5().map(Secret::CramMd5),
            Mechanism::ScramSha256 => p.scram_sha256().map(Secret::Scram),
            Mechanism::Plain | Mechanism::Login => None,
        }))
    }

    /// After a success: forget this address's failures for this account only.
    /// Knowing one password proves nothing about the others, so failures for
    /// other accounts from the same address still count towards its ban.
    pub async fn succeeded(&self, s: &Services, ip: IpAddr, authcid: &str) {
        let (u, d) = account(authcid, &self.primary_domain);
        if let Err(e) = s
            .state
            .clear_auth_failures(ip.to_string(), format!("{u}@{d}"))
            .await
        {
            tracing::warn!(error = %e, "cannot clear authentication failures");
        }
    }

    /// Counts a failure for the address and the account. Each failure waits
    /// longer (by the larger count: an account under attack from many
    /// addresses slows down for all of them). Only the address's own failures
    /// ban it, after `auth.max_failures` within `auth.window`: failures for the
    /// account from elsewhere must not let an attacker get the account's owner
    /// banned. Trusted and loopback addresses are banned only with
    /// `auth.ban_trusted`.
    pub async fn failed(
        &self,
        s: &Services,
        ip: IpAddr,
        trusted: bool,
        authcid: Option<&str>,
    ) -> AfterFailure {
        let cfg = &self.cfg;
        let now = s.clock.now();
        let account = authcid.map(|a| {
            let (u, d) = account(a, &self.primary_domain);
            format!("{u}@{d}")
        });
        let counts = match s
            .state
            .record_auth_failure(ip.to_string(), account.clone(), now, cfg.window.0.as_secs())
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot record an authentication failure");
                pillarbox_state::FailureCounts {
                    from_address: 1,
                    for_account: 1,
                }
            }
        };
        let exempt = (trusted || ip.is_loopback()) && !cfg.ban_trusted;
        if counts.from_address >= cfg.max_failures && !exempt {
            let reason = format!(
                "{} failed logins from this address within {}s",
                counts.from_address,
                cfg.window.0.as_secs()
            );
            let until = now + cfg.ban_for.0.as_secs();
            if let Err(e) = s
                .state
                .ban(ip.to_string(), reason.clone(), Some(until))
                .await
            {
                tracing::error!(error = %e, "cannot record a ban");
            }
            tracing::warn!(client = %ip, reason, until, "banned");
            return AfterFailure::Banned;
        }
        let failures = counts.from_address.max(counts.for_account);
        AfterFailure::Delay((cfg.failure_delay.0 * failures).min(MAX_DELAY))
    }
}

/// What a PLAIN/LOGIN password is checked against.
enum Against {
    /// The user's stored password.
    User(StoredPassword),
    /// No usable password: the decoy for this name, and the answer is no.
    Decoy {
        decoys: std::sync::Arc<Decoys>,
        key: Vec<u8>,
        name: String,
    },
}
