//! The user directory: who has a mailbox, and their password hash, in Dovecot's
//! passwd-file format so one file serves both Pillarbox and Dovecot
//! (<https://doc.dovecot.org/> "Passwd-file").
//!
//! ```text
//! user:password:uid:gid:gecos:home:shell:extra_fields
//! alice@example.test:{ARGON2ID}$argon2id$...::::::quota_rule=*:storage=1G
//! bob:{PLAIN}secret
//! ```
//!
//! Missing trailing fields are allowed; `#` comments and blank lines are skipped.
//! Pillarbox uses the user, the password and the extra fields; uid, gid, gecos, home
//! and shell are Dovecot's business.
//!
//! [`add_user`], [`set_password`] and [`delete_user`] change the file for
//! `pillarbox users`: every line they do not touch is kept byte for byte (comments,
//! unknown fields, order, line ends), the file is replaced atomically (a temporary
//! file beside it with the old file's owner, group and mode, or mode 0600 for a
//! new file; fsync, rename, fsync of the directory) so the server
//! re-reading it sees the old or the new file, never half of one, and writers take
//! turns on an `flock` of `<file>.lock`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::os::unix::io::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::StoreError;
use crate::maildir::MailboxAddr;
use crate::password::{PasswordError, StoredPassword};

/// One user of the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    /// Local part, lower-cased.
    pub user: String,
    /// Domain, lower-cased; the default domain when the file names the user without
    /// `@`.
    pub domain: String,
    /// The password field as written, usually `{SCHEME}hash`. Empty when the user
    /// cannot log in (a mailbox only).
    pub password: String,
    /// The extra fields in file order: `key=value`, or a bare `key` with an empty
    /// value.
    pub extra: Vec<(String, String)>,
}

impl UserEntry {
    /// The user's mailbox, for delivery.
    pub fn mailbox(&self) -> MailboxAddr {
        MailboxAddr {
            domain: self.domain.clone(),
            user: self.user.clone(),
        }
    }

    /// The password field, parsed, with the user named so that a `{PLAIN}`
    /// password gets a stable per-user SCRAM salt. [`PasswordError::NoPassword`]
    /// when the field is empty: the user cannot log in.
    pub fn stored_password(&self) -> Result<StoredPassword, PasswordError> {
        StoredPassword::parse(&self.password)
            .map(|p| p.with_user(&format!("{}@{}", self.user, self.domain)))
    }

    /// The value of the first extra field named `key`.
    pub fn extra_field(&self, key: &str) -> Option<&str> {
        self.extra
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A line of the users file that was not used as written. The other lines still
/// count: one typo must not take every mailbox down.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct UserFileError {
    /// Line number, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

/// The users of a passwd-file, looked up case-insensitively by user and domain.
#[derive(Debug, Clone, Default)]
pub struct UserDirectory {
    /// In file order, for listing.
    entries: Vec<UserEntry>,
    /// Domain, then user, lower-cased, to the index in `entries` (two levels,
    /// so a lookup needs no key of its own).
    index: HashMap<String, HashMap<String, usize>>,
}

impl UserDirectory {
    /// Parses a users file. A user name without `@` belongs to `default_domain`.
    ///
    /// Broken lines (an empty or unusable address, a user listed twice) are skipped
    /// and reported; when a user is listed twice the first line wins, as in Dovecot.
    pub fn parse(text: &str, default_domain: &str) -> (UserDirectory, Vec<UserFileError>) {
        let mut parser = Parser::new(default_domain);
        for (i, line) in text.lines().enumerate() {
            parser.line(i + 1, line);
        }
        parser.finish()
    }

    /// Reads and parses the users file at `path`. A missing file is an empty
    /// directory (a fresh install, or a catch-all setup), not an error. A line that
    /// is not UTF-8 is reported like any other broken line.
    pub fn load(
        path: &Path,
        default_domain: &str,
    ) -> Result<(UserDirectory, Vec<UserFileError>), StoreError> {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok((UserDirectory::default(), Vec::new()))
            }
            Err(e) => return Err(StoreError::io("read users file", path, e)),
        };
        let mut parser = Parser::new(default_domain);
        for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            // Same line ends as str::lines: LF or CRLF.
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            match std::str::from_utf8(raw) {
                Ok(line) => parser.line(i + 1, line),
                Err(_) => parser.error(i + 1, "line is not valid UTF-8".to_string()),
            }
        }
        Ok(parser.finish())
    }

    /// Finds a user; `user` and `domain` are compared case-insensitively.
    pub fn lookup(&self, user: &str, domain: &str) -> Option<&UserEntry> {
        let i = *self
            .index
            .get(lowercase(domain).as_ref())?
            .get(lowercase(user).as_ref())?;
        self.entries.get(i)
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no users.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The users in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, UserEntry> {
        self.entries.iter()
    }
}

