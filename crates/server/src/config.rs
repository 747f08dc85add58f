//! The configuration: one TOML file, unknown keys refused, or the embedded
//! default when there is none.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A config problem, naming the file and, where known, the key.
#[derive(Debug, thiserror::Error)]
#[error("config {file}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub message: String,
}

/// Octets, written in the file as `1048576`, `"10KiB"`, `"50MiB"`, `"1GiB"`, `"5MB"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub u64);

/// A duration, written as `"300s"`, `"5m"`, `"2h"`, `"500ms"` or a number of seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seconds(pub Duration);

/// What a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// MX: SMTP with STARTTLS offered.
    Smtp,
    /// Port 587: STARTTLS, AUTH required (RFC 6409).
    Submission,
    /// Port 465: implicit TLS, AUTH required (RFC 8314).
    Submissions,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Smtp => "smtp",
            Protocol::Submission => "submission",
            Protocol::Submissions => "submissions",
        })
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    pub address: SocketAddr,
    pub protocol: Protocol,
    /// Offer AUTH here. Default: on for submission(s), off for smtp (MX).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<bool>,
    /// MAIL needs AUTH first (530 5.7.0). Default: on for submission(s), off for smtp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_auth: Option<bool>,
    /// AUTH only under TLS: not advertised before STARTTLS, 538 5.7.11 if tried. Default: on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_tls_for_auth: Option<bool>,
}

impl Listen {
    fn new(address: SocketAddr, protocol: Protocol) -> Self {
        Self {
            address,
            protocol,
            auth: None,
            require_auth: None,
            require_tls_for_auth: None,
        }
    }

    /// AUTH is offered on this listener.
    pub fn auth_enabled(&self) -> bool {
        self.auth.unwrap_or(self.protocol != Protocol::Smtp)
    }

    /// MAIL needs AUTH first.
    pub fn auth_required(&self) -> bool {
        self.require_auth.unwrap_or(self.protocol != Protocol::Smtp)
    }

    /// AUTH needs TLS first.
    pub fn tls_for_auth(&self) -> bool {
        self.require_tls_for_auth.unwrap_or(true)
    }
}

/// Greylisting (postgrey's rules; off by default).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Greylist {
    pub enabled: bool,
    /// A new triplet is refused for this long (450 4.2.0).
    pub delay: Seconds,
    /// A retry this long after first sight still counts; later starts over.
    pub retry_window: Seconds,
    /// Passes after which a client network is whitelisted; 0: never.
    pub auto_whitelist_after: u32,
    /// How long an auto-whitelisted network stays so after it was last seen.
    pub auto_whitelist_for: Seconds,
    /// The client's network in the triplet: /24 and /64 by default.
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    /// Never greylisted: client networks, sender domains or addresses, recipients.
    pub whitelist_clients: Vec<IpNet>,
    pub whitelist_senders: Vec<String>,
    pub whitelist_recipients: Vec<String>,
}

impl Default for Greylist {
    fn default() -> Self {
        let d = pillarbox_store::greylist::GreylistConfig::default();
        Self {
            enabled: false,
            delay: Seconds(Duration::from_secs(d.delay)),
            retry_window: Seconds(Duration::from_secs(d.retry_window)),
            auto_whitelist_after: d.auto_whitelist_after,
            auto_whitelist_for: Seconds(Duration::from_secs(d.auto_whitelist_for)),
            ipv4_prefix: d.ipv4_prefix,
            ipv6_prefix: d.ipv6_prefix,
            whitelist_clients: Vec::new(),
            whitelist_senders: Vec::new(),
            whitelist_recipients: Vec::new(),
        }
    }
}

impl Greylist {
    /// The store's greylisting parameters.
    pub fn store_config(&self) -> pillarbox_store::greylist::GreylistConfig {
        pillarbox_store::greylist::GreylistConfig {
            delay: self.delay.0.as_secs(),
            retry_window: self.retry_window.0.as_secs(),
            auto_whitelist_after: self.auto_whitelist_after,
            auto_whitelist_for: self.auto_whitelist_for.0.as_secs(),
            ipv4_prefix: self.ipv4_prefix,
            ipv6_prefix: self.ipv6_prefix,
            ..Default::default()
        }
    }
}

/// SMTP AUTH and its brute-force defence.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// Mechanisms offered where AUTH is on. CRAM-MD5 and SCRAM-SHA-256 work for
    /// users whose stored password allows them ({CRAM-MD5}/{PLAIN}, {SCRAM-SHA-256}/{PLAIN}).
    pub mechanisms: Vec<String>,
    /// Failures from one address (or for one account) within `window` before a ban.
    pub max_failures: u32,
    pub window: Seconds,
    /// How long a banned address is refused (421 4.7.0).
    pub ban_for: Seconds,
    /// Each failure waits this long times the failures so far, before its 535.
    pub failure_delay: Seconds,
    /// Ban loopback and trusted addresses too (off: they are never banned).
    pub ban_trusted: bool,
}

