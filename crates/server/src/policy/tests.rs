//! The policy seam in process: each check with an in-memory state store, a
//! fixed user directory and a fixed clock, so every rule (a ban that ends, a
//! greylisting delay) is checked without a network, a file or a sleep.

use std::net::IpAddr;
use std::sync::Arc;

use pillarbox_codes::Row;
use pillarbox_proto::address::{parse_forward_path, parse_reverse_path};
use pillarbox_proto::{ForwardPath, ReversePath};
use pillarbox_state::{MemoryState, StateStore};
use pillarbox_store::{MailboxAddr, MaildirStore, Modes};

use super::*;
use crate::aliases::Aliases;
use crate::auth::{AfterFailure, Authenticator};
use crate::config::{Config, Reserve};
use crate::services::{FixedClock, RecordingTelemetry, Services, StaticUsers};
use crate::storage::DiskWatch;

const T0: u64 = 1_800_000_000;
const USERS: &str = "alice@example.test:{PLAIN}secret::::::aliases=sales@example.test\n\
                     bob@example.test:{PLAIN}hunter2::::::userdb_quota_rule=*:storage=1K\n";

struct Fixture {
    services: Services,
    state: Arc<MemoryState>,
    clock: Arc<FixedClock>,
    telemetry: Arc<RecordingTelemetry>,
    policies: Policies,
    cfg: Config,
    _dir: tempfile::TempDir,
}

fn fixture(tune: impl FnOnce(&mut Config)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::embedded();
    cfg.data_dir = dir.path().to_path_buf();
    cfg.hostname = "mx.example.test".into();
    cfg.domains.local = vec!["example.test".into(), "other.test".into()];
    cfg.domains.catch_all = false;
    cfg.storage.reserve = Reserve::Bytes(0);
    tune(&mut cfg);
    let state = Arc::new(MemoryState::new());
    let clock = Arc::new(FixedClock::at(T0));
    let telemetry = Arc::new(RecordingTelemetry::default());
    let services = Services {
        state: state.clone(),
        users: Arc::new(StaticUsers::parse(USERS, "example.test")),
        clock: clock.clone(),
        telemetry: telemetry.clone(),
    };
    let store =
        Arc::new(MaildirStore::open(dir.path(), "mx.example.test", Modes::default()).unwrap());
    let disk = Arc::new(DiskWatch::new(dir.path().to_path_buf(), Reserve::Bytes(0)));
    let policies = Policies::standard(&cfg, store, disk, Arc::new(Aliases::none()));
    Fixture {
        services,
        state,
        clock,
        telemetry,
        policies,
        cfg,
        _dir: dir,
    }
}

fn stranger() -> Client {
    Client {
        ip: IpAddr::from([192, 0, 2, 10]),
        local_ip: IpAddr::from([192, 0, 2, 1]),
        trusted: false,
    }
}

fn session<'a>(client: &'a Client, user: Option<&'a str>) -> SessionInfo<'a> {
    SessionInfo {
        client,
        helo: Some("client.example.net"),
        authenticated: user,
        tls: false,
    }
}

fn from(s: &str) -> ReversePath {
    parse_reverse_path(s, false).unwrap()
}

fn to(s: &str) -> ForwardPath {
    parse_forward_path(s, false).unwrap()
}

impl Fixture {
    async fn rcpt(
        &self,
        client: &Client,
        user: Option<&str>,
        rcpt: &str,
    ) -> Decision<Vec<MailboxAddr>> {
        let (f, t) = (from("sender@example.net"), to(rcpt));
        let cx = RecipientAddress {
            session: session(client, user),
            from: &f,
            to: &t,
            size: None,
        };
        self.policies.recipient(&self.services, cx).await
    }
}

#[tokio::test]
async fn a_banned_address_is_refused_until_its_ban_ends() {
    let f = fixture(|_| {});
    let c = stranger();
    assert_eq!(f.policies.connect(&f.services, &c).await, Decision::GO_ON);
    f.state
        .ban(c.ip.to_string(), "test".into(), Some(T0 + 60))
        .await
        .unwrap();
    assert_eq!(
        f.policies.connect(&f.services, &c).await,
        Decision::Defer(Row::AuthTooManyFailures.reply())
    );
    f.clock.advance(60);
    assert_eq!(f.policies.connect(&f.services, &c).await, Decision::GO_ON);
    assert_eq!(f.telemetry.refusals().len(), 1);
    assert_eq!(f.telemetry.refusals()[0].1, "ban");
}

