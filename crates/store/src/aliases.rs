//! The aliases file, in Postfix's virtual table format: one alias per line,
//! `source  target[, target ...]`, `#` comments and blank lines ignored.
//!
//! A source is `user@domain` (an address) or `@domain` (every address of the
//! domain that is no user and no other alias). A target is `user@domain`, a
//! bare `user` (at the primary domain), or `@domain` after a domain source (the
//! same local part at that domain). Sources and targets are compared without
//! regard to case. Parsing never fails as a whole: a broken line is reported
//! with its number and skipped, so one typo does not take every alias down.

use std::collections::HashMap;
use std::io;
use std::path::Path;

/// A line of the aliases file that was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasLineError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

/// The aliases, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AliasTable {
    /// `user@domain` (lower case) to its targets.
    addresses: HashMap<String, Vec<String>>,
    /// `domain` (lower case) of an `@domain` source to its targets.
    domains: HashMap<String, Vec<String>>,
}

impl AliasTable {
    /// Parses the file's text.
    pub fn parse(text: &str) -> (AliasTable, Vec<AliasLineError>) {
        let mut table = AliasTable::default();
        let mut errors = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let err = |message: &str| AliasLineError {
                line: i + 1,
                message: message.to_string(),
            };
            let (source, rest) = match line.split_once(char::is_whitespace) {
                Some((s, r)) => (s, r),
                None => {
                    errors.push(err("a source without a target"));
                    continue;
                }
            };
            let targets: Vec<String> = rest
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|t| !t.is_empty())
                .map(str::to_lowercase)
                .collect();
            if targets.is_empty() {
                errors.push(err("a source without a target"));
                continue;
            }
            if let Some(bad) = targets.iter().find(|t| !plausible(t)) {
                errors.push(err(&format!("target {bad:?} is not an address")));
                continue;
            }
            let source = source.to_lowercase();
            let (slot, key) = match source.strip_prefix('@') {
                Some(domain) if !domain.is_empty() && !domain.contains('@') => {
                    (&mut table.domains, domain.to_string())
                }
                _ if source.matches('@').count() == 1
                    && !source.starts_with('@')
                    && !source.ends_with('@') =>
                {
                    (&mut table.addresses, source)
                }
                _ => {
                    errors.push(err(&format!(
                        "source {source:?} is neither user@domain nor @domain"
                    )));
                    continue;
                }
            };
            if slot.contains_key(&key) {
                errors.push(err(&format!(
                    "{key:?} is listed twice; the first line counts"
                )));
                continue;
            }
            slot.insert(key, targets);
        }
        (table, errors)
    }

    /// Reads and parses `path`; a missing file is an empty table.
    pub fn load(path: &Path) -> io::Result<(AliasTable, Vec<AliasLineError>)> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Self::parse(&text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Default::default()),
            Err(e) => Err(e),
        }
    }

    /// The targets of the address `user@domain` (lower case), if it is an alias.
    pub fn address(&self, address: &str) -> Option<&[String]> {
        self.addresses.get(address).map(Vec::as_slice)
    }

    /// The targets of the domain's catch-all (`@domain`), if there is one.
    pub fn domain(&self, domain: &str) -> Option<&[String]> {
        self.domains.get(domain).map(Vec::as_slice)
    }

    /// How many aliases (address and domain sources).
    pub fn len(&self) -> usize {
        self.addresses.len() + self.domains.len()
    }

    /// No aliases at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `user@domain`, `user`, or `@domain`: no spaces, at most one `@`, no
/// empty side around it except the `@domain` form.
fn plausible(t: &str) -> bool {
    match t.split_once('@') {
        None => !t.is_empty(),
        Some((_, domain)) => !domain.is_empty() && !domain.contains('@'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_domains_comments_and_lists_parse() {
        let (t, errors) = AliasTable::parse(
            "# team aliases\n\
             Sales@Example.test   alice@example.test, bob@example.test\n\
             info@example.test bob   # a bare user\n\
             \n\
             @old.test @example.test\n\
             abuse@example.test\tpostmaster@example.test\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(t.len(), 4);
        assert_eq!(
            t.address("sales@example.test").unwrap(),
            ["alice@example.test", "bob@example.test"]
        );
        assert_eq!(t.address("info@example.test").unwrap(), ["bob"]);
        assert_eq!(t.domain("old.test").unwrap(), ["@example.test"]);
        assert_eq!(t.address("nobody@example.test"), None);
    }

    #[test]
    fn a_broken_line_is_reported_with_its_number_and_the_others_stay() {
        let (t, errors) = AliasTable::parse(
            "lonely@example.test\n\
             a@b@c x@example.test\n\
             good@example.test bob@example.test\n\
             good@example.test carol@example.test\n\
             bad@example.test x@\n",
        );
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [1, 2, 4, 5], "{errors:?}");
        assert_eq!(t.len(), 1);
        assert_eq!(
            t.address("good@example.test").unwrap(),
            ["bob@example.test"]
        );
    }

    #[test]
    fn a_missing_file_is_an_empty_table() {
        let dir = tempfile::tempdir().unwrap();
        let (t, errors) = AliasTable::load(&dir.path().join("aliases")).unwrap();
        assert!(t.is_empty() && errors.is_empty());
    }
}
