//! A state database held by another process delays only the sessions that need
//! it. An outside process (Python's sqlite3, as a backup or `sqlite3` would)
//! holds the write lock of `state.sqlite` for four seconds; meanwhile five
//! sessions ask RCPTs that greylisting must record, and twenty others loop
//! EHLO/NOOP. The twenty go on as usual (no round trip waits for the lock);
//! the five get their answers once the lock is released, none hangs.
//!
//! The latencies are printed (run with `--nocapture`) for comparison with a
//! run without the lock; only the absence of a stall is asserted.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::{Config, TestDir};

/// How long the outside process holds the write lock.
const HOLD: Duration = Duration::from_secs(4);

/// EHLO/NOOP round trips of one idle-path session while `until` has not come:
/// each one's latency, and when it ended.
fn loop_noop(port: u16, ready: &Barrier, go: &Barrier) -> Vec<(Duration, Instant)> {
    let mut c = common::Smtp::connect(port).expect("connect");
    assert_eq!(c.read_reply().expect("greeting").code, 220);
    ready.wait();
    go.wait();
    let until = Instant::now() + HOLD;
    let mut out = Vec::new();
    let mut i = 0u32;
    while Instant::now() < until {
        let cmd = if i.is_multiple_of(2) {
            "EHLO client.test"
        } else {
            "NOOP"
        };
        let t = Instant::now();
        let r = c.cmd(cmd).expect("reply");
        assert_eq!(r.code, 250, "{cmd}: {r}");
        out.push((t.elapsed(), Instant::now()));
        i += 1;
        thread::sleep(Duration::from_millis(20));
    }
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// Runs the twenty loops for [`HOLD`] while five RCPT sessions ask; with
/// `lock`, the outside process holds the database from the start. Returns the
/// loops' latencies, the RCPT sessions' (reply code, reply time) and the start.
fn run(dir: &TestDir, port: u16, lock: bool) -> (Vec<Duration>, Vec<(u16, Instant)>, Instant) {
    // Every session is connected (past the greeting delay) and its
    // transaction open before the lock is taken; then all go at once.
    let ready = Arc::new(Barrier::new(26));
    let go = Arc::new(Barrier::new(26));
    let loops: Vec<_> = (0..20)
        .map(|_| {
            let (ready, go) = (ready.clone(), go.clone());
            thread::spawn(move || loop_noop(port, &ready, &go))
        })
        .collect();
    let rcpts: Vec<_> = (0..5)
        .map(|i| {
            let (ready, go) = (ready.clone(), go.clone());
            thread::spawn(move || {
                let mut c = common::Smtp::connect(port).expect("connect");
                c.set_read_timeout(Duration::from_secs(30));
                assert_eq!(c.read_reply().expect("greeting").code, 220);
                c.expect("EHLO client.test", 250);
                c.expect(&format!("MAIL FROM:<sender{i}@remote.test>"), 250);
                ready.wait();
                go.wait();
                // Greylisting records this triplet: a write to the state store.
                let r = c
                    .cmd("RCPT TO:<alice@example.test>")
                    .expect("an answer to RCPT, not a hang");
                let at = Instant::now();
                let _ = c.cmd("QUIT");
                (r.code, at)
            })
        })
        .collect();
    ready.wait();
    let holder = lock.then(|| {
        let script = "import sqlite3, sys, time\n\
                      c = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)\n\
                      c.execute('BEGIN EXCLUSIVE')\n\
                      print('locked', flush=True)\n\
                      time.sleep(float(sys.argv[2]))\n\
                      c.execute('COMMIT')\n\
                      print('released', flush=True)\n";
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(dir.data_dir.join("state.sqlite"))
            .arg(HOLD.as_secs_f64().to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("read");
        assert_eq!(line.trim(), "locked", "the outside process took the lock");
        (child, out)
    });
    let start = Instant::now();
    go.wait();
    let mut lat: Vec<Duration> = Vec::new();
    for l in loops {
        let rounds = l.join().expect("loop thread");
        assert!(
            rounds.len() >= 10,
            "an EHLO/NOOP session made only {} round trips in {HOLD:?}",
            rounds.len()
        );
        lat.extend(rounds.into_iter().map(|(d, _)| d));
    }
    let answers: Vec<(u16, Instant)> = rcpts
        .into_iter()
        .map(|t| t.join().expect("rcpt thread"))
        .collect();
    if let Some((mut child, mut out)) = holder {
        let mut line = String::new();
        out.read_line(&mut line).expect("read");
        assert_eq!(line.trim(), "released");
        let _ = child.wait();
    }
    (lat, answers, start)
}

#[test]
fn a_locked_state_database_delays_only_the_sessions_that_need_it() {
    let dir = TestDir::new(&Config::default());
    dir.append_config("[greylist]\nenabled = true\ndelay = \"1h\"\n");
    let server = dir.start();
    // Warm up, and make sure the database file and its WAL exist.
    {
        let mut c = server.session();
        c.expect("EHLO client.test", 250);
        c.expect("MAIL FROM:<warm@remote.test>", 250);
        c.expect("RCPT TO:<bob@example.test>", 450);
        c.expect("QUIT", 221);
    }

    let (mut free, answers, _) = run(&dir, server.port, false);
    for (code, _) in &answers {
        assert_eq!(*code, 450, "greylisted without the lock");
    }
    let (mut held, answers, start) = run(&dir, server.port, true);
    free.sort();
    held.sort();
    let show = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
    println!(
        "EHLO/NOOP latency, {} round trips without the lock: p50 {} p99 {} max {}",
        free.len(),
        show(percentile(&free, 0.5)),
        show(percentile(&free, 0.99)),
        show(*free.last().unwrap_or(&Duration::ZERO))
    );
    println!(
        "EHLO/NOOP latency, {} round trips while the lock was held: p50 {} p99 {} max {}",
        held.len(),
        show(percentile(&held, 0.5)),
        show(percentile(&held, 0.99)),
        show(*held.last().unwrap_or(&Duration::ZERO))
    );
    // A session stalled behind the lock would wait for most of HOLD.
    let worst = *held.last().expect("round trips");
    assert!(
        worst < HOLD / 2,
        "an EHLO/NOOP round trip waited {worst:?}, as if behind the database lock"
    );
    for (code, at) in &answers {
        let waited = at.duration_since(start);
        println!("RCPT answered {code} after {}", show(waited));
        assert!(*code == 450 || *code == 451, "RCPT during the lock: {code}");
        // It needed the store: it could not be answered before the release
        // (a little early is the release racing its report).
        assert!(
            waited >= HOLD - Duration::from_millis(500),
            "RCPT answered after {waited:?}, before the lock was released"
        );
    }
}