impl Default for Auth {
    fn default() -> Self {
        Self {
            mechanisms: ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"]
                .map(String::from)
                .to_vec(),
            max_failures: 5,
            window: Seconds(Duration::from_secs(900)),
            ban_for: Seconds(Duration::from_secs(3600)),
            failure_delay: Seconds(Duration::from_secs(1)),
            ban_trusted: false,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// How often the two files' times are looked at; a change re-reads them
    /// and serves the new pair to new connections (a renewal needs no
    /// SIGHUP). `0s`: only on SIGHUP.
    #[serde(default = "default_tls_watch")]
    pub watch: Seconds,
}

fn default_tls_watch() -> Seconds {
    Seconds(Duration::from_secs(60))
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Domains {
    /// Domains we deliver for; the first is the primary one (`<Postmaster>`,
    /// users without a domain).
    pub local: Vec<String>,
    /// Every local part of a local domain is a mailbox.
    #[serde(default)]
    pub catch_all: bool,
    /// `alice+news@` is alice's: when the whole local part is no user and no
    /// alias, the part from this separator on is dropped to find one. Empty: off.
    #[serde(default = "default_recipient_delimiter")]
    pub recipient_delimiter: String,
}

fn default_recipient_delimiter() -> String {
    "+".into()
}

/// `[aliases]`: the aliases file, in Postfix's virtual table format.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AliasesConfig {
    /// Default `<data_dir>/aliases`; a missing file is no aliases.
    pub file: Option<PathBuf>,
    /// How deep aliases may point at aliases before a recipient is deferred
    /// as a loop (Postfix's `virtual_alias_recursion_limit`).
    pub recursion_limit: usize,
    /// Most mailboxes one recipient may expand to (Postfix's
    /// `virtual_alias_expansion_limit`).
    pub expansion_limit: usize,
}

impl Default for AliasesConfig {
    fn default() -> Self {
        Self {
            file: None,
            recursion_limit: 10,
            expansion_limit: 1000,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Users {
    /// Dovecot passwd-file; default `<data_dir>/users`.
    pub file: Option<PathBuf>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Relay {
    /// Networks whose clients may relay and may ask `HELP STATUS`.
    #[serde(default)]
    pub trusted_networks: Vec<IpNet>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub message_size: ByteSize,
    pub recipients: usize,
    pub sessions: usize,
    pub sessions_per_client: usize,
    /// Protocol errors in one session before `421 4.7.0 too many errors`.
    pub errors: u32,
    /// RFC 5321 6.3: `Received:` fields a message may arrive with; more is
    /// taken for a routing loop, `554 5.4.6` at the end of data.
    pub hops: u32,
    /// Longest command line, CRLF included.
    pub command_line: usize,
    /// RFC 5321 4.5.3.2.7: server timeout waiting for a command. It bounds the
    /// whole command, from the start of the wait to its CRLF, not each read:
    /// a client trickling a line a byte at a time gets no more.
    pub command_timeout: Seconds,
    /// RFC 5321 4.5.3.2.5: waiting for the next block of message data (the
    /// longest gap between two reads); also the grace before `data_rate_min`.
    pub data_timeout: Seconds,
    /// Bytes a second a message's data must average once `data_timeout` has
    /// passed: after `t` seconds of data, at least
    /// `data_rate_min * (t - data_timeout)` bytes, or 421 4.4.2. 0: no floor.
    pub data_rate_min: ByteSize,
    /// Longest time one message's data may take (DATA, or BDAT from its
    /// first chunk to its last), however fast it comes; 0: no bound.
    pub data_time_max: Seconds,
    /// RFC 5321 4.5.3.2.6: the client waits 10 minutes for our reply to the end
    /// of data; we give up storing (451) before that.
    pub commit_timeout: Seconds,
    /// Pause before the greeting; a client that talks during it is an early
    /// talker (554 5.5.1). 0 disables the check.
    pub greeting_delay: Seconds,
    /// On SIGTERM/SIGINT, how long transactions in progress may take to finish.
    pub shutdown_grace: Seconds,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            message_size: ByteSize(50 * 1024 * 1024),
            recipients: 100,
            sessions: 10_000,
            sessions_per_client: 50,
            errors: 20,
            // RFC 5321 6.3 asks for a limit of at least 100.
            hops: 100,
            command_line: 1024,
            command_timeout: Seconds(Duration::from_secs(300)),
            data_timeout: Seconds(Duration::from_secs(180)),
            // 8 kbit/s: any honest link clears it (Postfix's floor is 500).
            data_rate_min: ByteSize(1024),
            // The largest default message (50 MiB) at about 240 kbit/s.
            data_time_max: Seconds(Duration::from_secs(30 * 60)),
            commit_timeout: Seconds(Duration::from_secs(540)),
            greeting_delay: Seconds(Duration::ZERO),
            shutdown_grace: Seconds(Duration::from_secs(30)),
        }
    }
}

/// Free space kept on the data filesystem: `"5%"` or a size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reserve {
    Percent(u8),
    Bytes(u64),
}

impl Reserve {
    /// The reserve in bytes on a filesystem of `total` bytes.
    pub fn bytes(&self, total: u64) -> u64 {
        match *self {
            Reserve::Percent(p) => total / 100 * u64::from(p),
            Reserve::Bytes(b) => b,
        }
    }
}

impl<'de> Deserialize<'de> for Reserve {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bad = |s: &str| {
            serde::de::Error::custom(format!(
                "{s:?} is not a reserve (write e.g. \"5%\" or \"2GiB\")"
            ))
        };
        match NumOrStr::deserialize(d)? {
            NumOrStr::Num(n) => Ok(Reserve::Bytes(n)),
            NumOrStr::Str(s) => match s.trim().strip_suffix('%') {
                Some(p) => p
                    .trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p < 100)
                    .map(Reserve::Percent)
                    .ok_or_else(|| bad(&s)),
                None => parse_size(&s).map(Reserve::Bytes).ok_or_else(|| bad(&s)),
            },
        }
    }
}

impl Serialize for Reserve {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Reserve::Percent(p) => s.collect_str(&format_args!("{p}%")),
            Reserve::Bytes(b) => s.serialize_u64(*b),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    /// Below this much free space, MAIL and RCPT get 452 4.3.1.
    pub reserve: Reserve,
    /// Messages that end together are committed to the queue together by one
    /// committer thread (still each durable before its 250). Off (the
    /// default): every message is committed on a thread of its own,
    /// concurrently with the others, sharing the syncs of the queue's
    /// directory and journal with those that end at the same time
    /// (docs/PERFORMANCE.md).
    pub group_commit: bool,
    /// Most messages in one group commit.
    pub commit_batch: usize,
    /// Mode of message files, spool files and `maildirsize` (`"0600"`; `"0640"`
    /// or `"0660"` lets a reader in the same group, such as Dovecot, read them).
    pub file_mode: Mode,
    /// Mode of the directories the server creates: the Maildirs and their
    /// `cur/ new/ tmp/`, `mail/`, `spool/` (`"0700"`; `"0750"` or `"0770"` for a group).
    pub dir_mode: Mode,
}

impl Default for Storage {
    fn default() -> Self {
        Self {
            reserve: Reserve::Percent(5),
            group_commit: false,
            commit_batch: 256,
            file_mode: Mode(0o600),
            dir_mode: Mode(0o700),
        }
    }
}

impl Storage {
    /// The modes the store gives the files and directories it creates.
    pub fn modes(&self) -> pillarbox_store::Modes {
        pillarbox_store::Modes {
            file: self.file_mode.0,
            dir: self.dir_mode.0,
        }
    }
}

/// Permission bits, written in the file as an octal string: `"0600"`, `"640"`.
/// Only the bits of 0o777 are allowed (no setuid, setgid or sticky bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode(pub u32);

/// Parses `"0660"`, `"660"` or `"0o660"` as permission bits; `None` for
/// anything that is not octal or has bits outside 0o777.
pub fn parse_mode(s: &str) -> Option<u32> {
    let t = s.trim();
    let digits = t.strip_prefix("0o").unwrap_or(t);
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return None;
    }
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|m| m & !0o777 == 0)
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_mode(&s).map(Mode).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{s:?} is not a file mode (write octal permission bits within 0777 as a string, e.g. \"0640\")"
            ))
        })
    }
}