/// `s` lower-cased (as `str::to_lowercase`), borrowed when it already is:
/// lookups run for every recipient and most names are lower-case ASCII.
pub fn lowercase(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(s.to_ascii_lowercase())
        } else {
            Cow::Borrowed(s)
        }
    } else {
        Cow::Owned(s.to_lowercase())
    }
}

/// Splits an account name as people and clients write it, `user@domain` or a bare
/// `user` at `default_domain`, into `(local part, domain)`, both lower-cased. The
/// split is at the last `@`, so a local part may itself hold one. Nothing is
/// checked: callers that store or deliver to the name validate the parts (see
/// [`add_user`], [`MailboxAddr::new`]).
pub fn split_account(name: &str, default_domain: &str) -> (String, String) {
    match name.rsplit_once('@') {
        Some((local, domain)) => (local.to_lowercase(), domain.to_lowercase()),
        None => (name.to_lowercase(), default_domain.to_lowercase()),
    }
}

impl<'a> IntoIterator for &'a UserDirectory {
    type Item = &'a UserEntry;
    type IntoIter = std::slice::Iter<'a, UserEntry>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Why the users file was not changed.
#[derive(Debug, thiserror::Error)]
pub enum UserEditError {
    /// `add` of a user the file already has (compared as lookups compare).
    #[error("user {0} already exists")]
    Exists(String),
    /// `passwd` or `del` of a user the file does not have.
    #[error("no user {0}")]
    NotFound(String),
    /// A user name the file cannot hold or the server would not use.
    #[error("bad user name: {0}")]
    BadName(String),
    /// A password field that would break the line.
    #[error("password field contains ':', CR or LF")]
    BadPasswordField,
    /// Reading, locking or replacing the file failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Adds `name` (`local@domain`, or `local` in `default_domain`) with the password
/// field `password` (usually from [`crate::password::hash`]) as a new last line
/// `local@domain:password`. Refuses a user the file already has. Returns the
/// address as written.
pub fn add_user(
    path: &Path,
    default_domain: &str,
    name: &str,
    password: &str,
) -> Result<String, UserEditError> {
    let key = user_key(default_domain, name)?;
    check_password_field(password)?;
    let address = format!("{}@{}", key.0, key.1);
    edit_file(path, |mut text| {
        if lines(&text).any(|line| line_key(default_domain, line.body) == Some(key.clone())) {
            return Err(UserEditError::Exists(address.clone()));
        }
        if !text.is_empty() && !text.ends_with(b"\n") {
            text.push(b'\n');
        }
        text.extend_from_slice(format!("{address}:{password}\n").as_bytes());
        Ok((text, address.clone()))
    })
}

/// Replaces the password field of `name` with `password`, on the line that is in
/// force (the first, as in lookups); the rest of that line stays as it was.
pub fn set_password(
    path: &Path,
    default_domain: &str,
    name: &str,
    password: &str,
) -> Result<(), UserEditError> {
    let key = user_key(default_domain, name)?;
    check_password_field(password)?;
    edit_file(path, |text| {
        let mut out = Vec::with_capacity(text.len() + password.len());
        let mut done = false;
        for line in lines(&text) {
            if !done && line_key(default_domain, line.body) == Some(key.clone()) {
                done = true;
                // user:password[:rest]: keep the user and everything from the second ':'.
                let body = line.body;
                let (name_end, rest) = match body.iter().position(|&b| b == b':') {
                    None => (body.len(), &body[body.len()..]),
                    Some(first) => {
                        let after = &body[first + 1..];
                        let second = after.iter().position(|&b| b == b':');
                        (first, second.map_or(&after[after.len()..], |i| &after[i..]))
                    }
                };
                out.extend_from_slice(&body[..name_end]);
                out.push(b':');
                out.extend_from_slice(password.as_bytes());
                out.extend_from_slice(rest);
                out.extend_from_slice(line.end);
            } else {
                out.extend_from_slice(line.whole);
            }
        }
        if done {
            Ok((out, ()))
        } else {
            Err(UserEditError::NotFound(format!("{}@{}", key.0, key.1)))
        }
    })
}

/// Removes every line of `name` (a later duplicate would otherwise come back into
/// force). Returns how many lines were removed.
pub fn delete_user(path: &Path, default_domain: &str, name: &str) -> Result<usize, UserEditError> {
    let key = user_key(default_domain, name)?;
    edit_file(path, |text| {
        let mut out = Vec::with_capacity(text.len());
        let mut removed = 0;
        for line in lines(&text) {
            if line_key(default_domain, line.body) == Some(key.clone()) {
                removed += 1;
            } else {
                out.extend_from_slice(line.whole);
            }
        }
        if removed == 0 {
            return Err(UserEditError::NotFound(format!("{}@{}", key.0, key.1)));
        }
        Ok((out, removed))
    })
}

/// The `(user, domain)` key of a name given to an edit, checked as the parser checks
/// names, and also free of what would break the line: `:`, or a leading `#`.
fn user_key(default_domain: &str, name: &str) -> Result<(String, String), UserEditError> {
    if name.contains(':') {
        return Err(UserEditError::BadName(format!("{name:?} contains ':'")));
    }
    if name.starts_with('#') {
        return Err(UserEditError::BadName(format!("{name:?} starts with '#'")));
    }
    Parser::new(default_domain)
        .address(name)
        .map_err(UserEditError::BadName)
}

fn check_password_field(password: &str) -> Result<(), UserEditError> {
    if password.contains([':', '\r', '\n']) {
        return Err(UserEditError::BadPasswordField);
    }
    Ok(())
}

/// One line of the file as bytes: `whole` = `body` + `end` (`\n`, `\r\n` or nothing
/// on an unterminated last line).
struct Line<'a> {
    whole: &'a [u8],
    body: &'a [u8],
    end: &'a [u8],
}

fn lines(text: &[u8]) -> impl Iterator<Item = Line<'_>> {
    text.split_inclusive(|&b| b == b'\n').map(|whole| {
        let body_len = if whole.ends_with(b"\r\n") {
            whole.len() - 2
        } else if whole.ends_with(b"\n") {
            whole.len() - 1
        } else {
            whole.len()
        };
        Line {
            whole,
            body: &whole[..body_len],
            end: &whole[body_len..],
        }
    })
}

