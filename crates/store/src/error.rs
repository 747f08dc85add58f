//! The one error type of the store, shaped by what the SMTP server must answer.
//!
//! The server maps [`StoreError::NoSpace`] to `452 4.3.1` (RFC 3463 3.4: mail system
//! full) and every other failure to `451 4.3.0`: our own resource trouble is always
//! temporary, so the client keeps the message and retries (RFC 5321 4.2.5).

use std::io;
use std::path::{Path, PathBuf};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The filesystem holding `path` is full, or the owner's disk quota is used up
    /// (`ENOSPC` or `EDQUOT`). The server answers `452 4.3.1`.
    #[error("no space left for {}", path.display())]
    NoSpace {
        /// The file or directory whose write or creation ran out of space.
        path: PathBuf,
    },
    /// Any other I/O failure. The server answers `451 4.3.0`.
    // The source is spelled in the message too: the server logs this error with
    // `Display` alone, and "create directory /x" without the errno tells nobody why.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What the store was doing, e.g. `"fsync spool file"`.
        op: &'static str,
        /// The file or directory it was doing it to.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// A domain or user name that cannot safely become a directory name.
    #[error("mailbox name {0:?} is not usable as a directory name")]
    BadMailbox(String),
    /// Another process (another Pillarbox) holds the data directory's lock.
    #[error("{} is held by another process{}: two servers cannot share a data directory", path.display(), pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    InUse {
        /// The lock file.
        path: PathBuf,
        /// The pid the lock file names, when it names one.
        pid: Option<u32>,
    },
}

impl StoreError {
    /// The same error for another message of a failed batch (io::Error is
    /// not Clone): a full disk stays a full disk.
    pub fn duplicate(&self) -> StoreError {
        match self {
            StoreError::NoSpace { path } => StoreError::NoSpace { path: path.clone() },
            StoreError::Io { op, path, source } => StoreError::Io {
                op,
                path: path.clone(),
                source: source
                    .raw_os_error()
                    .map(io::Error::from_raw_os_error)
                    .unwrap_or_else(|| io::Error::new(source.kind(), source.to_string())),
            },
            StoreError::BadMailbox(s) => StoreError::BadMailbox(s.clone()),
            StoreError::InUse { path, pid } => StoreError::InUse {
                path: path.clone(),
                pid: *pid,
            },
        }
    }

    /// True when the failure is a full disk or an exhausted quota: the server answers
    /// `452 4.3.1` instead of `451 4.3.0`.
    pub fn is_no_space(&self) -> bool {
        matches!(self, StoreError::NoSpace { .. })
    }

    /// Wraps an I/O error from operation `op` on `path`. Every I/O error in the store (and the queue)
    /// goes through here so that a full disk is always recognised, whichever call hit it.
    pub fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        match source.raw_os_error() {
            Some(code) if code == libc::ENOSPC || code == libc::EDQUOT => StoreError::NoSpace {
                path: path.to_path_buf(),
            },
            _ => StoreError::Io {
                op,
                path: path.to_path_buf(),
                source,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_and_edquot_become_no_space() {
        for code in [libc::ENOSPC, libc::EDQUOT] {
            let err = StoreError::io("write", Path::new("/x"), io::Error::from_raw_os_error(code));
            assert!(err.is_no_space(), "{code}: {err}");
        }
    }

    #[test]
    fn other_errors_stay_io_and_name_the_path() {
        let err = StoreError::io(
            "open",
            Path::new("/x/y"),
            io::Error::from_raw_os_error(libc::EACCES),
        );
        assert!(!err.is_no_space());
        let text = err.to_string();
        assert!(text.starts_with("open /x/y: "), "{text}");
    }
}
