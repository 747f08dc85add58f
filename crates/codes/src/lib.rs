//! Pillarbox's reply codes.
//!
//! * [`reply`]: the types of a reply: [`ReplyCode`] (RFC 5321 4.2), [`EnhancedCode`]
//!   (RFC 3463), [`Reply`] and its wire form (RFC 5321 4.2.1, RFC 2034).
//! * [`contract`]: every reply the Pillarbox server sends, one row each, as in
//!   `shared/REPLIES.md`. It is the only place a reply code is spelled.

pub mod contract;
pub mod reply;

pub use contract::Row;
pub use reply::{EnhancedCode, Reply, ReplyClass, ReplyCode};