/// The user a line defines, as the parser would see it; `None` for comments, blank,
/// broken and non-UTF-8 lines, which edits never touch.
fn line_key(default_domain: &str, body: &[u8]) -> Option<(String, String)> {
    let line = std::str::from_utf8(body).ok()?;
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return None;
    }
    let name = line.split(':').next().unwrap_or("");
    Parser::new(default_domain).address(name).ok()
}

/// Runs one edit: lock, read, change, replace. `change` gets the current bytes (empty
/// when the file does not exist yet) and returns the new bytes.
fn edit_file<T>(
    path: &Path,
    change: impl FnOnce(Vec<u8>) -> Result<(Vec<u8>, T), UserEditError>,
) -> Result<T, UserEditError> {
    // Through a symlink, replace the file it points to, not the link.
    let target = match fs::canonicalize(path) {
        Ok(real) => real,
        Err(e) if e.kind() == io::ErrorKind::NotFound => path.to_path_buf(),
        Err(e) => return Err(StoreError::io("resolve users file", path, e).into()),
    };
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(|e| StoreError::io("create users file directory", &dir, e))?;
    let _lock = FileLock::acquire(&lock_path(&target))?;

    let (old, owner) = match fs::read(&target) {
        Ok(bytes) => {
            let meta =
                fs::metadata(&target).map_err(|e| StoreError::io("stat users file", &target, e))?;
            (bytes, Some((meta.uid(), meta.gid(), meta.mode() & 0o7777)))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => (Vec::new(), None),
        Err(e) => return Err(StoreError::io("read users file", &target, e).into()),
    };
    let (new, result) = change(old)?;
    replace_file(&target, &dir, &new, owner)?;
    Ok(result)
}

fn lock_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    target.with_file_name(name)
}

