//! Pillarbox's storage: where accepted mail goes and who may receive it.
//!
//! * [`maildir`]: durable Maildir delivery. A message is written once into a spool
//!   file (`<data_dir>/queue/messages/<id>`), made durable with the others of its
//!   batch ([`persist_batch`]) and kept there while the queue holds it, then
//!   hard-linked into each recipient's `new/` under a name of its own
//!   ([`MaildirStore::place_named`]) with file and directory fsyncs.
//! * [`users`]: the user directory, a Dovecot passwd-file.
//! * [`disk`]: free space on the data filesystem, for the disk reserve policy.
//! * [`error`]: [`StoreError`], which tells a full disk (`452 4.3.1`) from other
//!   local trouble (`451 4.3.0`).

pub mod aliases;
pub mod dir_sync;
pub mod disk;
pub mod error;
pub mod greylist;
pub mod maildir;
pub mod password;
pub mod quota;
pub mod state;
pub mod users;

pub use disk::{space, DiskSpace};
pub use error::StoreError;
pub use maildir::{
    persist_batch, Delivered, IncomingMessage, Kept, MailboxAddr, MaildirStore, Modes, Placed,
};
pub use users::{UserDirectory, UserEntry, UserFileError};

/// `flock(2)` on `file`, exclusive, retried when a signal interrupts it; with
/// `wait` false it fails at once (`EWOULDBLOCK`) when another holds the lock.
/// The lock lasts as long as the file's descriptor stays open.
pub(crate) fn flock_exclusive(file: &std::fs::File, wait: bool) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let op = if wait {
        libc::LOCK_EX
    } else {
        libc::LOCK_EX | libc::LOCK_NB
    };
    loop {
        // SAFETY: flock on a descriptor the caller owns; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}
