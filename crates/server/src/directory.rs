//! The user directory, re-read when its file changes (no restart needed).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use pillarbox_store::UserDirectory;

/// How often the file's modification time is looked at, at most.
const CHECK_EVERY: Duration = Duration::from_secs(1);

struct State {
    dir: Arc<UserDirectory>,
    mtime: Option<SystemTime>,
    checked: Instant,
}

/// The users file, loaded, and reloaded when it changes.
pub struct Directory {
    path: PathBuf,
    default_domain: String,
    state: Mutex<State>,
}

impl Directory {
    /// Loads the file now; a missing file is an empty directory. Broken lines
    /// are logged with their numbers and do not take the others down.
    pub fn open(path: PathBuf, default_domain: &str) -> Self {
        let d = Self {
            path,
            default_domain: default_domain.to_string(),
            state: Mutex::new(State {
                dir: Arc::new(UserDirectory::default()),
                mtime: None,
                checked: Instant::now(),
            }),
        };
        d.reload();
        d
    }

    fn mtime(&self) -> Option<SystemTime> {
        std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok()
    }

    fn reload(&self) -> Arc<UserDirectory> {
        let mtime = self.mtime();
        let dir = match pillarbox_store::UserDirectory::load(&self.path, &self.default_domain) {
            Ok((dir, errors)) => {
                for e in errors {
                    tracing::warn!(file = %self.path.display(), line = e.line, "users file: {}", e.message);
                }
                if mtime.is_some() {
                    tracing::info!(file = %self.path.display(), users = dir.len(), "users file loaded");
                }
                Arc::new(dir)
            }
            Err(e) => {
                tracing::error!(file = %self.path.display(), "users file unreadable, keeping the previous one: {e}");
                let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                return st.dir.clone();
            }
        };
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.dir = dir.clone();
        st.mtime = mtime;
        st.checked = Instant::now();
        dir
    }

    /// The current directory, re-read first if the file changed.
    pub fn current(&self) -> Arc<UserDirectory> {
        {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if st.checked.elapsed() < CHECK_EVERY {
                return st.dir.clone();
            }
            st.checked = Instant::now();
            let changed = self.mtime() != st.mtime;
            if !changed {
                return st.dir.clone();
            }
        }
        self.reload()
    }
}
