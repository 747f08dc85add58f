//! Why a bench could not start.

use std::net::IpAddr;

/// A run refused before any message: bad options, a target off this
/// machine, no runtime.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The async runtime did not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    /// The target is not `HOST:PORT` or `[IPv6]:PORT`.
    #[error(transparent)]
    Target(#[from] pillarbox_client::TargetError),
    /// The host name did not resolve.
    #[error("{target}: cannot resolve: {source}")]
    Resolve {
        target: String,
        source: std::io::Error,
    },
    /// The host name resolved to nothing.
    #[error("{0}: resolves to no address")]
    NoAddress(String),
    /// An address of the target is not loopback and not allowed.
    #[error(
        "refusing target {target} ({ip}): not a loopback address; a load generator only \
         targets this machine unless --allow-target {ip} names it"
    )]
    NotLoopback { target: String, ip: IpAddr },
    /// The host is not usable as a TLS server name.
    #[error("{host:?}: not a server name: {reason}")]
    ServerName { host: String, reason: String },
    /// The TLS client configuration could not be built.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// An envelope address or the EHLO name would break its command line.
    #[error("{what} {value:?}: no spaces, angle brackets or control characters")]
    BadWord { what: &'static str, value: String },
    /// No message size to send.
    #[error("no message size given")]
    NoSizes,
    /// `--server-pid` names no running process.
    #[error("no process {0:?} to measure")]
    NoProcess(Option<u32>),
}
