//! Pillarbox's reply codes.
//!
//! * [`reply`]: the types of a reply: [`ReplyCode`] (RFC 5321 4.2), [`EnhancedCode`]
//!   (RFC 3463), [`Reply`] and its wire form (RFC 5321 4.2.1, RFC 2034).
//! * [`contract`]: every reply the Pillarbox server sends, one row each,
//!   published as `docs/REPLY-CONTRACT.md`. It is the only place a reply code
//!   is spelled.
//! * [`registry`]: every standard basic reply code and every IANA enhanced
//!   status code, explained in six languages, with a consistency [`check`],
//!   a reply-text parser ([`parse_reply_text`]) and comparisons.

pub mod contract;
pub mod registry;
pub mod reply;

pub use contract::Row;
pub use registry::{
    check, compare, parse_reply_text, Comparison, Explanation, Finding, FindingKind, Key, Lang,
    ParsedReply, Severity,
};
pub use reply::{EnhancedCode, Reply, ReplyClass, ReplyCode};
