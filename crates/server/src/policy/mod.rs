//! The policy seam: every check the server makes of a client, organised by SMTP
//! stage, each asynchronous, each returning one [`Decision`].
//!
//! A check is a type implementing the trait of its stage ([`ConnectCheck`],
//! [`HeloCheck`], [`SenderCheck`], [`RecipientCheck`], [`DataCheck`]; a
//! recipient's mailbox is found first by the one [`Resolve`]r). It gets the
//! [`Services`] (state store, users, clock, telemetry) with every call and
//! keeps its own settings. [`Policies::standard`] registers the checks the
//! server runs, in order; adding one is a module here and a line there, with
//! no change to the session driver. The first check that does not continue
//! decides; its reply is a row of the reply contract.
//!
//! Time comes from [`Services::clock`], so each check is tested with a fixed
//! clock, an in-memory state store and a fixed user directory (see the tests
//! of each module).

use std::net::IpAddr;
use std::sync::Arc;

use pillarbox_codes::{Reply, ReplyClass};
use pillarbox_proto::{ForwardPath, ReversePath};
use pillarbox_state::ReadyOr;
use pillarbox_store::{MailboxAddr, MaildirStore};

use crate::aliases::Aliases;
use crate::config::Config;
use crate::services::{Services, Stage};
use crate::storage::DiskWatch;

mod ban;
mod greylist;
mod mailbox_state;
mod quota;
mod reserve;
pub mod resolve;
mod sender_owner;

pub use ban::Bans;
pub use greylist::Greylisting;
pub use mailbox_state::MailboxStates;
pub use quota::{limit_for, Quotas};
pub use reserve::DiskReserve;
pub use resolve::LocalRecipients;
pub use sender_owner::SenderOwnership;

#[cfg(test)]
mod tests;

/// What a check says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<T = ()> {
    /// Go on, with what the check found (the resolved mailbox, say).
    Continue(T),
    /// Refuse for good: a 5xx row of the reply contract.
    Refuse(Reply),
    /// Not now: a 4xx row; the client may try again later.
    Defer(Reply),
}

impl<T> Decision<T> {
    /// Refuse or defer with `reply`, by its class (RFC 5321 4.2.1: 4yz is
    /// transient, 5yz permanent).
    pub fn stop(reply: Reply) -> Self {
        match reply.class() {
            ReplyClass::TransientNegative => Decision::Defer(reply),
            _ => Decision::Refuse(reply),
        }
    }

    /// The reply to send when the decision is not to continue.
    pub fn into_result(self) -> Result<T, Reply> {
        match self {
            Decision::Continue(t) => Ok(t),
            Decision::Refuse(r) | Decision::Defer(r) => Err(r),
        }
    }
}

impl Decision<()> {
    /// Go on.
    pub const GO_ON: Decision<()> = Decision::Continue(());
}

/// The future a check returns: a decision at hand costs no allocation
/// ([`ready`]); one that must wait (a store, DNS) is boxed
/// ([`PolicyFuture::boxed`]). Checks run at every MAIL and RCPT.
pub type PolicyFuture<'a, T = ()> = ReadyOr<'a, Decision<T>>;

/// A decision that needs no waiting, as a [`PolicyFuture`].
pub fn ready<'a, T>(d: Decision<T>) -> PolicyFuture<'a, T> {
    ReadyOr::ready(d)
}

/// Who the client is, as the connection tells.
#[derive(Debug, Clone)]
pub struct Client {
    /// The client's address.
    pub ip: IpAddr,
    /// Our address the client connected to (an address literal naming it is ours).
    pub local_ip: IpAddr,
    /// The client is in `relay.trusted_networks`.
    pub trusted: bool,
}

/// The session so far, as every check after the greeting sees it.
#[derive(Debug, Clone, Copy)]
pub struct SessionInfo<'a> {
    /// Who is connected.
    pub client: &'a Client,
    /// The EHLO/HELO name, once given.
    pub helo: Option<&'a str>,
    /// The authenticated account (the AUTH identity as given), once any.
    pub authenticated: Option<&'a str>,
    /// The connection is under TLS.
    pub tls: bool,
}

impl SessionInfo<'_> {
    /// Authenticated or trusted: may relay, and is spared greylisting.
    pub fn privileged(&self) -> bool {
        self.client.trusted || self.authenticated.is_some()
    }
}

/// MAIL FROM, for the sender checks.
#[derive(Debug, Clone, Copy)]
pub struct SenderCx<'a> {
    /// The session.
    pub session: SessionInfo<'a>,
    /// The reverse path.
    pub from: &'a ReversePath,
    /// The declared SIZE (RFC 1870), if any.
    pub size: Option<u64>,
}

/// One recipient, before its mailbox is known.
#[derive(Debug, Clone, Copy)]
pub struct RecipientAddress<'a> {
    /// The session.
    pub session: SessionInfo<'a>,
    /// The transaction's reverse path.
    pub from: &'a ReversePath,
    /// The forward path.
    pub to: &'a ForwardPath,
    /// The declared SIZE of the message (RFC 1870), if any.
    pub size: Option<u64>,
}