/// An exclusive `flock` held until dropped. The lock is on a separate file because
/// the users file itself is replaced by every edit. The lock file is left in place:
/// removing it would let two writers lock two different inodes.
struct FileLock {
    _file: fs::File,
}

impl FileLock {
    fn acquire(path: &Path) -> Result<FileLock, StoreError> {
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| StoreError::io("open users lock file", path, e))?;
        crate::flock_exclusive(&file, true)
            .map_err(|e| StoreError::io("lock users file", path, e))?;
        Ok(FileLock { _file: file })
    }
}

/// Writes `data` to a temporary file beside `target` (the old file's owner,
/// group and mode when there is one: owner and group when we may set them,
/// e.g. as root; a new file is mode 0600 and the editor's), fsyncs it, renames it over `target` and fsyncs the
/// directory, so a crash leaves the old file or the new one.
fn replace_file(
    target: &Path,
    dir: &Path,
    data: &[u8],
    owner: Option<(u32, u32, u32)>,
) -> Result<(), StoreError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut name = std::ffi::OsString::from(".");
    name.push(target.file_name().unwrap_or_default());
    name.push(format!(
        ".tmp.{}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = dir.join(name);
    let write = || -> Result<(), StoreError> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| StoreError::io("create users temp file", &tmp, e))?;
        let mut mode = 0o600;
        if let Some((uid, gid, old_mode)) = owner {
            // Keep a file owned by e.g. root:vmail owned so when root edits it. Not
            // allowed as an ordinary user; then the file is the editor's, as is usual.
            // SAFETY: fchown on a descriptor we own; no memory is involved.
            unsafe { libc::fchown(file.as_raw_fd(), uid, gid) };
            mode = old_mode;
        }
        // After the fchown (which may clear set-id bits), and explicitly: the
        // umask may have taken bits of the old mode away at create.
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| StoreError::io("chmod users temp file", &tmp, e))?;
        file.write_all(data)
            .map_err(|e| StoreError::io("write users temp file", &tmp, e))?;
        file.sync_all()
            .map_err(|e| StoreError::io("fsync users temp file", &tmp, e))?;
        fs::rename(&tmp, target).map_err(|e| StoreError::io("rename users file", target, e))
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("fsync users file directory", dir, e))
}

/// Collects users and errors line by line, shared by `parse` and `load`.
struct Parser {
    default_domain: String,
    dir: UserDirectory,
    /// Line where each user was first defined, to name it in the duplicate error.
    first_line: HashMap<(String, String), usize>,
    errors: Vec<UserFileError>,
}

