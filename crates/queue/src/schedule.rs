//! When to try a deferred recipient again: `[queue] retry_min` after the
//! first failure, doubling up to `retry_max`, with jitter so that the
//! messages deferred together (a mailbox locked for a while) do not all come
//! back in the same second; and when to give up (`lifetime`). Time is an
//! argument: nothing here reads a clock.

use std::time::Duration;

/// The retry rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// The wait after the first failure.
    pub retry_min: Duration,
    /// The longest wait between attempts.
    pub retry_max: Duration,
    /// How long a message may stay in the queue before its pending
    /// recipients fail.
    pub lifetime: Duration,
    /// How long a recipient waits before its sender gets a delay notice
    /// (zero: never).
    pub delay_warning: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            retry_min: Duration::from_secs(5 * 60),
            retry_max: Duration::from_secs(60 * 60),
            lifetime: Duration::from_secs(5 * 24 * 60 * 60),
            delay_warning: Duration::from_secs(4 * 60 * 60),
        }
    }
}

impl Schedule {
    /// The wait after the `attempts`-th failed attempt (1 for the first):
    /// `retry_min * 2^(attempts-1)`, at most `retry_max`, minus up to a
    /// quarter of it by `jitter` (any number; the same number gives the same
    /// wait, so tests are exact).
    pub fn backoff(&self, attempts: u32, jitter: u64) -> Duration {
        let shift = attempts.saturating_sub(1).min(30);
        let base = self
            .retry_min
            .saturating_mul(1u32 << shift)
            .min(self.retry_max)
            .max(Duration::from_secs(1));
        let quarter = base.as_millis() as u64 / 4;
        let off = if quarter == 0 { 0 } else { jitter % quarter };
        base - Duration::from_millis(off)
    }

    /// The time (seconds since the epoch) of the next attempt after a failure
    /// at `now`, for a message that arrived at `arrival`; `None` when the
    /// lifetime is over by then (the recipient fails instead).
    pub fn next_attempt(&self, arrival: u64, now: u64, attempts: u32, jitter: u64) -> Option<u64> {
        let expires = self.expires(arrival);
        if now >= expires {
            return None;
        }
        let wait = self.backoff(attempts, jitter).as_secs().max(1);
        // The last attempt is made at the end of the lifetime, not skipped.
        Some((now + wait).min(expires))
    }

    /// When a message that arrived at `arrival` expires.
    pub fn expires(&self, arrival: u64) -> u64 {
        arrival.saturating_add(self.lifetime.as_secs())
    }

    /// Whether a recipient of a message that arrived at `arrival`, still
    /// pending at `now`, is due a delay notice.
    pub fn delay_due(&self, arrival: u64, now: u64) -> bool {
        !self.delay_warning.is_zero() && now >= arrival.saturating_add(self.delay_warning.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(min: u64, max: u64, life: u64) -> Schedule {
        Schedule {
            retry_min: Duration::from_secs(min),
            retry_max: Duration::from_secs(max),
            lifetime: Duration::from_secs(life),
            delay_warning: Duration::ZERO,
        }
    }

    #[test]
    fn backoff_doubles_from_retry_min_up_to_retry_max() {
        let sch = s(300, 3600, 86400);
        let waits: Vec<u64> = (1..=6).map(|a| sch.backoff(a, 0).as_secs()).collect();
        assert_eq!(waits, [300, 600, 1200, 2400, 3600, 3600]);
    }

    #[test]
    fn jitter_takes_at_most_a_quarter_off() {
        let sch = s(300, 3600, 86400);
        for j in 0..10_000u64 {
            let w = sch.backoff(1, j.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            assert!(
                w <= Duration::from_secs(300) && w > Duration::from_secs(225),
                "{w:?}"
            );
        }
    }

    #[test]
    fn the_last_attempt_is_at_the_end_of_the_lifetime_and_none_after() {
        let sch = s(300, 3600, 1000);
        assert_eq!(sch.next_attempt(0, 900, 3, 0), Some(1000));
        assert_eq!(sch.next_attempt(0, 1000, 4, 0), None);
    }

    #[test]
    fn a_zero_delay_warning_never_warns() {
        let mut sch = s(1, 1, 10);
        assert!(!sch.delay_due(0, 1_000_000));
        sch.delay_warning = Duration::from_secs(5);
        assert!(!sch.delay_due(0, 4));
        assert!(sch.delay_due(0, 5));
    }
}
