//! The aliases file (`[aliases] file`), loaded, and re-read when it changes,
//! at most once a second. A file that cannot be read keeps the last good
//! table and is logged; a missing file (or no `[aliases] file`) is no aliases.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use pillarbox_store::aliases::AliasTable;

/// How often the file's time is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The aliases in force.
pub struct Aliases {
    path: Option<PathBuf>,
    state: Mutex<State>,
}

struct State {
    table: Arc<AliasTable>,
    mtime: Option<SystemTime>,
    checked: Instant,
}

impl Aliases {
    /// No aliases.
    pub fn none() -> Self {
        Self {
            path: None,
            state: Mutex::new(State {
                table: Arc::new(AliasTable::default()),
                mtime: None,
                checked: Instant::now(),
            }),
        }
    }

    /// A fixed table (for tests).
    pub fn fixed(table: AliasTable) -> Self {
        let a = Self::none();
        a.state.lock().unwrap_or_else(|p| p.into_inner()).table = Arc::new(table);
        a
    }

    /// The aliases of `path`, read now.
    pub fn open(path: PathBuf) -> Self {
        let a = Self {
            path: Some(path),
            ..Self::none()
        };
        a.reload();
        a
    }

    fn mtime(&self) -> Option<SystemTime> {
        let path = self.path.as_ref()?;
        std::fs::metadata(path).and_then(|m| m.modified()).ok()
    }

    fn reload(&self) -> Arc<AliasTable> {
        let mtime = self.mtime();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.checked = Instant::now();
        let Some(path) = &self.path else {
            return st.table.clone();
        };
        match AliasTable::load(path) {
            Ok((table, errors)) => {
                for e in errors {
                    tracing::warn!(file = %path.display(), line = e.line, "aliases file: {}", e.message);
                }
                tracing::info!(file = %path.display(), aliases = table.len(), "aliases file loaded");
                st.table = Arc::new(table);
                st.mtime = mtime;
            }
            Err(e) => {
                tracing::error!(file = %path.display(), "aliases file unreadable, keeping the previous one: {e}");
            }
        }
        st.table.clone()
    }

    /// The table now, the file re-read first if it changed.
    pub fn current(&self) -> Arc<AliasTable> {
        {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if self.path.is_none() || st.checked.elapsed() < CHECK_EVERY {
                return st.table.clone();
            }
            st.checked = Instant::now();
            if self.mtime() == st.mtime {
                return st.table.clone();
            }
        }
        self.reload()
    }
}
