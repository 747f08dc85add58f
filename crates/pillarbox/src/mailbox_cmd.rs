//! `pillarbox mailbox`: lock a mailbox for maintenance, disable it, and undo either
//! (issue 4 point 3).
//!
//! The state lives in `<data_dir>/state.sqlite`, which the running server reads at
//! every RCPT and again at the end of data; so a lock takes effect at once, even on
//! deliveries already under way, without signalling the server.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use pillarbox_server::config::parse_duration;
use pillarbox_server::received::rfc5322_date;
use pillarbox_store::state::{MailboxState, StateDb};

/// Longest reason we store: it is shown in listings and logs, not a document.
const MAX_REASON: usize = 200;

/// What `pillarbox mailbox` can do.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum MailboxCommand {
    /// Lock a mailbox for maintenance: deliveries get `450 4.2.1` and the sender
    /// retries later. Covers deliveries already in progress.
    Lock {
        /// The mailbox: `user@domain`, or `user` for the first local domain.
        user: String,
        /// Why, for `list` and the log.
        #[arg(long)]
        reason: String,
        /// Unlock by itself after this long, e.g. `30m`, `2h`, `1d`; without it the
        /// lock holds until `unlock`.
        #[arg(long = "for", value_name = "DURATION")]
        duration: Option<String>,
    },
    /// Remove a mailbox's lock.
    Unlock {
        /// The mailbox: `user@domain`, or `user` for the first local domain.
        user: String,
    },
    /// Disable a mailbox: deliveries get `550 5.2.1` and bounce.
    Disable {
        /// The mailbox: `user@domain`, or `user` for the first local domain.
        user: String,
        /// Why, for `list` and the log.
        #[arg(long)]
        reason: String,
    },
    /// Enable a disabled mailbox again.
    Enable {
        /// The mailbox: `user@domain`, or `user` for the first local domain.
        user: String,
    },
    /// List locked and disabled mailboxes, one per line:
    /// mailbox, state, until, reason, separated by tabs.
    List,
}

/// Runs `cmd` against the state database at `state_path`; a user given without
/// `@` is taken to be in `default_domain`. Prints what it did on stdout.
pub fn run(
    cmd: MailboxCommand,
    state_path: &Path,
    default_domain: &str,
) -> anyhow::Result<ExitCode> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut out = std::io::stdout().lock();
    run_at(cmd, state_path, default_domain, now, &mut out)
}

