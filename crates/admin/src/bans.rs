//! Bans: the client addresses refused after too many failed logins, and lifting
//! a ban.

use std::net::IpAddr;

use serde::Serialize;

use crate::{Admin, AdminError};

/// A ban in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BanEntry {
    /// The banned address, as stored (the text of an `IpAddr`).
    pub address: String,
    /// Why, e.g. `3 failed logins`.
    pub reason: String,
    /// When it ends (unix seconds); `None`: when lifted.
    pub until: Option<u64>,
    /// Seconds from now until it ends; `None`: when lifted.
    pub remaining: Option<u64>,
}

/// The outcome of an unban.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unbanned {
    /// The address.
    pub address: IpAddr,
    /// There was a ban to lift.
    pub was_banned: bool,
}

impl Admin {
    /// Every ban in force now, sorted by address.
    pub async fn bans(&self) -> Result<Vec<BanEntry>, AdminError> {
        let now = self.now();
        let bans = self.state()?.list_bans(now).await?;
        Ok(bans
            .into_iter()
            .map(|(address, ban)| BanEntry {
                address,
                reason: ban.reason,
                until: ban.until,
                remaining: ban.until.map(|t| t.saturating_sub(now)),
            })
            .collect())
    }

    /// Lifts the ban on `address`, and forgets its failed logins (else the next
    /// failure would ban it again at once).
    pub async fn unban(&self, address: IpAddr) -> Result<Unbanned, AdminError> {
        let state = self.state()?;
        let was_banned = state.unban(address.to_string()).await?;
        state.clear_address_failures(address.to_string()).await?;
        Ok(Unbanned {
            address,
            was_banned,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_env::Env;
    use pillarbox_state::StateStore;

    const NOW: u64 = 1_700_000_000;

    #[tokio::test]
    async fn bans_are_listed_and_unban_clears_the_failures() {
        let env = Env::new();
        let (admin, state) = env.admin_at(NOW);
        let ip: IpAddr = "192.0.2.7".parse().expect("ip");
        for _ in 0..3 {
            state
                .record_auth_failure(ip.to_string(), Some("alice@example.test".into()), NOW, 600)
                .await
                .expect("failure");
        }
        state
            .ban(ip.to_string(), "3 failed logins".into(), Some(NOW + 3_600))
            .await
            .expect("ban");
        state
            .ban("2001:db8::1".into(), "by hand".into(), None)
            .await
            .expect("ban");

        let bans = admin.bans().await.expect("bans");
        assert_eq!(
            bans,
            vec![
                BanEntry {
                    address: "192.0.2.7".into(),
                    reason: "3 failed logins".into(),
                    until: Some(NOW + 3_600),
                    remaining: Some(3_600),
                },
                BanEntry {
                    address: "2001:db8::1".into(),
                    reason: "by hand".into(),
                    until: None,
                    remaining: None,
                },
            ]
        );

        let unbanned = admin.unban(ip).await.expect("unban");
        assert!(unbanned.was_banned);
        assert_eq!(admin.bans().await.expect("bans").len(), 1);
        let counts = state
            .record_auth_failure(ip.to_string(), None, NOW + 1, 600)
            .await
            .expect("failure");
        assert_eq!(counts.from_address, 1, "the earlier failures are forgotten");
        assert!(!admin.unban(ip).await.expect("unban").was_banned);
    }
}
