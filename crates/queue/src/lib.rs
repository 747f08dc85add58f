//! The durable queue: every accepted message takes this path.
//!
//! A message's body is the spool file the store wrote while it arrived
//! (`<data_dir>/queue/messages/<id>`, LF line ends, the Maildir form); its
//! envelope and each recipient's state are records in the queue journal
//! (`<data_dir>/queue/journal`, see [`journal`]). [`commit::Committer`] makes
//! both durable together, for every message that ended at the same time: the
//! bodies fsync'd, the directory fsync'd once, the envelopes appended and the
//! journal fsync'd once. Only then is the client told `250`.
//!
//! The index of what is queued is in memory ([`Queue`]), rebuilt from the
//! journal at start. Transports (the server's) take a message
//! ([`Queue::claim`]), try its pending recipients, and hand it back with the
//! outcomes ([`Queue::finish`]); a message whose every recipient is final and
//! reported leaves the queue and its body is removed.
//!
//! Crash behaviour: a body without a journal record is a message whose client
//! was not answered, removed at start; a journal record whose attempt was
//! under way is tried again, and the transport recognises a copy it already
//! made (Maildir names are derived from the queue id and the recipient).

pub mod commit;
pub mod dsn;
pub mod envelope;
pub mod journal;
pub mod schedule;

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

pub use envelope::{
    Attempt, Message, Notify, QueueId, Recipient, RecipientSummary, Ret, State, Summary, Target,
};
pub use journal::Journal;
pub use schedule::Schedule;

/// The journal is rewritten once it is this much larger than what is live
/// (and at least [`REWRITE_MIN`]): appends stay cheap, replays short.
const REWRITE_FACTOR: u64 = 4;
/// The smallest journal that is rewritten while the server runs.
const REWRITE_MIN: u64 = 64 * 1024 * 1024;

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The journal could not be read, written or synced.
    #[error("queue journal {path}: {source}")]
    Journal {
        /// The journal's path.
        path: String,
        /// What the system said.
        source: io::Error,
    },
    /// No such message in the queue.
    #[error("no message {0} in the queue")]
    NotFound(String),
    /// A delivery attempt holds the message; try again in a moment.
    #[error("message {0} is being delivered right now; try again in a moment")]
    Busy(String),
}

/// The in-memory index, and who is working on what.
#[derive(Debug, Default)]
struct Index {
    messages: HashMap<QueueId, Message>,
    /// Messages a transport holds now.
    claimed: HashSet<QueueId>,
    /// Approximate bytes of the live records (for the rewrite rule).
    live_bytes: u64,
}

/// The queue of one data directory.
#[derive(Debug)]
pub struct Queue {
    dir: PathBuf,
    bodies: PathBuf,
    journal: Journal,
    index: Mutex<Index>,
}

/// A rough size of a message's journal record (for the rewrite rule only).
fn record_size(m: &Message) -> u64 {
    200 + m.rcpts.len() as u64 * 200
}

