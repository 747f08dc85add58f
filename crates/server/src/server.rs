//! Listeners, connection limits, and the drain on shutdown.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;

use pillarbox_codes::Row;
use pillarbox_store::MaildirStore;

use pillarbox_state::{SqliteState, StateStore};

use crate::aliases::Aliases;
use crate::auth::Authenticator;
use crate::config::{Config, ConfigError, Listen, Protocol};
use crate::directory::Directory;
use crate::policy::{Policies, Quotas};
use crate::services::{LogTelemetry, Services, SystemClock};
use crate::session_driver;
use crate::storage::DiskWatch;
use crate::tls::{self, SwappableAcceptor, TlsSource};

/// A failure to start, naming the port or path.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("data directory {path}: {source}")]
    DataDir {
        path: String,
        source: pillarbox_store::StoreError,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("state database: {0}")]
    State(#[from] pillarbox_state::StateError),
    #[error("{0}")]
    Init(String),
}

/// What a reload replaces: the config and what is built from it. A session
/// takes the settings in force when it starts and keeps them to its end.
pub(crate) struct Settings {
    pub(crate) cfg: Config,
    pub(crate) policies: Policies,
    pub(crate) auth: Authenticator,
    /// Quota accounting after a commit (the check itself is among the policies).
    pub(crate) quotas: Quotas,
}

impl Settings {
    fn build(cfg: Config, store: &Arc<MaildirStore>, disk: &Arc<DiskWatch>, parts: &Parts) -> Self {
        Settings {
            policies: Policies::standard(&cfg, store.clone(), disk.clone(), parts.aliases.clone()),
            auth: Authenticator::new(
                cfg.auth.clone(),
                cfg.primary_domain(),
                parts.decoy_key.clone(),
            ),
            quotas: Quotas::new(&cfg, store.clone()),
            cfg,
        }
    }
}

/// What settings are built on, beside the store and the disk watch, and a
/// reload keeps.
struct Parts {
    aliases: Arc<Aliases>,
    decoy_key: Vec<u8>,
}

/// What every session shares. Only the session driver reads it; policy
/// checks get the [`Services`] and their own settings instead.
pub(crate) struct Shared {
    /// The settings new sessions take.
    settings: RwLock<Arc<Settings>>,
    parts: Parts,
    pub(crate) store: Arc<MaildirStore>,
    pub(crate) services: Services,
    pub(crate) disk: Arc<DiskWatch>,
    /// Read at each handshake; a reload replaces it.
    pub(crate) tls: Option<SwappableAcceptor>,
    /// The queue, its group committer and its worker's wake-up.
    pub(crate) delivery: crate::delivery::Delivery,
    pub(crate) started: Instant,
    pub(crate) open_sessions: AtomicUsize,
    per_client: Mutex<HashMap<IpAddr, usize>>,
    next_session: AtomicU64,
}

/// A bound server, ready to run.
pub struct Server {
    shared: Arc<Shared>,
    listeners: Vec<(TcpListener, Listen)>,
    pub tls_source: Option<TlsSource>,
}

