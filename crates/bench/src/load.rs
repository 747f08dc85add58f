//! Load mode: `sessions` tasks share the message budget (and the duration);
//! each claims the next message, sends it and times the accept.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::connection::{open, quit, transact, Conn, Outcome};
use crate::nofile::check_nofile;
use crate::plan::{Options, Plan};
use crate::proc_stats::{proc_tree, self_cpu_s, self_rss_kib, ProcTree};
use crate::stats::{Failure, Stats};
use crate::Observer;

/// Where a load run stands, for a progress line.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Messages finished (accepted, refused or failed).
    pub done: u64,
    /// Messages accepted.
    pub accepted: u64,
    /// The message budget.
    pub planned: u64,
    /// Accepted messages per second since the previous report.
    pub rate_per_s: f64,
    /// Since the run started.
    pub elapsed: Duration,
    /// The last report: every session has ended.
    pub finished: bool,
}

/// What a load run measured.
#[derive(Clone, Debug)]
pub struct LoadReport {
    /// The address connected to.
    pub address: SocketAddr,
    /// Every session's counts, merged.
    pub stats: Stats,
    /// First connect to last reply.
    pub elapsed: Duration,
    /// This process's user and system CPU over the run, seconds.
    pub client_cpu_s: f64,
    /// This process's resident set at the end, KiB.
    pub client_rss_kib: u64,
    /// The server process tree before and after the run, with a server pid.
    pub server: Option<(ProcTree, ProcTree)>,
}

impl LoadReport {
    /// Accepted messages per second and message bytes per second.
    pub fn rates(&self) -> (f64, f64) {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        (
            self.stats.accepted as f64 / secs,
            self.stats.bytes as f64 / secs,
        )
    }

    /// The server's CPU over the run, that per 1,000 accepted messages, and
    /// its figures at the end; with a server pid only.
    pub fn server_figures(&self) -> Option<(f64, f64, &ProcTree)> {
        let (before, after) = self.server.as_ref()?;
        let cpu = (after.cpu_s - before.cpu_s).max(0.0);
        let per_1000 = if self.stats.accepted > 0 {
            cpu * 1000.0 / self.stats.accepted as f64
        } else {
            0.0
        };
        Some((cpu, per_1000, after))
    }
}

pub(crate) async fn load(
    plan: Arc<Plan>,
    opts: &Options,
    observer: Arc<dyn Observer>,
) -> LoadReport {
    check_nofile(u64::from(opts.sessions) + 64, observer.as_ref());
    let server_before = opts.server_pid.and_then(proc_tree);
    if opts.server_pid.is_some() && server_before.is_none() {
        observer.warning(&format!("no process {:?} to measure", opts.server_pid));
    }
    let cpu_before = self_cpu_s();
    let started = Instant::now();
    let finished = Arc::new(AtomicBool::new(false));
    let progress = observer.progress_every().map(|every| {
        tokio::spawn(progress(
            plan.clone(),
            observer.clone(),
            every,
            finished.clone(),
            started,
        ))
    });
    let per_session = (opts.messages / u64::from(opts.sessions) + 1).min(1 << 20) as usize;
    let tasks: Vec<_> = (0..opts.sessions)
        .map(|_| tokio::spawn(session(plan.clone(), per_session)))
        .collect();
    let mut total = Stats::default();
    for task in tasks {
        match task.await {
            Ok(s) => total.merge(s),
            Err(e) => total.error(Failure::new("panic", e.to_string())),
        }
    }
    let elapsed = started.elapsed();
    finished.store(true, Ordering::Relaxed);
    if let Some(p) = progress {
        let _ = p.await;
    }
    let client_cpu_s = self_cpu_s() - cpu_before;
    let server_after = opts.server_pid.and_then(proc_tree);
    LoadReport {
        address: plan.addr,
        stats: total,
        elapsed,
        client_cpu_s,
        client_rss_kib: self_rss_kib(),
        server: server_before.zip(server_after),
    }
}

/// Reports progress every `every`, and once more when the run is finished.
async fn progress(
    plan: Arc<Plan>,
    observer: Arc<dyn Observer>,
    every: Duration,
    finished: Arc<AtomicBool>,
    started: Instant,
) {
    let mut last = (Instant::now(), 0u64);
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let finished = finished.load(Ordering::Relaxed);
        let now = Instant::now();
        let accepted = plan.accepted.load(Ordering::Relaxed);
        let dt = now.duration_since(last.0).as_secs_f64().max(1e-6);
        let rate_per_s = (accepted.saturating_sub(last.1)) as f64 / dt;
        last = (now, accepted);
        observer.progress(&Progress {
            done: plan.done.load(Ordering::Relaxed),
            accepted,
            planned: plan.messages,
            rate_per_s,
            elapsed: started.elapsed(),
            finished,
        });
        if finished {
            return;
        }
    }
}

/// One session: claims messages until the budget or the time is spent.
async fn session(plan: Arc<Plan>, expected: usize) -> Stats {
    let mut stats = Stats {
        latencies_us: Vec::with_capacity(expected),
        ..Stats::default()
    };
    let mut conn: Option<Conn> = None;
    while let Some(i) = plan.claim() {
        stats.attempted += 1;
        let p = plan.payload(i);
        if conn.is_none() {
            match open(&plan, &mut stats).await {
                Ok(c) => {
                    stats.opened += 1;
                    conn = Some(c);
                }
                Err(f) => {
                    stats.open_failed += 1;
                    if f.kind != "refused" {
                        stats.error(f);
                    }
                    stats.failed += 1;
                    plan.done.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let keep = match transact(&plan, c, p, &mut stats).await {
            Ok(Outcome::Accepted(latency)) => {
                stats.accepted += 1;
                stats.bytes += p.size as u64;
                stats
                    .latencies_us
                    .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
                plan.accepted.fetch_add(1, Ordering::Relaxed);
                true
            }
            Ok(Outcome::Refused(closing)) => {
                stats.failed += 1;
                !closing
            }
            Err(f) => {
                stats.failed += 1;
                stats.error(f);
                false
            }
        };
        plan.done.fetch_add(1, Ordering::Relaxed);
        if !keep {
            conn = None;
        } else if !plan.reuse {
            if let Some(c) = conn.take() {
                quit(c).await;
            }
        }
    }
    if let Some(c) = conn {
        quit(c).await;
    }
    stats
}
