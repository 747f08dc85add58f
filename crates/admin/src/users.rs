//! The users file (Dovecot passwd-file): add a user, set a password, delete a user,
//! list users with their password schemes. Hashes never leave this module.

use serde::Serialize;

use pillarbox_store::password::{self, PasswordError, Scheme, StoredPassword};
use pillarbox_store::users::{self, UserDirectory, UserEntry, UserFileError};

use crate::{serialize_display, Admin, AdminError};

/// Whether a user can log in, and with what kind of hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "detail", rename_all = "snake_case")]
pub enum PasswordStatus {
    /// A usable password in this scheme.
    #[serde(serialize_with = "serialize_display")]
    Set(Scheme),
    /// No password: a mailbox only, which cannot log in.
    None,
    /// A password field the server cannot use; the text names the scheme and the
    /// fault, never the data.
    Invalid(String),
}

impl PasswordStatus {
    fn of(entry: &UserEntry) -> Self {
        match StoredPassword::parse(&entry.password) {
            Ok(p) => PasswordStatus::Set(p.scheme()),
            Err(PasswordError::NoPassword) => PasswordStatus::None,
            Err(e) => PasswordStatus::Invalid(e.to_string()),
        }
    }
}

/// One user of the users file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserSummary {
    /// `user@domain`, lower-cased.
    pub address: String,
    /// The password's scheme, or why there is none.
    pub password: PasswordStatus,
}

/// The users file's users, in file order.
#[derive(Debug, Clone, Serialize)]
pub struct UserList {
    /// The users in force.
    pub users: Vec<UserSummary>,
    /// Lines that were skipped, with their numbers and faults.
    #[serde(serialize_with = "serialize_warnings")]
    pub warnings: Vec<UserFileError>,
}

fn serialize_warnings<S: serde::Serializer>(
    warnings: &[UserFileError],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(warnings.iter().map(ToString::to_string))
}

/// A user added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserAdded {
    /// `user@domain` as written to the file.
    pub address: String,
    /// The scheme of the stored hash.
    #[serde(serialize_with = "serialize_display")]
    pub scheme: Scheme,
}

/// A password replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PasswordSet {
    /// `user@domain`.
    pub address: String,
    /// The scheme of the new hash.
    #[serde(serialize_with = "serialize_display")]
    pub scheme: Scheme,
}

/// A user deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserDeleted {
    /// `user@domain`.
    pub address: String,
    /// How many lines named the user (a duplicate line is removed too).
    pub lines: usize,
}

impl Admin {
    /// The user `name` (`user@domain`, or `user` at the primary domain), `None`
    /// when the users file has no such user. Asks before a password is typed for
    /// nothing.
    pub fn user(&self, name: &str) -> Result<Option<UserSummary>, AdminError> {
        let (dir, _) = self.load_users()?;
        let (local, domain) = users::split_account(name, self.primary_domain());
        Ok(dir.lookup(&local, &domain).map(summary))
    }

    /// Every user of the users file, and the lines that were skipped. A missing
    /// file has no users.
    pub fn list_users(&self) -> Result<UserList, AdminError> {
        let (dir, warnings) = self.load_users()?;
        Ok(UserList {
            users: dir.iter().map(summary).collect(),
            warnings,
        })
    }

    /// Adds `name` with `password` hashed in `scheme`, as a new last line. Refuses
    /// a user the file already has and an empty password.
    pub fn add_user(
        &self,
        name: &str,
        scheme: Scheme,
        password: &str,
    ) -> Result<UserAdded, AdminError> {
        if password.is_empty() {
            return Err(AdminError::EmptyPassword);
        }
        let field = password::hash(scheme, password)?;
        let address = users::add_user(&self.cfg.users_file(), self.primary_domain(), name, &field)?;
        Ok(UserAdded { address, scheme })
    }

    /// Replaces the password of `name`. Without a `scheme`, the user's current one
    /// is kept, except `{PLAIN}`, none or an unusable one, which become the default
    /// ([`Scheme::Argon2id`]).
    pub fn set_password(
        &self,
        name: &str,
        scheme: Option<Scheme>,
        password: &str,
    ) -> Result<PasswordSet, AdminError> {
        let address = self.account_address(name);
        let Some(current) = self.user(name)? else {
            return Err(AdminError::NoUser(address));
        };
        let scheme = scheme.unwrap_or(match current.password {
            PasswordStatus::Set(Scheme::Plain)
            | PasswordStatus::None
            | PasswordStatus::Invalid(_) => Scheme::default(),
            PasswordStatus::Set(scheme) => scheme,
        });
        if password.is_empty() {
            return Err(AdminError::EmptyPassword);
        }
        let field = password::hash(scheme, password)?;
        users::set_password(&self.cfg.users_file(), self.primary_domain(), name, &field)?;
        Ok(PasswordSet { address, scheme })
    }

