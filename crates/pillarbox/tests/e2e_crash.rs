//! Crash safety: under a bounded concurrent load the server is killed with SIGKILL
//! and restarted on the same data dir. Every message that got its `250` must be
//! complete in every recipient's Maildir, and nothing partial may be in any `new/`
//! or `cur/` (a message is durable before its `250`).
//!
//! The load's own failures are counted: before the kill, a connection error
//! or a reply other than the expected one fails the test; after it, broken
//! connections are what a killed server leaves, and are only reported.

mod common;

use common::{maildir, Config, Smtp, TestDir};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const ROUNDS: usize = 3;
const THREADS: usize = 8;
const MESSAGES_PER_CONNECTION: usize = 5;
const MAX_PER_THREAD: usize = 2_000;
/// The kill comes once this many messages were acknowledged in the round (a
/// different point in each round, so it lands at different moments of the load).
fn acks_before_kill(round: usize) -> usize {
    40 + 110 * round
}
const LOAD_DEADLINE: Duration = Duration::from_secs(60);
const SENDER: &str = "load@client.test";

/// One message of the load: round, thread, index.
type Id = (usize, usize, usize);

fn marker((round, t, i): Id) -> String {
    format!("r{round}-t{t}-m{i}")
}

fn parse_marker(s: &str) -> Option<Id> {
    let mut parts = s.split('-');
    let round = parts.next()?.strip_prefix('r')?.parse().ok()?;
    let t = parts.next()?.strip_prefix('t')?.parse().ok()?;
    let i = parts.next()?.strip_prefix('m')?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some((round, t, i))
}

/// Each thread has its own mailbox; every third message also goes to a shared one
/// in another domain, so one message lands in two Maildirs.
fn recipients((_, t, i): Id) -> Vec<String> {
    let mut out = vec![format!("load{t}@example.test")];
    if i % 3 == 0 {
        out.push("shared@other.test".to_string());
    }
    out
}

/// A deterministic message of 2 KB to 120 KB, with dot-stuffed lines.
fn message(id: Id) -> Vec<u8> {
    let (round, t, i) = id;
    let m = marker(id);
    let mut out = format!(
        "From: <{SENDER}>\r\nTo: <load{t}@example.test>\r\nSubject: load {m}\r\nX-Marker: {m}\r\n\r\n"
    )
    .into_bytes();
    let lines = 20 + (i * 53 + t * 17 + round * 7) % 1_500;
    for k in 0..lines {
        let line = if k % 50 == 7 {
            format!(".{m} dotted line {k:05}\r\n")
        } else {
            format!("{m} line {k:05} the quick brown fox jumps over the lazy dog\r\n")
        };
        out.extend_from_slice(line.as_bytes());
    }
    out
}

#[derive(Default)]
struct Ledger {
    /// Messages whose DATA was started (they may or may not be stored).
    attempted: HashSet<Id>,
    /// Messages that got `250 2.0.0 ok: queued as` (they must be stored).
    acked: Vec<Id>,
    /// Replies other than the expected ones (220, 250 to EHLO and to a
    /// complete message); there should be none.
    unexpected: Vec<String>,
    /// Connection errors that happened while the server was up: there should be none.
    errors_before_kill: Vec<String>,
    /// Connection errors after the SIGKILL, by kind: expected, reported.
    errors_after_kill: BTreeMap<String, usize>,
}

/// One load thread: connections of a few messages each until `stop`. A
/// connection error ends it, counted as expected once `killed` is set (it is
/// set before the kill, so an error the kill caused is never counted before).
fn load_worker(
    port: u16,
    round: usize,
    t: usize,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
    killed: Arc<AtomicBool>,
) {
    if let Err((stage, e)) = load(port, round, t, &ledger, &stop) {
        let mut l = lock(&ledger);
        if killed.load(Ordering::SeqCst) {
            *l.errors_after_kill
                .entry(format!("{:?}", e.kind()))
                .or_default() += 1;
        } else {
            l.errors_before_kill
                .push(format!("round {round} thread {t}: {stage}: {e}"));
        }
    }
}

/// What the load was doing when a connection failed, and how.
type LoadError = (String, io::Error);