/// Holds one session's place in the connection counts; released on drop.
pub(crate) struct SessionSlot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.shared.open_sessions.fetch_sub(1, Ordering::SeqCst);
        let mut map = self
            .shared
            .per_client
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Which connection limit refused a session ([`Shared::admit`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LimitHit {
    /// This address holds `limits.sessions_per_client` sessions already.
    PerClient,
    /// The server holds `limits.sessions` sessions in all.
    Total,
}

impl LimitHit {
    /// The refusal: RFC 5321 3.8 / 4.2.2 allow 421 before the greeting; the
    /// enhanced code says whose limit it is (RFC 3463 X.7.0 for a policy on
    /// this client, X.3.2 for a server not taking connections now).
    pub(crate) fn row(self) -> Row {
        match self {
            LimitHit::PerClient => Row::TooManyConnections,
            LimitHit::Total => Row::TooManySessions,
        }
    }
}

/// The limit a new session from an address holding `from_address` sessions
/// would break, with `open` sessions in all; the address's own first.
fn limit_hit(
    from_address: usize,
    open: usize,
    per_client: usize,
    total: usize,
) -> Option<LimitHit> {
    if from_address >= per_client {
        Some(LimitHit::PerClient)
    } else if open >= total {
        Some(LimitHit::Total)
    } else {
        None
    }
}

impl Shared {
    /// Takes a session slot, or says which limit is reached. When both are,
    /// the address's own limit is named: it is the one the client can act on.
    pub(crate) fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        limits: &crate::config::Limits,
    ) -> Result<SessionSlot, LimitHit> {
        let mut map = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.get(&ip).copied().unwrap_or(0);
        let open = self.open_sessions.load(Ordering::SeqCst);
        if let Some(hit) = limit_hit(n, open, limits.sessions_per_client, limits.sessions) {
            return Err(hit);
        }
        map.insert(ip, n + 1);
        self.open_sessions.fetch_add(1, Ordering::SeqCst);
        Ok(SessionSlot {
            shared: self.clone(),
            ip,
        })
    }

    /// The settings in force now; a session keeps the ones it started with.
    pub(crate) fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The aliases file, as read now.
    pub(crate) fn aliases(&self) -> Arc<Aliases> {
        self.parts.aliases.clone()
    }

    /// A session id, unique across restarts: microseconds since the epoch and a counter.
    pub fn session_id(&self) -> String {
        let n = self.next_session.fetch_add(1, Ordering::Relaxed);
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        format!("{:X}{:03X}", micros, n & 0xFFF)
    }
}

impl Server {
    /// Opens the data dir, loads users and TLS, binds every listener.
    pub async fn bind(cfg: Config) -> Result<Self, StartError> {
        let store = MaildirStore::open(&cfg.data_dir, &cfg.hostname, cfg.storage.modes()).map_err(
            |source| StartError::DataDir {
                path: cfg.data_dir.display().to_string(),
                source,
            },
        )?;
        let (tls, tls_source) = {
            let (acceptor, source) = tls::acceptor(tls_files(&cfg), &cfg.data_dir, &cfg.hostname)?;
            (Some(SwappableAcceptor::new(acceptor)), Some(source))
        };
        let mut listeners = Vec::new();
        for l in &cfg.listen {
            let listener =
                TcpListener::bind(l.address)
                    .await
                    .map_err(|source| StartError::Listen {
                        addr: l.address,
                        source,
                    })?;
            listeners.push((listener, l.clone()));
        }
        let users_file = cfg.users_file();
        let users = Arc::new(Directory::open(users_file, cfg.primary_domain()));
        let state: Arc<dyn StateStore> = Arc::new(SqliteState::open(cfg.state_path())?);
        let services = Services {
            state,
            users,
            clock: Arc::new(SystemClock),
            telemetry: Arc::new(LogTelemetry),
        };
        let queue_dir = cfg.data_dir.join("queue");
        let queue =
            pillarbox_queue::Queue::open(&queue_dir, store.kept_dir(), cfg.storage.modes().file)
                .map_err(|e| {
                    StartError::Init(format!(
                        "cannot open the queue in {}: {e}",
                        queue_dir.display()
                    ))
                })?;
        // A body the journal does not name never got its 250: its client
        // still has the message.
        let swept = store
            .clear_spool_except(|name| queue.contains(name))
            .map_err(|source| StartError::DataDir {
                path: store.spool_dir().display().to_string(),
                source,
            })?;
        if swept > 0 || !queue.is_empty() {
            tracing::info!(
                queued = queue.len(),
                removed_unacknowledged = swept,
                "queue opened"
            );
        }
        let delivery = crate::delivery::Delivery::new(
            Arc::new(queue),
            cfg.storage.group_commit,
            cfg.storage.commit_batch,
        )
        .map_err(|e| StartError::Init(format!("cannot start the commit thread: {e}")))?;
        // Kept in the state store: an unknown name's SCRAM salt and decoy
        // cost stay the same across restarts, as a real user's do.
        let mut random = vec![0u8; 32];
        getrandom::getrandom(&mut random).map_err(|e| {
            StartError::Init(format!(
                "cannot draw random bytes for the AUTH decoy key: {e}"
            ))
        })?;
        let decoy_key = services
            .state
            .secret("auth decoy key".into(), random)
            .await?;
        let store = Arc::new(store);
        let disk = Arc::new(DiskWatch::new(cfg.data_dir.clone(), cfg.storage.reserve));
        let parts = Parts {
            aliases: Arc::new(Aliases::open(cfg.aliases_file())),
            decoy_key,
        };
        Ok(Self {
            shared: Arc::new(Shared {
                settings: RwLock::new(Arc::new(Settings::build(cfg, &store, &disk, &parts))),
                parts,
                services,
                disk,
                delivery,
                store,
                tls,
                started: Instant::now(),
                open_sessions: AtomicUsize::new(0),
                per_client: Mutex::new(HashMap::new()),
                next_session: AtomicU64::new(0),
            }),
            listeners,
            tls_source,
        })
    }

    /// The bound addresses (port 0 resolved), with their protocols.
    pub fn local_addrs(&self) -> Vec<(SocketAddr, Protocol)> {
        self.listeners
            .iter()
            .filter_map(|(l, p)| l.local_addr().ok().map(|a| (a, p.protocol)))
            .collect()
    }

    /// The config in force (the one the server started with, until a reload).
    pub fn config(&self) -> Config {
        self.shared.settings().cfg.clone()
    }

    /// A handle that applies a re-read config while the server runs.
    pub fn reloader(&self) -> Reloader {
        Reloader {
            shared: self.shared.clone(),
        }
    }

    /// Serves until `shutdown` turns true; then stops accepting, lets sessions
    /// finish their transactions within the grace period, and returns.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(purge_loop(self.shared.clone(), shutdown.clone()));
        tasks.spawn(tls_watch_loop(self.shared.clone(), shutdown.clone()));
        tasks.spawn(crate::delivery::run(self.shared.clone(), shutdown.clone()));
        tasks.spawn(crate::control::run(
            self.shared.clone(),
            self.shared.store.data_dir().to_path_buf(),
            shutdown.clone(),
        ));
        for (listener, listen) in self.listeners {
            let shared = self.shared.clone();
            let shutdown = shutdown.clone();
            tasks.spawn(accept_loop(listener, listen, shared, shutdown));
        }
        while tasks.join_next().await.is_some() {}
        // Sessions end themselves within the grace period; wait for them, bounded.
        let grace = self.shared.settings().cfg.limits.shutdown_grace.0 + Duration::from_secs(5);
        let deadline = Instant::now() + grace;
        while self.shared.open_sessions.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::info!(
            open = self.shared.open_sessions.load(Ordering::SeqCst),
            "stopped"
        );
    }
}

