//! Mailbox quotas (`452 4.2.2`, or `552 5.2.2` where declared permanent): at RCPT
//! with the declared SIZE (RFC 1870: we know then whether the message would
//! overflow), and again at delivery with the stored size, where the check
//! also reserves the room ([`Quotas::reserve`]: what the queue holds for a
//! mailbox counts). Usage is the Maildir++ `maildirsize` file Dovecot's
//! `quota = maildir` shares.

use std::sync::Arc;

use pillarbox_codes::{Reply, Row};
use pillarbox_store::quota::QuotaLimit;
use pillarbox_store::{MailboxAddr, MaildirStore, UserDirectory};

use super::{ready, Decision, PolicyFuture, RecipientCheck, RecipientCx};
use crate::config::{Config, Quota, QuotaExceeded};
use crate::services::{Services, Stage};

/// Refuses messages that would overflow a mailbox's quota.
pub struct Quotas {
    cfg: Quota,
    store: Arc<MaildirStore>,
}

impl Quotas {
    /// As `[quota]` configures it, for mailboxes of `store`.
    pub fn new(cfg: &Config, store: Arc<MaildirStore>) -> Self {
        Self {
            cfg: cfg.quota.clone(),
            store,
        }
    }

    /// Would `bytes` more (one message) overflow `mb`?
    pub fn check_mailbox(
        &self,
        users: &UserDirectory,
        mb: &MailboxAddr,
        bytes: u64,
    ) -> Result<(), Reply> {
        let limit = limit_for(&self.cfg, users, mb);
        if !limit.is_limited() {
            return Ok(());
        }
        // A mailbox that does not exist yet holds nothing: `usage` says so.
        let path = self.store.maildir_path(mb);
        let usage = self.store.quota().usage(&path, &limit).map(|mut u| {
            // What the queue holds for it counts: it is on its way in.
            let p = self.store.quota().pending(&path);
            u.bytes += p.bytes;
            u.messages += p.messages;
            u
        });
        match usage {
            Ok(u) if limit.would_exceed(u, bytes, 1) => {
                tracing::info!(mailbox = %mb, used = u.bytes, messages = u.messages, adding = bytes, "over quota");
                Err(self.full())
            }
            Ok(_) => Ok(()),
            Err(e) => {
                // Cannot tell: do not refuse mail for a bookkeeping problem.
                tracing::warn!(mailbox = %mb, error = %e, "cannot read quota usage");
                Ok(())
            }
        }
    }

    /// The quota check at delivery (the end of data, and each attempt from
    /// the queue): checks that a message of `bytes` fits in `mb` and
    /// reserves the room until [`Self::release`] (after the copy is made, or
    /// when it will not be), in one step, so messages committed together
    /// cannot overshoot the quota. A refusal is told to telemetry as the
    /// `quota` check's. `Ok(false)`: no limit, nothing reserved.
    pub fn reserve(&self, s: &Services, mb: &MailboxAddr, bytes: u64) -> Result<bool, Reply> {
        let r = self.reserve_room(&s.users.current(), mb, bytes);
        if let Err(reply) = &r {
            s.telemetry.refused(Stage::Delivery, "quota", reply);
        }
        r
    }

    fn reserve_room(
        &self,
        users: &UserDirectory,
        mb: &MailboxAddr,
        bytes: u64,
    ) -> Result<bool, Reply> {
        let limit = limit_for(&self.cfg, users, mb);
        if !limit.is_limited() {
            return Ok(false);
        }
        match self
            .store
            .quota()
            .reserve(&self.store.maildir_path(mb), &limit, bytes)
        {
            Ok(true) => Ok(true),
            Ok(false) => {
                tracing::info!(mailbox = %mb, adding = bytes, "over quota with what is queued for it");
                Err(self.full())
            }
            Err(e) => {
                tracing::warn!(mailbox = %mb, error = %e, "cannot read quota usage");
                Ok(false)
            }
        }
    }

    /// Gives back a reservation of [`Self::reserve`].
    pub fn release(&self, mb: &MailboxAddr, bytes: u64) {
        self.store
            .quota()
            .release(&self.store.maildir_path(mb), bytes);
    }

    /// The refusal of a full mailbox, as `[quota] exceeded` says.
    fn full(&self) -> Reply {
        match self.cfg.exceeded {
            QuotaExceeded::Temporary => Row::MailboxFull.reply(),
            QuotaExceeded::Permanent => Row::MailboxFullPermanent.reply(),
        }
    }

    /// Records a delivered message of `stored` bytes in every limited
    /// recipient's `maildirsize`.
    pub fn record_delivery(&self, users: &UserDirectory, boxes: &[MailboxAddr], stored: u64) {
        for mb in boxes {
            let limit = limit_for(&self.cfg, users, mb);
            if !limit.is_limited() {
                continue;
            }
            if let Err(e) =
                self.store
                    .quota()
                    .record(&self.store.maildir_path(mb), &limit, stored as i64, 1)
            {
                tracing::warn!(mailbox = %mb, error = %e, "cannot update maildirsize");
            }
        }
    }
}

impl RecipientCheck for Quotas {
    fn name(&self) -> &'static str {
        "quota"
    }

    /// At delivery the quota is [`Quotas::reserve`]'s: checked and reserved
    /// in one step.
    fn at_delivery(&self) -> bool {
        false
    }

    fn check<'a>(&'a self, s: &'a Services, cx: RecipientCx<'a>) -> PolicyFuture<'a> {
        ready(
            match self.check_mailbox(&s.users.current(), cx.mailbox, cx.size) {
                Ok(()) => Decision::GO_ON,
                Err(r) => Decision::stop(r),
            },
        )
    }
}

/// The quota of a mailbox: the user's `userdb_quota_rule` (or `quota_rule`)
/// from the users file, else `[quota] default` and `messages`.
pub fn limit_for(cfg: &Quota, users: &UserDirectory, mb: &MailboxAddr) -> QuotaLimit {
    if let Some(rule) = users.lookup(&mb.user, &mb.domain).and_then(|u| {
        u.extra_field("userdb_quota_rule")
            .or_else(|| u.extra_field("quota_rule"))
    }) {
        if let Some(q) = QuotaLimit::parse_dovecot_rule(rule) {
            return q;
        }
        tracing::warn!(user = %mb, rule, "quota rule not understood; using the default");
    }
    QuotaLimit {
        bytes: Some(cfg.default.0).filter(|b| *b > 0),
        messages: Some(cfg.messages).filter(|m| *m > 0),
    }
}
