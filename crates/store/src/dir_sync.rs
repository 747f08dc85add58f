//! Shared directory syncs: sessions whose messages land in the same `new/`
//! at the same time share one fsync of that directory.
//!
//! A delivery links its file into `new/` and then needs an fsync of `new/` that
//! *started after* its link, so the entry is on disk before the `250`. While one
//! fsync of a directory runs, every delivery that linked in the meantime waits
//! for the next one, which a single thread then runs for all of them. Under
//! load the directory is synced once per round instead of once per message;
//! with one delivery at a time nothing changes (no wait, one fsync each). A
//! delivery takes its place ([`DirSyncs::ticket`]) right after its links and
//! then waits ([`Ticket::wait`]). Since the spool file's fsync moved before the
//! links (07c1987) both callers wait at once, so the split buys nothing today;
//! it stays the interface, and work put between the two would overlap with the
//! rounds of others.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// At most this many directories are tracked; the map starts over when full
/// (a delivery holding an old entry still gets a correct sync).
const MAX_DIRS: usize = 10_000;

/// The directories being synced, by path.
#[derive(Debug, Default)]
pub struct DirSyncs {
    dirs: Mutex<HashMap<PathBuf, Arc<DirSync>>>,
}

impl DirSyncs {
    /// Takes a place in `dir`'s rounds for the entries created in it so far,
    /// without waiting: [`Ticket::wait`] later returns once an fsync of `dir`
    /// that started after this call has finished. Other work done in between
    /// overlaps with the rounds of others.
    pub fn ticket<'a>(&self, dir: &'a Path) -> Ticket<'a> {
        let one = {
            let mut dirs = self.dirs.lock().unwrap_or_else(|p| p.into_inner());
            if dirs.len() >= MAX_DIRS && !dirs.contains_key(dir) {
                dirs.clear();
            }
            match dirs.get(dir) {
                Some(one) => one.clone(),
                None => dirs.entry(dir.to_path_buf()).or_default().clone(),
            }
        };
        let needed = one.rounds().started + 1;
        Ticket { one, dir, needed }
    }
}

/// A place in one directory's sync rounds (see [`DirSyncs::ticket`]).
#[derive(Debug)]
pub struct Ticket<'a> {
    one: Arc<DirSync>,
    dir: &'a Path,
    /// The first round that surely started after the ticket was taken.
    needed: u64,
}

impl Ticket<'_> {
    /// The directory the ticket is for.
    pub fn dir(&self) -> &Path {
        self.dir
    }

    /// Returns once round `needed` or a later one has finished (running one
    /// when none is running), with that round's error if it failed.
    pub fn wait(&self) -> io::Result<()> {
        self.one.wait_for(self.dir, self.needed)
    }
}

/// The sync rounds of one directory.
#[derive(Debug, Default)]
struct DirSync {
    state: Mutex<Rounds>,
    done: Condvar,
    /// Test-only seam: run with the round's number just before its fsync.
    #[cfg(test)]
    before_sync: tests::Hook,
}

#[derive(Debug, Default)]
struct Rounds {
    /// Rounds started so far; round `n` is the n-th fsync.
    started: u64,
    /// Rounds finished (in order: one runs at a time).
    finished: u64,
    running: bool,
    /// The latest round that failed, and how.
    failed: Option<(u64, io::ErrorKind, String)>,
}

