//! `pillarbox auth bans|unban`: the addresses refused after too many failed
//! logins, with the reason and expiry, and lifting a ban.

use std::net::IpAddr;
use std::process::ExitCode;

use pillarbox_admin::Admin;

/// What `pillarbox auth` can do.
#[derive(clap::Subcommand)]
pub enum AuthCommand {
    /// List banned addresses with reason and expiry.
    Bans,
    /// Lift the ban on an address (and forget its failures).
    Unban { address: IpAddr },
}

/// Runs `cmd` against the state store of `admin`; prints what it found or did.
/// An unban of an address that was not banned exits with 1.
pub fn run(cmd: AuthCommand, admin: &Admin) -> anyhow::Result<ExitCode> {
    match cmd {
        AuthCommand::Bans => {
            let bans = crate::block_on(admin.bans())??;
            if bans.is_empty() {
                println!("no bans");
            }
            for ban in bans {
                let until = match (ban.until, ban.remaining) {
                    (Some(t), Some(left)) => format!("until {t} ({left}s from now)"),
                    _ => "until lifted".to_string(),
                };
                println!("{}\t{until}\t{}", ban.address, ban.reason);
            }
            Ok(ExitCode::SUCCESS)
        }
        AuthCommand::Unban { address } => {
            if crate::block_on(admin.unban(address))??.was_banned {
                println!("{address}: ban lifted");
                Ok(ExitCode::SUCCESS)
            } else {
                println!("{address}: was not banned");
                Ok(ExitCode::from(1))
            }
        }
    }
}