impl Parser {
    fn new(default_domain: &str) -> Self {
        Parser {
            default_domain: default_domain.to_lowercase(),
            dir: UserDirectory::default(),
            first_line: HashMap::new(),
            errors: Vec::new(),
        }
    }

    fn error(&mut self, line: usize, message: String) {
        self.errors.push(UserFileError { line, message });
    }

    fn line(&mut self, no: usize, line: &str) {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return;
        }
        // Extra fields are everything after the seventh colon, so a value there
        // (e.g. quota_rule=*:storage=1G) may itself contain colons.
        let mut fields = line.splitn(8, ':');
        let name = fields.next().unwrap_or("");
        let password = fields.next().unwrap_or("");
        let extra_text = fields.nth(5).unwrap_or("");

        let (user, domain) = match self.address(name) {
            Ok(addr) => addr,
            Err(message) => return self.error(no, message),
        };

        let mut extra = Vec::new();
        for token in extra_text.split_whitespace() {
            let (key, value) = token.split_once('=').unwrap_or((token, ""));
            if key.is_empty() {
                // Keep the user: a refused line would bounce their mail, while a
                // skipped field only loses a setting, and the admin is told.
                self.error(no, format!("extra field {token:?} has no name; ignored"));
                continue;
            }
            extra.push((key.to_string(), value.to_string()));
        }

