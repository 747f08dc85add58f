//! What the sessions count: messages, replies outside 2xx by code,
//! transport failures by kind, accept latencies.

use std::collections::BTreeMap;

/// Why a connection failed (not a reply: those are counted by code).
#[derive(Debug)]
pub struct Failure {
    /// connect, timeout, io, closed, tls, protocol, refused or panic.
    pub kind: &'static str,
    /// What happened, for the report's sample.
    pub detail: String,
}

impl Failure {
    /// A failure of `kind`.
    pub fn new(kind: &'static str, detail: impl Into<String>) -> Failure {
        Failure {
            kind,
            detail: detail.into(),
        }
    }
}

/// What one session (or the idle opener) counted; merged at the end.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Messages claimed from the budget.
    pub attempted: u64,
    /// Messages the server took (2xx after the end of data).
    pub accepted: u64,
    /// Messages refused (non-2xx) or lost to a transport failure.
    pub failed: u64,
    /// Message bytes of accepted messages.
    pub bytes: u64,
    /// Accept latency of each accepted message, microseconds.
    pub latencies_us: Vec<u32>,
    /// Every reply outside 2xx (and not the expected 354, 334 or 220) by code.
    pub replies: BTreeMap<u16, u64>,
    /// The last line of the first reply of each code.
    pub reply_samples: BTreeMap<u16, String>,
    /// Transport failures by kind.
    pub errors: BTreeMap<&'static str, u64>,
    /// The first failure of each kind.
    pub error_samples: BTreeMap<&'static str, String>,
    /// Connections opened (through EHLO, TLS and AUTH as asked).
    pub opened: u64,
    /// Connections that failed before they were usable.
    pub open_failed: u64,
}

/// Accept latency figures, milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatencySummary {
    /// The median (nearest rank, as every percentile here).
    pub p50: f64,
    /// The 90th percentile.
    pub p90: f64,
    /// The 99th percentile.
    pub p99: f64,
    /// The slowest accept.
    pub max: f64,
    /// The arithmetic mean.
    pub mean: f64,
}

impl Stats {
    /// A reply outside what the step expects: counted, its text sampled.
    pub fn reply(&mut self, code: u16, last_line: &[u8]) {
        *self.replies.entry(code).or_insert(0) += 1;
        self.reply_samples
            .entry(code)
            .or_insert_with(|| String::from_utf8_lossy(last_line).into_owned());
    }

    /// A transport failure: counted by kind, the first one kept.
    pub fn error(&mut self, f: Failure) {
        *self.errors.entry(f.kind).or_insert(0) += 1;
        self.error_samples.entry(f.kind).or_insert(f.detail);
    }

    /// Adds another session's counts.
    pub fn merge(&mut self, o: Stats) {
        self.attempted += o.attempted;
        self.accepted += o.accepted;
        self.failed += o.failed;
        self.bytes += o.bytes;
        self.latencies_us.extend_from_slice(&o.latencies_us);
        for (k, v) in o.replies {
            *self.replies.entry(k).or_insert(0) += v;
        }
        for (k, v) in o.reply_samples {
            self.reply_samples.entry(k).or_insert(v);
        }
        for (k, v) in o.errors {
            *self.errors.entry(k).or_insert(0) += v;
        }
        for (k, v) in o.error_samples {
            self.error_samples.entry(k).or_insert(v);
        }
        self.opened += o.opened;
        self.open_failed += o.open_failed;
    }

    /// The latency figures; `None` when nothing was accepted.
    pub fn latency(&self) -> Option<LatencySummary> {
        let mut v = self.latencies_us.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64 / 1000.0;
        Some(LatencySummary {
            p50: percentile_ms(&v, 50.0),
            p90: percentile_ms(&v, 90.0),
            p99: percentile_ms(&v, 99.0),
            max: percentile_ms(&v, 100.0),
            mean,
        })
    }
}

/// Nearest-rank percentile of sorted microseconds, in milliseconds.
fn percentile_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u32> = (1..=100).map(|x| x * 1000).collect();
        assert_eq!(percentile_ms(&v, 50.0), 50.0);
        assert_eq!(percentile_ms(&v, 99.0), 99.0);
        assert_eq!(percentile_ms(&v, 100.0), 100.0);
    }
}
