//! What the queue keeps of a message besides its body: the envelope (RFC 5321
//! 2.3.1), the DSN parameters (RFC 3461), and each recipient's state.
//!
//! One [`Message`] is written whole to the journal at every change (it is a
//! few hundred bytes): replay keeps the last record of each id.

use serde::{Deserialize, Serialize};

/// A queue id: unique across restarts (the session id and the message's
/// number in it), a plain file name made of `[0-9A-Z]`.
pub type QueueId = String;

/// How many attempts each recipient remembers (the first and the latest ones).
pub const HISTORY: usize = 6;

/// One queued message.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Message {
    /// The queue id, also the body's file name.
    pub id: QueueId,
    /// When it was accepted (seconds since the epoch).
    pub arrival: u64,
    /// The envelope sender; empty for the null sender `<>` (a DSN's).
    pub sender: String,
    /// `ENVID` (RFC 3461 4.4), decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envid: Option<String>,
    /// `RET` (RFC 3461 4.3): what of the message a DSN carries back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<Ret>,
    /// Bytes on disk (LF line ends).
    pub size: u64,
    /// Bytes with CRLF line ends (the size on the wire).
    pub wire_size: u64,
    /// Held by an operator: no attempt until released.
    #[serde(default)]
    pub held: bool,
    /// The recipients, one per destination mailbox or address.
    pub rcpts: Vec<Recipient>,
    /// Read back from the journal at start: an attempt of the last process
    /// may have been under way, so the next one looks for its copy (in
    /// memory only).
    #[serde(skip)]
    pub restored: bool,
}

/// `RET=` (RFC 3461 4.3): the DSN builder's own.
pub use crate::dsn::Ret;

/// `NOTIFY=` (RFC 3461 4.1); `None` given means failure and delay.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Notify {
    /// `SUCCESS`.
    pub success: bool,
    /// `FAILURE`.
    pub failure: bool,
    /// `DELAY`.
    pub delay: bool,
}

impl Default for Notify {
    /// Without NOTIFY, RFC 3461 4.1 lets the server act as for
    /// `NOTIFY=FAILURE,DELAY`, as Postfix and Exim do.
    fn default() -> Self {
        Notify {
            success: false,
            failure: true,
            delay: true,
        }
    }
}

impl Notify {
    /// `NOTIFY=NEVER`.
    pub const NEVER: Notify = Notify {
        success: false,
        failure: false,
        delay: false,
    };
}

/// Where a recipient's copy goes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Target {
    /// A local mailbox: `<data_dir>/mail/<domain>/<user>/Maildir`.
    Local {
        /// The mailbox's domain.
        domain: String,
        /// The mailbox's user.
        user: String,
    },
    /// An address elsewhere, delivered by SMTP.
    Remote {
        /// The address.
        address: String,
    },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Local { domain, user } => write!(f, "{user}@{domain}"),
            Target::Remote { address } => f.write_str(address),
        }
    }
}

/// Where a recipient stands.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Not tried yet (just accepted, or replayed after a restart).
    Queued,
    /// Tried, refused for now; tried again at `next_attempt`.
    Deferred,
    /// Delivered.
    Delivered,
    /// Given up: refused permanently, or the queue lifetime ended.
    Failed,
}

impl State {
    /// Delivered or failed: nothing more is tried.
    pub fn is_final(self) -> bool {
        matches!(self, State::Delivered | State::Failed)
    }

    /// The word in listings.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Deferred => "deferred",
            State::Delivered => "delivered",
            State::Failed => "failed",
        }
    }
}

/// A message as `queue list` shows it: no history, no DSN parameters.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Summary {
    /// The queue id.
    pub id: QueueId,
    /// When it was accepted (seconds since the epoch).
    pub arrival: u64,
    /// Bytes on disk.
    pub size: u64,
    /// The envelope sender (empty: `<>`).
    pub sender: String,
    /// Held by an operator.
    pub held: bool,
    /// Each recipient.
    pub rcpts: Vec<RecipientSummary>,
}

/// A recipient as `queue list` shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecipientSummary {
    /// As given in `RCPT TO`.
    pub address: String,
    /// Where the copy goes (`user@domain`).
    pub target: String,
    /// Where it stands.
    pub state: State,
    /// Attempts made.
    pub attempts: u32,
    /// The next attempt (seconds since the epoch).
    pub next_attempt: u64,
    /// The last reply, whole.
    pub last_reply: Option<String>,
}

/// One attempt's outcome.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Attempt {
    /// When (seconds since the epoch).
    pub at: u64,
    /// The whole reply line, e.g. `452 4.2.2 mailbox full, try again later`.
    pub reply: String,
}

