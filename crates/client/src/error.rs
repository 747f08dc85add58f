//! What can go wrong below the level of a reply.
//!
//! A reply the server sends, even `554`, is not an error here: it is the
//! answer, returned as a [`pillarbox_codes::Reply`]. These are the cases
//! where there is no (usable) answer.

use std::io;
use std::time::Duration;

use pillarbox_proto::sasl::{ClientError as SaslError, Mechanism};

use crate::reply_reader::ReplyError;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {target}: {source}")]
    Connect { target: String, source: io::Error },
    #[error("no answer within {after:?} while {during}")]
    Timeout { during: String, after: Duration },
    #[error("the server closed the connection while {during}")]
    Closed { during: String },
    #[error("I/O error while {during}: {source}")]
    Io { during: String, source: io::Error },
    /// The server's reply broke RFC 5321 4.2 or a limit.
    #[error(transparent)]
    Reply(#[from] ReplyError),
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
    /// RFC 3207 5: anything the server sends after its `220` and before
    /// the handshake would be read as if it came under TLS (response
    /// injection); the client stops instead.
    #[error("the server sent data after `220` to STARTTLS, before the TLS handshake (RFC 3207 5)")]
    DataBeforeTls,
    #[error("STARTTLS inside TLS")]
    AlreadyTls,
    #[error("AUTH {mechanism}: {source}")]
    Sasl {
        mechanism: Mechanism,
        source: SaslError,
    },
    #[error("AUTH {0}: the server's challenge is not base64")]
    BadChallenge(Mechanism),
    #[error("AUTH {mechanism}: no end after {steps} challenges")]
    AuthTooLong { mechanism: Mechanism, steps: usize },
    /// A command argument with CR or LF would smuggle a second command.
    #[error("argument contains CR or LF: {0:?}")]
    BadArgument(String),
}
