//! Group commit: one thread makes messages durable in batches.
//!
//! Sessions hand their finished message to the committer and wait. The
//! committer takes every message waiting at that moment (up to a bound) and
//! commits them together with [`crate::maildir::commit_batch`]: their data synced
//! together, and each mailbox's `new/` synced once per batch. While it syncs, new
//! messages queue up for the next batch, so the batch grows with the load and
//! the number of syncs per second stays near what the disk does, not one pair
//! per message.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

use crate::error::StoreError;
use crate::maildir::{commit_batch, Delivered, IncomingMessage, MailboxAddr};

/// Called with the outcome of one message, on the committer thread.
pub type Done = Box<dyn FnOnce(Result<Delivered, StoreError>) + Send>;

struct Job {
    msg: IncomingMessage,
    rcpts: Arc<[MailboxAddr]>,
    done: Done,
}

/// The handle sessions submit to; the thread ends when it is dropped.
pub struct GroupCommitter {
    tx: Mutex<mpsc::Sender<Job>>,
}

impl GroupCommitter {
    /// Starts the committer thread; a batch holds at most `max_batch` messages.
    pub fn start(max_batch: usize) -> std::io::Result<Self> {
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
                    let (batch, dones): (Vec<_>, Vec<_>) =
                        jobs.into_iter().map(|j| ((j.msg, j.rcpts), j.done)).unzip();
                    for (result, done) in commit_batch(batch).into_iter().zip(dones) {
                        done(result);
                    }
                }
            })?;
        Ok(Self { tx: Mutex::new(tx) })
    }

    /// Queues a message; `done` is called once it is durable in every
    /// recipient's `new/`, or has failed (and nothing of it is visible).
    /// `rcpts` is shared with the session (its log line and accounting), not copied.
    pub fn submit(&self, msg: IncomingMessage, rcpts: Arc<[MailboxAddr]>, done: Done) {
        let job = Job { msg, rcpts, done };
        let sent = self.tx.lock().unwrap_or_else(|p| p.into_inner()).send(job);
        if let Err(mpsc::SendError(job)) = sent {
            // The thread is gone (it never panics by design; this is defensive).
            let result = job.msg.commit(&job.rcpts);
            (job.done)(result);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maildir::{MaildirStore, Modes};
    use std::sync::mpsc::channel;

    #[test]
    fn concurrent_submissions_are_all_delivered_and_the_spool_is_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let store = MaildirStore::open(dir.path(), "test.host", Modes::default()).unwrap();
        let committer = GroupCommitter::start(64).unwrap();
        let (tx, rx) = channel();
        for i in 0..200 {
            let mut m = store.begin(&format!("q{i}")).unwrap();
            m.write(format!("Subject: {i}\r\n\r\nbody {i}\r\n").as_bytes())
                .unwrap();
            let rcpts = vec![
                MailboxAddr::new("example.test", "a").unwrap(),
                MailboxAddr::new("example.test", format!("u{}", i % 7)).unwrap(),
            ];
            let tx = tx.clone();
            committer.submit(m, rcpts.into(), Box::new(move |r| tx.send((i, r)).unwrap()));
        }
        let mut ok = 0;
        for _ in 0..200 {
            let (_, r) = rx.recv().unwrap();
            let d = r.unwrap();
            assert_eq!(d.paths.len(), 2);
            for p in &d.paths {
                assert!(p.exists());
            }
            ok += 1;
        }
        assert_eq!(ok, 200);
        let a_new = std::fs::read_dir(dir.path().join("mail/example.test/a/Maildir/new"))
            .unwrap()
            .count();
        assert_eq!(a_new, 200);
        let spool = std::fs::read_dir(dir.path().join("spool")).unwrap().count();
        assert_eq!(spool, 0, "every spool file is unlinked");
    }

    #[test]
    fn a_bad_recipient_fails_only_its_own_message() {
        let dir = tempfile::tempdir().unwrap();
        let store = MaildirStore::open(dir.path(), "h", Modes::default()).unwrap();
        let good = store.begin("good").unwrap();
        let bad = store.begin("bad").unwrap();
        // A Maildir path occupied by a file: linking into it fails.
        std::fs::create_dir_all(dir.path().join("mail/example.test")).unwrap();
        std::fs::write(dir.path().join("mail/example.test/blocked"), b"x").unwrap();
        let results = commit_batch(vec![
            (
                good,
                [MailboxAddr::new("example.test", "ok").unwrap()].into(),
            ),
            (
                bad,
                [MailboxAddr::new("example.test", "blocked").unwrap()].into(),
            ),
        ]);
        assert!(results[0].is_ok());
        assert!(results[1].is_err());
        assert_eq!(
            std::fs::read_dir(dir.path().join("spool")).unwrap().count(),
            0
        );
    }
}
