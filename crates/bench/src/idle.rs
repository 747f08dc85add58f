//! Idle mode: open N connections, complete EHLO on each, hold them, and
//! measure what they cost the server's memory.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::connection::{open, Io};
use crate::error::BenchError;
use crate::nofile::check_nofile;
use crate::plan::{Options, Plan};
use crate::proc_stats::{proc_tree, self_rss_kib, ProcTree};
use crate::stats::Stats;
use crate::Observer;

/// What an idle run measured.
#[derive(Clone, Debug)]
pub struct IdleReport {
    /// The address connected to.
    pub address: SocketAddr,
    /// Connections asked for.
    pub requested: u32,
    /// Opened and failed connections, failures by kind, refusals by code.
    pub stats: Stats,
    /// Seconds to open them all.
    pub open_s: f64,
    /// How long they were held.
    pub hold: Duration,
    /// The server process tree before opening and at the end of the hold.
    pub server: Option<(ProcTree, ProcTree)>,
    /// This process's resident set before opening, KiB.
    pub client_rss_before_kib: u64,
    /// This process's resident set at the end of the hold, KiB.
    pub client_rss_holding_kib: u64,
}

impl IdleReport {
    /// The growth from `before` to `after` per opened connection.
    pub fn per_connection(&self, before: u64, after: u64) -> f64 {
        if self.stats.opened == 0 {
            0.0
        } else {
            (after as f64 - before as f64) / self.stats.opened as f64
        }
    }
}

pub(crate) async fn idle(
    plan: Arc<Plan>,
    opts: &Options,
    n: u32,
    observer: &dyn Observer,
) -> Result<IdleReport, BenchError> {
    check_nofile(u64::from(n) + 64, observer);
    let server_before = opts.server_pid.and_then(proc_tree);
    if opts.server_pid.is_some() && server_before.is_none() {
        return Err(BenchError::NoProcess(opts.server_pid));
    }
    let client_before = self_rss_kib();
    let started = Instant::now();
    let held: Arc<Mutex<Vec<Box<dyn Io>>>> = Arc::new(Mutex::new(Vec::with_capacity(n as usize)));
    let next = Arc::new(AtomicU64::new(0));
    let workers = opts.connect_concurrency.min(n);
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (plan, held, next) = (plan.clone(), held.clone(), next.clone());
            tokio::spawn(async move {
                let mut stats = Stats::default();
                while next.fetch_add(1, Ordering::Relaxed) < u64::from(n) {
                    match open(&plan, &mut stats).await {
                        // Keep the socket only: the reply buffer goes.
                        Ok(c) => {
                            stats.opened += 1;
                            if let Ok(mut v) = held.lock() {
                                v.push(c.io);
                            }
                        }
                        Err(f) => {
                            stats.open_failed += 1;
                            stats.error(f);
                        }
                    }
                }
                stats
            })
        })
        .collect();
    let mut total = Stats::default();
    for t in tasks {
        if let Ok(s) = t.await {
            total.merge(s);
        }
    }
    let open_s = started.elapsed().as_secs_f64();
    observer.holding(total.opened, total.open_failed, open_s, opts.hold);
    tokio::time::sleep(opts.hold).await;
    let server_holding = opts.server_pid.and_then(proc_tree);
    let client_holding = self_rss_kib();
    if let Ok(mut v) = held.lock() {
        v.clear();
    }
    Ok(IdleReport {
        address: plan.addr,
        requested: n,
        stats: total,
        open_s,
        hold: opts.hold,
        server: server_before.zip(server_holding),
        client_rss_before_kib: client_before,
        client_rss_holding_kib: client_holding,
    })
}
