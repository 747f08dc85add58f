//! SASL mechanisms for SMTP AUTH (RFC 4954), server and client side, sans-IO.

pub mod secret;

pub use secret::{CramMd5Secret, ScramSecret};
