//! The Pillarbox server: config, listeners, TLS, the session driver, and the
//! policy seam ([`policy`]) whose checks answer the protocol session's
//! questions with the injected [`services`].

pub mod aliases;
pub mod auth;
pub mod config;
pub mod control;
mod delivery;
pub mod directory;
mod file_watch;
pub mod pace;
pub mod policy;
pub mod privileges;
pub mod received;
pub mod server;
pub mod services;
pub mod session_driver;
pub mod storage;
pub mod tls;

pub use config::Config;
pub use server::{Reloaded, Reloader, Server, StartError};