#[tokio::test]
async fn a_known_user_resolves_to_its_mailbox_and_an_unknown_one_is_refused() {
    let f = fixture(|_| {});
    let c = stranger();
    assert_eq!(
        f.rcpt(&c, None, "Alice@Example.TEST").await,
        Decision::Continue(vec![MailboxAddr::new("example.test", "alice").unwrap()])
    );
    assert_eq!(
        f.rcpt(&c, None, "nobody@example.test").await,
        Decision::Refuse(Row::NoSuchUser.reply())
    );
    // RFC 5321 4.5.1: postmaster is always taken, at the primary domain.
    assert_eq!(
        f.rcpt(&c, None, "Postmaster").await,
        Decision::Continue(vec![MailboxAddr::new("example.test", "postmaster").unwrap()])
    );
}

#[tokio::test]
async fn an_unreadable_users_file_defers_names_it_does_not_list_instead_of_bouncing() {
    let mut f = fixture(|_| {});
    f.services.users = Arc::new(StaticUsers::parse(USERS, "example.test").unhealthy());
    let c = stranger();
    assert_eq!(
        f.rcpt(&c, None, "carol@example.test").await,
        Decision::Defer(Row::LocalError.reply())
    );
    // Users of the last good copy still get their mail.
    assert!(matches!(
        f.rcpt(&c, None, "alice@example.test").await,
        Decision::Continue(_)
    ));
}

#[tokio::test]
async fn a_foreign_domain_is_relay_denied_unless_the_client_may_relay() {
    let f = fixture(|_| {});
    let c = stranger();
    assert_eq!(
        f.rcpt(&c, None, "friend@example.net").await,
        Decision::Refuse(Row::RelayDenied.reply())
    );
    assert_eq!(
        f.rcpt(&c, Some("alice@example.test"), "friend@example.net")
            .await,
        Decision::stop(Row::RemoteNotAvailable.reply())
    );
}

#[tokio::test]
async fn a_locked_mailbox_is_deferred_at_rcpt_and_again_at_delivery() {
    let f = fixture(|_| {});
    let c = stranger();
    let alice = MailboxAddr::new("example.test", "alice").unwrap();
    assert!(matches!(
        f.rcpt(&c, None, "alice@example.test").await,
        Decision::Continue(_)
    ));
    // Locked while the message comes in: the end of data still sees it.
    f.state
        .lock_mailbox("alice@example.test".into(), "restore".into(), None)
        .await
        .unwrap();
    let sender = from("sender@example.net");
    let boxes = [alice];
    let cx = DataCx {
        session: session(&c, None),
        from: &sender,
        mailboxes: &boxes,
        size: 100,
    };
    assert_eq!(
        f.policies.delivery(&f.services, cx).await,
        Ok(vec![Decision::Defer(Row::MailboxUnavailable.reply())])
    );
    assert_eq!(
        f.rcpt(&c, None, "alice@example.test").await,
        Decision::Defer(Row::MailboxUnavailable.reply())
    );
    f.state
        .disable_mailbox("alice@example.test".into(), "left".into())
        .await
        .unwrap();
    assert_eq!(
        f.rcpt(&c, None, "alice@example.test").await,
        Decision::Refuse(Row::MailboxDisabled.reply())
    );
}

#[tokio::test]
async fn an_unreadable_mailbox_state_defers_rather_than_delivers() {
    let f = fixture(|_| {});
    f.state.set_failing(true);
    assert_eq!(
        f.rcpt(&stranger(), None, "alice@example.test").await,
        Decision::Defer(Row::MailboxUnavailable.reply())
    );
}

#[tokio::test]
async fn greylisting_defers_a_new_triplet_until_its_delay_has_passed() {
    let f = fixture(|c| {
        c.greylist.enabled = true;
    });
    let c = stranger();
    let delay = f.cfg.greylist.delay.0.as_secs();
    assert_eq!(
        f.rcpt(&c, None, "alice@example.test").await,
        Decision::Defer(Row::Greylisted.reply_with(&delay.to_string()))
    );
    f.clock.advance(delay - 10);
    assert_eq!(
        f.rcpt(&c, None, "alice@example.test").await,
        Decision::Defer(Row::Greylisted.reply_with("10"))
    );
    f.clock.advance(10);
    assert!(matches!(
        f.rcpt(&c, None, "alice@example.test").await,
        Decision::Continue(_)
    ));
}