/// Applies a re-read config to a running server. New sessions take the new
/// settings (limits, domains, relay, auth, greylisting, quota, host name), and
/// the TLS certificate and key are served to the next handshake; sessions in
/// progress keep what they started with. What needs a rebind or a reopen
/// (listeners, data_dir, storage, the users and aliases file paths, logging,
/// the account) keeps its running value and is reported.
#[derive(Clone)]
pub struct Reloader {
    shared: Arc<Shared>,
}

/// What a reload applied and what it did not.
#[derive(Debug)]
pub struct Reloaded {
    /// Where the certificate served from now on came from.
    pub tls: Option<TlsSource>,
    /// Top-level config keys whose new values now apply to new sessions.
    pub applied: Vec<String>,
    /// Top-level config keys (`listen`, `data_dir`, ...) whose new values
    /// differ from the running ones and take effect only after a restart.
    pub needs_restart: Vec<String>,
}

impl Reloader {
    /// Checks `cfg` (read from `file`) and its files; if it is sound, serves its
    /// TLS pair (or the generated one in the running `data_dir` when `[tls]` is
    /// absent) to every new handshake and gives new sessions its settings. On
    /// any problem nothing changes and every problem is returned, each naming
    /// `file` and the key.
    pub fn reload(&self, cfg: &Config, file: &str) -> Result<Reloaded, Vec<ConfigError>> {
        let problems = cfg.check_files(file);
        if !problems.is_empty() {
            return Err(problems);
        }
        let running = self.shared.settings();
        let running = &running.cfg;
        let tls_source = match &self.shared.tls {
            Some(slot) => Some(
                slot.reread(tls_files(cfg), &running.data_dir, &cfg.hostname)
                    .map_err(|e| {
                        vec![ConfigError {
                            file: file.to_string(),
                            message: e.to_string(),
                        }]
                    })?,
            ),
            None => None,
        };
        // The keys only a restart applies keep their running values; what
        // then still differs is applied, what differs from the file waits.
        let mut next = cfg.clone();
        next.listen = running.listen.clone();
        next.data_dir = running.data_dir.clone();
        next.storage = running.storage.clone();
        next.users = running.users.clone();
        next.aliases = running.aliases.clone();
        next.log = running.log.clone();
        next.user = running.user.clone();
        next.group = running.group.clone();
        let mut applied = changed_sections(running, &next);
        applied.retain(|k| k != "tls");
        let needs_restart = changed_sections(&next, cfg);
        let shared = &self.shared;
        let settings = Arc::new(Settings::build(
            next,
            &shared.store,
            &shared.disk,
            &shared.parts,
        ));
        *self
            .shared
            .settings
            .write()
            .unwrap_or_else(|p| p.into_inner()) = settings;
        Ok(Reloaded {
            tls: tls_source,
            applied,
            needs_restart,
        })
    }
}