/// One recipient with its mailbox: at RCPT ([`Stage::Recipient`]) with the
/// declared size, and again at the end of data ([`Stage::Delivery`]) with the
/// stored size.
#[derive(Debug, Clone, Copy)]
pub struct RecipientCx<'a> {
    /// The session.
    pub session: SessionInfo<'a>,
    /// The transaction's reverse path.
    pub from: &'a ReversePath,
    /// The mailbox the recipient resolved to.
    pub mailbox: &'a MailboxAddr,
    /// Bytes the message takes, as far as known (at RCPT: the declared SIZE or 1).
    pub size: u64,
    /// At RCPT or at delivery.
    pub stage: Stage,
}

/// The whole message, after its end of data.
#[derive(Debug, Clone, Copy)]
pub struct DataCx<'a> {
    /// The session.
    pub session: SessionInfo<'a>,
    /// The transaction's reverse path.
    pub from: &'a ReversePath,
    /// Every recipient's mailbox, once each.
    pub mailboxes: &'a [MailboxAddr],
    /// The message's size as stored.
    pub size: u64,
}

/// A check at connection time, before the greeting.
pub trait ConnectCheck: Send + Sync {
    /// The check's name, in logs and metrics.
    fn name(&self) -> &'static str;
    /// The decision for this client.
    fn check<'a>(&'a self, services: &'a Services, client: &'a Client) -> PolicyFuture<'a>;
}

/// A check of the EHLO/HELO name.
pub trait HeloCheck: Send + Sync {
    /// The check's name, in logs and metrics.
    fn name(&self) -> &'static str;
    /// The decision for this greeting.
    fn check<'a>(
        &'a self,
        services: &'a Services,
        session: SessionInfo<'a>,
        name: &'a str,
    ) -> PolicyFuture<'a>;
}

/// A check at MAIL FROM.
pub trait SenderCheck: Send + Sync {
    /// The check's name, in logs and metrics.
    fn name(&self) -> &'static str;
    /// The decision for this sender.
    fn check<'a>(&'a self, services: &'a Services, cx: SenderCx<'a>) -> PolicyFuture<'a>;
}

/// Finds the mailboxes of a recipient (one, or several through an alias), or
/// refuses it (unknown user, relay denied).
pub trait Resolve: Send + Sync {
    /// The mailboxes `cx.to` is delivered to: at least one, each once.
    fn resolve<'a>(
        &'a self,
        services: &'a Services,
        cx: RecipientAddress<'a>,
    ) -> PolicyFuture<'a, Vec<MailboxAddr>>;
}

/// A check of one recipient and its mailbox.
pub trait RecipientCheck: Send + Sync {
    /// The check's name, in logs and metrics.
    fn name(&self) -> &'static str;
    /// Whether the check runs again at the end of data, with the stored size
    /// (a lock set, or a quota filled, while the message came in).
    fn at_delivery(&self) -> bool {
        false
    }
    /// The decision for this recipient.
    fn check<'a>(&'a self, services: &'a Services, cx: RecipientCx<'a>) -> PolicyFuture<'a>;
}

/// A check of the whole message after its end of data.
pub trait DataCheck: Send + Sync {
    /// The check's name, in logs and metrics.
    fn name(&self) -> &'static str;
    /// The decision for this message.
    fn check<'a>(&'a self, services: &'a Services, cx: DataCx<'a>) -> PolicyFuture<'a>;
}

/// The checks the server runs, by stage, in order.
pub struct Policies {
    connect: Vec<Box<dyn ConnectCheck>>,
    helo: Vec<Box<dyn HeloCheck>>,
    sender: Vec<Box<dyn SenderCheck>>,
    resolver: Box<dyn Resolve>,
    recipient: Vec<Box<dyn RecipientCheck>>,
    data: Vec<Box<dyn DataCheck>>,
}

impl Policies {
    /// No checks but `resolver`; add them with the `with_*` methods.
    pub fn new(resolver: impl Resolve + 'static) -> Self {
        Self {
            connect: Vec::new(),
            helo: Vec::new(),
            sender: Vec::new(),
            resolver: Box::new(resolver),
            recipient: Vec::new(),
            data: Vec::new(),
        }
    }

    /// The server's checks, as configured. The order is the order they run in;
    /// the first that does not continue decides.
    pub fn standard(
        cfg: &Config,
        store: Arc<MaildirStore>,
        disk: Arc<DiskWatch>,
        aliases: Arc<Aliases>,
    ) -> Self {
        Self::new(LocalRecipients::new(cfg, aliases))
            .with_connect(Bans)
            .with_sender(SenderOwnership::new(cfg))
            .with_sender(DiskReserve::new(disk.clone()))
            .with_recipient(DiskReserve::new(disk))
            .with_recipient(MailboxStates)
            .with_recipient(Quotas::new(cfg, store))
            .with_recipient(Greylisting::new(&cfg.greylist))
    }

    /// Adds a connection check.
    pub fn with_connect(mut self, c: impl ConnectCheck + 'static) -> Self {
        self.connect.push(Box::new(c));
        self
    }

    /// Adds a greeting check.
    pub fn with_helo(mut self, c: impl HeloCheck + 'static) -> Self {
        self.helo.push(Box::new(c));
        self
    }