    /// Deletes every line of `name`. Its Maildir is kept.
    pub fn delete_user(&self, name: &str) -> Result<UserDeleted, AdminError> {
        let lines = users::delete_user(&self.cfg.users_file(), self.primary_domain(), name)?;
        Ok(UserDeleted {
            address: self.account_address(name),
            lines,
        })
    }

    fn load_users(&self) -> Result<(UserDirectory, Vec<UserFileError>), AdminError> {
        Ok(UserDirectory::load(
            &self.cfg.users_file(),
            self.primary_domain(),
        )?)
    }
}

fn summary(entry: &UserEntry) -> UserSummary {
    UserSummary {
        address: format!("{}@{}", entry.user, entry.domain),
        password: PasswordStatus::of(entry),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_env::Env;

    fn verify(env: &Env, user: &str, password: &str) -> bool {
        let (dir, _) = UserDirectory::load(&env.cfg.users_file(), "example.test").expect("load");
        dir.lookup(user, "example.test")
            .expect("user")
            .stored_password()
            .expect("password")
            .verify(password)
    }

    #[test]
    fn add_list_del_round_trip() {
        let env = Env::new();
        let (admin, _) = env.admin_at(0);
        assert!(admin.list_users().expect("list").users.is_empty());
        let added = admin
            .add_user("Alice", Scheme::ScramSha256, "pw1")
            .expect("add");
        assert_eq!(added.address, "alice@example.test");
        admin
            .add_user("bob@Other.Test", Scheme::Plain, "pw2")
            .expect("add");
        assert!(verify(&env, "alice", "pw1"));

        let list = admin.list_users().expect("list");
        assert!(list.warnings.is_empty());
        assert_eq!(
            list.users,
            vec![
                UserSummary {
                    address: "alice@example.test".into(),
                    password: PasswordStatus::Set(Scheme::ScramSha256),
                },
                UserSummary {
                    address: "bob@other.test".into(),
                    password: PasswordStatus::Set(Scheme::Plain),
                },
            ]
        );

        let deleted = admin.delete_user("ALICE@example.test").expect("del");
        assert_eq!(deleted.address, "alice@example.test");
        assert_eq!(deleted.lines, 1);
        assert_eq!(admin.list_users().expect("list").users.len(), 1);
        assert!(admin.user("alice").expect("lookup").is_none());
        match admin.delete_user("alice") {
            Err(AdminError::NoUser(user)) => assert_eq!(user, "alice@example.test"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn add_refuses_an_existing_user_and_an_empty_password() {
        let env = Env::new();
        let (admin, _) = env.admin_at(0);
        admin.add_user("alice", Scheme::Plain, "a").expect("add");
        let err = admin
            .add_user("Alice@example.test", Scheme::Plain, "b")
            .expect_err("exists");
        assert_eq!(err.to_string(), "user alice@example.test already exists");
        assert!(matches!(
            admin.add_user("bob", Scheme::Plain, ""),
            Err(AdminError::EmptyPassword)
        ));
        assert!(matches!(
            admin.add_user("a:b", Scheme::Plain, "x"),
            Err(AdminError::BadUserName(_))
        ));
    }

    #[test]
    fn set_password_keeps_the_scheme_and_upgrades_plain() {
        let env = Env::new();
        let (admin, _) = env.admin_at(0);
        admin
            .add_user("alice", Scheme::Sha256Crypt, "a")
            .expect("add");
        admin.add_user("bob", Scheme::Plain, "b").expect("add");
        let set = admin.set_password("alice", None, "a2").expect("passwd");
        assert_eq!(set.scheme, Scheme::Sha256Crypt);
        let set = admin.set_password("bob", None, "b2").expect("passwd");
        assert_eq!(set.scheme, Scheme::Argon2id);
        assert!(verify(&env, "alice", "a2") && verify(&env, "bob", "b2"));
        let set = admin
            .set_password("alice", Some(Scheme::CramMd5), "a3")
            .expect("passwd");
        assert_eq!(set.scheme, Scheme::CramMd5);
        let err = admin
            .set_password("carol", None, "c")
            .expect_err("no carol");
        assert_eq!(err.to_string(), "no user carol@example.test");
    }

    #[test]
    fn list_reports_unusable_passwords_and_broken_lines() {
        let env = Env::new();
        std::fs::write(
            env.cfg.users_file(),
            "a:\nb:{MD5-CRYPT}$1$x$y\nc:{ARGON2ID}junk\n:nobody\n",
        )
        .expect("write");
        let (admin, _) = env.admin_at(0);
        let list = admin.list_users().expect("list");
        assert_eq!(list.users[0].password, PasswordStatus::None);
        assert!(
            matches!(&list.users[1].password, PasswordStatus::Invalid(e) if e.starts_with("unknown password scheme"))
        );
        assert!(
            matches!(&list.users[2].password, PasswordStatus::Invalid(e) if !e.contains("junk"))
        );
        assert_eq!(list.warnings.len(), 1, "{:?}", list.warnings);
    }
}
