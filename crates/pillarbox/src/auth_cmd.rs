//! `pillarbox auth bans|unban`: the addresses refused after too many failed
//! logins, with the reason and expiry, and lifting a ban.

use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;

use pillarbox_store::state::StateDb;

#[derive(clap::Subcommand)]
pub enum AuthCommand {
    /// List banned addresses with reason and expiry.
    Bans,
    /// Lift the ban on an address (and forget its failures).
    Unban { address: IpAddr },
}

pub fn run(cmd: AuthCommand, state_path: &Path) -> anyhow::Result<ExitCode> {
    let db = StateDb::open(state_path)?;
    let now = pillarbox_server::services::Clock::now(&pillarbox_server::services::SystemClock);
    match cmd {
        AuthCommand::Bans => {
            let bans = db.list_bans(now)?;
            if bans.is_empty() {
                println!("no bans");
            }
            for (ip, ban) in bans {
                let until = match ban.until {
                    Some(t) => format!("until {} ({}s from now)", t, t.saturating_sub(now)),
                    None => "until lifted".to_string(),
                };
                println!("{ip}\t{until}\t{}", ban.reason);
            }
            Ok(ExitCode::SUCCESS)
        }
        AuthCommand::Unban { address } => {
            let was = db.unban(&address.to_string())?;
            db.clear_auth_failures(&address.to_string())?;
            if was {
                println!("{address}: ban lifted");
                Ok(ExitCode::SUCCESS)
            } else {
                println!("{address}: was not banned");
                Ok(ExitCode::from(1))
            }
        }
    }
}
