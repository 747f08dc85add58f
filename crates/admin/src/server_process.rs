//! The running server, as a process: which one holds the data directory, and
//! asking it to reload its config.

use serde::Serialize;

use crate::{Admin, AdminError};

/// A reload asked of the running server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReloadSent {
    /// The server's process id (the holder of `<data_dir>/pillarbox.lock`).
    pub pid: u32,
}

impl Admin {
    /// The process id of the server running on this data directory, if any.
    pub fn server_pid(&self) -> Result<Option<u32>, AdminError> {
        let data_dir = &self.config().data_dir;
        pillarbox_store::maildir::lock_holder(data_dir).map_err(|source| AdminError::Maildir {
            op: "find the server holding",
            path: data_dir.join(pillarbox_store::maildir::LOCK_FILE),
            source,
        })
    }

    /// Sends SIGHUP to the server running on this data directory: it re-reads
    /// its config file and logs what it applied.
    pub fn reload_server(&self) -> Result<ReloadSent, AdminError> {
        let lock = self
            .config()
            .data_dir
            .join(pillarbox_store::maildir::LOCK_FILE);
        let pid = self
            .server_pid()?
            .ok_or(AdminError::NoServer(lock.clone()))?;
        let pid_t = libc::pid_t::try_from(pid).map_err(|_| AdminError::NoServer(lock.clone()))?;
        // SAFETY: kill(2) only sends a signal; the pid is the holder of the
        // data directory's lock, found by the lock file's inode in /proc/locks.
        if unsafe { libc::kill(pid_t, libc::SIGHUP) } != 0 {
            return Err(AdminError::Signal {
                pid,
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(ReloadSent { pid })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_running_server_a_reload_names_the_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = pillarbox_server::config::Config::embedded();
        cfg.data_dir = dir.path().to_path_buf();
        let admin = Admin::new(
            cfg,
            std::sync::Arc::new(pillarbox_state::MemoryState::new()),
        );
        assert_eq!(admin.server_pid().unwrap(), None);
        let e = admin.reload_server().unwrap_err();
        assert!(e.to_string().contains("pillarbox.lock"), "{e}");
    }
}