impl Serialize for Mode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{:04o}", self.0))
    }
}

/// What an over-quota mailbox answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QuotaExceeded {
    /// 452 4.2.2: the sender retries; the user may make room meanwhile.
    #[default]
    Temporary,
    /// 552 5.2.2: the sender bounces the message at once.
    Permanent,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Quota {
    /// Bytes per mailbox; 0 = unlimited. A user's `userdb_quota_rule` overrides it.
    pub default: ByteSize,
    /// Messages per mailbox; 0 = unlimited.
    pub messages: u64,
    pub exceeded: QuotaExceeded,
}

impl Default for Quota {
    fn default() -> Self {
        Self {
            default: ByteSize(1 << 30),
            messages: 0,
            exceeded: QuotaExceeded::Temporary,
        }
    }
}

/// `[queue]`: how long and how often a recipient that could not be
/// delivered is tried again, and what its sender is told.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// The wait after the first failed attempt; it doubles after each.
    pub retry_min: Seconds,
    /// The longest wait between attempts.
    pub retry_max: Seconds,
    /// How long a message may wait in the queue; then its recipients fail
    /// and the sender gets a DSN.
    pub lifetime: Seconds,
    /// A sender whose mail has waited this long gets a delay notice (when
    /// its NOTIFY allows); `"0s"`: never.
    pub delay_warning: Seconds,
    /// The language of the human-readable part of a DSN: en, zh, id, pt, ja, tr.
    pub dsn_language: String,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            retry_min: Seconds(Duration::from_secs(5 * 60)),
            retry_max: Seconds(Duration::from_secs(60 * 60)),
            lifetime: Seconds(Duration::from_secs(5 * 86400)),
            delay_warning: Seconds(Duration::from_secs(4 * 3600)),
            dsn_language: "en".into(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    pub format: LogFormat,
    /// A tracing filter: `info`, `debug`, `pillarbox_server=debug` ...
    pub level: String,
}