        let key = (user.clone(), domain.clone());
        if let Some(&first) = self.first_line.get(&key) {
            return self.error(
                no,
                format!("user {user}@{domain} already defined on line {first}; ignored"),
            );
        }
        self.first_line.insert(key.clone(), no);
        let (user_key, domain_key) = key;
        self.dir
            .index
            .entry(domain_key)
            .or_default()
            .insert(user_key, self.dir.entries.len());
        self.dir.entries.push(UserEntry {
            user,
            domain,
            password: password.to_string(),
            extra,
        });
    }

    /// Splits and checks a user name: `local@domain`, or `local` in the default
    /// domain. Both parts become Maildir directory names, so they must pass the
    /// mailbox name rules too.
    fn address(&self, name: &str) -> Result<(String, String), String> {
        if name.is_empty() {
            return Err("empty user name".to_string());
        }
        let (user, domain) = match name.split_once('@') {
            Some((user, domain)) => (user.to_lowercase(), domain.to_lowercase()),
            None => (name.to_lowercase(), self.default_domain.clone()),
        };
        if user.is_empty() {
            return Err(format!("user {name:?} has an empty local part"));
        }
        if domain.is_empty() {
            return Err(format!("user {name:?} has an empty domain"));
        }
        if domain.contains('@') {
            return Err(format!("user {name:?} has more than one '@'"));
        }
        if let Some(c) = name.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("user {name:?} contains {c:?}"));
        }
        if MailboxAddr::new(domain.clone(), user.clone()).is_err() {
            return Err(format!(
                "user {name:?} is not usable as a mailbox (starts with '.' or contains '/')"
            ));
        }
        Ok((user, domain))
    }

    fn finish(self) -> (UserDirectory, Vec<UserFileError>) {
        (self.dir, self.errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# Pillarbox users
alice@Example.TEST:{PLAIN}secret:1000:1000::/home/alice:/bin/false:quota_rule=*:storage=1G nopassword

Bob:{ARGON2ID}hash
   # indented comment
carol@example.test
dave@other.test::::::
";

    #[test]
    fn users_file_with_comments_and_missing_fields_parses() {
        let (dir, errors) = UserDirectory::parse(FILE, "example.test");
        assert_eq!(errors, vec![]);
        assert_eq!(dir.len(), 4);
        assert!(!dir.is_empty());
        let names: Vec<String> = dir
            .iter()
            .map(|u| format!("{}@{}", u.user, u.domain))
            .collect();
        assert_eq!(
            names,
            [
                "alice@example.test",
                "bob@example.test",
                "carol@example.test",
                "dave@other.test"
            ]
        );
        let carol = dir.lookup("carol", "example.test").expect("carol");
        assert_eq!(carol.password, "");
        assert!(carol.extra.is_empty());
        assert_eq!(dir.lookup("dave", "other.test").expect("dave").password, "");
    }

    #[test]
    fn extra_fields_are_key_value_or_bare_keys() {
        let (dir, _) = UserDirectory::parse(FILE, "example.test");
        let alice = dir.lookup("alice", "example.test").expect("alice");
        assert_eq!(alice.password, "{PLAIN}secret");
        assert_eq!(
            alice.extra,
            vec![
                ("quota_rule".to_string(), "*:storage=1G".to_string()),
                ("nopassword".to_string(), String::new()),
            ]
        );
        assert_eq!(alice.extra_field("quota_rule"), Some("*:storage=1G"));
        assert_eq!(alice.extra_field("nopassword"), Some(""));
        assert_eq!(alice.extra_field("missing"), None);
    }

    #[test]
    fn user_without_at_belongs_to_the_default_domain() {
        let (dir, _) = UserDirectory::parse(FILE, "Example.Test");
        let bob = dir.lookup("bob", "example.test").expect("bob");
        assert_eq!(bob.domain, "example.test");
        assert_eq!(
            bob.mailbox(),
            MailboxAddr::new("example.test", "bob").expect("ok")
        );
        assert!(dir.lookup("bob", "other.test").is_none());
    }

    #[test]
    fn lowercase_borrows_only_what_is_already_lower_case() {
        assert!(matches!(lowercase("alice"), Cow::Borrowed("alice")));
        assert_eq!(lowercase("AlIcE"), "alice");
        // Beyond ASCII, as str::to_lowercase: 'Ä' and the title-case 'ǅ' too.
        assert_eq!(lowercase("ÄBC"), "äbc");
        assert_eq!(lowercase("ǅx"), "ǆx");
        assert_eq!(lowercase("jörg"), "jörg");
    }

    #[test]
    fn lookup_ignores_case() {
        let (dir, _) = UserDirectory::parse(FILE, "example.test");
        assert!(dir.lookup("ALICE", "example.TEST").is_some());
        assert!(dir.lookup("BoB", "EXAMPLE.test").is_some());
        assert!(dir.lookup("nobody", "example.test").is_none());
    }

    #[test]
    fn broken_lines_are_reported_by_number_and_skip_only_themselves() {
        let text = "\
ok1:x
:nouser
@example.test:x
ok2@:x
a@b@c:x
.hidden:x
a/b:x
sp ace:x
ok1:duplicate
ok3::::::: =oops good=1
";
        let (dir, errors) = UserDirectory::parse(text, "example.test");
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5, 6, 7, 8, 9, 10], "{errors:?}");
        assert!(errors[7].message.contains("line 1"), "{}", errors[7]);
        assert_eq!(dir.len(), 2);
        assert_eq!(
            dir.lookup("ok1", "example.test").expect("ok1").password,
            "x"
        );
        let ok3 = dir.lookup("ok3", "example.test").expect("ok3 kept");
        assert_eq!(ok3.extra, vec![("good".to_string(), "1".to_string())]);
        assert!(errors[0].to_string().starts_with("line 2: "));
    }

    #[test]
    fn missing_users_file_is_an_empty_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (users, errors) =
            UserDirectory::load(&dir.path().join("users"), "example.test").expect("load");
        assert!(users.is_empty());
        assert!(errors.is_empty());
    }

    #[test]
    fn load_reads_crlf_and_reports_non_utf8_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("users");
        fs::write(&path, b"alice:pw\r\nb\xffd:pw\r\ncarol:pw2\n").expect("write");
        let (users, errors) = UserDirectory::load(&path, "example.test").expect("load");
        assert_eq!(users.len(), 2);
        assert_eq!(
            users
                .lookup("alice", "example.test")
                .expect("alice")
                .password,
            "pw"
        );
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, 2);
    }

    #[test]
    fn unreadable_users_path_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A directory cannot be read as a file.
        assert!(UserDirectory::load(dir.path(), "example.test").is_err());
    }

    // Writing the file.

    const EDIT_FILE: &[u8] = b"\
# Pillarbox users\r
alice@example.test:{PLAIN}old:1000:1000::/home/alice:/bin/false:quota_rule=*:storage=1G\r
\r
b\xffd:pw
Bob:{PLAIN}bob
  # indented comment, odd: fields
