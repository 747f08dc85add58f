//! `pillarbox`: the one binary. Its subcommands parse arguments and print;
//! the work is in the library crates (`pillarbox_server` serves,
//! `pillarbox_admin` runs the management commands, `pillarbox_bench` loads).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use pillarbox_admin::Admin;
use pillarbox_server::config::{Config, LogFormat};
use pillarbox_server::privileges::{self, Plan};
use pillarbox_server::Server;

mod auth_cmd;
mod bench;
mod explain;
mod mailbox_cmd;
mod password_prompt;
mod probe;
mod queue_cmd;
mod quota_cmd;
mod sd_notify;
mod users_cmd;

use sd_notify::Notifier;

#[derive(Parser)]
#[command(
    name = "pillarbox",
    version,
    about = "Pillarbox: an SMTP server that is exact on the protocol and safe with every message"
)]
struct Cli {
    /// The TOML config file (see pillarbox.example.toml), before or after the
    /// subcommand. Used by serve, check-config, users, mailbox, auth, quota,
    /// queue and reload;
    /// without it and without PILLARBOX_CONFIG: the embedded default.
    #[arg(
        long,
        short,
        global = true,
        env = "PILLARBOX_CONFIG",
        value_name = "FILE"
    )]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server. Without --config: the embedded default (SMTP on
    /// 127.0.0.1:2525, submission on 2587, submissions on 2465, data in
    /// ./pillarbox-data, domain `localhost`, every local part accepted, a
    /// self-signed certificate for TLS). Started as root with `user` set, it
    /// binds and opens its files, then runs as that user. SIGHUP re-reads the config file:
    /// new connections get its settings and TLS certificate, open sessions keep
    /// theirs; listeners, data_dir, storage, users/aliases paths, log and
    /// account wait for a restart (the log says which).
    Serve,
    /// Check a config file, and every file it names (TLS certificate and key,
    /// users file), and print the effective configuration.
    CheckConfig {
        /// The TOML config file (or give it with --config).
        file: Option<PathBuf>,
    },
    /// Explain a reply code, an enhanced status code or a whole reply line;
    /// two codes side by side.
    Explain(explain::ExplainArgs),
    /// Users of the users file (Dovecot passwd-file format): add, passwd, del, list.
    Users {
        #[command(subcommand)]
        cmd: users_cmd::UsersCommand,
    },
    /// Lock a mailbox for maintenance (450 4.2.1), disable it (550 5.2.1), list states.
    Mailbox {
        #[command(subcommand)]
        cmd: mailbox_cmd::MailboxCommand,
    },
    /// Addresses banned after failed logins: list them, lift a ban.
    Auth {
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
        #[command(subcommand)]
        cmd: quota_cmd::QuotaCommand,
    },
    /// The running server's queue: list, show, retry, hold, release, delete,
    /// bounce (through <data_dir>/control.sock; the server must be running).
    Queue {
        #[command(subcommand)]
        cmd: queue_cmd::QueueCommand,
    },
    /// Ask the server running on this config's data directory to re-read its
    /// config (SIGHUP to the process holding <data_dir>/pillarbox.lock); the
    /// server logs what it applied and what waits for a restart.
    Reload,
    /// Print the shell completion script for SHELL to stdout, e.g.
    /// `pillarbox completions bash > /etc/bash_completion.d/pillarbox`.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Man pages (roff): the page of `pillarbox` on stdout, or with --dir one
    /// page per command written to DIR (pillarbox.1, pillarbox-serve.1, ...).
    Man {
        /// Write every page into this directory, one file per command, and
        /// print the path of each.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
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
    load_config(path).map(|cfg| {
        // A Maildir's maildirsize rewritten here gets the configured mode, as
        // the server's would.
        privileges::set_umask(cfg.storage.modes());
        Admin::open(cfg)
    })
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
    let matches = Cli::command().get_matches();
    // `--config` on the command line, not from PILLARBOX_CONFIG: only that one
    // conflicts with the file given to check-config.
    let config_given = subcommand_matches_leaf(&matches)
        .value_source("config")
        .is_some_and(|s| s == clap::parser::ValueSource::CommandLine);
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let config = cli.config;
    let result = match cli.command {
        Command::Serve => serve(config),
        Command::CheckConfig { file } => check_config(file, config, config_given),
        Command::Explain(args) => Ok(explain::run(&args)),
        Command::Probe(args) => Ok(probe::run(&args)),
        Command::Bench(args) => Ok(bench::run(&args)),
        Command::Users { cmd } => {
            load_admin(config.as_deref()).and_then(|a| users_cmd::run(cmd, &a))
        }
        Command::Mailbox { cmd } => {
            load_admin(config.as_deref()).and_then(|a| mailbox_cmd::run(cmd, &a))
        }
        Command::Auth { cmd } => load_admin(config.as_deref()).and_then(|a| auth_cmd::run(cmd, &a)),
        Command::Quota { cmd } => {
            load_admin(config.as_deref()).and_then(|a| quota_cmd::run(cmd, &a))
        }
        Command::Queue { cmd } => {
            load_admin(config.as_deref()).and_then(|a| queue_cmd::run(cmd, &a))
        }
        Command::Reload => load_admin(config.as_deref()).and_then(|a| {
            let sent = a.reload_server()?;
            println!(
                "asked pillarbox (pid {}) to reload {}; its log says what it applied",
                sent.pid,
                config
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "its config".into())
            );
            Ok(ExitCode::SUCCESS)
        }),
        Command::Completions { shell } => completions(shell),
        Command::Man { dir } => man(dir.as_deref()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pillarbox: {}", error_text(&e));
            ExitCode::from(1)
        }
    }
}

