//! The aliases file (`[aliases] file`), loaded, and re-read when it changes,
//! looked at at most once a second. A file that cannot be read keeps the last good
//! table and is logged; a missing file (or no `[aliases] file`) is no aliases.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pillarbox_store::aliases::AliasTable;

use crate::file_watch::{modified, FileStamp};

/// The aliases in force.
pub struct Aliases {
    path: Option<PathBuf>,
    state: Mutex<State>,
}

struct State {
    table: Arc<AliasTable>,
    stamp: FileStamp,
}

impl Aliases {
    /// No aliases.
    pub fn none() -> Self {
        Self {
            path: None,
            state: Mutex::new(State {
                table: Arc::new(AliasTable::default()),
                stamp: FileStamp::new(),
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

    fn reload(&self) -> Arc<AliasTable> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let Some(path) = &self.path else {
            return st.table.clone();
        };
        let mtime = modified(path);
        match AliasTable::load(path) {
            Ok((table, errors)) => {
                for e in errors {
                    tracing::warn!(file = %path.display(), line = e.line, "aliases file: {}", e.message);
                }
                tracing::info!(file = %path.display(), aliases = table.len(), "aliases file loaded");
                st.table = Arc::new(table);
                st.stamp.read(mtime);
            }
            Err(e) => {
                tracing::error!(file = %path.display(), "aliases file unreadable, keeping the previous one: {e}");
                st.stamp.failed();
            }
        }
        st.table.clone()
    }

    /// The table now, the file re-read first if it changed.
    pub fn current(&self) -> Arc<AliasTable> {
        {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            match &self.path {
                Some(path) if st.stamp.due(path) => {}
                _ => return st.table.clone(),
            }
        }
        self.reload()
    }
}
