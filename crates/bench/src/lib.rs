//! An SMTP load generator in the spirit of Postfix's `smtp-source`, and an
//! idle-connection cost meter: the work behind `pillarbox bench`.
//!
//! Load mode ([`Bench::run_load`]): `sessions` tasks share a budget of
//! `messages` (and an optional duration); each claims the next message,
//! sends it (one per connection, or many with `reuse`) and records the
//! accept latency: the time from writing the final `.` (or the
//! `BDAT ... LAST` chunk) to reading the reply. The [`LoadReport`] has the
//! counts, every non-2xx reply by code and the latencies.
//!
//! Idle mode ([`Bench::run_idle`]): opens N connections, completes EHLO on
//! each, holds them and reports the server's RSS growth per connection
//! from `/proc/PID/status`.
//!
//! The client must not be the bottleneck, so it does not use the
//! transcript-keeping [`pillarbox_client::Client`]: raw tokio sockets and
//! the client crate's [`pillarbox_client::LineReader`] (one small reply
//! buffer per connection, lines checked, none kept), every command and
//! message body built once before the run and shared (`Arc<[u8]>`),
//! nothing allocated per line. Every loop is bounded by the message budget,
//! the duration, and connect/read timeouts. It only ever targets loopback
//! unless [`Options::allow_targets`] names the address.
//!
//! * [`plan`]: the options, and what is built from them before the run.
//! * `connection`: one SMTP connection and its transactions.
//! * [`stats`]: what the sessions count.
//! * [`load`] and [`idle`]: the two modes and their reports.
//! * [`proc_stats`]: CPU and memory of processes, from /proc.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

mod connection;
mod error;
pub mod idle;
pub mod load;
mod nofile;
pub mod plan;
pub mod proc_stats;
pub mod stats;

pub use error::BenchError;
pub use idle::IdleReport;
pub use load::{LoadReport, Progress};
pub use plan::{Credentials, Options, Security};
pub use proc_stats::ProcTree;
pub use stats::{LatencySummary, Stats};

use plan::Plan;

/// What a run tells its caller while it goes.
pub trait Observer: Send + Sync {
    /// Something the person running it should know (a descriptor limit
    /// too low, no process to measure); the run goes on.
    fn warning(&self, text: &str);
    /// How often [`Observer::progress`] is called in load mode; `None`:
    /// never.
    fn progress_every(&self) -> Option<Duration>;
    /// Where a load run stands; the last call has `finished` set.
    fn progress(&self, progress: &Progress);
    /// Idle mode: the connections are open and about to be held.
    fn holding(&self, opened: u64, failed: u64, open_s: f64, hold: Duration);
}

/// A run ready to start: its runtime, the target checked and resolved,
/// every command and message built.
pub struct Bench {
    runtime: tokio::runtime::Runtime,
    plan: Arc<Plan>,
    options: Options,
}

impl Bench {
    /// Starts the runtime (one thread unless `threads` says more: the
    /// cheapest on CPU), resolves and checks the target, builds the
    /// messages.
    pub fn new(options: Options) -> Result<Bench, BenchError> {
        let runtime = if options.threads <= 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(options.threads as usize)
                .enable_all()
                .build()
        }
        .map_err(BenchError::Runtime)?;
        let plan = runtime.block_on(Plan::new(&options))?;
        Ok(Bench {
            runtime,
            plan: Arc::new(plan),
            options,
        })
    }

    /// The address the run connects to.
    pub fn address(&self) -> SocketAddr {
        self.plan.addr
    }

    /// Each message size as built (headers included; a size smaller than
    /// the headers gives the headers and one line) and its weight.
    pub fn sizes(&self) -> Vec<(usize, u64)> {
        self.plan.sizes()
    }

    /// The options the run was made from.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Load mode: sends the message budget and measures it.
    pub fn run_load(&self, observer: Arc<dyn Observer>) -> LoadReport {
        self.runtime
            .block_on(load::load(self.plan.clone(), &self.options, observer))
    }

    /// Idle mode: opens `n` connections, holds them, measures them.
    pub fn run_idle(&self, n: u32, observer: &dyn Observer) -> Result<IdleReport, BenchError> {
        self.runtime
            .block_on(idle::idle(self.plan.clone(), &self.options, n, observer))
    }
}
