//! Locked (`450 4.2.1`) and disabled (`550 5.2.1`) mailboxes, at RCPT and again
//! at the end of data, so a lock set while a message came in still covers it.

use pillarbox_codes::Row;
use pillarbox_state::MailboxState;

use super::{Decision, PolicyFuture, RecipientCheck, RecipientCx};
use crate::services::Services;

/// Refuses mailboxes that are locked or disabled.
pub struct MailboxStates;

impl RecipientCheck for MailboxStates {
    fn name(&self) -> &'static str {
        "mailbox-state"
    }

    fn at_delivery(&self) -> bool {
        true
    }

    fn check<'a>(&'a self, s: &'a Services, cx: RecipientCx<'a>) -> PolicyFuture<'a> {
        PolicyFuture::boxed(async move {
            let mb = cx.mailbox;
            match s.state.mailbox_state(mb, s.clock.now()).await {
                Ok(MailboxState::Open) => Decision::GO_ON,
                Ok(MailboxState::Locked { reason, .. }) => {
                    tracing::info!(mailbox = %mb, reason, "mailbox locked");
                    Decision::stop(Row::MailboxUnavailable.reply())
                }
                Ok(MailboxState::Disabled { reason }) => {
                    tracing::info!(mailbox = %mb, reason, "mailbox disabled");
                    Decision::stop(Row::MailboxDisabled.reply())
                }
                Err(e) => {
                    // Unknown state: defer rather than deliver into a mailbox
                    // under maintenance.
                    tracing::error!(mailbox = %mb, error = %e, "cannot read mailbox state");
                    Decision::stop(Row::MailboxUnavailable.reply())
                }
            }
        })
    }
}