impl Default for Log {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// The file as written: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    hostname: Option<String>,
    user: Option<String>,
    group: Option<String>,
    data_dir: Option<PathBuf>,
    listen: Option<Vec<Listen>>,
    tls: Option<Tls>,
    domains: Option<Domains>,
    users: Option<Users>,
    aliases: Option<AliasesConfig>,
    relay: Option<Relay>,
    limits: Option<Limits>,
    auth: Option<Auth>,
    greylist: Option<Greylist>,
    storage: Option<Storage>,
    quota: Option<Quota>,
    queue: Option<QueueConfig>,
    log: Option<Log>,
}

/// The effective configuration.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    pub hostname: String,
    /// The account `serve` runs as once its listeners are bound and its files
    /// opened. Unset: no change (a warning when started as root).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The group `serve` runs as; unset: `user`'s primary group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub data_dir: PathBuf,
    pub listen: Vec<Listen>,
    pub tls: Option<Tls>,
    pub domains: Domains,
    pub users: Users,
    pub aliases: AliasesConfig,
    pub relay: Relay,
    pub limits: Limits,
    pub auth: Auth,
    pub greylist: Greylist,
    pub storage: Storage,
    pub quota: Quota,
    pub queue: QueueConfig,
    pub log: Log,
}

impl Config {
    /// The embedded default: `pillarbox serve` with no file.
    pub fn embedded() -> Self {
        let mut cfg = Self::from_file(FileConfig::default());
        cfg.domains.catch_all = true;
        cfg
    }

    fn from_file(f: FileConfig) -> Self {
        let data_dir = f
            .data_dir
            .unwrap_or_else(|| PathBuf::from("pillarbox-data"));
        let users = Users {
            file: Some(
                f.users
                    .and_then(|u| u.file)
                    .unwrap_or_else(|| data_dir.join("users")),
            ),
        };
        Self {
            hostname: f.hostname.unwrap_or_else(system_hostname),
            user: f.user,
            group: f.group,
            listen: f.listen.unwrap_or_else(|| {
                vec![
                    Listen::new(SocketAddr::from(([127, 0, 0, 1], 2525)), Protocol::Smtp),
                    Listen::new(
                        SocketAddr::from(([127, 0, 0, 1], 2587)),
                        Protocol::Submission,
                    ),
                    Listen::new(
                        SocketAddr::from(([127, 0, 0, 1], 2465)),
                        Protocol::Submissions,
                    ),
                ]
            }),
            tls: f.tls,
            domains: f.domains.unwrap_or_else(|| Domains {
                local: vec!["localhost".into()],
                catch_all: false,
                recipient_delimiter: default_recipient_delimiter(),
            }),
            users,
            aliases: f.aliases.unwrap_or_default(),
            relay: f.relay.unwrap_or_default(),
            limits: f.limits.unwrap_or_default(),
            auth: f.auth.unwrap_or_default(),
            greylist: f.greylist.unwrap_or_default(),
            storage: f.storage.unwrap_or_default(),
            quota: f.quota.unwrap_or_default(),
            queue: f.queue.unwrap_or_default(),
            log: f.log.unwrap_or_default(),
            data_dir,
        }
    }

