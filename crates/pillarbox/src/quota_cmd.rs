//! `pillarbox quota get|recalc USER`: a mailbox's usage as `maildirsize` says,
//! and a recount from the Maildir.

use std::process::ExitCode;

use pillarbox_server::config::Config;
use pillarbox_server::directory::Directory;
use pillarbox_server::policy::limit_for;
use pillarbox_store::quota::{self, QuotaLimit, Usage};
use pillarbox_store::{MailboxAddr, MaildirStore};

#[derive(clap::Subcommand)]
pub enum QuotaCommand {
    /// Show a mailbox's usage and limits.
    Get {
        /// user@domain (a user without a domain is at the primary domain).
        user: String,
    },
    /// Recount a mailbox from its Maildir and rewrite its maildirsize.
    Recalc { user: String },
}

pub fn run(cmd: QuotaCommand, cfg: &Config) -> anyhow::Result<ExitCode> {
    let (QuotaCommand::Get { user } | QuotaCommand::Recalc { user }) = &cmd;
    let (local, domain) = match user.rsplit_once('@') {
        Some((l, d)) => (l.to_lowercase(), d.to_lowercase()),
        None => (user.to_lowercase(), cfg.primary_domain().to_lowercase()),
    };
    let mb = MailboxAddr::new(domain, local)?;
    let users_file = cfg.users_file();
    let users = Directory::open(users_file, cfg.primary_domain());
    let limit = limit_for(&cfg.quota, &users.current(), &mb);
    // Not MaildirStore::open: the server may be running on this data directory.
    let maildir = MaildirStore::maildir_path_in(&cfg.data_dir, &mb);
    if !maildir.is_dir() {
        anyhow::bail!("{mb} has no Maildir at {}", maildir.display());
    }
    let usage = match cmd {
        QuotaCommand::Get { .. } => quota::peek(&maildir, &limit)?,
        QuotaCommand::Recalc { .. } => quota::recalc(&maildir, &limit)?,
    };
    println!("{}", describe(&mb, usage, &limit));
    Ok(ExitCode::SUCCESS)
}

fn describe(mb: &MailboxAddr, u: Usage, limit: &QuotaLimit) -> String {
    let of = |used: u64, lim: Option<u64>, unit: &str| match lim {
        Some(l) => format!(
            "{used} of {l} {unit} ({}%)",
            used.saturating_mul(100) / l.max(1)
        ),
        None => format!("{used} {unit} (no limit)"),
    };
    format!(
        "{mb}: storage {}, messages {}",
        of(u.bytes, limit.bytes, "bytes"),
        of(u.messages, limit.messages, "messages")
    )
}