impl DirSync {
    fn rounds(&self) -> MutexGuard<'_, Rounds> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for round `needed` (one started after the caller's entries were
    /// made: a round already running when the ticket was taken may have started
    /// before them, so only the next one surely covers them).
    fn wait_for(&self, dir: &Path, needed: u64) -> io::Result<()> {
        let mut st = self.rounds();
        loop {
            if st.finished >= needed {
                return match &st.failed {
                    // A failed round at or after ours: we cannot tell whether
                    // our entry made it, so it did not.
                    Some((round, kind, msg)) if *round >= needed => {
                        Err(io::Error::new(*kind, msg.clone()))
                    }
                    _ => Ok(()),
                };
            }
            if st.running {
                st = self.done.wait(st).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            st.running = true;
            st.started += 1;
            let round = st.started;
            drop(st);
            #[cfg(test)]
            self.before_sync.run(round);
            let result = File::open(dir).and_then(|d| d.sync_all());
            st = self.rounds();
            st.running = false;
            st.finished = round;
            if let Err(e) = &result {
                st.failed = Some((round, e.kind(), e.to_string()));
            }
            self.done.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{mpsc, Barrier};
    use std::time::Duration;

    #[test]
    fn one_caller_syncs_once_each_time() {
        let dir = tempfile::tempdir().unwrap();
        let syncs = DirSyncs::default();
        for _ in 0..3 {
            syncs.ticket(dir.path()).wait().unwrap();
        }
        let one = syncs.dirs.lock().unwrap()[dir.path()].clone();
        let st = one.rounds();
        assert_eq!((st.started, st.finished), (3, 3));
    }

    /// A test's code run just before each round's fsync (with the round's
    /// number), so a test can hold a round open while others take tickets.
    #[derive(Default)]
    pub(super) struct Hook(Mutex<Option<Arc<HookFn>>>);

    type HookFn = dyn Fn(u64) + Send + Sync;

    impl Hook {
        fn set(&self, f: impl Fn(u64) + Send + Sync + 'static) {
            *self.0.lock().unwrap() = Some(Arc::new(f));
        }

        pub(super) fn run(&self, round: u64) {
            let f = self.0.lock().unwrap().clone();
            if let Some(f) = f {
                f(round);
            }
        }
    }

    impl std::fmt::Debug for Hook {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Hook")
        }
    }

    #[test]
    fn concurrent_callers_share_rounds_and_each_waits_for_a_later_one() {
        const WAITERS: usize = 8;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        let syncs = DirSyncs::default();
        // Creates the directory's entry, to hook its rounds.
        let first = syncs.ticket(path);
        let one = syncs.dirs.lock().unwrap()[path].clone();
        // Round 1 stays open until the test lets it go.
        let (started_tx, started) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        one.before_sync.set(move |round| {
            if round == 1 {
                started_tx.send(()).unwrap();
                release_rx.lock().unwrap().recv().unwrap();
            }
        });
        let taken = Barrier::new(WAITERS + 1);
        let calls = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                first.wait().unwrap();
                calls.fetch_add(1, Ordering::Relaxed);
            });
            started
                .recv_timeout(Duration::from_secs(10))
                .expect("the first caller runs round 1");
            // Round 1 is running: tickets taken now may hold entries it missed.
            let waiters: Vec<_> = (0..WAITERS)
                .map(|_| {
                    scope.spawn(|| {
                        let ticket = syncs.ticket(path);
                        taken.wait();
                        ticket.wait().unwrap();
                        calls.fetch_add(1, Ordering::Relaxed);
                        // The round that let this caller go.
                        one.rounds().finished
                    })
                })
                .collect();
            taken.wait();
            release.send(()).unwrap();
            for w in waiters {
                let finished = w.join().unwrap();
                assert!(
                    finished >= 2,
                    "a ticket taken during round 1 was let go after round {finished}: it needs round 2"
                );
            }
        });
        let st = one.rounds();
        assert_eq!(calls.load(Ordering::Relaxed), WAITERS + 1);
        assert!(!st.running);
        // Round 1 for the first caller, then one round for all the others.
        assert_eq!((st.started, st.finished), (2, 2), "{} calls", WAITERS + 1);
    }

    #[test]
    fn a_round_started_after_the_ticket_serves_it() {
        let dir = tempfile::tempdir().unwrap();
        let syncs = DirSyncs::default();
        let ticket = syncs.ticket(dir.path());
        // Another delivery's round, started after the ticket was taken.
        syncs.ticket(dir.path()).wait().unwrap();
        ticket.wait().unwrap();
        let one = syncs.dirs.lock().unwrap()[dir.path()].clone();
        assert_eq!(one.rounds().started, 1, "the ticket ran a round of its own");
    }

    #[test]
    fn a_ticket_taken_during_a_round_waits_for_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let syncs = DirSyncs::default();
        let first = syncs.ticket(dir.path());
        let one = syncs.dirs.lock().unwrap()[dir.path()].clone();
        // Round 1 is running (it may have started before the next entry).
        {
            let mut st = one.rounds();
            st.started = 1;
            st.running = true;
        }
        let second = syncs.ticket(dir.path());
        {
            let mut st = one.rounds();
            st.finished = 1;
            st.running = false;
        }
        first.wait().unwrap();
        assert_eq!(one.rounds().started, 1, "round 1 serves the first ticket");
        second.wait().unwrap();
        assert_eq!(one.rounds().started, 2, "the second ticket needs round 2");
    }

    #[test]
    fn a_failed_round_fails_its_waiters() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone");
        let syncs = DirSyncs::default();
        let err = syncs.ticket(&gone).wait().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        std::fs::create_dir(&gone).unwrap();
        // The next round succeeds and is not blamed for the earlier one.
        syncs.ticket(&gone).wait().unwrap();
    }
}
