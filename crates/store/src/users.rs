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

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::Path;

use crate::error::StoreError;
use crate::maildir::MailboxAddr;

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
    /// `(user, domain)`, lower-cased, to the index in `entries`.
    index: HashMap<(String, String), usize>,
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
        let key = (user.to_lowercase(), domain.to_lowercase());
        self.index.get(&key).and_then(|&i| self.entries.get(i))
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

impl<'a> IntoIterator for &'a UserDirectory {
    type Item = &'a UserEntry;
    type IntoIter = std::slice::Iter<'a, UserEntry>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
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
        self.dir.index.insert(key, self.dir.entries.len());
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
}