bob@example.test:{PLAIN}duplicate
carol@other.test";

    fn edit_dir() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("users");
        fs::write(&path, EDIT_FILE).expect("write");
        (dir, path)
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("stat").permissions().mode() & 0o777
    }

    #[test]
    fn add_user_appends_one_line_and_keeps_every_other_byte() {
        let (_dir, path) = edit_dir();
        let written = add_user(&path, "example.test", "Dave", "{PLAIN}d").expect("add");
        assert_eq!(written, "dave@example.test");
        let text = fs::read(&path).expect("read");
        let mut want = EDIT_FILE.to_vec();
        want.extend_from_slice(b"\ndave@example.test:{PLAIN}d\n");
        assert_eq!(text, want);
        let (users, _) = UserDirectory::load(&path, "example.test").expect("load");
        assert_eq!(
            users.lookup("dave", "example.test").expect("dave").password,
            "{PLAIN}d"
        );
    }

    #[test]
    fn add_user_refuses_an_existing_user_in_any_spelling() {
        let (_dir, path) = edit_dir();
        for name in [
            "alice@EXAMPLE.test",
            "BOB",
            "bob@example.test",
            "carol@other.test",
        ] {
            match add_user(&path, "example.test", name, "{PLAIN}x") {
                Err(UserEditError::Exists(_)) => {}
                other => panic!("{name}: {other:?}"),
            }
        }
        assert_eq!(fs::read(&path).expect("read"), EDIT_FILE);
    }

    #[test]
    fn add_user_refuses_names_and_passwords_that_would_break_the_file() {
        let (_dir, path) = edit_dir();
        for name in ["a:b", "#x", "sp ace", "", ".hidden", "a/b", "x@"] {
            match add_user(&path, "example.test", name, "{PLAIN}x") {
                Err(UserEditError::BadName(_)) => {}
                other => panic!("{name:?}: {other:?}"),
            }
        }
        for pw in ["{PLAIN}a:b", "{PLAIN}a\nb", "x\r"] {
            assert!(matches!(
                add_user(&path, "example.test", "new", pw),
                Err(UserEditError::BadPasswordField)
            ));
        }
        assert_eq!(fs::read(&path).expect("read"), EDIT_FILE);
    }

    #[test]
    fn add_user_creates_a_missing_file_and_directory_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data").join("users");
        add_user(&path, "example.test", "alice", "{PLAIN}a").expect("add");
        assert_eq!(
            fs::read(&path).expect("read"),
            b"alice@example.test:{PLAIN}a\n"
        );
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn rewritten_file_keeps_its_mode_and_leaves_no_temp_file() {
        let (dir, path) = edit_dir();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
        add_user(&path, "example.test", "dave", "{PLAIN}d").expect("add");
        assert_eq!(mode(&path), 0o640);
        set_password(&path, "example.test", "dave", "{PLAIN}e").expect("passwd");
        assert_eq!(mode(&path), 0o640);
        delete_user(&path, "example.test", "dave").expect("del");
        assert_eq!(mode(&path), 0o640);
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["users", "users.lock"]);
    }

    #[test]
    fn set_password_changes_only_the_password_field_of_the_line_in_force() {
        let (_dir, path) = edit_dir();
        set_password(&path, "example.test", "ALICE@example.test", "{PLAIN}new").expect("alice");
        set_password(&path, "example.test", "bob", "{PLAIN}b2").expect("bob");
        set_password(&path, "example.test", "carol@other.test", "{PLAIN}c").expect("carol");
        let want: &[u8] = b"\
# Pillarbox users\r
alice@example.test:{PLAIN}new:1000:1000::/home/alice:/bin/false:quota_rule=*:storage=1G\r
\r
b\xffd:pw
Bob:{PLAIN}b2
  # indented comment, odd: fields
bob@example.test:{PLAIN}duplicate
carol@other.test:{PLAIN}c";
        assert_eq!(fs::read(&path).expect("read"), want);
    }

    #[test]
    fn set_password_of_an_unknown_user_changes_nothing() {
        let (_dir, path) = edit_dir();
        assert!(matches!(
            set_password(&path, "example.test", "nobody", "{PLAIN}x"),
            Err(UserEditError::NotFound(name)) if name == "nobody@example.test"
        ));
        assert_eq!(fs::read(&path).expect("read"), EDIT_FILE);
    }

    #[test]
    fn delete_user_removes_every_line_of_the_user_and_nothing_else() {
        let (_dir, path) = edit_dir();
        assert_eq!(delete_user(&path, "example.test", "bob").expect("del"), 2);
        let want: &[u8] = b"\
# Pillarbox users\r
alice@example.test:{PLAIN}old:1000:1000::/home/alice:/bin/false:quota_rule=*:storage=1G\r
\r
b\xffd:pw
  # indented comment, odd: fields
carol@other.test";
        assert_eq!(fs::read(&path).expect("read"), want);
        assert!(matches!(
            delete_user(&path, "example.test", "bob"),
            Err(UserEditError::NotFound(_))
        ));
    }

    #[test]
    fn edit_through_a_symlink_replaces_the_file_it_points_to() {
        let (dir, path) = edit_dir();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).expect("symlink");
        add_user(&link, "example.test", "dave", "{PLAIN}d").expect("add");
        assert!(fs::symlink_metadata(&link)
            .expect("lstat")
            .file_type()
            .is_symlink());
        let (users, _) = UserDirectory::load(&path, "example.test").expect("load");
        assert!(users.lookup("dave", "example.test").is_some());
    }

    #[test]
    fn concurrent_writers_take_turns_and_lose_no_user() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("users");
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for i in 0..5 {
                        add_user(&path, "example.test", &format!("u{t}x{i}"), "{PLAIN}p")
                            .expect("add");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let (users, errors) = UserDirectory::load(&path, "example.test").expect("load");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(users.len(), 40);
    }

    #[test]
    fn stored_password_of_an_entry_is_salted_by_its_address() {
        let (dir, _) =
            UserDirectory::parse("alice:{PLAIN}pw\nbob:{PLAIN}pw\ncarol", "example.test");
        let scram = |name: &str| {
            dir.lookup(name, "example.test")
                .expect("user")
                .stored_password()
                .expect("password")
                .scram_sha256()
                .expect("scram")
        };
        assert_ne!(scram("alice").salt, scram("bob").salt);
        let direct = StoredPassword::parse("{PLAIN}pw")
            .expect("parse")
            .with_user("alice@example.test")
            .scram_sha256();
        assert_eq!(Some(scram("alice")), direct);
        assert!(matches!(
            dir.lookup("carol", "example.test")
                .expect("carol")
                .stored_password(),
            Err(PasswordError::NoPassword)
        ));
    }

    #[test]
    fn split_account_lower_cases_and_splits_at_the_last_at() {
        let split = |name| split_account(name, "Example.TEST");
        assert_eq!(split("Alice"), ("alice".into(), "example.test".into()));
        assert_eq!(split("Bob@Other.Test"), ("bob".into(), "other.test".into()));
        assert_eq!(split("\"a@b\"@c.test"), ("\"a@b\"".into(), "c.test".into()));
        assert_eq!(split("@x.test"), (String::new(), "x.test".into()));
    }
}
