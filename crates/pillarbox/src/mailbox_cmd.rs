//! `pillarbox mailbox`: lock a mailbox for maintenance, disable it, undo either,
//! list the states.
//!
//! The state lives in `<data_dir>/state.sqlite`, which the running server reads at
//! every RCPT and again at the end of data; so a lock takes effect at once, even on
//! deliveries already under way, without signalling the server.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{anyhow, Context};
use pillarbox_admin::{Admin, AdminError, MailboxStatus, Reason};
use pillarbox_server::config::parse_duration;
use pillarbox_server::received::rfc5322_date;

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

/// Runs `cmd` against the state store of `admin`; a user given without `@` is
/// taken to be in the primary domain. Prints what it did on stdout.
pub fn run(cmd: MailboxCommand, admin: &Admin) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    run_to(cmd, admin, &mut out)
}

/// [`run`], writing to `out`.
fn run_to(cmd: MailboxCommand, admin: &Admin, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    crate::block_on(execute(cmd, admin, out))?.map_err(flag_error)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Checks the arguments, then acts. The state database is opened (or created) by
/// the first operation on it, so bad arguments never create it.
async fn execute(cmd: MailboxCommand, admin: &Admin, out: &mut dyn Write) -> anyhow::Result<()> {
    match cmd {
        MailboxCommand::Lock {
            user,
            reason,
            duration,
        } => {
            let mailbox = admin.mailbox_name(&user)?;
            let reason = Reason::new(&reason)?;
            let duration = duration.as_deref().map(lock_duration).transpose()?;
            let locked = admin.lock_mailbox(&mailbox, &reason, duration).await?;
            match locked.until {
                Some(t) => writeln!(out, "locked {mailbox} until {}: {reason}", date(t))?,
                None => writeln!(out, "locked {mailbox} until unlocked: {reason}")?,
            }
        }
        MailboxCommand::Unlock { user } => {
            let mailbox = admin.mailbox_name(&user)?;
            let unlocked = admin.unlock_mailbox(&mailbox).await?;
            if unlocked.was_locked {
                writeln!(out, "unlocked {mailbox}")?;
            } else {
                writeln!(out, "{mailbox} was not locked")?;
            }
            if let Some(reason) = unlocked.still_disabled {
                writeln!(out, "{mailbox} stays disabled: {reason}")?;
            }
        }
        MailboxCommand::Disable { user, reason } => {
            let mailbox = admin.mailbox_name(&user)?;
            let reason = Reason::new(&reason)?;
            admin.disable_mailbox(&mailbox, &reason).await?;
            writeln!(out, "disabled {mailbox}: {reason}")?;
        }
        MailboxCommand::Enable { user } => {
            let mailbox = admin.mailbox_name(&user)?;
            let enabled = admin.enable_mailbox(&mailbox).await?;
            if enabled.was_disabled {
                writeln!(out, "enabled {mailbox}")?;
            } else {
                writeln!(out, "{mailbox} was not disabled")?;
            }
            if let Some(reason) = enabled.still_locked {
                writeln!(out, "{mailbox} stays locked: {reason}")?;
            }
        }
        MailboxCommand::List => {
            for entry in admin.mailbox_states().await? {
                match entry.status {
                    MailboxStatus::Locked { reason, until } => {
                        let until = until.map_or_else(|| "-".to_string(), date);
                        writeln!(out, "{}\tlocked\t{until}\t{reason}", entry.mailbox)?;
                    }
                    MailboxStatus::Disabled { reason } => {
                        writeln!(out, "{}\tdisabled\t-\t{reason}", entry.mailbox)?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// An argument error in the words of the flags: `--reason ...`, `--for ...`.
fn flag_error(e: anyhow::Error) -> anyhow::Error {
    match e.downcast_ref::<AdminError>() {
        Some(
            reason @ (AdminError::EmptyReason
            | AdminError::ReasonNotOneLine
            | AdminError::ReasonTooLong { .. }),
        ) => anyhow!("--{reason}"),
        Some(AdminError::ZeroDuration) => anyhow!("--for must be longer than zero"),
        _ => e,
    }
}

/// `--for` as a duration (the lock rounds a fraction of a second up).
fn lock_duration(text: &str) -> anyhow::Result<Duration> {
    parse_duration(text)
        .with_context(|| format!("--for {text:?} is not a duration (write e.g. 30m, 2h, 1d)"))
}

/// A unix time as an RFC 5322 date in UTC.
fn date(t: u64) -> String {
    rfc5322_date(UNIX_EPOCH + Duration::from_secs(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pillarbox_server::config::Config;
    use pillarbox_store::state::{MailboxState, StateDb};

    const NOW: u64 = 1_700_000_000;

    struct Env {
        _dir: tempfile::TempDir,
        cfg: Config,
        path: std::path::PathBuf,
    }

    impl Env {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut cfg = Config::embedded();
            cfg.data_dir = dir.path().join("data");
            cfg.users.file = Some(dir.path().join("users"));
            cfg.domains.local = vec!["example.test".to_string()];
            let path = cfg.state_path();
            Env {
                _dir: dir,
                cfg,
                path,
            }
        }

        fn run(&self, cmd: MailboxCommand, now: u64) -> anyhow::Result<String> {
            let mut out = Vec::new();
            let admin = Admin::open(self.cfg.clone()).with_clock(std::sync::Arc::new(
                pillarbox_server::services::FixedClock::at(now),
            ));
            run_to(cmd, &admin, &mut out)?;
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
        for (cmd, text) in [
            (
                lock("alice", "x", Some("0s")),
                "--for must be longer than zero",
            ),
            (lock("alice", " ", None), "--reason must not be empty"),
            (
                lock("alice", "a\tb", None),
                "--reason must be one line of text without control characters",
            ),
            (
                lock("alice", &"x".repeat(201), None),
                "--reason is longer than 200 characters",
            ),
        ] {
            let err = env.run(cmd, NOW).expect_err("refused");
            assert_eq!(err.to_string(), text);
        }
        assert!(!env.path.exists(), "still no database");
    }

    #[test]
    fn empty_list_prints_nothing() {
        let env = Env::new();
        assert_eq!(env.run(MailboxCommand::List, NOW).expect("list"), "");
    }
}
