//! Greylisting policy: who is never greylisted, and the store's verdict for
//! the rest (postgrey's rules, state in the state database).

use std::net::IpAddr;

use pillarbox_codes::Reply;
use pillarbox_codes::Row;
use pillarbox_store::greylist::{self, Decision};

use crate::server::Shared;

/// The RCPT verdict: `None` to go on, or a `450 4.2.0` to send.
/// Authenticated and trusted clients are exempt (the caller checks those).
pub fn check(shared: &Shared, client: IpAddr, sender: &str, recipient: &str) -> Option<Reply> {
    let g = &shared.cfg.greylist;
    if !g.enabled {
        return None;
    }
    if g.whitelist_clients.iter().any(|n| n.contains(client)) {
        return None;
    }
    let sender = sender.to_lowercase();
    let sender_domain = sender.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
    if g.whitelist_senders
        .iter()
        .any(|w| w.eq_ignore_ascii_case(&sender) || w.eq_ignore_ascii_case(sender_domain))
    {
        return None;
    }
    if g.whitelist_recipients
        .iter()
        .any(|w| w.eq_ignore_ascii_case(recipient))
    {
        return None;
    }
    match greylist::check(
        &shared.state,
        &shared.greylist,
        client,
        &sender,
        recipient,
        crate::auth::now(),
    ) {
        Ok(Decision::Pass) | Ok(Decision::PassWhitelisted) => None,
        Ok(Decision::Greylisted { retry_in }) => {
            tracing::info!(client = %client, sender, recipient, retry_in, "greylisted");
            Some(Row::Greylisted.reply_with(&retry_in.to_string()))
        }
        Err(e) => {
            // Greylisting is a filter, not a gate: when its state cannot be read, let mail through.
            tracing::error!(error = %e, "greylist state unavailable; not greylisting");
            None
        }
    }
}