    /// Adds a sender check.
    pub fn with_sender(mut self, c: impl SenderCheck + 'static) -> Self {
        self.sender.push(Box::new(c));
        self
    }

    /// Adds a recipient check (run after the mailbox is resolved).
    pub fn with_recipient(mut self, c: impl RecipientCheck + 'static) -> Self {
        self.recipient.push(Box::new(c));
        self
    }

    /// Adds a check of the whole message.
    pub fn with_data(mut self, c: impl DataCheck + 'static) -> Self {
        self.data.push(Box::new(c));
        self
    }

    /// The connection stage.
    pub async fn connect(&self, s: &Services, client: &Client) -> Decision {
        for c in &self.connect {
            let d = c.check(s, client).await;
            if let Some(d) = stopped(s, Stage::Connect, c.name(), d) {
                return d;
            }
        }
        Decision::GO_ON
    }

    /// The greeting stage.
    pub async fn helo(&self, s: &Services, session: SessionInfo<'_>, name: &str) -> Decision {
        for c in &self.helo {
            let d = c.check(s, session, name).await;
            if let Some(d) = stopped(s, Stage::Helo, c.name(), d) {
                return d;
            }
        }
        Decision::GO_ON
    }

    /// The sender stage.
    pub async fn sender(&self, s: &Services, cx: SenderCx<'_>) -> Decision {
        for c in &self.sender {
            let d = c.check(s, cx).await;
            if let Some(d) = stopped(s, Stage::Sender, c.name(), d) {
                return d;
            }
        }
        Decision::GO_ON
    }

    /// The recipient stage: the mailboxes, then every recipient check on
    /// each of them.
    pub async fn recipient(
        &self,
        s: &Services,
        cx: RecipientAddress<'_>,
    ) -> Decision<Vec<MailboxAddr>> {
        let mailboxes = match self.resolver.resolve(s, cx).await {
            Decision::Continue(m) => m,
            Decision::Refuse(r) => {
                return report(s, Stage::Recipient, "resolve", Decision::Refuse(r))
            }
            Decision::Defer(r) => {
                return report(s, Stage::Recipient, "resolve", Decision::Defer(r))
            }
        };
        for mailbox in &mailboxes {
            let rcx = RecipientCx {
                session: cx.session,
                from: cx.from,
                mailbox,
                size: cx.size.unwrap_or(1),
                stage: Stage::Recipient,
            };
            for c in &self.recipient {
                let d = c.check(s, rcx).await;
                if let Some(d) = stopped(s, Stage::Recipient, c.name(), d) {
                    return d;
                }
            }
        }
        Decision::Continue(mailboxes)
    }

    /// The end of data: the message checks, then each mailbox's checks that
    /// run again at delivery, with the stored size. All or nothing: one
    /// mailbox that can no longer take the message stops it for everyone.
    pub async fn delivery(&self, s: &Services, cx: DataCx<'_>) -> Result<Vec<Decision>, Reply> {
        for c in &self.data {
            let d = c.check(s, cx).await;
            if let Some(Decision::Refuse(r) | Decision::Defer(r)) =
                stopped::<()>(s, Stage::Data, c.name(), d)
            {
                return Err(r);
            }
        }
        let mut decisions = Vec::with_capacity(cx.mailboxes.len());
        for mailbox in cx.mailboxes {
            decisions.push(self.recheck(s, cx.session, cx.from, mailbox, cx.size).await);
        }
        Ok(decisions)
    }

    /// The recipient checks that run again when a message is delivered
    /// (`at_delivery`), for one mailbox: at the end of data, and before each
    /// attempt from the queue (a lock found then defers it; the quota is
    /// `Quotas::reserve`'s, which checks and reserves in one step).
    pub async fn recheck(
        &self,
        s: &Services,
        session: SessionInfo<'_>,
        from: &ReversePath,
        mailbox: &MailboxAddr,
        size: u64,
    ) -> Decision {
        let rcx = RecipientCx {
            session,
            from,
            mailbox,
            size,
            stage: Stage::Delivery,
        };
        for c in self.recipient.iter().filter(|c| c.at_delivery()) {
            let d = c.check(s, rcx).await;
            if let Some(d) = stopped(s, Stage::Delivery, c.name(), d) {
                return d;
            }
        }
        Decision::GO_ON
    }
}

/// A decision that stops the stage, reported to telemetry; `None` to go on.
fn stopped<T>(s: &Services, stage: Stage, check: &'static str, d: Decision) -> Option<Decision<T>> {
    match d {
        Decision::Continue(()) => None,
        Decision::Refuse(r) => Some(report(s, stage, check, Decision::Refuse(r))),
        Decision::Defer(r) => Some(report(s, stage, check, Decision::Defer(r))),
    }
}

/// Tells telemetry of a refusal or deferral and passes it on.
fn report<T>(s: &Services, stage: Stage, check: &'static str, d: Decision<T>) -> Decision<T> {
    if let Decision::Refuse(r) | Decision::Defer(r) = &d {
        s.telemetry.refused(stage, check, r);
    }
    d
}