    /// Reads and checks a config file. Errors name the file and the key.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, &file)
    }

    /// Parses config text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let parsed: FileConfig = toml::from_str(text).map_err(|e| ConfigError {
            file: file.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let cfg = Self::from_file(parsed);
        cfg.validate().map_err(|message| ConfigError {
            file: file.to_string(),
            message,
        })?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), String> {
        if pillarbox_codes::registry::Lang::from_tag(&self.queue.dsn_language).is_none() {
            return Err(format!(
                "key `queue.dsn_language`: {:?} is not one of en, zh, id, pt, ja, tr",
                self.queue.dsn_language
            ));
        }
        if self.queue.retry_min.0.is_zero() || self.queue.retry_max.0 < self.queue.retry_min.0 {
            return Err(
                "keys `queue.retry_min` and `queue.retry_max`: retry_min must be above zero and not above retry_max".into(),
            );
        }
        if self.queue.lifetime.0.is_zero() {
            return Err("key `queue.lifetime`: must be above zero".into());
        }
        if self.hostname.trim().is_empty() || self.hostname.contains(char::is_whitespace) {
            return Err(format!(
                "key `hostname`: {:?} is not a host name",
                self.hostname
            ));
        }
        for (key, name) in [("user", &self.user), ("group", &self.group)] {
            if let Some(name) = name {
                if name.is_empty()
                    || name.contains(['\0', ':', '/'])
                    || name.contains(char::is_whitespace)
                {
                    return Err(format!("key `{key}`: {name:?} is not an account name"));
                }
            }
        }
        if self.group.is_some() && self.user.is_none() {
            return Err("key `group`: set `user` too (the group alone changes nothing)".into());
        }
        if self.listen.is_empty() {
            return Err("key `listen`: at least one [[listen]] is needed".into());
        }
        for l in &self.listen {
            if l.auth_required() && !l.auth_enabled() {
                return Err(format!(
                    "key `listen.require_auth`: {} requires AUTH but `auth = false` there",
                    l.address
                ));
            }
        }
        for m in &self.auth.mechanisms {
            if pillarbox_proto::sasl::Mechanism::from_name(m).is_none() {
                return Err(format!(
                    "key `auth.mechanisms`: {m:?} is not one of PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-256"
                ));
            }
        }
        if self.storage.commit_batch == 0 {
            return Err("key `storage.commit_batch`: must be at least 1".into());
        }
        let g = &self.greylist;
        if g.ipv4_prefix > 32 || g.ipv6_prefix > 128 {
            return Err("keys `greylist.ipv4_prefix`/`ipv6_prefix`: at most 32 and 128".into());
        }
        if g.enabled && g.retry_window.0 <= g.delay.0 {
            return Err("key `greylist.retry_window`: must be longer than `greylist.delay`".into());
        }
        if self.auth.max_failures == 0 {
            return Err("key `auth.max_failures`: must be at least 1".into());
        }
        if self.domains.local.is_empty() {
            return Err("key `domains.local`: at least one local domain is needed".into());
        }
        for d in &self.domains.local {
            if pillarbox_proto::address::parse_domain(d, true).is_err() {
                return Err(format!("key `domains.local`: {d:?} is not a domain name"));
            }
        }
        let l = &self.limits;
        if l.recipients == 0 {
            return Err(
                "key `limits.recipients`: must be at least 1 (RFC 5321 asks for 100)".into(),
            );
        }
        if l.hops == 0 {
            return Err("key `limits.hops`: must be at least 1 (RFC 5321 6.3 asks for 100)".into());
        }
        if l.command_line < 512 {
            return Err(
                "key `limits.command_line`: must be at least 512 (RFC 5321 4.5.3.1.4)".into(),
            );
        }
        if l.message_size.0 == 0 {
            // RFC 1870 4: an advertised `SIZE 0` means "no limit".
            return Err("key `limits.message_size`: must be more than 0".into());
        }
        if l.sessions == 0 || l.sessions_per_client == 0 || l.errors == 0 {
            return Err("keys `limits.sessions`, `limits.sessions_per_client`, `limits.errors`: must be at least 1".into());
        }
        for (key, d) in [
            ("limits.command_timeout", l.command_timeout),
            ("limits.data_timeout", l.data_timeout),
            ("limits.commit_timeout", l.commit_timeout),
        ] {
            if d.0.is_zero() {
                return Err(format!("key `{key}`: must be more than 0"));
            }
        }
        if tracing_filter_ok(&self.log.level).is_err() {
            return Err(format!(
                "key `log.level`: {:?} is not a log filter",
                self.log.level
            ));
        }
        Ok(())
    }

    /// Checks every file the config names, beyond its own syntax: `[tls] cert`
    /// and `[tls] key` readable and parsing as a PEM certificate chain and a
    /// PEM private key that fit together; `[users] file` readable if it exists
    /// (an absent one is an empty directory); `data_dir` a directory if it
    /// exists. Every problem is returned, each naming `file` (the config), the
    /// key and the path.
    pub fn check_files(&self, file: &str) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        let mut problem = |message: String| {
            problems.push(ConfigError {
                file: file.to_string(),
                message,
            })
        };
        if let Some(tls) = &self.tls {
            for e in crate::tls::check_configured(&tls.cert, &tls.key) {
                problem(e.to_string());
            }
        }
        let users_key = if self.users.file.is_some() {
            "key `users.file`"
        } else {
            "the users file (`users.file` unset: <data_dir>/users)"
        };
        check_optional_file(&self.users_file(), users_key, "users file", &mut problem);
        let aliases_key = if self.aliases.file.is_some() {
            "key `aliases.file`"
        } else {
            "the aliases file (`aliases.file` unset: <data_dir>/aliases)"
        };
        check_optional_file(
            &self.aliases_file(),
            aliases_key,
            "aliases file",
            &mut problem,
        );
        match std::fs::metadata(&self.data_dir) {
            Ok(m) if !m.is_dir() => problem(format!(
                "key `data_dir` {}: not a directory",
                self.data_dir.display()
            )),
            _ => {}
        }
        problems
    }

    /// The users file: `[users] file`, or `<data_dir>/users`.
    pub fn users_file(&self) -> PathBuf {
        self.users
            .file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("users"))
    }

    /// The aliases file: `[aliases] file`, else `<data_dir>/aliases`.
    pub fn aliases_file(&self) -> PathBuf {
        self.aliases
            .file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("aliases"))
    }

    /// The embedded state database: `<data_dir>/state.sqlite`.
    pub fn state_path(&self) -> PathBuf {
        self.data_dir.join("state.sqlite")
    }

    /// The primary local domain.
    pub fn primary_domain(&self) -> &str {
        self.domains
            .local
            .first()
            .map(String::as_str)
            .unwrap_or("localhost")
    }

    /// The effective config as TOML (`check-config`).
    /// The configured AUTH mechanisms.
    pub fn mechanisms(&self) -> Vec<pillarbox_proto::sasl::Mechanism> {
        self.auth
            .mechanisms
            .iter()
            .filter_map(|m| pillarbox_proto::sasl::Mechanism::from_name(m))
            .collect()
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

fn tracing_filter_ok(s: &str) -> Result<(), ()> {
    // A filter is comma-separated `target=level` or `level` directives.
    let levels = ["trace", "debug", "info", "warn", "error", "off"];
    for d in s.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = d.rsplit('=').next().unwrap_or(d);
        if !levels.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(());
        }
    }
    Ok(())
}