#[tokio::test]
async fn authenticated_and_trusted_clients_are_never_greylisted() {
    let f = fixture(|c| c.greylist.enabled = true);
    let c = stranger();
    assert!(matches!(
        f.rcpt(&c, Some("alice@example.test"), "bob@example.test")
            .await,
        Decision::Continue(_)
    ));
    let trusted = Client {
        trusted: true,
        ..stranger()
    };
    assert!(matches!(
        f.rcpt(&trusted, None, "bob@example.test").await,
        Decision::Continue(_)
    ));
}

#[tokio::test]
async fn greylisting_lets_mail_through_when_its_state_is_unavailable() {
    let f = fixture(|c| c.greylist.enabled = true);
    // The check alone: in the whole stage the mailbox state is read first
    // and a failing store defers there.
    let check = Greylisting::new(&f.cfg.greylist);
    f.state.set_failing(true);
    let c = stranger();
    let sender = from("sender@example.net");
    let mb = MailboxAddr::new("example.test", "alice").unwrap();
    let cx = RecipientCx {
        session: session(&c, None),
        from: &sender,
        mailbox: &mb,
        size: 1,
        stage: crate::services::Stage::Recipient,
    };
    assert_eq!(check.check(&f.services, cx).await, Decision::GO_ON);
}

#[tokio::test]
async fn an_authenticated_user_sends_only_as_itself_or_its_aliases() {
    let f = fixture(|_| {});
    let c = stranger();
    for (user, sender, ok) in [
        ("alice@example.test", "alice@example.test", true),
        ("alice", "ALICE@example.test", true),
        ("alice@example.test", "sales@example.test", true),
        ("alice@example.test", "", true),
        ("alice@example.test", "bob@example.test", false),
        ("bob@example.test", "sales@example.test", false),
    ] {
        let path = from(sender);
        let cx = SenderCx {
            session: session(&c, Some(user)),
            from: &path,
            size: None,
        };
        let want = if ok {
            Decision::GO_ON
        } else {
            Decision::stop(Row::SenderNotOwned.reply())
        };
        assert_eq!(
            f.policies.sender(&f.services, cx).await,
            want,
            "{user} as <{sender}>"
        );
    }
}

#[tokio::test]
async fn a_declared_size_over_the_quota_is_refused_at_rcpt() {
    let f = fixture(|_| {});
    let c = stranger();
    let (sender, rcpt) = (from("sender@example.net"), to("bob@example.test"));
    let ask = |size| RecipientAddress {
        session: session(&c, None),
        from: &sender,
        to: &rcpt,
        size: Some(size),
    };
    // bob's rule: 1 KiB.
    assert!(matches!(
        f.policies.recipient(&f.services, ask(1000)).await,
        Decision::Continue(_)
    ));
    assert_eq!(
        f.policies.recipient(&f.services, ask(2000)).await,
        Decision::Defer(Row::MailboxFull.reply())
    );
}

#[tokio::test]
async fn at_delivery_the_quota_is_checked_and_its_room_reserved_in_one_step() {
    let f = fixture(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(MaildirStore::open(dir.path(), "mx.example.test", Modes::default()).unwrap());
    let quotas = Quotas::new(&f.cfg, store);
    let bob = MailboxAddr::new("example.test", "bob").unwrap();
    // bob's rule: 1 KiB. Two messages of 600 bytes on their way in at once:
    // the second does not fit beside the room the first holds.
    assert_eq!(quotas.reserve(&f.services, &bob, 600), Ok(true));
    assert_eq!(
        quotas.reserve(&f.services, &bob, 600),
        Err(Row::MailboxFull.reply())
    );
    let r = f.telemetry.refusals();
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].0, r[0].1), (Stage::Delivery, "quota"));
    // What is reserved counts at RCPT too.
    assert_eq!(
        quotas.check_mailbox(&f.services.users.current(), &bob, 600),
        Err(Row::MailboxFull.reply())
    );
    // Given back (the first one landed elsewhere, or will not): room again.
    quotas.release(&bob, 600);
    assert_eq!(quotas.reserve(&f.services, &bob, 600), Ok(true));
}

