//! Greylisting as postgrey does it: refuse a new (client network,
//! sender, recipient) triplet with `450 4.2.0` for a while, and let it pass once the
//! client retries, as real MTAs do (RFC 5321 4.5.4.1) and most spam software does not.
//!
//! The rules, after postgrey 1.37 and what its users learned:
//!
//! * The triplet is the client's network (IPv4 /24, IPv6 /64, configurable; an
//!   IPv4-mapped IPv6 address counts as IPv4), because large senders retry from
//!   another address of the same pool; the sender with the parts that change per
//!   message normalised away ([`normalise_sender`]); and the lower-cased recipient.
//! * First sight, or a retry before the delay: greylisted, with the seconds left.
//!   A retry after the delay passes, and the triplet passes from then on until it
//!   has been unused for `max_age`. A first retry after the retry window starts a
//!   new round.
//! * A network whose triplets passed `auto_whitelist_after` times (at most one pass
//!   counted per `pass_count_interval`, so one burst of mail does not count five
//!   times) is auto-whitelisted: it passes without greylisting while it keeps
//!   sending at least once per `auto_whitelist_for`.
//!
//! Authenticated clients, trusted networks and configured whitelists never reach
//! this module: the server's policy skips it for them.
//!
//! [`decide`] is the whole decision, a pure function of the stored records and the
//! time; [`check`] only wraps it in one [`StateDb`] transaction.

use std::net::IpAddr;

use crate::state::{
    ClientRecord, GreylistRecords, Retention, StateDb, StateError, Triplet, TripletRecord,
};

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// Greylisting parameters; [`Default`] gives postgrey's defaults. Times in seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GreylistConfig {
    /// How long a new triplet is refused (postgrey `--delay`, 300 s).
    pub delay: u64,
    /// How long after first sight a retry still completes the round
    /// (postgrey `--retry-window`, 2 days).
    pub retry_window: u64,
    /// Passes after which a client network is auto-whitelisted
    /// (postgrey `--auto-whitelist-clients`, 5); 0 turns auto-whitelisting off.
    pub auto_whitelist_after: u32,
    /// How long an auto-whitelisted network stays whitelisted after it was last
    /// seen (35 days, postgrey's `--max-age` for the client database).
    pub auto_whitelist_for: u64,
    /// At most one pass per network is counted, and a whitelisted network's
    /// last-seen time refreshed, per this interval (postgrey: one hour).
    pub pass_count_interval: u64,
    /// Prefix length that makes an IPv4 client's network (24).
    pub ipv4_prefix: u8,
    /// Prefix length that makes an IPv6 client's network (64).
    pub ipv6_prefix: u8,
    /// A triplet unused for longer is forgotten (postgrey `--max-age`, 35 days).
    pub max_age: u64,
}

impl Default for GreylistConfig {
    fn default() -> Self {
        GreylistConfig {
            delay: 300,
            retry_window: 2 * DAY,
            auto_whitelist_after: 5,
            auto_whitelist_for: 35 * DAY,
            pass_count_interval: HOUR,
            ipv4_prefix: 24,
            ipv6_prefix: 64,
            max_age: 35 * DAY,
        }
    }
}

impl GreylistConfig {
    /// What [`StateDb::purge`] keeps of greylisting state under this configuration
    /// (the authentication failure window stays at its default).
    pub fn retention(&self) -> Retention {
        Retention {
            greylist_max_age: self.max_age,
            greylist_retry_window: self.retry_window,
            auto_whitelist_for: self.auto_whitelist_for,
            ..Retention::default()
        }
    }
}

/// The greylisting answer for one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The triplet waited out its delay, now or earlier.
    Pass,
    /// The client network is auto-whitelisted.
    PassWhitelisted,
    /// Refuse with `450 4.2.0 greylisted, try again in <retry_in> seconds`.
    Greylisted {
        /// Seconds until a retry passes; at least 1.
        retry_in: u64,
    },
}

/// Checks one recipient of a transaction from `client` with envelope `sender`, at
/// `now` (unix seconds), and records the attempt.
pub fn check(
    db: &StateDb,
    cfg: &GreylistConfig,
    client: IpAddr,
    sender: &str,
    recipient: &str,
    now: u64,
) -> Result<Decision, StateError> {
    let key = triplet(cfg, client, sender, recipient);
    db.greylist_update(&key, |stored| decide(cfg, stored, now))
}