/// The configured certificate and key files, if `[tls]` names them.
fn tls_files(cfg: &Config) -> Option<(&std::path::Path, &std::path::Path)> {
    cfg.tls
        .as_ref()
        .map(|t| (t.cert.as_path(), t.key.as_path()))
}

/// The top-level keys whose effective values differ between `old` and `new`.
fn changed_sections(old: &Config, new: &Config) -> Vec<String> {
    let table = |c: &Config| c.to_toml().parse::<toml::Table>().unwrap_or_default();
    let (old, new) = (table(old), table(new));
    let mut keys: Vec<String> = old.keys().chain(new.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    keys.retain(|k| old.get(k) != new.get(k));
    keys
}

/// Re-reads the configured certificate and key when their files change
/// (`[tls] watch`), so a renewal is served without a SIGHUP. The interval
/// and the files are those of the settings in force, so a reload that
/// changes them is followed.
async fn tls_watch_loop(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let Some(slot) = &shared.tls else { return };
    let stamp = |t: &crate::config::Tls| {
        let time = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        (time(&t.cert), time(&t.key))
    };
    let mut seen = shared.settings().cfg.tls.as_ref().map(stamp);
    loop {
        let settings = shared.settings();
        let every = match &settings.cfg.tls {
            Some(t) if !t.watch.0.is_zero() => t.watch.0,
            // Not configured, or off: look again later, in case a reload
            // turns it on.
            _ => Duration::from_secs(60),
        };
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() {
                    return;
                }
            }
        }
        let settings = shared.settings();
        let Some(tls) = settings.cfg.tls.as_ref().filter(|t| !t.watch.0.is_zero()) else {
            continue;
        };
        let now = Some(stamp(tls));
        if now == seen {
            continue;
        }
        seen = now;
        let cfg = &settings.cfg;
        match slot.reread(tls_files(cfg), &cfg.data_dir, &cfg.hostname) {
            Ok(_) => {
                tracing::info!(cert = %tls.cert.display(), "TLS certificate and key changed on disk: re-read, served to new connections");
            }
            Err(e) => {
                tracing::warn!("TLS certificate or key changed on disk but cannot be used, the old pair stays: {e}");
            }
        }
    }
}

/// How often expired state (greylist entries, locks, bans, old AUTH failures) is removed.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// Removes expired state from the state database at start and then hourly.
async fn purge_loop(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let s = &shared.services;
        let retention = shared.settings().cfg.greylist.store_config().retention();
        match s.state.purge(s.clock.now(), retention).await {
            Ok(p) => tracing::debug!(?p, "state purged"),
            Err(e) => tracing::warn!(error = %e, "cannot purge the state database"),
        }
        tokio::select! {
            _ = tokio::time::sleep(PURGE_EVERY) => {}
            r = shutdown.changed() => {
                // A dropped sender means nobody can ask us to stop any more: stop now.
                if r.is_err() || *shutdown.borrow() {
                    return;
                }
            }
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    listen: Listen,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut sessions = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let shared = shared.clone();
                    let shutdown = shutdown.clone();
                    sessions.spawn(session_driver::run(shared, stream, peer, &listen, shutdown));
                }
                Err(e) => {
                    // EMFILE and the like: log and back off rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() {
                    break;
                }
            }
        }
    }
    drop(listener);
    while sessions.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_global_limit_refuses_with_4_3_2_not_the_per_address_text() {
        // One session from this address, the server full: not this client's fault.
        let hit = limit_hit(1, 10, 5, 10);
        assert_eq!(hit, Some(LimitHit::Total));
        assert_eq!(
            LimitHit::Total.row().reply().to_wire(),
            "421 4.3.2 too many connections, try again later\r\n"
        );
    }

    #[test]
    fn the_per_address_limit_refuses_with_4_7_0() {
        assert_eq!(limit_hit(5, 6, 5, 10), Some(LimitHit::PerClient));
        assert_eq!(
            LimitHit::PerClient.row().reply().to_wire(),
            "421 4.7.0 too many connections from your address\r\n"
        );
    }

    #[test]
    fn with_both_limits_reached_the_address_limit_is_named() {
        assert_eq!(limit_hit(5, 10, 5, 10), Some(LimitHit::PerClient));
    }

    #[test]
    fn below_both_limits_a_session_is_admitted() {
        assert_eq!(limit_hit(4, 9, 5, 10), None);
        assert_eq!(limit_hit(0, 0, 1, 1), None);
    }
}
