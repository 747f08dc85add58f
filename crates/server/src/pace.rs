//! How long a client may take: the rule behind the session timeouts, with time
//! passed in, so that it is tested without waiting.
//!
//! RFC 5321 4.5.3.2 gives the timeouts per read ("waiting for the next
//! command", "for the next block of data"). Applied per read alone they let a
//! client that sends one byte just inside the timeout keep its session (and its
//! slot in `limits.sessions`) for ever. So, as Postfix does with
//! `smtpd_per_request_deadline` and `smtpd_min_data_rate`:
//!
//! - a command: from the start of the wait for it to its CRLF, at most
//!   `command_time` in all, however its bytes are spread;
//! - a message's data (DATA, or BDAT from its first chunk to its last):
//!   started `t` after it began and having sent `bytes`, the client is too
//!   slow once `t > grace + bytes / rate_min` (the deadline moves on by one
//!   second for every `rate_min` bytes received), and in any case once
//!   `t > time_max`.
//!
//! The idle gap between two reads stays bounded by the per-read timeout, which
//! the driver applies on its own.
//!
//! A client sending at `r` bytes a second, below `rate_min`, is closed at
//! `t = grace * rate_min / (rate_min - r)` (at `2 * grace` for `r = rate_min / 2`),
//! and never later than `time_max`. A client at or above `rate_min` is never
//! closed by the rate, and may pause for as long as it is ahead: `grace` plus
//! the seconds its bytes have earned beyond the floor.

use std::time::{Duration, Instant};

use crate::config::Limits;

/// The bounds of [`Pace`], from `[limits]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PaceLimits {
    /// One command, its wait included (`command_timeout`).
    pub command_time: Duration,
    /// Time before the rate floor applies (`data_timeout`).
    pub grace: Duration,
    /// Bytes a second a message's data must average after `grace`
    /// (`data_rate_min`); 0: no floor.
    pub rate_min: u64,
    /// One message's data in all (`data_time_max`); 0: no bound.
    pub time_max: Duration,
}

impl From<&Limits> for PaceLimits {
    fn from(l: &Limits) -> Self {
        Self {
            command_time: l.command_timeout.0,
            grace: l.data_timeout.0,
            rate_min: l.data_rate_min.0,
            time_max: l.data_time_max.0,
        }
    }
}

/// Which bound a client hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// A command took longer than `command_timeout`, its wait included.
    CommandTime,
    /// A message's data came in slower than `data_rate_min`.
    DataRate,
    /// A message's data took longer than `data_time_max`.
    DataTime,
}

impl Bound {
    /// The bound's name in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Bound::CommandTime => "command time",
            Bound::DataRate => "data rate",
            Bound::DataTime => "data time",
        }
    }
}

/// Where a session is in its time budget: since when it waits for a command,
/// or since when a message's data comes in and how many bytes it has sent.
/// Kept in every session, idle ones too: no allocation, three words and a flag.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    since: Instant,
    bytes: u64,
    data: bool,
}

impl Pace {
    /// Waiting for the first command since `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            since: now,
            bytes: 0,
            data: false,
        }
    }

    /// A command was read (or the data ended): the wait for the next one
    /// starts at `now`.
    pub fn command(&mut self, now: Instant) {
        *self = Self::new(now);
    }

    /// A message's data comes in; its clock starts at `now` unless it runs
    /// already (BDAT: the chunks of one message share one clock).
    pub fn data(&mut self, now: Instant) {
        if !self.data {
            *self = Self {
                since: now,
                bytes: 0,
                data: true,
            };
        }
    }

    /// True while a message's data comes in.
    pub fn in_data(&self) -> bool {
        self.data
    }

    /// `n` bytes were read; they count towards the rate while in data.
    pub fn received(&mut self, n: usize) {
        if self.data {
            self.bytes = self.bytes.saturating_add(n as u64);
        }
    }

    /// The earliest instant at which the client is too slow, and the bound it
    /// then hits; `None` when no bound applies (or none is representable).
    pub fn deadline(&self, limits: &PaceLimits) -> Option<(Instant, Bound)> {
        if !self.data {
            return Some((
                self.since.checked_add(limits.command_time)?,
                Bound::CommandTime,
            ));
        }
        let rate = (limits.rate_min > 0)
            .then(|| {
                let earned = earned(self.bytes, limits.rate_min);
                let at = self.since.checked_add(limits.grace)?.checked_add(earned)?;
                Some((at, Bound::DataRate))
            })
            .flatten();
        let time = (!limits.time_max.is_zero())
            .then(|| Some((self.since.checked_add(limits.time_max)?, Bound::DataTime)))
            .flatten();
        match (rate, time) {
            // The total bound first when both fall due together: it is the
            // plainer reason.
            (Some(r), Some(t)) => Some(if r.0 < t.0 { r } else { t }),
            (r, t) => r.or(t),
        }
    }

    /// The bound the client has hit at `now`, if any.
    pub fn too_slow(&self, now: Instant, limits: &PaceLimits) -> Option<Bound> {
        self.deadline(limits)
            .filter(|(at, _)| now >= *at)
            .map(|(_, b)| b)
    }
}