/// Removes stale greylisting state (and other expired state) from `db`.
pub fn purge(
    db: &StateDb,
    cfg: &GreylistConfig,
    now: u64,
) -> Result<crate::state::Purged, StateError> {
    db.purge(now, &cfg.retention())
}

/// The normalised triplet of one attempt.
pub fn triplet(cfg: &GreylistConfig, client: IpAddr, sender: &str, recipient: &str) -> Triplet {
    Triplet {
        network: client_network(client, cfg.ipv4_prefix, cfg.ipv6_prefix),
        sender: normalise_sender(sender),
        recipient: recipient.trim().to_lowercase(),
    }
}

/// The decision for an attempt at `now`, given what is `stored` for its triplet and
/// network. Returns the answer and what to store (`None`: leave unchanged).
pub fn decide(
    cfg: &GreylistConfig,
    stored: GreylistRecords,
    now: u64,
) -> (Decision, GreylistRecords) {
    let awl_on = cfg.auto_whitelist_after > 0;

    // A whitelisted network skips the triplet entirely, as in postgrey.
    if let Some(client) = stored.client {
        let fresh = now.saturating_sub(client.last_seen) <= cfg.auto_whitelist_for;
        if awl_on && fresh && client.passes >= cfg.auto_whitelist_after {
            let refresh = now >= client.last_seen.saturating_add(cfg.pass_count_interval);
            let client = refresh.then_some(ClientRecord {
                passes: client.passes.saturating_add(1),
                last_seen: now,
            });
            return (
                Decision::PassWhitelisted,
                GreylistRecords {
                    triplet: None,
                    client,
                },
            );
        }
    }

    // Where the triplet's round stands: one that passed keeps passing while in use;
    // an unfinished one is abandoned once its retry window is over.
    let (first_seen, passed_before) = match stored.triplet {
        Some(t) if t.passed && now.saturating_sub(t.last_seen) <= cfg.max_age => {
            (t.first_seen, true)
        }
        Some(t) if !t.passed && now.saturating_sub(t.first_seen) <= cfg.retry_window => {
            (t.first_seen, false)
        }
        _ => (now, false),
    };
    // A clock stepped back makes `now < first_seen`: that waited nothing.
    let waited = now.saturating_sub(first_seen);
    let passed = passed_before || waited >= cfg.delay;
    let triplet = Some(TripletRecord {
        first_seen,
        last_seen: now,
        passed,
    });
    if !passed {
        let retry_in = (cfg.delay - waited).max(1);
        return (
            Decision::Greylisted { retry_in },
            GreylistRecords {
                triplet,
                client: None,
            },
        );
    }

    // The first pass of a triplet counts for its network, once per interval.
    let client = if awl_on && !passed_before {
        match stored.client {
            Some(c) if now < c.last_seen.saturating_add(cfg.pass_count_interval) => None,
            Some(c) => Some(ClientRecord {
                passes: c.passes.saturating_add(1),
                last_seen: now,
            }),
            None => Some(ClientRecord {
                passes: 1,
                last_seen: now,
            }),
        }
    } else {
        None
    };
    (Decision::Pass, GreylistRecords { triplet, client })
}

/// The network `ip` belongs to, as a key: `192.0.2.0/24`, `2001:db8:1:2::/64`.
/// An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, what a dual-stack socket
/// reports for an IPv4 client) is treated as the IPv4 address it carries.
pub fn client_network(ip: IpAddr, ipv4_prefix: u8, ipv6_prefix: u8) -> String {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            let prefix = ipv4_prefix.min(32);
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            let net = std::net::Ipv4Addr::from(u32::from(v4) & mask);
            format!("{net}/{prefix}")
        }
        IpAddr::V6(v6) => {
            let prefix = ipv6_prefix.min(128);
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            let net = std::net::Ipv6Addr::from(u128::from(v6) & mask);
            format!("{net}/{prefix}")
        }
    }
}