/// A check written as a newcomer would: one type, one registration line.
struct NoMailFromNullSender;

impl SenderCheck for NoMailFromNullSender {
    fn name(&self) -> &'static str {
        "no-null-sender"
    }
    fn check<'a>(&'a self, _: &'a Services, cx: SenderCx<'a>) -> PolicyFuture<'a> {
        ready(match cx.from {
            ReversePath::Null => Decision::stop(Row::BadSenderSyntax.reply()),
            ReversePath::Mailbox(_) => Decision::GO_ON,
        })
    }
}

#[tokio::test]
async fn a_registered_check_runs_in_its_stage_and_its_refusal_is_reported() {
    let f = fixture(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(MaildirStore::open(dir.path(), "mx.example.test", Modes::default()).unwrap());
    let disk = Arc::new(DiskWatch::new(dir.path().to_path_buf(), Reserve::Bytes(0)));
    let policies = Policies::standard(&f.cfg, store, disk, Arc::new(Aliases::none()))
        .with_sender(NoMailFromNullSender);
    let c = stranger();
    let null = ReversePath::Null;
    let cx = SenderCx {
        session: session(&c, None),
        from: &null,
        size: None,
    };
    assert_eq!(
        policies.sender(&f.services, cx).await,
        Decision::Refuse(Row::BadSenderSyntax.reply())
    );
    let r = f.telemetry.refusals();
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].0, r[0].1),
        (crate::services::Stage::Sender, "no-null-sender")
    );
}

fn authenticator(cfg: &Config) -> Authenticator {
    Authenticator::new(cfg.auth.clone(), "example.test", vec![7; 32])
}

#[tokio::test]
async fn an_address_is_banned_after_its_own_failures_within_the_window() {
    let f = fixture(|c| c.auth.max_failures = 3);
    let auth = authenticator(&f.cfg);
    let ip = stranger().ip;
    for _ in 0..2 {
        assert!(matches!(
            auth.failed(&f.services, ip, false, Some("carol")).await,
            AfterFailure::Delay(_)
        ));
    }
    assert_eq!(
        auth.failed(&f.services, ip, false, Some("carol")).await,
        AfterFailure::Banned
    );
    assert!(f.state.ban_of(ip.to_string(), T0).await.unwrap().is_some());
}

#[tokio::test]
async fn failures_for_an_account_from_elsewhere_do_not_ban_its_owners_address() {
    let f = fixture(|c| c.auth.max_failures = 3);
    let auth = authenticator(&f.cfg);
    // An attacker spreads failures for alice over many addresses.
    for i in 0..5u8 {
        let _ = auth
            .failed(
                &f.services,
                IpAddr::from([198, 51, 100, i]),
                false,
                Some("alice"),
            )
            .await;
    }
    // Alice mistypes once from her own address: slowed, not banned.
    let own = IpAddr::from([203, 0, 113, 5]);
    assert!(matches!(
        auth.failed(&f.services, own, false, Some("alice")).await,
        AfterFailure::Delay(_)
    ));
    assert!(f.state.ban_of(own.to_string(), T0).await.unwrap().is_none());
}

#[tokio::test]
async fn a_good_login_does_not_wipe_failures_for_other_accounts_from_that_address() {
    let f = fixture(|c| c.auth.max_failures = 5);
    let auth = authenticator(&f.cfg);
    let ip = stranger().ip;
    // Rounds of wrong passwords for carol with a good login as bob between.
    let mut banned = false;
    for _ in 0..3 {
        for _ in 0..2 {
            banned |=
                auth.failed(&f.services, ip, false, Some("carol")).await == AfterFailure::Banned;
        }
        auth.succeeded(&f.services, ip, "bob").await;
    }
    assert!(
        banned,
        "six guesses for carol in the window ban the address"
    );
}

#[tokio::test]
async fn loopback_is_not_banned_unless_configured() {
    let f = fixture(|c| c.auth.max_failures = 1);
    let auth = authenticator(&f.cfg);
    let lo = IpAddr::from([127, 0, 0, 1]);
    assert!(matches!(
        auth.failed(&f.services, lo, false, None).await,
        AfterFailure::Delay(_)
    ));
}
