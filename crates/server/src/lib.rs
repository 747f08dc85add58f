//! The Pillarbox server: config, listeners, TLS, the session driver and the
//! policies that answer the protocol session's questions.

pub mod auth;
pub mod config;
pub mod directory;
pub mod greylisting;
pub mod received;
pub mod recipients;
pub mod server;
pub mod session_driver;
pub mod storage;
pub mod tls;

pub use config::Config;
pub use server::{Server, StartError};