/// The sender as the triplet uses it, so that the retry of one message, and the
/// next message of a mailing list, meet the same triplet:
///
/// * lower-cased; the null sender (`<>`) is the empty string;
/// * a BATV tag stripped (`prvs=TAG=user@dom`, Microsoft's `msprvs1=TAG=user@dom`,
///   `btv1==TAG==user@dom`): it changes every day or every message;
/// * a `+subaddress` stripped (postgrey: "used sometimes for mailing-list VERP");
/// * every number standing as a word of its own in the local part replaced by `#`
///   (postgrey's `s/\b\d+\b/#/`), so `bounce-123-456@` becomes `bounce-#-#@`, while
///   digits glued to letters (`user2@`) stay, as they name a different sender.
pub fn normalise_sender(sender: &str) -> String {
    let sender = sender.trim();
    let sender = sender
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(sender)
        .to_lowercase();
    let Some((local, domain)) = sender.rsplit_once('@') else {
        return sender;
    };
    let local = strip_batv(local);
    let local = local.split('+').next().unwrap_or(local);
    format!("{}@{domain}", hash_numbers(local))
}

/// The local part without its BATV tag, if it carries one.
fn strip_batv(local: &str) -> &str {
    for scheme in ["prvs=", "msprvs1="] {
        if let Some((_tag, user)) = local.strip_prefix(scheme).and_then(|r| r.split_once('=')) {
            if !user.is_empty() {
                return user;
            }
        }
    }
    if let Some((_tag, user)) = local
        .strip_prefix("btv1==")
        .and_then(|r| r.split_once("=="))
    {
        if !user.is_empty() {
            return user;
        }
    }
    local
}