fn load(
    port: u16,
    round: usize,
    t: usize,
    ledger: &Mutex<Ledger>,
    stop: &AtomicBool,
) -> Result<(), LoadError> {
    let at = |stage: &str| {
        let stage = stage.to_string();
        move |e: io::Error| (stage, e)
    };
    let mut i = 0;
    while i < MAX_PER_THREAD && !stop.load(Ordering::SeqCst) {
        let mut smtp = Smtp::connect(port).map_err(at("connect"))?;
        let greeting = smtp.read_reply().map_err(at("greeting"))?;
        if greeting.code != 220 {
            lock(ledger)
                .unexpected
                .push(format!("round {round} thread {t} greeting: {greeting}"));
            return Ok(());
        }
        let ehlo = smtp.cmd("EHLO load.client.test").map_err(at("EHLO"))?;
        if ehlo.code != 250 {
            lock(ledger)
                .unexpected
                .push(format!("round {round} thread {t} EHLO: {ehlo}"));
            return Ok(());
        }
        for _ in 0..MESSAGES_PER_CONNECTION {
            if i >= MAX_PER_THREAD || stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            let id = (round, t, i);
            i += 1;
            let rcpts = recipients(id);
            let rcpts: Vec<&str> = rcpts.iter().map(String::as_str).collect();
            lock(ledger).attempted.insert(id);
            let r = smtp
                .send_mail(SENDER, &rcpts, &message(id))
                .map_err(at(&marker(id)))?;
            if r.starts_with("250 2.0.0 ok: queued as ") {
                lock(ledger).acked.push(id);
            } else {
                lock(ledger).unexpected.push(format!("{}: {r}", marker(id)));
            }
        }
        smtp.cmd("QUIT").map_err(at("QUIT"))?;
    }
    Ok(())
}

/// The load threads of one round.
struct Load {
    stop: Arc<AtomicBool>,
    killed: Arc<AtomicBool>,
    workers: Vec<thread::JoinHandle<()>>,
}

impl Load {
    /// Starts [`THREADS`] load threads against `port`.
    fn start(port: u16, round: usize, ledger: &Arc<Mutex<Ledger>>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let killed = Arc::new(AtomicBool::new(false));
        let workers = (0..THREADS)
            .map(|t| {
                let (ledger, stop, killed) = (ledger.clone(), stop.clone(), killed.clone());
                thread::spawn(move || load_worker(port, round, t, ledger, stop, killed))
            })
            .collect();
        Load {
            stop,
            killed,
            workers,
        }
    }

    /// SIGKILLs the server under the load, waits for every load thread,
    /// and checks the load met no trouble while the server was up.
    fn kill(self, server: &mut common::Server, ledger: &Mutex<Ledger>) {
        self.killed.store(true, Ordering::SeqCst);
        server.kill_hard();
        self.stop.store(true, Ordering::SeqCst);
        for worker in self.workers {
            // Each worker ends on its next I/O error, bounded by the socket timeouts.
            worker.join().expect("load worker panicked");
        }
        let l = lock(ledger);
        assert!(
            l.unexpected.is_empty(),
            "unexpected replies under load: {:?}",
            l.unexpected
        );
        assert!(
            l.errors_before_kill.is_empty(),
            "connection errors while the server was up: {:?}",
            l.errors_before_kill
        );
    }
}

fn lock(ledger: &Mutex<Ledger>) -> std::sync::MutexGuard<'_, Ledger> {
    ledger
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Every message in any `new/` or `cur/` is one we sent, complete and byte-exact,
/// in a mailbox it was addressed to, at most once; every acknowledged message is
/// in every one of its mailboxes.
fn check_data_dir(dir: &TestDir, ledger: &Ledger) {
    let mut seen: HashMap<(std::path::PathBuf, Id), usize> = HashMap::new();
    for stored in dir.all_messages() {
        let name = stored.path.display().to_string();
        let id = stored
            .header("X-Marker")
            .and_then(|m| parse_marker(&m))
            .unwrap_or_else(|| {
                panic!(
                    "{name} is not a complete message of ours (no X-Marker header):\n{}",
                    String::from_utf8_lossy(&stored.bytes[..stored.bytes.len().min(600)])
                )
            });
        assert!(
            ledger.attempted.contains(&id),
            "{name}: {} was never sent",
            marker(id)
        );
        // Complete and byte-exact, with a right S=/W= name: no partial message.
        stored.assert_is(SENDER, &message(id));
        let mailbox = stored
            .path
            .parent()
            .and_then(|p| p.parent())
            .map(|p| p.to_path_buf())
            .unwrap_or_default();
        assert!(
            recipients(id)
                .iter()
                .any(|r| maildir(&dir.data_dir, r) == mailbox),
            "{name}: {} was not addressed to this mailbox",
            marker(id)
        );
        *seen.entry((mailbox, id)).or_default() += 1;
    }
    if let Some(((mailbox, id), n)) = seen.iter().find(|(_, &n)| n > 1) {
        panic!(
            "{} is stored {n} times in {}",
            marker(*id),
            mailbox.display()
        );
    }
    for &id in &ledger.acked {
        for rcpt in recipients(id) {
            assert!(
                seen.contains_key(&(maildir(&dir.data_dir, &rcpt), id)),
                "{} got its 250 but is missing from {rcpt}'s Maildir after the crash",
                marker(id)
            );
        }
    }
}