/// One recipient of a queued message.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Recipient {
    /// The address as the client gave it in `RCPT TO`.
    pub address: String,
    /// `ORCPT` (RFC 3461 4.2): the address type and the decoded address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orcpt: Option<(String, String)>,
    /// `NOTIFY` (RFC 3461 4.1).
    #[serde(default)]
    pub notify: Notify,
    /// Where the copy goes.
    pub target: Target,
    /// Where it stands.
    pub state: State,
    /// Attempts made.
    #[serde(default)]
    pub attempts: u32,
    /// The next attempt (seconds since the epoch); 0: at once.
    #[serde(default)]
    pub next_attempt: u64,
    /// Attempts, the first and the latest [`HISTORY`] - 1; the last one's
    /// reply is [`Recipient::last_reply`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Attempt>,
    /// The DSN its final state calls for (failure, or success when asked)
    /// has been queued, or none is due.
    #[serde(default)]
    pub reported: bool,
    /// A delay notice has been queued for it.
    #[serde(default)]
    pub delay_reported: bool,
    /// Quota room is reserved for this copy (by the session at the end of
    /// data, until the first attempt gives it back). In memory only: a
    /// reservation does not outlive the process.
    #[serde(skip)]
    pub room_reserved: bool,
}

impl Recipient {
    /// A recipient not tried yet.
    pub fn new(address: String, target: Target) -> Self {
        Recipient {
            address,
            orcpt: None,
            notify: Notify::default(),
            target,
            state: State::Queued,
            attempts: 0,
            next_attempt: 0,
            history: Vec::new(),
            reported: false,
            delay_reported: false,
            room_reserved: false,
        }
    }

    /// Records an attempt made at `now` that ended with `reply`, in state
    /// `state`, the next one (when deferred) at `next`.
    pub fn record(&mut self, now: u64, state: State, reply: String, next: u64) {
        self.attempts += 1;
        self.state = state;
        self.next_attempt = next;
        if self.history.len() >= HISTORY {
            // Keep the first attempt: it says how it began.
            self.history.remove(1);
        }
        self.history.push(Attempt { at: now, reply });
    }

    /// The last reply, whole.
    pub fn last_reply(&self) -> Option<&str> {
        self.history.last().map(|a| a.reply.as_str())
    }

    /// Waiting for an attempt (queued or deferred).
    pub fn is_pending(&self) -> bool {
        !self.state.is_final()
    }
}

impl Message {
    /// Every recipient is delivered or failed, and every DSN due is queued:
    /// the message can leave the queue.
    pub fn is_done(&self) -> bool {
        self.rcpts.iter().all(|r| r.state.is_final() && r.reported)
    }

    /// The earliest attempt due among its pending recipients.
    pub fn next_attempt(&self) -> Option<u64> {
        self.rcpts
            .iter()
            .filter(|r| r.is_pending())
            .map(|r| r.next_attempt)
            .min()
    }

    /// The session that accepted it: the queue id without its `Q<n>`.
    pub fn session(&self) -> &str {
        self.id
            .rsplit_once('Q')
            .map_or(self.id.as_str(), |(s, _)| s)
    }

    /// What `queue list` shows of it.
    pub fn summary(&self) -> Summary {
        Summary {
            id: self.id.clone(),
            arrival: self.arrival,
            size: self.size,
            sender: self.sender.clone(),
            held: self.held,
            rcpts: self
                .rcpts
                .iter()
                .map(|r| RecipientSummary {
                    address: r.address.clone(),
                    target: r.target.to_string(),
                    state: r.state,
                    attempts: r.attempts,
                    next_attempt: r.next_attempt,
                    last_reply: r.last_reply().map(str::to_string),
                })
                .collect(),
        }
    }

    /// The null sender: no DSN is ever sent about it (RFC 3461 6.2, RFC 5321 6.1).
    pub fn is_bounce(&self) -> bool {
        self.sender.is_empty()
    }
}

/// A message of one local recipient, not tried yet (for tests).
#[cfg(test)]
pub(crate) fn sample(id: &str, arrival: u64) -> Message {
    Message {
        id: id.into(),
        arrival,
        sender: "s@x.test".into(),
        envid: None,
        ret: None,
        size: 10,
        wire_size: 11,
        restored: false,
        held: false,
        rcpts: vec![Recipient::new(
            "a@b.test".into(),
            Target::Local {
                domain: "b.test".into(),
                user: "a".into(),
            },
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_the_first_attempt_and_the_latest_ones() {
        let mut r = Recipient::new(
            "a@b.test".into(),
            Target::Local {
                domain: "b.test".into(),
                user: "a".into(),
            },
        );
        for i in 0..20 {
            r.record(i, State::Deferred, format!("452 4.2.2 try {i}"), i + 1);
        }
        assert_eq!(r.attempts, 20);
        assert_eq!(r.history.len(), HISTORY);
        assert_eq!(r.history[0].at, 0);
        assert_eq!(r.history.last().map(|a| a.at), Some(19));
        assert_eq!(r.last_reply(), Some("452 4.2.2 try 19"));
    }

    #[test]
    fn a_message_is_done_only_when_every_recipient_is_final_and_reported() {
        let mut m = Message {
            id: "Q1".into(),
            arrival: 1,
            sender: "s@x.test".into(),
            envid: None,
            ret: None,
            size: 1,
            wire_size: 1,
            held: false,
            restored: false,
            rcpts: vec![Recipient::new(
                "a@b.test".into(),
                Target::Remote {
                    address: "a@b.test".into(),
                },
            )],
        };
        assert!(!m.is_done());
        m.rcpts[0].state = State::Failed;
        assert!(!m.is_done(), "its DSN is not queued yet");
        m.rcpts[0].reported = true;
        assert!(m.is_done());
    }
}