/// Replaces each run of digits that is a word of its own by `#` (Perl's
/// `s/\b\d+\b/#/g`: a word character is a letter, a digit or `_`).
fn hash_numbers(local: &str) -> String {
    let is_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let chars: Vec<char> = local.chars().collect();
    let mut out = String::with_capacity(local.len());
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        if chars[i].is_ascii_digit() {
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let before = start.checked_sub(1).map(|j| chars[j]);
            let after = chars.get(i).copied();
            if !is_word(before) && !is_word(after) {
                out.push('#');
            } else {
                out.extend(&chars[start..i]);
            }
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const T0: u64 = 1_700_000_000;

    fn cfg() -> GreylistConfig {
        GreylistConfig::default()
    }

    /// Runs `decide` against an in-memory copy of the records, as `check` does
    /// against the database.
    struct Sim {
        cfg: GreylistConfig,
        stored: GreylistRecords,
    }

    impl Sim {
        fn new(cfg: GreylistConfig) -> Self {
            Sim {
                cfg,
                stored: GreylistRecords::default(),
            }
        }

        fn attempt(&mut self, now: u64) -> Decision {
            let (decision, store) = decide(&self.cfg, self.stored, now);
            if store.triplet.is_some() {
                self.stored.triplet = store.triplet;
            }
            if store.client.is_some() {
                self.stored.client = store.client;
            }
            decision
        }

        /// A new triplet from the same network: the network's record stays.
        fn new_triplet(&mut self) {
            self.stored.triplet = None;
        }
    }

    #[test]
    fn first_sight_is_greylisted_for_the_delay() {
        let mut sim = Sim::new(cfg());
        assert_eq!(sim.attempt(T0), Decision::Greylisted { retry_in: 300 });
    }

    #[test]
    fn retry_before_delay_is_greylisted_for_the_time_left() {
        let mut sim = Sim::new(cfg());
        sim.attempt(T0);
        assert_eq!(
            sim.attempt(T0 + 100),
            Decision::Greylisted { retry_in: 200 }
        );
        // Early retries do not restart the clock.
        assert_eq!(sim.attempt(T0 + 299), Decision::Greylisted { retry_in: 1 });
    }

    #[test]
    fn retry_after_delay_passes() {
        let mut sim = Sim::new(cfg());
        sim.attempt(T0);
        assert_eq!(sim.attempt(T0 + 300), Decision::Pass);
    }

    #[test]
    fn passed_triplet_keeps_passing_without_delay() {
        let mut sim = Sim::new(cfg());
        sim.attempt(T0);
        sim.attempt(T0 + 400);
        assert_eq!(sim.attempt(T0 + 30 * DAY), Decision::Pass);
        assert_eq!(sim.attempt(T0 + 60 * DAY), Decision::Pass);
    }

    #[test]
    fn passed_triplet_unused_past_max_age_starts_over() {
        let mut sim = Sim::new(cfg());
        sim.attempt(T0);
        sim.attempt(T0 + 400);
        assert_eq!(
            sim.attempt(T0 + 400 + 35 * DAY + 1),
            Decision::Greylisted { retry_in: 300 }
        );
    }

    #[test]
    fn retry_after_window_starts_over() {
        let mut sim = Sim::new(cfg());
        sim.attempt(T0);
        let late = T0 + 2 * DAY + 1;
        assert_eq!(sim.attempt(late), Decision::Greylisted { retry_in: 300 });
        assert_eq!(sim.attempt(late + 300), Decision::Pass);
    }

    #[test]
    fn retry_at_the_end_of_the_window_still_passes() {
        let mut sim = Sim::new(cfg());
        sim.attempt(T0);
        assert_eq!(sim.attempt(T0 + 2 * DAY), Decision::Pass);
    }

    #[test]
    fn clock_stepped_back_does_not_pass() {
        let mut sim = Sim::new(cfg());
        sim.attempt(T0);
        assert_eq!(
            sim.attempt(T0 - 1_000),
            Decision::Greylisted { retry_in: 300 }
        );
    }

    #[test]
    fn zero_delay_passes_at_first_sight() {
        let mut sim = Sim::new(GreylistConfig { delay: 0, ..cfg() });
        assert_eq!(sim.attempt(T0), Decision::Pass);
    }

    #[test]
    fn network_is_auto_whitelisted_after_n_passes() {
        let mut sim = Sim::new(cfg());
        let mut now = T0;
        for _ in 0..5 {
            sim.new_triplet();
            assert!(matches!(sim.attempt(now), Decision::Greylisted { .. }));
            assert_eq!(sim.attempt(now + 300), Decision::Pass);
            now += HOUR + 300;
        }
        sim.new_triplet();
        assert_eq!(sim.attempt(now), Decision::PassWhitelisted);
    }

    #[test]
    fn passes_within_one_interval_count_once() {
        let mut sim = Sim::new(cfg());
        for i in 0..10 {
            sim.new_triplet();
            sim.attempt(T0 + i);
            sim.attempt(T0 + i + 300);
        }
        assert_eq!(sim.stored.client.map(|c| c.passes), Some(1));
        sim.new_triplet();
        assert!(matches!(sim.attempt(T0 + 400), Decision::Greylisted { .. }));
    }

    #[test]
    fn repeated_passes_of_one_triplet_count_once() {
        let mut sim = Sim::new(cfg());
        sim.attempt(T0);
        sim.attempt(T0 + 300);
        for day in 1..10 {
            assert_eq!(sim.attempt(T0 + day * DAY), Decision::Pass);
        }
        assert_eq!(sim.stored.client.map(|c| c.passes), Some(1));
    }

    #[test]
    fn auto_whitelist_lapses_when_the_network_stops_sending() {
        let mut sim = Sim::new(cfg());
        sim.stored.client = Some(ClientRecord {
            passes: 5,
            last_seen: T0,
        });
        assert_eq!(sim.attempt(T0 + 35 * DAY), Decision::PassWhitelisted);
        // That attempt refreshed the entry.
        assert_eq!(sim.attempt(T0 + 70 * DAY), Decision::PassWhitelisted);
        sim.new_triplet();
        assert!(matches!(
            sim.attempt(T0 + 105 * DAY + 1),
            Decision::Greylisted { .. }
        ));
    }

    #[test]
    fn auto_whitelist_off_with_zero_passes() {
        let mut sim = Sim::new(GreylistConfig {
            auto_whitelist_after: 0,
            ..cfg()
        });
        sim.stored.client = Some(ClientRecord {
            passes: 100,
            last_seen: T0,
        });
        assert!(matches!(sim.attempt(T0), Decision::Greylisted { .. }));
        sim.attempt(T0 + 300);
        assert_eq!(sim.stored.client.map(|c| c.passes), Some(100));
    }

    #[test]
    fn ipv4_clients_share_their_24() {
        let c = cfg();
        let a = triplet(&c, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), "s@x", "r@y");
        let b = triplet(&c, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 254)), "s@x", "r@y");
        let other = triplet(&c, IpAddr::V4(Ipv4Addr::new(192, 0, 3, 1)), "s@x", "r@y");
        assert_eq!(a.network, "192.0.2.0/24");
        assert_eq!(a, b);
        assert_ne!(a, other);
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(
            client_network(ip("2001:db8:1:2:aaaa::1"), 24, 64),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            client_network(ip("2001:db8:1:2:ffff::9"), 24, 64),
            client_network(ip("2001:db8:1:2::1"), 24, 64)
        );
        assert_ne!(
            client_network(ip("2001:db8:1:3::1"), 24, 64),
            client_network(ip("2001:db8:1:2::1"), 24, 64)
        );
    }

    #[test]
    fn ipv4_mapped_ipv6_is_treated_as_ipv4() {
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 9).to_ipv6_mapped());
        assert_eq!(client_network(mapped, 24, 64), "192.0.2.0/24");
    }

    #[test]
    fn prefixes_are_configurable_and_clamped() {
        let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9));
        let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 3, 4, 5, 6));
        assert_eq!(client_network(v4, 32, 64), "192.0.2.9/32");
        assert_eq!(client_network(v4, 16, 64), "192.0.0.0/16");
        assert_eq!(client_network(v4, 0, 64), "0.0.0.0/0");
        assert_eq!(client_network(v4, 99, 64), "192.0.2.9/32");
        assert_eq!(client_network(v6, 24, 48), "2001:db8:1::/48");
        assert_eq!(client_network(v6, 24, 200), "2001:db8:1:2:3:4:5:6/128");
        assert_eq!(client_network(v6, 24, 0), "::/0");
    }

    #[test]
    fn batv_and_subaddress_tags_are_normalised() {
        assert_eq!(
            normalise_sender("prvs=234d5777c=Ross.Lagerwall@Citrix.com"),
            "ross.lagerwall@citrix.com"
        );
        assert_eq!(
            normalise_sender("msprvs1=19876abcdefgh=bounces-abc@example.org"),
            "bounces-abc@example.org"
        );
        assert_eq!(
            normalise_sender("btv1==1a2b3c4d5e6==alice@example.org"),
            "alice@example.org"
        );
        assert_eq!(
            normalise_sender("list-bounces+alice=example.test@lists.example.org"),
            "list-bounces@lists.example.org"
        );
        // Tags that change per message collapse to one triplet.
        assert_eq!(
            normalise_sender("prvs=1111aaaaaa=alice+x1@example.org"),
            normalise_sender("prvs=2222bbbbbb=alice+y2@example.org")
        );
    }

    #[test]
    fn verp_numbers_become_hash() {
        assert_eq!(
            normalise_sender("bounce-123-456@lists.example.org"),
            "bounce-#-#@lists.example.org"
        );
        assert_eq!(normalise_sender("42@example.org"), "#@example.org");
        assert_eq!(
            normalise_sender("owner-list.20240101.77@example.org"),
            "owner-list.#.#@example.org"
        );
    }

    #[test]
    fn digits_glued_to_letters_are_kept() {
        assert_eq!(normalise_sender("user2@example.org"), "user2@example.org");
        assert_eq!(normalise_sender("a_12@example.org"), "a_12@example.org");
        assert_eq!(normalise_sender("12b-3@example.org"), "12b-#@example.org");
    }

    #[test]
    fn null_sender_is_empty() {
        assert_eq!(normalise_sender(""), "");
        assert_eq!(normalise_sender("<>"), "");
    }

    #[test]
    fn malformed_batv_is_left_alone() {
        assert_eq!(normalise_sender("prvs=@example.org"), "prvs=@example.org");
        assert_eq!(
            normalise_sender("btv1==x@example.org"),
            "btv1==x@example.org"
        );
    }

    #[test]
    fn recipient_is_lower_cased_but_keeps_its_subaddress() {
        let t = triplet(
            &cfg(),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            "",
            "Alice+Lists@Example.TEST",
        );
        assert_eq!(t.recipient, "alice+lists@example.test");
        assert_eq!(t.sender, "");
    }

    fn open_temp() -> (tempfile::TempDir, StateDb) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = StateDb::open(dir.path().join("state.sqlite")).expect("open");
        (dir, db)
    }

    #[test]
    fn check_greylists_then_passes_through_the_database() {
        let (_dir, db) = open_temp();
        let c = cfg();
        let ip: IpAddr = "192.0.2.10".parse().expect("ip");
        let check_at = |ip, now| {
            check(
                &db,
                &c,
                ip,
                "prvs=0123abcdef=a@example.org",
                "b@example.test",
                now,
            )
            .expect("check")
        };
        assert_eq!(check_at(ip, T0), Decision::Greylisted { retry_in: 300 });
        // The retry comes from another address of the pool, with a fresh BATV tag.
        let other: IpAddr = "192.0.2.11".parse().expect("ip");
        assert_eq!(
            check(
                &db,
                &c,
                other,
                "prvs=9999ffffff=A@example.org",
                "B@example.test",
                T0 + 60
            )
            .expect("check"),
            Decision::Greylisted { retry_in: 240 }
        );
        assert_eq!(check_at(other, T0 + 300), Decision::Pass);
    }

    #[test]
    fn greylist_state_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.sqlite");
        let c = cfg();
        let ip: IpAddr = "2001:db8::1".parse().expect("ip");
        {
            let db = StateDb::open(&path).expect("open");
            assert!(matches!(
                check(&db, &c, ip, "a@example.org", "b@example.test", T0).expect("check"),
                Decision::Greylisted { .. }
            ));
        }
        let db = StateDb::open(&path).expect("reopen");
        assert_eq!(
            check(&db, &c, ip, "a@example.org", "b@example.test", T0 + 300).expect("check"),
            Decision::Pass
        );
    }

    #[test]
    fn auto_whitelist_is_stored_per_network() {
        let (_dir, db) = open_temp();
        let c = GreylistConfig {
            auto_whitelist_after: 2,
            ..cfg()
        };
        let ip: IpAddr = "198.51.100.7".parse().expect("ip");
        for (i, rcpt) in ["a@example.test", "b@example.test"].iter().enumerate() {
            let t = T0 + i as u64 * 2 * HOUR;
            check(&db, &c, ip, "s@example.org", rcpt, t).expect("first");
            assert_eq!(
                check(&db, &c, ip, "s@example.org", rcpt, t + 300).expect("retry"),
                Decision::Pass
            );
        }
        let neighbour: IpAddr = "198.51.100.200".parse().expect("ip");
        assert_eq!(
            check(
                &db,
                &c,
                neighbour,
                "new@example.net",
                "c@example.test",
                T0 + 5 * HOUR
            )
            .expect("whitelisted"),
            Decision::PassWhitelisted
        );
    }

    #[test]
    fn purge_removes_stale_triplets_and_networks() {
        let (_dir, db) = open_temp();
        let c = cfg();
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        // Passed at T0 + 300, then unused.
        check(&db, &c, ip, "old@example.org", "r@example.test", T0).expect("check");
        check(&db, &c, ip, "old@example.org", "r@example.test", T0 + 300).expect("check");
        // Never retried.
        check(
            &db,
            &c,
            ip,
            "once@example.org",
            "r@example.test",
            T0 + 30 * DAY,
        )
        .expect("check");
        // Passed recently.
        check(
            &db,
            &c,
            ip,
            "live@example.org",
            "r@example.test",
            T0 + 36 * DAY,
        )
        .expect("check");
        check(
            &db,
            &c,
            ip,
            "live@example.org",
            "r@example.test",
            T0 + 36 * DAY + 300,
        )
        .expect("check");

        let purged = purge(&db, &c, T0 + 36 * DAY + 400).expect("purge");
        assert_eq!(purged.triplets, 2, "{purged:?}");
        assert_eq!(purged.clients, 0, "{purged:?}");
        assert_eq!(
            check(
                &db,
                &c,
                ip,
                "live@example.org",
                "r@example.test",
                T0 + 36 * DAY + 500
            )
            .expect("check"),
            Decision::Pass
        );
        // After the whole period without a counted pass, the network goes too.
        let purged = purge(&db, &c, T0 + 80 * DAY).expect("purge");
        assert_eq!(purged.clients, 1, "{purged:?}");
    }
}
