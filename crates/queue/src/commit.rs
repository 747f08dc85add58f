//! Group commit into the queue: one thread makes messages durable in
//! batches.
//!
//! Sessions hand their finished message (the spool file and its envelope) to
//! the committer and wait. The committer takes every message waiting at that
//! moment (up to a bound): their bodies are fsync'd together and the spool
//! directory once ([`pillarbox_store::persist_batch`]), then their envelopes
//! are appended to the journal in one write and the journal is fsync'd once
//! ([`Queue::insert`]). While it syncs, new messages queue up for the next
//! batch, so the batch grows with the load and the syncs per second stay near
//! what the disk does, not a set per message.

use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use pillarbox_store::{persist_batch, IncomingMessage, Kept, StoreError};

use crate::{Message, Queue};

/// Called with the outcome of one message, on the committer thread: `Ok`
/// once its body and envelope are durable in the queue.
pub type Done = Box<dyn FnOnce(Result<Kept, StoreError>) + Send>;

struct Job {
    body: IncomingMessage,
    envelope: Message,
    done: Done,
}

/// The handle sessions submit to; the thread ends when it is dropped.
pub struct Committer {
    tx: Mutex<mpsc::Sender<Job>>,
}

impl Committer {
    /// Starts the committer thread for `queue`; a batch holds at most
    /// `max_batch` messages.
    pub fn start(queue: Arc<Queue>, max_batch: usize) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let max_batch = max_batch.max(1);
        thread::Builder::new()
            .name("pillarbox-commit".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut jobs = vec![first];
                    while jobs.len() < max_batch {
                        match rx.try_recv() {
                            Ok(j) => jobs.push(j),
                            Err(_) => break,
                        }
                    }
                    commit(&queue, jobs);
                }
            })?;
        Ok(Self { tx: Mutex::new(tx) })
    }

    /// Queues a message for the next batch; `done` is called once it is
    /// durable in the queue, or has failed (and nothing of it remains).
    pub fn submit(&self, body: IncomingMessage, envelope: Message, done: Done) {
        let job = Job {
            body,
            envelope,
            done,
        };
        let sent = self.tx.lock().unwrap_or_else(|p| p.into_inner()).send(job);
        if let Err(mpsc::SendError(job)) = sent {
            // The thread is gone (it never panics by design; this is defensive).
            (job.done)(Err(StoreError::io(
                "queue commit",
                Path::new("?"),
                std::io::Error::other("the commit thread has stopped"),
            )));
        }
    }
}

/// Commits one message on the calling thread, now: without group commit,
/// each session's message commits on a thread of its own, and the messages
/// that end together still share the syncs of the directory (shared rounds)
/// and of the journal ([`crate::Journal::sync_to`]).
pub fn commit_one(queue: &Queue, body: IncomingMessage, envelope: Message, done: Done) {
    commit(
        queue,
        vec![Job {
            body,
            envelope,
            done,
        }],
    );
}

/// Commits one batch (see the module's documentation).
fn commit(queue: &Queue, jobs: Vec<Job>) {
    let (bodies, rest): (Vec<_>, Vec<_>) = jobs
        .into_iter()
        .map(|j| (j.body, (j.envelope, j.done)))
        .unzip();
    let kept = persist_batch(bodies);
    // The envelopes go into the queue as they are; what the callers are
    // told goes beside them.
    let mut envelopes: Vec<Message> = Vec::with_capacity(kept.len());
    let mut ok: Vec<(Kept, Done)> = Vec::with_capacity(kept.len());
    for (k, (mut envelope, done)) in kept.into_iter().zip(rest) {
        match k {
            Ok(k) => {
                envelope.size = k.stored_size;
                envelope.wire_size = k.wire_size;
                envelopes.push(envelope);
                ok.push((k, done));
            }
            Err(e) => done(Err(e)),
        }
    }
    if ok.is_empty() {
        return;
    }
    match queue.insert(envelopes) {
        Ok(()) => {
            for (k, done) in ok {
                done(Ok(k));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, messages = ok.len(), "queue commit failed");
            let errno = match &e {
                crate::QueueError::Journal { source, .. } => source.raw_os_error(),
                _ => None,
            };
            let journal = queue.journal_path();
            for (k, done) in ok {
                // Not in the journal: the body goes, and the client is told
                // to try again (452 when the disk is full).
                let _ = std::fs::remove_file(&k.path);
                let source = match errno {
                    Some(n) => std::io::Error::from_raw_os_error(n),
                    None => std::io::Error::other(e.to_string()),
                };
                done(Err(StoreError::io("append to", &journal, source)));
            }
        }
    }
}