/// [`run`] at unix time `now`, writing to `out`.
fn run_at(
    cmd: MailboxCommand,
    state_path: &Path,
    default_domain: &str,
    now: u64,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    // Check the arguments before touching (or creating) the database.
    let action = Action::parse(cmd, default_domain)?;
    let db = StateDb::open(state_path)?;
    match action {
        Action::Lock {
            mailbox,
            reason,
            duration,
        } => {
            let until = duration.map(|d| now.saturating_add(d));
            db.lock(&mailbox, &reason, until)?;
            match until {
                Some(t) => writeln!(out, "locked {mailbox} until {}: {reason}", date(t))?,
                None => writeln!(out, "locked {mailbox} until unlocked: {reason}")?,
            }
        }
        Action::Unlock { mailbox } => {
            if db.unlock(&mailbox)? {
                writeln!(out, "unlocked {mailbox}")?;
            } else {
                writeln!(out, "{mailbox} was not locked")?;
            }
            if let MailboxState::Disabled { reason } = db.mailbox_state(&mailbox, now)? {
                writeln!(out, "{mailbox} stays disabled: {reason}")?;
            }
        }
        Action::Disable { mailbox, reason } => {
            db.disable(&mailbox, &reason)?;
            writeln!(out, "disabled {mailbox}: {reason}")?;
        }
        Action::Enable { mailbox } => {
            if db.enable(&mailbox)? {
                writeln!(out, "enabled {mailbox}")?;
            } else {
                writeln!(out, "{mailbox} was not disabled")?;
            }
            if let MailboxState::Locked { reason, .. } = db.mailbox_state(&mailbox, now)? {
                writeln!(out, "{mailbox} stays locked: {reason}")?;
            }
        }
        Action::List => {
            for (mailbox, state) in db.list_mailbox_states(now)? {
                match state {
                    MailboxState::Open => {}
                    MailboxState::Locked { reason, until } => {
                        let until = until.map_or_else(|| "-".to_string(), date);
                        writeln!(out, "{mailbox}\tlocked\t{until}\t{reason}")?;
                    }
                    MailboxState::Disabled { reason } => {
                        writeln!(out, "{mailbox}\tdisabled\t-\t{reason}")?;
                    }
                }
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// A command with its arguments checked and normalised.
enum Action {
    Lock {
        mailbox: String,
        reason: String,
        /// Seconds.
        duration: Option<u64>,
    },
    Unlock {
        mailbox: String,
    },
    Disable {
        mailbox: String,
        reason: String,
    },
    Enable {
        mailbox: String,
    },
    List,
}

impl Action {
    fn parse(cmd: MailboxCommand, default_domain: &str) -> anyhow::Result<Self> {
        let mailbox = |user: &str| mailbox_name(user, default_domain);
        Ok(match cmd {
            MailboxCommand::Lock {
                user,
                reason,
                duration,
            } => Action::Lock {
                mailbox: mailbox(&user)?,
                reason: checked_reason(&reason)?,
                duration: duration.as_deref().map(lock_duration).transpose()?,
            },
            MailboxCommand::Unlock { user } => Action::Unlock {
                mailbox: mailbox(&user)?,
            },
            MailboxCommand::Disable { user, reason } => Action::Disable {
                mailbox: mailbox(&user)?,
                reason: checked_reason(&reason)?,
            },
            MailboxCommand::Enable { user } => Action::Enable {
                mailbox: mailbox(&user)?,
            },
            MailboxCommand::List => Action::List,
        })
    }
}

/// `user@domain`, lower-cased, the way the server looks mailboxes up.
fn mailbox_name(user: &str, default_domain: &str) -> anyhow::Result<String> {
    let user = user.trim();
    let full = if user.contains('@') {
        user.to_string()
    } else if default_domain.is_empty() {
        bail!("{user:?} has no domain and no local domain is configured: write user@domain");
    } else {
        format!("{user}@{default_domain}")
    };
    let usable = full
        .rsplit_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !full.chars().any(|c| c.is_whitespace() || c.is_control());
    if !usable {
        bail!("{user:?} is not a mailbox: write user@domain or user");
    }
    Ok(full.to_lowercase())
}

/// The reason as stored: one printable line (it goes into logs and listings).
fn checked_reason(reason: &str) -> anyhow::Result<String> {
    let reason = reason.trim();
    if reason.is_empty() {
        bail!("--reason must not be empty");
    }
    if reason.chars().any(char::is_control) {
        bail!("--reason must be one line of text without control characters");
    }
    if reason.chars().count() > MAX_REASON {
        bail!("--reason is longer than {MAX_REASON} characters");
    }
    Ok(reason.to_string())
}

/// `--for` in whole seconds (a fraction of a second rounds up).
fn lock_duration(text: &str) -> anyhow::Result<u64> {
    let d = parse_duration(text)
        .with_context(|| format!("--for {text:?} is not a duration (write e.g. 30m, 2h, 1d)"))?;
    if d.is_zero() {
        bail!("--for must be longer than zero");
    }
    Ok(d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

/// A unix time as an RFC 5322 date in UTC.
fn date(t: u64) -> String {
    rfc5322_date(UNIX_EPOCH + Duration::from_secs(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    struct Env {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
    }

    impl Env {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("data").join("state.sqlite");
            Env { _dir: dir, path }
        }

        fn run(&self, cmd: MailboxCommand, now: u64) -> anyhow::Result<String> {
            let mut out = Vec::new();
            run_at(cmd, &self.path, "example.test", now, &mut out)?;
            Ok(String::from_utf8(out).expect("utf-8"))
        }

        fn state(&self, mailbox: &str, now: u64) -> MailboxState {
            StateDb::open(&self.path)
                .expect("open")
                .mailbox_state(mailbox, now)
                .expect("state")
        }
    }

    fn lock(user: &str, reason: &str, duration: Option<&str>) -> MailboxCommand {
        MailboxCommand::Lock {
            user: user.into(),
            reason: reason.into(),
            duration: duration.map(Into::into),
        }
    }

    #[test]
    fn lock_for_a_duration_expires() {
        let env = Env::new();
        let out = env
            .run(lock("alice@example.test", "migration", Some("2h")), NOW)
            .expect("lock");
        assert!(out.starts_with("locked alice@example.test until "), "{out}");
        assert_eq!(
            env.state("alice@example.test", NOW + 7_199),
            MailboxState::Locked {
                reason: "migration".into(),
                until: Some(NOW + 7_200)
            }
        );
        assert_eq!(
            env.state("alice@example.test", NOW + 7_200),
            MailboxState::Open
        );
    }

    #[test]
    fn user_without_domain_gets_the_default_domain() {
        let env = Env::new();
        env.run(lock("Alice", "x", None), NOW).expect("lock");
        assert!(matches!(
            env.state("alice@example.test", NOW),
            MailboxState::Locked { until: None, .. }
        ));
    }

    #[test]
    fn unlock_and_enable_say_when_there_was_nothing_to_undo() {
        let env = Env::new();
        let out = env
            .run(MailboxCommand::Unlock { user: "bob".into() }, NOW)
            .expect("unlock");
        assert_eq!(out, "bob@example.test was not locked\n");
        let out = env
            .run(MailboxCommand::Enable { user: "bob".into() }, NOW)
            .expect("enable");
        assert_eq!(out, "bob@example.test was not disabled\n");
    }

    #[test]
    fn disable_then_enable_round_trips_and_list_shows_it() {
        let env = Env::new();
        let disable = MailboxCommand::Disable {
            user: "carol@example.test".into(),
            reason: "left the company".into(),
        };
        env.run(disable, NOW).expect("disable");
        env.run(lock("dave", "restore", Some("30m")), NOW)
            .expect("lock");
        let list = env.run(MailboxCommand::List, NOW).expect("list");
        let lines: Vec<&str> = list.lines().collect();
        assert_eq!(lines.len(), 2, "{list}");
        assert_eq!(
            lines[0],
            "carol@example.test\tdisabled\t-\tleft the company"
        );
        assert!(
            lines[1].starts_with("dave@example.test\tlocked\t") && lines[1].ends_with("\trestore"),
            "{list}"
        );
        let out = env
            .run(
                MailboxCommand::Enable {
                    user: "carol@example.test".into(),
                },
                NOW,
            )
            .expect("enable");
        assert_eq!(out, "enabled carol@example.test\n");
        assert_eq!(env.state("carol@example.test", NOW), MailboxState::Open);
    }

    #[test]
    fn bad_arguments_are_refused_before_the_database_is_created() {
        let env = Env::new();
        for cmd in [
            lock("alice", "x", Some("soon")),
            lock("alice", "x", Some("0s")),
            lock("alice", "", None),
            lock("alice", "two\nlines", None),
            lock("@example.test", "x", None),
            lock("al ice", "x", None),
        ] {
            let err = env.run(cmd.clone(), NOW).expect_err("refused");
            assert!(!err.to_string().is_empty(), "{cmd:?}");
        }
        assert!(!env.path.exists(), "nothing valid was asked: no database");
        let err = env
            .run(lock("alice", "x", Some("soon")), NOW)
            .expect_err("bad duration");
        assert!(err.to_string().contains("soon"), "{err}");
    }

    #[test]
    fn sub_second_durations_round_up() {
        assert_eq!(lock_duration("500ms").expect("duration"), 1);
        assert_eq!(lock_duration("2h").expect("duration"), 7_200);
    }

    #[test]
    fn empty_list_prints_nothing() {
        let env = Env::new();
        assert_eq!(env.run(MailboxCommand::List, NOW).expect("list"), "");
    }
}