#[test]
fn sigkill_under_load_loses_no_acknowledged_message_and_leaves_no_partial_one() {
    let dir = TestDir::new(&Config::default());
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut server = dir.start();

    for round in 0..ROUNDS {
        let load = Load::start(server.port, round, &ledger);

        let acked_in_round = |l: &Ledger| l.acked.iter().filter(|id| id.0 == round).count();
        let deadline = Instant::now() + LOAD_DEADLINE;
        while acked_in_round(&lock(&ledger)) < acks_before_kill(round) {
            let finished = load.workers.iter().all(|w| w.is_finished());
            if finished || Instant::now() > deadline {
                load.stop.store(true, Ordering::SeqCst);
                let l = lock(&ledger);
                panic!(
                    "round {round}: only {} messages acknowledged (workers finished: {finished}); unexpected replies: {:?}; connection errors: {:?}\n--- server log ---\n{}",
                    acked_in_round(&l),
                    l.unexpected,
                    l.errors_before_kill,
                    server.log()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }

        load.kill(&mut server, &ledger);
        {
            let l = lock(&ledger);
            eprintln!(
                "round {round}: {} acknowledged, {} attempted in total before SIGKILL; connection errors after it so far: {:?}",
                l.acked.len(),
                l.attempted.len(),
                l.errors_after_kill
            );
        }

        // Restart on the same data dir: it must come up (`start` fails the test
        // without a `ready` in time), and the Maildirs must hold.
        server = dir.start();
        check_data_dir(&dir, &lock(&ledger));
    }

    // The restarted server still delivers.
    let mut smtp = server.session();
    smtp.expect("EHLO after.crash.test", 250);
    let id = (ROUNDS, 0, 0);
    let rcpts = recipients(id);
    let rcpts: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    let reply = smtp
        .send_mail(SENDER, &rcpts, &message(id))
        .expect("deliver after the restart");
    assert!(reply.starts_with("250 2.0.0 ok: queued as "), "{reply}");
    let mut l = lock(&ledger);
    l.attempted.insert(id);
    l.acked.push(id);
    check_data_dir(&dir, &l);
}

/// The same with the queue's retries in flight: the shared mailbox starts
/// with no room (its copies wait in the queue, tried again every second),
/// gets room while the load goes on, and the server is killed while those
/// retries and the load's own deliveries run. After the restart every
/// acknowledged message is in each of its mailboxes exactly once.
#[test]
fn sigkill_while_the_queue_retries_loses_nothing_and_delivers_nothing_twice() {
    let dir = TestDir::new(&Config {
        users: vec!["shared@other.test::1000:1000::::userdb_quota_rule=*:bytes=1".into()],
        ..Config::default()
    });
    dir.append_config("[queue]\nretry_min = \"1s\"\nretry_max = \"1s\"\n");
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut server = dir.start();
    let load = Load::start(server.port, 0, &ledger);
    let wait_for_acks = |n: usize| {
        let deadline = Instant::now() + LOAD_DEADLINE;
        while lock(&ledger).acked.len() < n {
            assert!(
                Instant::now() < deadline,
                "only {} acknowledged: {:?}\n{}",
                lock(&ledger).acked.len(),
                lock(&ledger).unexpected,
                server.log()
            );
            thread::sleep(Duration::from_millis(10));
        }
    };
    wait_for_acks(90);
    let list = dir.queue_cli(&["list"]);
    assert!(
        list.contains("shared@other.test deferred (452 4.2.2"),
        "copies for the shared mailbox wait in the queue:\n{list}"
    );
    // Room for the shared mailbox: its waiting copies go out at their next try.
    std::fs::write(dir.users_file(), "shared@other.test::1000:1000::::\n").expect("write users");
    wait_for_acks(90 + 40);
    // A second or so later the retries are running beside the load.
    let until = Instant::now() + Duration::from_millis(1300);
    while Instant::now() < until {
        thread::sleep(Duration::from_millis(10));
    }
    load.kill(&mut server, &ledger);
    {
        let l = lock(&ledger);
        eprintln!(
            "{} acknowledged ({} with a copy for the shared mailbox) before SIGKILL",
            l.acked.len(),
            l.acked
                .iter()
                .filter(|id| recipients(**id).len() > 1)
                .count()
        );
    }
    let _server = dir.start();
    check_data_dir(&dir, &lock(&ledger));
}
