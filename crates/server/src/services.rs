//! The services every policy check and the session driver are given, injected
//! rather than reached for: the state store, the user directory, the clock and
//! the telemetry sink. Tests build a [`Services`] from fakes
//! ([`pillarbox_state::MemoryState`], [`StaticUsers`], [`FixedClock`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use pillarbox_codes::Reply;
use pillarbox_state::StateStore;
use pillarbox_store::password::Decoys;
use pillarbox_store::UserDirectory;

use crate::directory::MechanismSupport;

/// What a check may use.
#[derive(Clone)]
pub struct Services {
    /// Greylisting, authentication failures and bans, mailbox states.
    pub state: Arc<dyn StateStore>,
    /// The users.
    pub users: Arc<dyn Users>,
    /// Time, as unix seconds; never read elsewhere in policy code.
    pub clock: Arc<dyn Clock>,
    /// Where decisions are reported.
    pub telemetry: Arc<dyn Telemetry>,
}

/// The current time in unix seconds.
pub trait Clock: Send + Sync {
    /// Seconds since the epoch, now.
    fn now(&self) -> u64;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// A clock that says what it is told: for tests, so a timing rule is checked
/// without sleeping.
#[derive(Default)]
pub struct FixedClock(AtomicU64);

impl FixedClock {
    /// A clock at `now`.
    pub fn at(now: u64) -> Self {
        Self(AtomicU64::new(now))
    }

    /// Moves the clock on by `secs`.
    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The user directory as policy sees it.
pub trait Users: Send + Sync {
    /// The users now (a snapshot: cheap to take, never changes under the caller).
    fn current(&self) -> Arc<UserDirectory>;
    /// Whether the directory could be read the last time (AUTH answers
    /// `454 4.7.0` when it could not).
    fn healthy(&self) -> bool;
    /// Which challenge-response mechanisms every user's stored password serves.
    fn mechanism_support(&self) -> MechanismSupport;
    /// The decoys a login of an unknown name is checked against.
    fn decoys(&self) -> Arc<Decoys>;
}

/// A fixed set of users (for tests, or a directory that never changes).
pub struct StaticUsers {
    dir: Arc<UserDirectory>,
    healthy: bool,
}

impl StaticUsers {
    /// Users from passwd-file text; broken lines are skipped.
    pub fn parse(text: &str, default_domain: &str) -> Self {
        Self {
            dir: Arc::new(UserDirectory::parse(text, default_domain).0),
            healthy: true,
        }
    }

    /// The same users, reported as unreadable (`healthy` false).
    pub fn unhealthy(mut self) -> Self {
        self.healthy = false;
        self
    }
}

impl Users for StaticUsers {
    fn current(&self) -> Arc<UserDirectory> {
        self.dir.clone()
    }
    fn healthy(&self) -> bool {
        self.healthy
    }
    fn mechanism_support(&self) -> MechanismSupport {
        MechanismSupport::default()
    }
    fn decoys(&self) -> Arc<Decoys> {
        Arc::new(Decoys::new(Vec::new()))
    }
}

/// Which SMTP stage a decision was made at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The connection, before the greeting.
    Connect,
    /// EHLO/HELO.
    Helo,
    /// MAIL FROM.
    Sender,
    /// RCPT TO.
    Recipient,
    /// The message, after its end of data.
    Data,
    /// The recipients again, at the end of data, before the commit.
    Delivery,
}

impl Stage {
    /// The stage's name in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Helo => "helo",
            Stage::Sender => "sender",
            Stage::Recipient => "recipient",
            Stage::Data => "data",
            Stage::Delivery => "delivery",
        }
    }
}

/// Where policy decisions are reported (logs now; metrics and the console's
/// event stream plug in here).
pub trait Telemetry: Send + Sync {
    /// `check` refused or deferred at `stage` with `reply`.
    fn refused(&self, stage: Stage, check: &'static str, reply: &Reply);
}

/// Telemetry into the log: one line per refusal, in the session's span.
pub struct LogTelemetry;

impl Telemetry for LogTelemetry {
    fn refused(&self, stage: Stage, check: &'static str, reply: &Reply) {
        tracing::debug!(
            stage = stage.as_str(),
            check,
            code = reply.code.get(),
            "policy refused"
        );
    }
}

/// Telemetry that keeps what it was told: for tests.
#[derive(Default)]
pub struct RecordingTelemetry(std::sync::Mutex<Vec<(Stage, &'static str, String)>>);

impl RecordingTelemetry {
    /// Every refusal so far: stage, check and the reply's first line.
    pub fn refusals(&self) -> Vec<(Stage, &'static str, String)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Telemetry for RecordingTelemetry {
    fn refused(&self, stage: Stage, check: &'static str, reply: &Reply) {
        let first = reply
            .to_wire()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((stage, check, first));
    }
}