/// `completions SHELL`: the completion script, generated from the argument
/// definitions.
fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut cmd, "pillarbox", &mut out);
    out.flush().context("cannot write the completions")?;
    Ok(ExitCode::SUCCESS)
}

/// `man [--dir DIR]`: the main page on stdout, or every page into DIR.
fn man(dir: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let Some(dir) = dir else {
        let mut out = std::io::stdout().lock();
        man_page(cmd)
            .render(&mut out)
            .and_then(|()| out.flush())
            .context("cannot write the man page")?;
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut out = std::io::stdout().lock();
    let mut pending = std::collections::VecDeque::from([cmd]);
    while let Some(cmd) = pending.pop_front() {
        pending.extend(cmd.get_subcommands().filter(|c| !c.is_hide_set()).cloned());
        let page = man_page(cmd);
        let path = page
            .generate_to(dir)
            .with_context(|| format!("cannot write {}", dir.join(page.get_filename()).display()))?;
        writeln!(out, "{}", path.display()).context("cannot write to stdout")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The man page of one (built) command, its source naming our version.
fn man_page(cmd: clap::Command) -> clap_mangen::Man {
    clap_mangen::Man::new(cmd)
        // No date (the pages are generated, not edited), but an explicit empty
        // argument: an empty string would drop out of `.TH` and shift the
        // source and manual into the date and source fields.
        .date(r#""""#)
        .source(format!("pillarbox {}", env!("CARGO_PKG_VERSION")))
        .manual("Pillarbox Manual")
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

/// The matches of the innermost subcommand: a global argument's value source
/// is recorded there.
fn subcommand_matches_leaf(matches: &clap::ArgMatches) -> &clap::ArgMatches {
    let mut m = matches;
    while let Some((_, sub)) = m.subcommand() {
        m = sub;
    }
    m
}

/// `check-config [FILE]`: the positional file, else `--config`, else
/// `PILLARBOX_CONFIG`. A file and a different `--config` on the command line
/// are refused; PILLARBOX_CONFIG gives way to a file named on the command line.
fn check_config(
    file: Option<PathBuf>,
    config: Option<PathBuf>,
    config_given: bool,
) -> anyhow::Result<ExitCode> {
    let file = match (file, config) {
        (Some(f), Some(c)) if config_given && f != c => anyhow::bail!(
            "check-config: two config files given, {} and --config {}; give one",
            f.display(),
            c.display()
        ),
        (Some(f), _) | (None, Some(f)) => f,
        (None, None) => anyhow::bail!(
            "check-config: which file? give it as `pillarbox check-config FILE`, with --config FILE or in PILLARBOX_CONFIG"
        ),
    };
    let cfg = load_checked(&file)?;
    print!("{}", cfg.to_toml());
    for address in role_addresses_missing(&cfg) {
        eprintln!(
            "{}: warning: {address} is not deliverable; RFC 5321 and RFC 2142 expect it: add a user, or an alias in {} (e.g. `{address}  you@{}`)",
            file.display(),
            cfg.aliases_file().display(),
            cfg.primary_domain()
        );
    }
    eprintln!("{}: ok", file.display());
    Ok(ExitCode::SUCCESS)
}

/// postmaster@ and abuse@ of the local domains that no user, alias or
/// catch-all takes.
fn role_addresses_missing(cfg: &Config) -> Vec<String> {
    use pillarbox_server::aliases::Aliases;
    use pillarbox_server::policy::resolve::LocalRecipients;
    let users = pillarbox_store::UserDirectory::load(&cfg.users_file(), cfg.primary_domain())
        .map(|(users, _)| users)
        .unwrap_or_default();
    let aliases = std::sync::Arc::new(Aliases::open(cfg.aliases_file()));
    LocalRecipients::new(cfg, aliases).undeliverable_role_addresses(&users)
}

/// Reads a config file and checks every file it names; the error lists every
/// problem, one per line, each naming the config file and the key.
fn load_checked(path: &std::path::Path) -> anyhow::Result<Config> {
    let cfg = Config::load(path)?;
    let problems = cfg.check_files(&path.display().to_string());
    if problems.is_empty() {
        return Ok(cfg);
    }
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    anyhow::bail!("{}", lines.join("\npillarbox: "))
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
        Some(path) => load_checked(path)?,
        None => Config::embedded(),
    };
    init_logs(&cfg);
    let file = match &config {
        Some(p) => p.display().to_string(),
        None => "embedded default".to_string(),
    };
    // Before anything is opened: a wrong `user` or `group` costs nothing.
    let plan = privileges::plan(&cfg, &file)?;
    if let Plan::Stay {
        warning: Some(warning),
    } = &plan
    {
        tracing::warn!(config = %file, "{warning}");
    }
    // Before any thread: the umask is the process's.
    privileges::set_umask(cfg.storage.modes());
    raise_open_files_limit(cfg.limits.sessions);
    let notifier = match Notifier::from_env() {
        Ok(n) => n.map(Arc::new),
        Err(e) => {
            tracing::warn!(
                "{}: {e}; the service manager will not hear that the server is ready",
                sd_notify::NOTIFY_SOCKET
            );
            None
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let server = Server::bind(cfg).await?;
        let cfg = server.config();
        let cfg = &cfg;
        if let Plan::Drop(account) = &plan {
            // Bound and opened as root; from here on, the account.
            privileges::own_data_dir(account, cfg, &file)?;
            privileges::drop_to(account, &file)?;
            for warning in privileges::check_access(account, cfg, &file)? {
                tracing::warn!("{warning}");
            }
            tracing::info!(
                user = %account.name,
                uid = account.uid,
                gid = account.gid,
                "privileges dropped"
            );
        }
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
        let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("cannot install the SIGHUP handler")?;
        writeln!(out, "ready")?;
        out.flush()?;
        drop(out);
        tracing::info!(hostname = %cfg.hostname, "ready");
        notify(notifier.as_deref(), "READY=1", Notifier::ready);

        tokio::spawn(reload_on_hangup(
            hangups,
            server.reloader(),
            config.clone(),
            notifier.clone(),
        ));
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal(signals).await;
            tracing::info!(
                "shutting down: no new connections; transactions in progress may finish"
            );
            notify(notifier.as_deref(), "STOPPING=1", Notifier::stopping);
            let _ = tx.send(true);
        });
        server.run(rx).await;
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    })
}

/// Sends one notification to the service manager, if there is one; a failure
/// is logged (the server goes on).
fn notify(notifier: Option<&Notifier>, what: &str, send: fn(&Notifier) -> std::io::Result<()>) {
    if let Some(n) = notifier {
        if let Err(e) = send(n) {
            tracing::warn!("cannot notify the service manager of {what}: {e}");
        }
    }
}

/// On every SIGHUP: re-reads the config file and applies what can be applied
/// without a restart (settings and the TLS certificate and key, for new
/// connections), or logs every problem and keeps the running config. The service manager hears
/// `RELOADING=1` before and `READY=1` after, whatever the outcome.
async fn reload_on_hangup(
    mut hangups: tokio::signal::unix::Signal,
    reloader: pillarbox_server::Reloader,
    config: Option<PathBuf>,
    notifier: Option<Arc<Notifier>>,
) {
    while hangups.recv().await.is_some() {
        notify(notifier.as_deref(), "RELOADING=1", Notifier::reloading);
        reload(&reloader, config.as_deref());
        notify(notifier.as_deref(), "READY=1", Notifier::ready);
    }
}

/// One reload: the config file (or the embedded default) re-read and applied,
/// or every problem logged.
fn reload(reloader: &pillarbox_server::Reloader, config: Option<&std::path::Path>) {
    let (cfg, file) = match config {
        Some(path) => {
            let file = path.display().to_string();
            match Config::load(path) {
                Ok(cfg) => (cfg, file),
                Err(e) => {
                    tracing::warn!("reload refused: {}", one_line(&e.to_string()));
                    tracing::warn!(config = %file, "SIGHUP: config not reloaded; the running config stays");
                    return;
                }
            }
        }
        None => (Config::embedded(), "embedded default".to_string()),
    };
    match reloader.reload(&cfg, &file) {
        Ok(done) => {
            let tls = done
                .tls
                .map(|t| format!("certificate and key re-read from {}", t.cert.display()))
                .unwrap_or_else(|| "none".into());
            let list = |keys: &[String]| {
                if keys.is_empty() {
                    "nothing".to_string()
                } else {
                    keys.join(", ")
                }
            };
            tracing::info!(
                config = %file,
                tls = %tls,
                changed_applied = %list(&done.applied),
                changed_needs_restart = %list(&done.needs_restart),
                "SIGHUP: config reloaded; new connections take it, open sessions keep theirs"
            );
        }
        Err(problems) => {
            for e in &problems {
                tracing::warn!("reload refused: {}", one_line(&e.to_string()));
            }
            tracing::warn!(config = %file, "SIGHUP: config not reloaded; the running config stays");
        }
    }
}

/// A multi-line message (a TOML parse error shows the line and a caret) as one
/// log line: its lines trimmed and joined with ` | `.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.chars().all(|c| c == '|' || c.is_whitespace()))
        .collect::<Vec<_>>()
        .join(" | ")
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