/// A file that may be missing (then it is empty) but, when it exists, must
/// be a readable file: `key` names the config key, `what` the kind of file.
fn check_optional_file(path: &Path, key: &str, what: &str, problem: &mut impl FnMut(String)) {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => problem(format!("{key} {}: cannot read: {e}", path.display())),
        Ok(m) if m.is_dir() => problem(format!(
            "{key} {}: is a directory, not a {what}",
            path.display()
        )),
        Ok(_) => {
            if let Err(e) = std::fs::File::open(path).and_then(|mut f| {
                use std::io::Read;
                f.read(&mut [0u8; 1])
            }) {
                problem(format!("{key} {}: cannot read: {e}", path.display()));
            }
        }
    }
}

/// The system's host name (gethostname), or `localhost`.
pub fn system_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for buf.len() bytes; gethostname NUL-terminates or truncates.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(s) if !s.is_empty() && !s.contains(char::is_whitespace) => s.to_string(),
        _ => "localhost".into(),
    }
}

/// An IP network `192.0.2.0/24`, `::1/128`, or a single address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for IpNet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("{s:?} is not an IP network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if p.is_empty() {
            max
        } else {
            p.parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: bad prefix length"))?
        };
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for IpNet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrStr {
    Num(u64),
    Str(String),
}

