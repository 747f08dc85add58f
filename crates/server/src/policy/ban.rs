//! Connection stage: a client address banned after too many failed logins is
//! refused before the greeting (`421 4.7.0`).

use pillarbox_codes::Row;

use super::{Client, ConnectCheck, Decision, PolicyFuture};
use crate::services::Services;

/// Refuses banned addresses.
pub struct Bans;

impl ConnectCheck for Bans {
    fn name(&self) -> &'static str {
        "ban"
    }

    fn check<'a>(&'a self, s: &'a Services, client: &'a Client) -> PolicyFuture<'a> {
        PolicyFuture::boxed(async move {
            match s.state.ban_of(client.ip.to_string(), s.clock.now()).await {
                Ok(Some(ban)) => {
                    tracing::warn!(peer = %client.ip, reason = %ban.reason, until = ban.until, "refused: banned");
                    Decision::stop(Row::AuthTooManyFailures.reply())
                }
                Ok(None) => Decision::GO_ON,
                Err(e) => {
                    // A ban that cannot be read is not enforced: refusing every
                    // client while the store is down would be worse.
                    tracing::error!(error = %e, "cannot read bans");
                    Decision::GO_ON
                }
            }
        })
    }
}