/// The time `bytes` buy at `rate` bytes a second (`rate > 0`).
fn earned(bytes: u64, rate: u64) -> Duration {
    let secs = bytes / rate;
    let nanos = u128::from(bytes % rate) * 1_000_000_000 / u128::from(rate);
    // `bytes % rate < rate`, so `nanos` is below one second.
    Duration::new(secs, u32::try_from(nanos).unwrap_or(999_999_999))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn limits() -> PaceLimits {
        PaceLimits {
            command_time: 10 * S,
            grace: 10 * S,
            rate_min: 1000,
            time_max: 600 * S,
        }
    }

    #[test]
    fn a_command_trickled_a_byte_at_a_time_is_too_slow_at_command_time() {
        let t0 = Instant::now();
        let mut p = Pace::new(t0);
        // A byte every 5 s: each gap is well inside the timeout, but the line
        // is not done after 10 s.
        for i in 1..=2 {
            p.received(1);
            assert_eq!(p.too_slow(t0 + 5 * S * i - S / 10, &limits()), None);
        }
        assert_eq!(p.too_slow(t0 + 10 * S, &limits()), Some(Bound::CommandTime));
    }

    #[test]
    fn each_command_gets_its_own_command_time() {
        let t0 = Instant::now();
        let mut p = Pace::new(t0);
        p.command(t0 + 9 * S);
        assert_eq!(p.too_slow(t0 + 18 * S, &limits()), None);
        assert_eq!(p.too_slow(t0 + 19 * S, &limits()), Some(Bound::CommandTime));
    }

    #[test]
    fn data_at_the_floor_rate_is_never_too_slow() {
        let t0 = Instant::now();
        let mut p = Pace::new(t0);
        p.data(t0);
        for sec in 1..=500u32 {
            p.received(1000);
            assert_eq!(p.too_slow(t0 + S * sec, &limits()), None, "at {sec}s");
        }
    }

    #[test]
    fn data_below_the_floor_is_too_slow_by_grace_times_floor_over_shortfall() {
        let t0 = Instant::now();
        let mut p = Pace::new(t0);
        p.data(t0);
        // 500 bytes a second against a floor of 1000: closed at
        // 10 s * 1000 / (1000 - 500) = 20 s.
        let mut hit = None;
        for sec in 1..=100u32 {
            p.received(500);
            if let Some(b) = p.too_slow(t0 + S * sec, &limits()) {
                hit = Some((sec, b));
                break;
            }
        }
        assert_eq!(hit, Some((20, Bound::DataRate)));
    }

    #[test]
    fn a_pause_within_the_grace_and_earned_time_is_allowed() {
        let t0 = Instant::now();
        let mut p = Pace::new(t0);
        p.data(t0);
        // 100 KB in the first second earns 100 s beyond the grace.
        p.received(100_000);
        assert_eq!(p.too_slow(t0 + 109 * S, &limits()), None);
        assert_eq!(p.too_slow(t0 + 110 * S, &limits()), Some(Bound::DataRate));
    }

    #[test]
    fn data_past_time_max_is_too_slow_however_fast() {
        let t0 = Instant::now();
        let mut p = Pace::new(t0);
        p.data(t0);
        p.received(10_000_000_000);
        assert_eq!(p.too_slow(t0 + 599 * S, &limits()), None);
        assert_eq!(p.too_slow(t0 + 600 * S, &limits()), Some(Bound::DataTime));
    }

    #[test]
    fn zero_turns_the_floor_and_the_total_off() {
        let t0 = Instant::now();
        let mut p = Pace::new(t0);
        p.data(t0);
        let off = PaceLimits {
            rate_min: 0,
            time_max: Duration::ZERO,
            ..limits()
        };
        assert_eq!(p.deadline(&off), None);
        let no_floor = PaceLimits {
            rate_min: 0,
            ..limits()
        };
        assert_eq!(p.deadline(&no_floor), Some((t0 + 600 * S, Bound::DataTime)));
    }

    #[test]
    fn bdat_chunks_of_one_message_share_one_clock_and_bytes_before_data_do_not_count() {
        let t0 = Instant::now();
        let mut p = Pace::new(t0);
        p.received(5_000);
        p.data(t0);
        p.received(1_000);
        // A second chunk: the clock runs on.
        p.data(t0 + 5 * S);
        assert_eq!(p.deadline(&limits()), Some((t0 + 11 * S, Bound::DataRate)));
        // The message ends: a command's time again, from then.
        p.command(t0 + 6 * S);
        assert!(!p.in_data());
        assert_eq!(
            p.deadline(&limits()),
            Some((t0 + 16 * S, Bound::CommandTime))
        );
    }

    #[test]
    fn earned_time_is_exact_to_the_nanosecond() {
        assert_eq!(earned(1500, 1000), Duration::from_millis(1500));
        assert_eq!(earned(1, 3), Duration::from_nanos(333_333_333));
        assert_eq!(earned(u64::MAX, 1), Duration::from_secs(u64::MAX));
    }
}
