//! `pillarbox quota get|recalc USER`: a mailbox's usage as `maildirsize` says,
//! and a recount from the Maildir.

use std::process::ExitCode;

use pillarbox_admin::{Admin, QuotaReport};

/// What `pillarbox quota` can do.
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

/// Runs `cmd` on the Maildirs of `admin`'s config; prints the usage.
pub fn run(cmd: QuotaCommand, admin: &Admin) -> anyhow::Result<ExitCode> {
    let report = match &cmd {
        QuotaCommand::Get { user } => admin.quota(user)?,
        QuotaCommand::Recalc { user } => admin.recalc_quota(user)?,
    };
    println!("{}", describe(&report));
    Ok(ExitCode::SUCCESS)
}

fn describe(report: &QuotaReport) -> String {
    let of = |used: u64, lim: Option<u64>, unit: &str| match lim {
        Some(l) => format!(
            "{used} of {l} {unit} ({}%)",
            used.saturating_mul(100) / l.max(1)
        ),
        None => format!("{used} {unit} (no limit)"),
    };
    let f = &report.figures;
    format!(
        "{}: storage {}, messages {}",
        report.mailbox,
        of(f.bytes, f.bytes_limit, "bytes"),
        of(f.messages, f.messages_limit, "messages")
    )
}
