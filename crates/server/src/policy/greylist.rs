//! Greylisting at RCPT (`450 4.2.0`), postgrey's rules: who is never greylisted
//! here, the decision and its records in the state store.

use pillarbox_codes::Row;
use pillarbox_proto::ReversePath;
use pillarbox_state::{Decision as Grey, GreylistConfig};

use super::{ready, Decision, PolicyFuture, RecipientCheck, RecipientCx};
use crate::config::{Greylist, IpNet};
use crate::services::Services;

/// Greylists unknown (client network, sender, recipient) triplets.
pub struct Greylisting {
    enabled: bool,
    rules: GreylistConfig,
    whitelist_clients: Vec<IpNet>,
    whitelist_senders: Vec<String>,
    whitelist_recipients: Vec<String>,
}

impl Greylisting {
    /// As `[greylist]` configures it.
    pub fn new(cfg: &Greylist) -> Self {
        Self {
            enabled: cfg.enabled,
            rules: cfg.store_config(),
            whitelist_clients: cfg.whitelist_clients.clone(),
            whitelist_senders: cfg.whitelist_senders.clone(),
            whitelist_recipients: cfg.whitelist_recipients.clone(),
        }
    }

    /// The parameters the state store's purge keeps entries by.
    pub fn rules(&self) -> &GreylistConfig {
        &self.rules
    }

    fn exempt(&self, cx: &RecipientCx<'_>, sender: &str, recipient: &str) -> bool {
        // Authenticated and trusted clients are never greylisted.
        if cx.session.privileged() {
            return true;
        }
        if self
            .whitelist_clients
            .iter()
            .any(|n| n.contains(cx.session.client.ip))
        {
            return true;
        }
        let sender_domain = sender.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        self.whitelist_senders
            .iter()
            .any(|w| w.eq_ignore_ascii_case(sender) || w.eq_ignore_ascii_case(sender_domain))
            || self
                .whitelist_recipients
                .iter()
                .any(|w| w.eq_ignore_ascii_case(recipient))
    }
}

impl RecipientCheck for Greylisting {
    fn name(&self) -> &'static str {
        "greylist"
    }

    fn check<'a>(&'a self, s: &'a Services, cx: RecipientCx<'a>) -> PolicyFuture<'a> {
        if !self.enabled {
            return ready(Decision::GO_ON);
        }
        PolicyFuture::boxed(async move {
            let sender = match cx.from {
                ReversePath::Mailbox(m) => m.to_string().to_lowercase(),
                ReversePath::Null => String::new(),
            };
            let recipient = cx.mailbox.to_string();
            if self.exempt(&cx, &sender, &recipient) {
                return Decision::GO_ON;
            }
            let client = cx.session.client.ip;
            let triplet =
                pillarbox_store::greylist::triplet(&self.rules, client, &sender, &recipient);
            match s.state.greylist(&self.rules, triplet, s.clock.now()).await {
                Ok(Grey::Pass) | Ok(Grey::PassWhitelisted) => Decision::GO_ON,
                Ok(Grey::Greylisted { retry_in }) => {
                    tracing::info!(client = %client, sender, recipient, retry_in, "greylisted");
                    Decision::stop(Row::Greylisted.reply_with(&retry_in.to_string()))
                }
                Err(e) => {
                    // Greylisting is a filter, not a gate: when its state cannot
                    // be read, mail goes through.
                    tracing::error!(error = %e, "greylist state unavailable; not greylisting");
                    Decision::GO_ON
                }
            }
        })
    }
}
