//! [`AdminError`]: why an administration operation did nothing.

use std::io;
use std::path::PathBuf;

use pillarbox_state::StateError;
use pillarbox_store::password::PasswordError;
use pillarbox_store::users::UserEditError;
use pillarbox_store::StoreError;

/// Why an operation failed. The text names the user, mailbox or file involved
/// (for the errors of the store and the state database, their own text does), so
/// it can be shown as it is.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// `add` of a user the users file already has.
    #[error("user {0} already exists")]
    UserExists(String),
    /// A user the users file does not have.
    #[error("no user {0}")]
    NoUser(String),
    /// A user name the users file cannot hold or the server would not use.
    #[error("bad user name: {0}")]
    BadUserName(String),
    /// An empty new password.
    #[error("empty password")]
    EmptyPassword,
    /// A password field that would break its line of the users file.
    #[error("password field contains ':', CR or LF")]
    BadPasswordField,
    /// Hashing the new password failed, or it cannot be stored in this scheme.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// A mailbox named without a domain when no local domain is configured.
    #[error("{user:?} has no domain and no local domain is configured: write user@domain")]
    NoDomain {
        /// The name as given.
        user: String,
    },
    /// A name that is not `user@domain` (an empty part, blanks, control characters).
    #[error("{user:?} is not a mailbox: write user@domain or user")]
    NotAMailbox {
        /// The name as given.
        user: String,
    },
    /// A lock or disable without a reason.
    #[error("reason must not be empty")]
    EmptyReason,
    /// A reason of several lines or with control characters.
    #[error("reason must be one line of text without control characters")]
    ReasonNotOneLine,
    /// A reason longer than [`crate::MAX_REASON`] characters.
    #[error("reason is longer than {max} characters")]
    ReasonTooLong {
        /// The limit.
        max: usize,
    },
    /// A lock for no time at all.
    #[error("a lock's duration must be longer than zero")]
    ZeroDuration,
    /// A quota asked for a mailbox that has no Maildir.
    #[error("{mailbox} has no Maildir at {}", path.display())]
    NoMaildir {
        /// The mailbox, `user@domain`.
        mailbox: String,
        /// Where its Maildir would be.
        path: PathBuf,
    },
    /// Reading a Maildir or writing its `maildirsize` failed.
    // The source is spelled in the message too: callers may show `Display` alone.
    #[error("{op} {}: {source}", path.display())]
    Maildir {
        /// What was being done, e.g. `"recount quota of"`.
        op: &'static str,
        /// The Maildir.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The users file or a Maildir could not be read or written (the text names
    /// the file), or a name is not usable as a mailbox directory.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The state database failed (the text names it).
    #[error(transparent)]
    State(#[from] StateError),
    /// No server holds the data directory's lock file.
    #[error("no server is running on this data directory (none holds {})", .0.display())]
    NoServer(PathBuf),
    /// The running server's control socket could not be reached or answered
    /// nonsense (the text names the socket).
    #[error("{0}")]
    Control(io::Error),
    /// The running server refused a queue operation (the text says why).
    #[error("{0}")]
    Queue(String),
    /// The server could not be signalled.
    #[error("cannot signal the server (pid {pid}): {source}")]
    Signal {
        /// The server's process id.
        pid: u32,
        /// The operating system's error.
        source: io::Error,
    },
}

impl From<UserEditError> for AdminError {
    fn from(e: UserEditError) -> Self {
        match e {
            UserEditError::Exists(user) => AdminError::UserExists(user),
            UserEditError::NotFound(user) => AdminError::NoUser(user),
            UserEditError::BadName(why) => AdminError::BadUserName(why),
            UserEditError::BadPasswordField => AdminError::BadPasswordField,
            UserEditError::Store(e) => AdminError::Store(e),
        }
    }
}
