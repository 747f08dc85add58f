//! Pillarbox's storage: where accepted mail goes and who may receive it.
//!
//! * [`maildir`]: durable Maildir delivery. A message is written once into a spool
//!   file, then hard-linked into every recipient's `new/` with file and directory
//!   fsyncs; the server says `250` only after [`IncomingMessage::commit`] returns `Ok`.
//! * [`users`]: the user directory, a Dovecot passwd-file.
//! * [`disk`]: free space on the data filesystem, for the disk reserve policy.
//! * [`error`]: [`StoreError`], which tells a full disk (`452 4.3.1`) from other
//!   local trouble (`451 4.3.0`).

pub mod dir_sync;
pub mod disk;
pub mod error;
pub mod greylist;
pub mod group_commit;
pub mod maildir;
pub mod password;
pub mod quota;
pub mod state;
pub mod users;

pub use disk::{space, DiskSpace};
pub use error::StoreError;
pub use maildir::{Delivered, IncomingMessage, MailboxAddr, MaildirStore};
pub use users::{UserDirectory, UserEntry, UserFileError};
