//! Pillarbox's SMTP client: async (tokio), with an exact transcript of
//! every line sent and received, when, and whether under TLS.
//!
//! Used by `pillarbox probe` (a diagnostic) and, through its line and reply
//! readers alone, by the load generator `pillarbox-bench`; meant for the
//! relay too. It speaks plain SMTP, STARTTLS (RFC 3207) and implicit TLS
//! (RFC 8314); EHLO capabilities; AUTH PLAIN, LOGIN, CRAM-MD5 and
//! SCRAM-SHA-256 (RFC 4954, with `pillarbox_proto::sasl`); MAIL, RCPT, DATA
//! with dot-stuffing, BDAT chunks (RFC 3030) and PIPELINING (RFC 2920);
//! RSET, HELP, NOOP, QUIT.
//!
//! * [`reply_reader`]: the sans-IO multi-line reply reader, strict and bounded.
//! * [`line_reader`]: reply lines off a connection into one buffer; a reply's
//!   code without keeping its text, for a load generator.
//! * [`capabilities`]: the EHLO reply, parsed.
//! * [`dot_stuffing`]: the DATA wire form of a message.
//! * [`transcript`]: the record of a session.
//! * [`tls`]: what TLS negotiated, the certificate chain and its verification.
//! * [`certificate`]: a small DER reader for the fields a person reads.
//! * [`session`]: the [`Client`] and its operations.
//! * [`target`]: `HOST[:PORT]` and `[IPv6]:PORT` as given on a command line.
//! * [`rlimit`]: raising the open-file limit for many connections.
//!
//! Every read and write has a timeout, every reply a line-length and
//! line-count limit: a silent or hostile server cannot hold the client.

pub mod capabilities;
pub mod certificate;
pub mod dot_stuffing;
mod error;
pub mod line_reader;
pub mod reply_reader;
pub mod rlimit;
pub mod session;
pub mod target;
pub mod tls;
pub mod transcript;

pub use capabilities::{Capabilities, Extension};
pub use certificate::CertificateSummary;
pub use error::ClientError;
pub use line_reader::{LineReader, ReadError};
pub use pillarbox_proto::sasl::Mechanism;
pub use reply_reader::{ReplyError, ReplyLimits};
pub use session::{
    Client, ClientConfig, Envelope, ReplyRecord, Security, TransactionOutcome, Transfer,
};
pub use target::{parse_target, TargetError};
pub use tls::{TlsInfo, TrustAnchors, Verification};
pub use transcript::{Direction, Entry, Transcript};