impl Queue {
    /// Opens the queue in `dir` (`<data_dir>/queue`), whose bodies are in
    /// `bodies` (`<data_dir>/queue/messages`): replays and rewrites the
    /// journal. Every message in it is pending again: what was under way when
    /// the last process stopped is tried again.
    pub fn open(dir: &Path, bodies: &Path, file_mode: u32) -> Result<Queue, QueueError> {
        let (journal, messages) =
            Journal::open(dir, file_mode).map_err(|source| QueueError::Journal {
                path: dir.join(journal::FILE).display().to_string(),
                source,
            })?;
        let mut messages = messages;
        for m in messages.values_mut() {
            m.restored = true;
        }
        let live_bytes = messages.values().map(record_size).sum();
        Ok(Queue {
            dir: dir.to_path_buf(),
            bodies: bodies.to_path_buf(),
            journal,
            index: Mutex::new(Index {
                messages,
                claimed: HashSet::new(),
                live_bytes,
            }),
        })
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn journal_error(&self, source: io::Error) -> QueueError {
        QueueError::Journal {
            path: self.dir.join(journal::FILE).display().to_string(),
            source,
        }
    }

    /// The journal's path (for messages).
    pub fn journal_path(&self) -> PathBuf {
        self.dir.join(journal::FILE)
    }

    /// The body file of message `id`.
    pub fn body_path(&self, id: &str) -> PathBuf {
        self.bodies.join(id)
    }

    /// Whether `id` is a queued message (the start's spool sweep keeps its body).
    pub fn contains(&self, id: &str) -> bool {
        self.index().messages.contains_key(id)
    }

    /// How many messages are queued.
    pub fn len(&self) -> usize {
        self.index().messages.len()
    }

    /// Whether the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds messages whose bodies are durable: appends their envelopes and
    /// syncs the journal. When this returns `Ok`, they survive a crash.
    pub fn insert(&self, msgs: Vec<Message>) -> Result<(), QueueError> {
        let refs: Vec<&Message> = msgs.iter().collect();
        let at = self
            .journal
            .append(&refs, &[])
            .map_err(|e| self.journal_error(e))?;
        self.journal
            .sync_to(at)
            .map_err(|e| self.journal_error(e))?;
        let mut index = self.index();
        for m in msgs {
            index.live_bytes += record_size(&m);
            index.messages.insert(m.id.clone(), m);
        }
        Ok(())
    }

    /// A copy of message `id`.
    pub fn get(&self, id: &str) -> Option<Message> {
        self.index().messages.get(id).cloned()
    }

    /// The id of every queued message.
    pub fn ids(&self) -> Vec<QueueId> {
        self.index().messages.keys().cloned().collect()
    }

    /// What `queue list` shows of every message, oldest first (built under
    /// the lock, without copying whole messages).
    pub fn summaries(&self) -> Vec<Summary> {
        let mut v: Vec<Summary> = self
            .index()
            .messages
            .values()
            .map(Message::summary)
            .collect();
        v.sort_by(|a, b| (a.arrival, &a.id).cmp(&(b.arrival, &b.id)));
        v
    }

    /// Visits every queued message without copying it (for counts).
    pub fn for_each(&self, mut f: impl FnMut(&Message)) {
        for m in self.index().messages.values() {
            f(m);
        }
    }

    /// The messages with a recipient due at `now`, not held and not claimed.
    pub fn due(&self, now: u64) -> Vec<QueueId> {
        let index = self.index();
        index
            .messages
            .values()
            .filter(|m| !m.held && !index.claimed.contains(&m.id))
            .filter(|m| {
                m.next_attempt().is_some_and(|t| t <= now)
                    || m.rcpts.iter().any(|r| r.state.is_final() && !r.reported)
            })
            .map(|m| m.id.clone())
            .collect()
    }

    /// The earliest attempt due among messages not held.
    pub fn next_due(&self) -> Option<u64> {
        self.index()
            .messages
            .values()
            .filter(|m| !m.held)
            .filter_map(|m| m.next_attempt())
            .min()
    }

    /// Takes message `id` for an attempt: a copy to work on, and no one else
    /// gets it until [`Self::finish`] or [`Self::unclaim`]. `None` when it is
    /// gone, held (unless `even_held`) or claimed already.
    pub fn claim(&self, id: &str, even_held: bool) -> Option<Message> {
        let mut index = self.index();
        let m = index.messages.get(id)?;
        if (m.held && !even_held) || index.claimed.contains(id) {
            return None;
        }
        let m = m.clone();
        index.claimed.insert(id.to_string());
        Some(m)
    }

    /// Gives back a claimed message unchanged.
    pub fn unclaim(&self, id: &str) {
        self.index().claimed.remove(id);
    }

    /// Gives back a claimed message with its new state and records it:
    /// when it is done ([`Message::is_done`]) it leaves the queue and its body
    /// is removed. `durable`: wait for the journal sync (a state whose loss
    /// would repeat something visible, like a DSN queued); a lost delivered
    /// state is not that (the replay finds the copy by its name).
    pub fn finish(&self, msg: Message, durable: bool) -> Result<(), QueueError> {
        self.finish_all(vec![msg], durable)
    }

    /// [`Self::finish`] for several messages, recorded in one journal write.
    pub fn finish_all(&self, msgs: Vec<Message>, durable: bool) -> Result<(), QueueError> {
        let mut done_ids: Vec<QueueId> = Vec::new();
        let at = {
            let mut index = self.index();
            let mut puts: Vec<Message> = Vec::new();
            for mut msg in msgs {
                index.claimed.remove(&msg.id);
                // Deleted by an operator meanwhile: that stands.
                let Some(cur) = index.messages.get(&msg.id) else {
                    continue;
                };
                // An operator's hold made meanwhile stands too.
                msg.held = cur.held;
                if msg.is_done() {
                    done_ids.push(msg.id.clone());
                } else {
                    puts.push(msg);
                }
            }
            let put_refs: Vec<&Message> = puts.iter().collect();
            let removes: Vec<&str> = done_ids.iter().map(String::as_str).collect();
            let at = self
                .journal
                .append(&put_refs, &removes)
                .map_err(|e| self.journal_error(e))?;
            for id in &done_ids {
                if let Some(old) = index.messages.remove(id) {
                    index.live_bytes = index.live_bytes.saturating_sub(record_size(&old));
                }
            }
            for m in puts {
                if let Some(cur) = index.messages.get_mut(&m.id) {
                    *cur = m;
                }
            }
            at
        };
        if durable {
            self.journal
                .sync_to(at)
                .map_err(|e| self.journal_error(e))?;
        }
        // After the removal records: a crash in between leaves bodies no
        // record names, which the next start sweeps away.
        for id in &done_ids {
            let _ = std::fs::remove_file(self.body_path(id));
        }
        self.maybe_rewrite();
        Ok(())
    }

    /// Changes message `id` as an operator asks (`f` gets the message and
    /// says whether anything changed), durably. Refused while a delivery
    /// attempt holds it ([`QueueError::Busy`]).
    pub fn modify(
        &self,
        id: &str,
        f: impl FnOnce(&mut Message) -> bool,
    ) -> Result<Message, QueueError> {
        let at = {
            let mut index = self.index();
            if index.claimed.contains(id) {
                return Err(QueueError::Busy(id.to_string()));
            }
            let Some(m) = index.messages.get_mut(id) else {
                return Err(QueueError::NotFound(id.to_string()));
            };
            let mut changed = m.clone();
            if !f(&mut changed) {
                return Ok(changed);
            }
            let at = self
                .journal
                .append(&[&changed], &[])
                .map_err(|e| self.journal_error(e))?;
            *m = changed;
            at
        };
        self.journal
            .sync_to(at)
            .map_err(|e| self.journal_error(e))?;
        self.get(id)
            .ok_or_else(|| QueueError::NotFound(id.to_string()))
    }

    /// Removes message `id` and its body, durably, without any DSN.
    pub fn delete(&self, id: &str) -> Result<Message, QueueError> {
        let (at, m) = {
            let mut index = self.index();
            if index.claimed.contains(id) {
                return Err(QueueError::Busy(id.to_string()));
            }
            if !index.messages.contains_key(id) {
                return Err(QueueError::NotFound(id.to_string()));
            }
            let at = self
                .journal
                .append(&[], &[id])
                .map_err(|e| self.journal_error(e))?;
            let m = index.messages.remove(id);
            if let Some(m) = &m {
                index.live_bytes = index.live_bytes.saturating_sub(record_size(m));
            }
            (at, m)
        };
        self.journal
            .sync_to(at)
            .map_err(|e| self.journal_error(e))?;
        let _ = std::fs::remove_file(self.body_path(id));
        m.ok_or_else(|| QueueError::NotFound(id.to_string()))
    }

    /// Rewrites the journal when it has grown well past what is live.
    fn maybe_rewrite(&self) {
        let len = self.journal.len();
        if len < REWRITE_MIN {
            return;
        }
        let index = self.index();
        if len < index.live_bytes.saturating_mul(REWRITE_FACTOR) {
            return;
        }
        if let Err(e) = self.journal.rewrite(index.messages.values()) {
            tracing::warn!(error = %e, "rewriting the queue journal failed; it goes on growing");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str) -> Message {
        crate::envelope::sample(id, 100)
    }

    fn open(dir: &Path) -> Queue {
        let bodies = dir.join("messages");
        std::fs::create_dir_all(&bodies).unwrap();
        Queue::open(dir, &bodies, 0o600).unwrap()
    }

    #[test]
    fn a_claimed_message_is_not_due_and_cannot_be_changed_by_an_operator() {
        let dir = tempfile::tempdir().unwrap();
        let q = open(dir.path());
        q.insert(vec![msg("A")]).unwrap();
        assert_eq!(q.due(100), ["A"]);
        let m = q.claim("A", false).unwrap();
        assert!(q.due(100).is_empty());
        assert!(q.claim("A", false).is_none());
        assert!(matches!(
            q.modify("A", |m| {
                m.held = true;
                true
            }),
            Err(QueueError::Busy(_))
        ));
        q.finish(m, false).unwrap();
        assert!(
            q.modify("A", |m| {
                m.held = true;
                true
            })
            .unwrap()
            .held
        );
        assert!(q.due(100).is_empty(), "held");
    }

    #[test]
    fn a_finished_message_leaves_the_queue_with_its_body_and_stays_gone_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let q = open(dir.path());
        std::fs::write(q.body_path("A"), b"x").unwrap();
        q.insert(vec![msg("A"), msg("B")]).unwrap();
        let mut m = q.claim("A", false).unwrap();
        m.rcpts[0].record(101, State::Delivered, "250 2.0.0 ok".into(), 0);
        m.rcpts[0].reported = true;
        q.finish(m, true).unwrap();
        assert!(!q.body_path("A").exists());
        assert!(q.get("A").is_none());
        let mut b = q.claim("B", false).unwrap();
        b.rcpts[0].record(101, State::Deferred, "452 4.2.2 full".into(), 400);
        q.finish(b, true).unwrap();
        drop(q);
        let q = open(dir.path());
        assert!(q.get("A").is_none());
        let b = q.get("B").unwrap();
        assert_eq!(b.rcpts[0].state, State::Deferred);
        assert_eq!(b.rcpts[0].last_reply(), Some("452 4.2.2 full"));
        assert_eq!(q.next_due(), Some(400));
        assert!(q.due(399).is_empty());
        assert_eq!(q.due(400), ["B"]);
    }

    #[test]
    fn a_delete_is_durable_and_removes_the_body() {
        let dir = tempfile::tempdir().unwrap();
        let q = open(dir.path());
        std::fs::write(q.body_path("A"), b"x").unwrap();
        q.insert(vec![msg("A")]).unwrap();
        q.delete("A").unwrap();
        assert!(!q.body_path("A").exists());
        assert!(matches!(q.delete("A"), Err(QueueError::NotFound(_))));
        drop(q);
        assert!(open(dir.path()).is_empty());
    }
}
