//! `pillarbox`: the one binary. Its subcommands parse arguments and print;
//! the work is in the library crates (`pillarbox_server` serves,
//! `pillarbox_admin` runs the management commands, `pillarbox_bench` loads).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use pillarbox_admin::Admin;
use pillarbox_server::config::{Config, LogFormat};
use pillarbox_server::Server;

mod auth_cmd;
mod bench;
mod explain;
mod mailbox_cmd;
mod password_prompt;
mod probe;
mod quota_cmd;
mod users_cmd;

#[derive(Parser)]
#[command(
    name = "pillarbox",
    version,
    about = "Pillarbox: an SMTP server that is exact on the protocol and safe with every message"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server. Without --config: the embedded default (SMTP on
    /// 127.0.0.1:2525, submission on 2587, submissions on 2465, data in
    /// ./pillarbox-data, domain `localhost`, every local part accepted, a
    /// self-signed certificate for TLS).
    Serve {
        /// A TOML config file (see pillarbox.example.toml).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Check a config file and print the effective configuration.
    CheckConfig {
        /// The TOML config file.
        file: PathBuf,
    },
    /// Explain a reply code, an enhanced status code or a whole reply line;
    /// two codes side by side.
    Explain(explain::ExplainArgs),
    /// Users of the users file (Dovecot passwd-file format): add, passwd, del, list.
    Users {
        /// The config file (default: the embedded default, users in ./pillarbox-data/users).
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        cmd: users_cmd::UsersCommand,
    },
    /// Lock a mailbox for maintenance (450 4.2.1), disable it (550 5.2.1), list states.
    Mailbox {
        /// The config file (default: the embedded default).
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        cmd: mailbox_cmd::MailboxCommand,
    },
    /// Addresses banned after failed logins: list them, lift a ban.
    Auth {
        /// The config file (default: the embedded default).
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        cmd: auth_cmd::AuthCommand,
    },
    /// Connect to an SMTP server, show what it offers and how it answers, and
    /// explain every reply (a diagnostic client in the spirit of swaks).
    Probe(probe::ProbeArgs),
    /// Load generator: throughput and accept latency of an SMTP server, or the
    /// memory an idle connection costs it (--idle). Loopback targets only, unless allowed.
    Bench(bench::BenchArgs),
    /// Mailbox quotas, as kept in each Maildir's maildirsize.
    Quota {
        /// The config file (default: the embedded default).
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        cmd: quota_cmd::QuotaCommand,
    },
}

/// The config of a management command: the file, or the embedded default.
fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<Config> {
    Ok(match path {
        Some(p) => Config::load(p)?,
        None => Config::embedded(),
    })
}

/// The administration operations on a management command's config; the state
/// database is opened only by a command that needs it.
fn load_admin(path: Option<&std::path::Path>) -> anyhow::Result<Admin> {
    load_config(path).map(Admin::open)
}

/// Runs `future` to completion on a small single-threaded runtime: the management
/// commands that ask the state store.
fn block_on<F: std::future::Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(future))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config } => serve(config),
        Command::CheckConfig { file } => check_config(&file),
        Command::Explain(args) => Ok(explain::run(&args)),
        Command::Probe(args) => Ok(probe::run(&args)),
        Command::Bench(args) => Ok(bench::run(&args)),
        Command::Users { config, cmd } => {
            load_admin(config.as_deref()).and_then(|a| users_cmd::run(cmd, &a))
        }
        Command::Mailbox { config, cmd } => {
            load_admin(config.as_deref()).and_then(|a| mailbox_cmd::run(cmd, &a))
        }
        Command::Auth { config, cmd } => {
            load_admin(config.as_deref()).and_then(|a| auth_cmd::run(cmd, &a))
        }
        Command::Quota { config, cmd } => {
            load_admin(config.as_deref()).and_then(|a| quota_cmd::run(cmd, &a))
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pillarbox: {}", error_text(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes, each cause once: our errors spell their source in
/// their own message (the server logs them with `Display` alone), so anyhow's
/// `{:#}` would print it a second time.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

fn check_config(file: &std::path::Path) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(file)?;
    print!("{}", cfg.to_toml());
    eprintln!("{}: ok", file.display());
    Ok(ExitCode::SUCCESS)
}

fn init_logs(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match cfg.log.format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        LogFormat::Text => builder.with_ansi(false).init(),
    }
}

fn serve(config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let cfg = match &config {
        Some(path) => Config::load(path)?,
        None => Config::embedded(),
    };
    init_logs(&cfg);
    raise_open_files_limit(cfg.limits.sessions);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let server = Server::bind(cfg).await?;
        let cfg = server.config();
        let mut out = std::io::stdout().lock();
        match &config {
            Some(p) => writeln!(
                out,
                "pillarbox {} config {}",
                env!("CARGO_PKG_VERSION"),
                p.display()
            )?,
            None => writeln!(
                out,
                "pillarbox {} embedded default config",
                env!("CARGO_PKG_VERSION")
            )?,
        }
        for (addr, protocol) in server.local_addrs() {
            writeln!(out, "listening {protocol} {addr}")?;
        }
        let data_dir =
            std::fs::canonicalize(&cfg.data_dir).unwrap_or_else(|_| cfg.data_dir.clone());
        writeln!(out, "data_dir {}", data_dir.display())?;
        writeln!(out, "domains {}", cfg.domains.local.join(","))?;
        if let Some(t) = &server.tls_source {
            let how = if t.generated {
                "generated self-signed"
            } else {
                "from"
            };
            writeln!(out, "tls {how} {}", t.cert.display())?;
        }
        // Installed before `ready`: a signal sent as soon as a supervisor
        // reads it must drain the server, not kill it.
        let signals = shutdown_signals();
        writeln!(out, "ready")?;
        out.flush()?;
        drop(out);
        tracing::info!(hostname = %cfg.hostname, "ready");

        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal(signals).await;
            tracing::info!(
                "shutting down: no new connections; transactions in progress may finish"
            );
            let _ = tx.send(true);
        });
        server.run(rx).await;
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    })
}

/// Each session is a socket: raise the soft limit on open files to the hard
/// limit so `limits.sessions` can be reached (the default soft 1024 cannot),
/// and say so when even the hard limit is too low.
fn raise_open_files_limit(sessions: usize) {
    // Raised whenever the hard limit allows, not only when `sessions` needs
    // it: the store's files and the listeners take descriptors too.
    let Ok(open_files) = pillarbox_client::rlimit::raise_open_files(u64::MAX) else {
        return;
    };
    let needed = sessions as u64 + 64;
    if open_files < needed {
        tracing::warn!(
            open_files,
            sessions,
            "the open-files limit is below limits.sessions; raise it (ulimit -n / LimitNOFILE=) or lower limits.sessions"
        );
    }
}

/// The handlers for SIGTERM and SIGINT, installed now; `None` when they
/// cannot be.
fn shutdown_signals() -> Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)> {
    use tokio::signal::unix::{signal, SignalKind};
    Some((
        signal(SignalKind::terminate()).ok()?,
        signal(SignalKind::interrupt()).ok()?,
    ))
}

async fn wait_for_signal(
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
) {
    let Some((mut term, mut int)) = signals else {
        // Without signal handlers, run until killed.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
