//! The user directory, re-read when its file changes (no restart needed).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pillarbox_store::password::{Decoys, StoredPassword};
use pillarbox_store::UserDirectory;

use crate::file_watch::{modified, FileStamp};

/// Which challenge-response mechanisms every user with a password can use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MechanismSupport {
    pub cram_md5: bool,
    pub scram_sha256: bool,
    /// The iteration count of each user's SCRAM secret, in file order
    /// (`{PLAIN}` users count 4,096, what their secret is made with): an
    /// unknown name's decoy secret announces one of them.
    pub scram_iterations: Arc<[u32]>,
}

impl MechanismSupport {
    fn of(passwords: &[StoredPassword]) -> Self {
        use pillarbox_store::password::Scheme;
        let schemes: Vec<Scheme> = passwords.iter().map(|p| p.scheme()).collect();
        if schemes.is_empty() {
            return Self::default();
        }
        Self {
            cram_md5: schemes
                .iter()
                .all(|s| matches!(s, Scheme::CramMd5 | Scheme::Plain)),
            scram_sha256: schemes
                .iter()
                .all(|s| matches!(s, Scheme::ScramSha256 | Scheme::Plain)),
            scram_iterations: passwords
                .iter()
                .filter_map(StoredPassword::scram_iterations)
                .collect(),
        }
    }
}

struct State {
    dir: Arc<UserDirectory>,
    support: MechanismSupport,
    /// What a login for a name no one has is checked against.
    decoys: Arc<Decoys>,
    /// The last read succeeded (or the file is absent: no users).
    healthy: bool,
    stamp: FileStamp,
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
                support: MechanismSupport::default(),
                decoys: Arc::new(Decoys::new(Vec::new())),
                healthy: true,
                stamp: FileStamp::new(),
            }),
        };
        d.reload();
        d
    }

    fn reload(&self) -> Arc<UserDirectory> {
        let mtime = modified(&self.path);
        let dir = match pillarbox_store::UserDirectory::load(&self.path, &self.default_domain) {
            Ok((dir, errors)) => {
                for e in errors {
                    tracing::warn!(file = %self.path.display(), line = e.line, "users file: {}", e.message);
                }
                if mtime.is_some() {
                    tracing::info!(file = %self.path.display(), users = dir.len(), "users file loaded");
                }
                for u in dir.iter().filter(|u| {
                    u.extra_field("quota_rule").is_some()
                        && u.extra_field("userdb_quota_rule").is_none()
                }) {
                    // Dovecot's passwd-file takes userdb fields with the
                    // prefix only: the bare field would give the two servers
                    // two different quotas.
                    tracing::warn!(file = %self.path.display(), user = %u.mailbox(), "users file: `quota_rule=` is applied here but Dovecot ignores it; write `userdb_quota_rule=`");
                }
                Arc::new(dir)
            }
            Err(e) => {
                tracing::error!(file = %self.path.display(), "users file unreadable, keeping the previous one: {e}");
                let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                st.healthy = false;
                st.stamp.failed();
                return st.dir.clone();
            }
        };
        // Every usable password, parsed once for both.
        let passwords: Vec<StoredPassword> = dir
            .iter()
            .filter_map(|u| u.stored_password().ok())
            .collect();
        let support = MechanismSupport::of(&passwords);
        let decoys = Arc::new(Decoys::new(passwords));
        // Made now, beside the server, rather than by the first login for
        // each cost (which would take twice as long as the next ones).
        let prepare = decoys.clone();
        if let Err(e) = std::thread::Builder::new()
            .name("pillarbox-decoys".into())
            .spawn(move || prepare.prepare())
        {
            tracing::warn!("cannot start the thread that makes the AUTH decoys (the first login for each hash cost makes them): {e}");
        }
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.support = support;
        st.decoys = decoys;
        st.dir = dir.clone();
        st.healthy = true;
        st.stamp.read(mtime);
        dir
    }

    /// Whether the file could be read the last time (AUTH answers 454 4.7.0
    /// when it could not; mail for known users still flows from the last good copy).
    pub fn healthy(&self) -> bool {
        self.fresh().healthy
    }

    /// CRAM-MD5 and SCRAM-SHA-256 are advertised only when every user with a
    /// password can use them: clients pick the strongest mechanism offered and
    /// do not fall back, so offering one that a user's stored hash (Argon2,
    /// SHA-crypt, bcrypt) cannot serve would lock that user out.
    pub fn mechanism_support(&self) -> MechanismSupport {
        self.fresh().support.clone()
    }

    /// The decoys for logins of names no one has, one per cost among the
    /// current users ([`Decoys`]).
    pub fn decoys(&self) -> Arc<Decoys> {
        self.fresh().decoys.clone()
    }

    /// The state, the file re-read first if it changed.
    fn fresh(&self) -> std::sync::MutexGuard<'_, State> {
        let _ = self.current();
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current directory, re-read first if the file changed.
    pub fn current(&self) -> Arc<UserDirectory> {
        {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if !st.stamp.due(&self.path) {
                return st.dir.clone();
            }
        }
        self.reload()
    }
}

impl crate::services::Users for Directory {
    fn current(&self) -> Arc<UserDirectory> {
        Directory::current(self)
    }
    fn healthy(&self) -> bool {
        Directory::healthy(self)
    }
    fn mechanism_support(&self) -> MechanismSupport {
        Directory::mechanism_support(self)
    }
    fn decoys(&self) -> Arc<Decoys> {
        Directory::decoys(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decoys_are_made_beside_the_server_when_the_users_are_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("users");
        // Two costs: SHA512-CRYPT at 5,000 rounds, and Argon2id at its default.
        let sha = "$6$rounds=5000$saltsaltsaltsalt$9HwOVtHlTa3hXz9dB6XvVzmCkUkBp/yILnoQhqcEwzcDTxJm.i.RdLsHdoWw3Bw3oZhyCGW5gXtb8xNYYRqH/";
        let argon =
            pillarbox_store::password::hash(pillarbox_store::password::Scheme::Argon2id, "secret")
                .unwrap();
        std::fs::write(
            &users,
            format!("a@example.test:{{SHA512-CRYPT}}{sha}::::::\nb@example.test:{argon}::::::\n"),
        )
        .unwrap();
        let d = Directory::open(users, "example.test");
        assert_eq!(d.current().len(), 2);
        for _ in 0..200 {
            if d.decoys().prepared() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("no decoy made 10 s after the users were loaded");
    }
}