/// Parses `50MiB`, `10KiB`, `5MB`, `1024`.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Parses `300s`, `5m`, `2h`, `1d`, `500ms`, `30`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    Some(match unit.trim() {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" | "min" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        "d" => Duration::from_secs(n.checked_mul(86400)?),
        _ => return None,
    })
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match NumOrStr::deserialize(d)? {
            NumOrStr::Num(n) => Ok(ByteSize(n)),
            NumOrStr::Str(s) => parse_size(&s).map(ByteSize).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{s:?} is not a size (write e.g. \"50MiB\", \"10KiB\" or a number of octets)"
                ))
            }),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match NumOrStr::deserialize(d)? {
            NumOrStr::Num(n) => Ok(Seconds(Duration::from_secs(n))),
            NumOrStr::Str(s) => parse_duration(&s).map(Seconds).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{s:?} is not a duration (write e.g. \"300s\", \"5m\", \"500ms\")"
                ))
            }),
        }
    }
}

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let d = self.0;
        if d.subsec_millis() != 0 {
            s.collect_str(&format_args!("{}ms", d.as_millis()))
        } else {
            s.collect_str(&format_args!("{}s", d.as_secs()))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_config_parses_and_sets_every_section() {
        let text = include_str!("../../../pillarbox.example.toml");
        let cfg = Config::parse(text, "pillarbox.example.toml").expect("the example parses");
        // Every section of the file is one the parser knows (unknown keys
        // are refused), and a few values are as the file says.
        assert_eq!(cfg.domains.recipient_delimiter, "+");
        assert_eq!(
            cfg.aliases_file(),
            std::path::PathBuf::from("./pillarbox-data/aliases")
        );
        let sections: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix('[').and_then(|l| l.split(']').next()))
            .map(|l| l.trim_start_matches('['))
            .collect();
        for key in [
            "domains", "users", "aliases", "auth", "limits", "greylist", "storage", "quota", "log",
        ] {
            assert!(sections.contains(&key), "the example documents [{key}]");
        }
    }

    use super::*;

    #[test]
    fn embedded_default_matches_design() {
        let c = Config::embedded();
        assert_eq!(c.listen[0].address.to_string(), "127.0.0.1:2525");
        assert_eq!(c.listen[1].address.to_string(), "127.0.0.1:2587");
        assert!(c.listen[1].auth_required() && c.listen[1].tls_for_auth());
        assert_eq!(c.listen[2].protocol, Protocol::Submissions);
        assert!(!c.listen[0].auth_enabled());
        assert_eq!(c.data_dir, PathBuf::from("pillarbox-data"));
        assert_eq!(c.domains.local, vec!["localhost".to_string()]);
        assert!(c.domains.catch_all);
        assert_eq!(c.users.file, Some(PathBuf::from("pillarbox-data/users")));
    }

    #[test]
    fn unknown_key_is_named_with_the_file() {
        let e = Config::parse("[limits]\nmesage_size = 10\n", "/etc/p.toml").unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("/etc/p.toml") && s.contains("mesage_size"),
            "{s}"
        );
    }

    #[test]
    fn a_message_size_of_0_is_refused_as_it_would_advertise_no_limit() {
        let e = Config::parse("[limits]\nmessage_size = 0\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("limits.message_size"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = Config::parse("[limits]\nmessage_size = \"50XB\"\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("message_size") && e.contains("50XB"), "{e}");
        let e = Config::parse("[domains]\nlocal = [\"bad domain\"]\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("domains.local"), "{e}");
        let e = Config::parse("[limits]\ncommand_line = 100\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("limits.command_line"), "{e}");
        let e = Config::parse("[limits]\nhops = 0\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("limits.hops"), "{e}");
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("50MiB"), Some(50 << 20));
        assert_eq!(parse_size("10 KiB"), Some(10 << 10));
        assert_eq!(parse_size("5MB"), Some(5_000_000));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("3 weeks"), None);
    }

    #[test]
    fn reserve_is_percent_or_size() {
        let c = Config::parse("[storage]\nreserve = \"10%\"\n", "f").unwrap();
        assert_eq!(c.storage.reserve, Reserve::Percent(10));
        assert_eq!(c.storage.reserve.bytes(1000), 100);
        let c = Config::parse("[storage]\nreserve = \"1MiB\"\n", "f").unwrap();
        assert_eq!(c.storage.reserve, Reserve::Bytes(1 << 20));
        let e = Config::parse("[storage]\nreserve = \"150%\"\n", "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("reserve"), "{e}");
    }

    #[test]
    fn networks() {
        let n: IpNet = "192.0.2.0/24".parse().unwrap();
        assert!(n.contains("192.0.2.77".parse().unwrap()));
        assert!(!n.contains("192.0.3.1".parse().unwrap()));
        assert!(n.contains("::ffff:192.0.2.1".parse().unwrap()));
        let v6: IpNet = "::1".parse().unwrap();
        assert!(v6.contains("::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
    }

    #[test]
    fn check_files_names_a_missing_certificate_and_key_with_their_keys() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "data_dir = {:?}\n[tls]\ncert = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/k.pem\"\n",
            dir.path().join("data")
        );
        let c = Config::parse(&text, "/etc/p.toml").unwrap();
        let problems: Vec<String> = c
            .check_files("/etc/p.toml")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("/etc/p.toml")
                && problems[0].contains("tls.cert")
                && problems[0].contains("/nonexistent/c.pem"),
            "{problems:?}"
        );
        assert!(
            problems[1].contains("tls.key") && problems[1].contains("/nonexistent/k.pem"),
            "{problems:?}"
        );
    }

    #[test]
    fn check_files_accepts_an_absent_users_file_and_refuses_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let absent = format!(
            "data_dir = {:?}\n[users]\nfile = {:?}\n",
            dir.path().join("data"),
            dir.path().join("no-users-yet")
        );
        let c = Config::parse(&absent, "f.toml").unwrap();
        assert!(c.check_files("f.toml").is_empty());
        let a_dir = format!(
            "data_dir = {:?}\n[users]\nfile = {:?}\n",
            dir.path().join("data"),
            dir.path()
        );
        let c = Config::parse(&a_dir, "f.toml").unwrap();
        let problems = c.check_files("f.toml");
        assert_eq!(problems.len(), 1);
        let e = problems[0].to_string();
        assert!(
            e.contains("users.file") && e.contains(&dir.path().display().to_string()),
            "{e}"
        );
    }

    #[test]
    fn effective_config_round_trips() {
        let c = Config::embedded();
        let text = c.to_toml();
        let again = Config::parse(&text, "effective").unwrap();
        assert_eq!(again.limits.message_size, c.limits.message_size);
        assert_eq!(again.limits.command_timeout, c.limits.command_timeout);
        assert_eq!(again.limits.data_rate_min, c.limits.data_rate_min);
        assert_eq!(again.limits.data_time_max, c.limits.data_time_max);
    }

    #[test]
    fn data_rate_min_and_data_time_max_parse_like_sizes_and_durations() {
        let c = Config::parse(
            "[limits]\ndata_rate_min = \"2KiB\"\ndata_time_max = \"10m\"\n",
            "f",
        )
        .unwrap();
        assert_eq!(c.limits.data_rate_min, ByteSize(2048));
        assert_eq!(c.limits.data_time_max, Seconds(Duration::from_secs(600)));
        let c = Config::parse("[limits]\ndata_rate_min = 0\ndata_time_max = 0\n", "f").unwrap();
        assert_eq!(c.limits.data_rate_min, ByteSize(0));
        assert!(c.limits.data_time_max.0.is_zero());
        let d = Limits::default();
        assert_eq!(d.data_rate_min, ByteSize(1024));
        assert_eq!(d.data_time_max, Seconds(Duration::from_secs(1800)));
    }

    #[test]
    fn file_and_dir_modes_parse_as_octal_and_refuse_bits_outside_0777_naming_the_key() {
        assert_eq!(parse_mode("0660"), Some(0o660));
        assert_eq!(parse_mode("750"), Some(0o750));
        assert_eq!(parse_mode("0o640"), Some(0o640));
        for bad in ["", "0860", "rw-r-----", "04755", "1777", "0x1ff", "00600"] {
            assert_eq!(parse_mode(bad), None, "{bad:?}");
        }
        let d = Config::embedded().storage;
        assert_eq!((d.file_mode, d.dir_mode), (Mode(0o600), Mode(0o700)));
        let c = Config::parse(
            "[storage]\nfile_mode = \"0640\"\ndir_mode = \"0750\"\n",
            "f",
        )
        .unwrap();
        assert_eq!(
            c.storage.modes(),
            pillarbox_store::Modes {
                file: 0o640,
                dir: 0o750
            }
        );
        assert!(c.to_toml().contains("file_mode = \"0640\""));
        let e = Config::parse("[storage]\nfile_mode = \"04755\"\n", "/etc/p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/etc/p.toml") && e.contains("file_mode"), "{e}");
        let e = Config::parse("[storage]\ndir_mode = 755\n", "/etc/p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("dir_mode"), "{e}");
    }

    #[test]
    fn user_and_group_are_top_level_keys_and_group_needs_user() {
        let c = Config::parse("user = \"vmail\"\ngroup = \"mail\"\n", "f").unwrap();
        assert_eq!(c.user.as_deref(), Some("vmail"));
        assert_eq!(c.group.as_deref(), Some("mail"));
        let e = Config::parse("group = \"mail\"\n", "/etc/p.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/etc/p.toml") && e.contains("key `group`"),
            "{e}"
        );
        let e = Config::parse("user = \"\"\n", "/etc/p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("key `user`"), "{e}");
    }

    #[test]
    fn the_example_file_parses_and_documents_every_limits_key() {
        let text = include_str!("../../../pillarbox.example.toml");
        Config::parse(text, "pillarbox.example.toml").unwrap();
        let keys = toml::Value::try_from(Limits::default()).unwrap();
        let keys = keys.as_table().unwrap();
        for key in keys.keys() {
            assert!(
                text.lines()
                    .any(|l| l.trim_start().starts_with(&format!("{key} ="))),
                "pillarbox.example.toml does not document limits.{key}"
            );
        }
    }
}
