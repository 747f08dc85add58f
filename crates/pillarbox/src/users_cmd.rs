//! `pillarbox users add|passwd|del|list`: edits the users file, a Dovecot
//! passwd-file. The password comes from the terminal (echo off, asked twice) or the
//! first line of standard input with `--password-stdin`; never from the command
//! line, where `ps` and shell history would show it. `list` never prints hashes.

use std::io::{self, BufRead, Write};
use std::process::ExitCode;

use anyhow::{bail, Context};

use pillarbox_admin::{Admin, AdminError, PasswordStatus, Scheme};

use crate::password_prompt::{self, PromptError};

/// What `pillarbox users` can do.
#[derive(Debug, clap::Subcommand)]
pub enum UsersCommand {
    /// Add a user with a new password.
    Add {
        /// user@domain (a user without a domain is at the primary domain).
        user: String,
        /// Password scheme: argon2id, sha512-crypt, sha256-crypt, blf-crypt,
        /// scram-sha-256 (allows SCRAM-SHA-256), cram-md5 (allows CRAM-MD5), plain.
        #[arg(long, default_value = "argon2id", value_parser = parse_scheme)]
        scheme: Scheme,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's password.
    Passwd {
        /// user@domain (a user without a domain is at the primary domain).
        user: String,
        /// Password scheme (default: the user's current one; argon2id instead of
        /// plain or an unknown one).
        #[arg(long, value_parser = parse_scheme)]
        scheme: Option<Scheme>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete a user (every line of it). The Maildir is kept.
    Del {
        /// user@domain (a user without a domain is at the primary domain).
        user: String,
    },
    /// List users and their password schemes.
    List,
}

fn parse_scheme(s: &str) -> Result<Scheme, String> {
    s.parse::<Scheme>().map_err(|e| e.to_string())
}

/// Runs one `users` command on the users file of `admin`'s config; a user named
/// without a domain is at the primary domain.
pub fn run(cmd: UsersCommand, admin: &Admin) -> anyhow::Result<ExitCode> {
    execute(cmd, admin, &mut read_password, &mut io::stdout().lock())
}

/// `run` with the password source and the output passed in, for tests.
fn execute(
    cmd: UsersCommand,
    admin: &Admin,
    ask: &mut dyn FnMut(bool, &str) -> anyhow::Result<String>,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    match cmd {
        UsersCommand::Add {
            user,
            scheme,
            password_stdin,
        } => {
            // Refuse before asking for a password nobody will use; the add checks
            // again under the lock.
            if admin.user(&user)?.is_some() {
                return Err(AdminError::UserExists(admin.account_address(&user)).into());
            }
            let password = ask(password_stdin, &admin.account_address(&user))?;
            let added = admin.add_user(&user, scheme, &password)?;
            warn_plain(added.scheme);
            writeln!(out, "added {} ({})", added.address, added.scheme)?;
        }
        UsersCommand::Passwd {
            user,
            scheme,
            password_stdin,
        } => {
            if admin.user(&user)?.is_none() {
                return Err(AdminError::NoUser(admin.account_address(&user)).into());
            }
            let password = ask(password_stdin, &admin.account_address(&user))?;
            let set = admin.set_password(&user, scheme, &password)?;
            warn_plain(set.scheme);
            writeln!(out, "password of {} set ({})", set.address, set.scheme)?;
        }
        UsersCommand::Del { user } => {
            let deleted = admin.delete_user(&user)?;
            writeln!(out, "deleted {}", deleted.address)?;
        }
        UsersCommand::List => {
            let list = admin.list_users()?;
            for e in &list.warnings {
                eprintln!("warning: {}: {e}", admin.config().users_file().display());
            }
            for user in &list.users {
                let scheme = match &user.password {
                    PasswordStatus::Set(scheme) => scheme.to_string(),
                    PasswordStatus::None => "-".to_string(),
                    // The text names the scheme and the fault, never the data.
                    PasswordStatus::Invalid(e) => format!("invalid ({e})"),
                };
                writeln!(out, "{}\t{scheme}", user.address)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn warn_plain(scheme: Scheme) {
    if scheme == Scheme::Plain {
        eprintln!("warning: the password is stored in clear ({{PLAIN}})");
    }
}

/// The new password: the first line of standard input, or asked twice on the
/// terminal. An empty one is refused by the add or the change.
fn read_password(from_stdin: bool, user: &str) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        io::stdin()
            .lock()
            .read_line(&mut line)
            .context("read the password from standard input")?;
        return Ok(password_prompt::strip_line_end(line));
    }
    let first = prompt_hidden(&format!("New password for {user}: "))?;
    let second = prompt_hidden("Retype the new password: ")?;
    if first != second {
        bail!("the passwords do not match");
    }
    Ok(first)
}

/// One answer on the terminal, with echo off.
fn prompt_hidden(prompt: &str) -> anyhow::Result<String> {
    match password_prompt::ask_hidden(prompt) {
        Ok(answer) if answer.complete => Ok(answer.text),
        Ok(_) => bail!("no password entered"),
        Err(PromptError::NoTerminal(e)) => {
            Err(e).context("no terminal to ask for the password on; use --password-stdin")
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::Path;

    use pillarbox_server::config::Config;
    use pillarbox_store::users::UserDirectory;

    /// An [`Admin`] on the users file `path`, primary domain `example.test`.
    fn admin(path: &Path) -> Admin {
        let mut cfg = Config::embedded();
        cfg.users.file = Some(path.to_path_buf());
        cfg.data_dir = path.with_file_name("data");
        cfg.domains.local = vec!["example.test".to_string()];
        Admin::open(cfg)
    }

    fn users_file() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("users");
        (dir, path)
    }

    /// Runs a command with `password` as what the user typed; returns stdout.
    fn exec(path: &Path, cmd: UsersCommand, password: &str) -> anyhow::Result<String> {
        let mut out = Vec::new();
        let mut asked = |_stdin: bool, _user: &str| Ok(password.to_string());
        execute(cmd, &admin(path), &mut asked, &mut out)?;
        Ok(String::from_utf8(out).expect("utf-8"))
    }

    fn add(user: &str, scheme: Scheme) -> UsersCommand {
        UsersCommand::Add {
            user: user.into(),
            scheme,
            password_stdin: true,
        }
    }

    fn verify(path: &Path, user: &str, password: &str) -> bool {
        let (dir, _) = UserDirectory::load(path, "example.test").expect("load");
        dir.lookup(user, "example.test")
            .expect("user")
            .stored_password()
            .expect("password")
            .verify(password)
    }

    #[test]
    fn add_writes_a_hash_that_verifies_and_list_shows_no_hash() {
        let (_dir, path) = users_file();
        let out = exec(&path, add("Alice", Scheme::ScramSha256), "pw1").expect("add");
        assert_eq!(out, "added alice@example.test (SCRAM-SHA-256)\n");
        assert!(verify(&path, "alice", "pw1"));
        let list = exec(&path, UsersCommand::List, "").expect("list");
        assert_eq!(list, "alice@example.test\tSCRAM-SHA-256\n");
    }

    #[test]
    fn add_of_an_existing_user_fails_before_asking_for_a_password() {
        let (_dir, path) = users_file();
        exec(&path, add("alice", Scheme::Plain), "pw1").expect("add");
        let mut asked = false;
        let mut ask = |_: bool, _: &str| {
            asked = true;
            Ok("pw2".to_string())
        };
        let err = execute(
            add("ALICE@example.test", Scheme::Plain),
            &admin(&path),
            &mut ask,
            &mut Vec::new(),
        )
        .expect_err("exists");
        assert!(err.to_string().contains("already exists"), "{err}");
        assert!(!asked);
        assert!(verify(&path, "alice", "pw1"));
    }

    #[test]
    fn passwd_keeps_the_current_scheme_unless_told_and_upgrades_plain() {
        let (_dir, path) = users_file();
        exec(&path, add("alice", Scheme::Sha256Crypt), "a").expect("add");
        exec(&path, add("bob", Scheme::Plain), "b").expect("add");
        let passwd = |user: &str, scheme| UsersCommand::Passwd {
            user: user.into(),
            scheme,
            password_stdin: true,
        };
        exec(&path, passwd("alice", None), "a2").expect("passwd");
        exec(&path, passwd("bob", None), "b2").expect("passwd");
        assert!(verify(&path, "alice", "a2") && !verify(&path, "alice", "a"));
        assert!(verify(&path, "bob", "b2"));
        let list = exec(&path, UsersCommand::List, "").expect("list");
        assert_eq!(
            list,
            "alice@example.test\tSHA256-CRYPT\nbob@example.test\tARGON2ID\n"
        );
        exec(&path, passwd("alice", Some(Scheme::CramMd5)), "a3").expect("passwd");
        assert!(exec(&path, UsersCommand::List, "")
            .expect("list")
            .starts_with("alice@example.test\tCRAM-MD5\n"));
        let err = exec(&path, passwd("carol", None), "c").expect_err("no carol");
        assert!(
            err.to_string().contains("no user carol@example.test"),
            "{err}"
        );
    }

    #[test]
    fn del_removes_the_user_and_fails_for_an_unknown_one() {
        let (_dir, path) = users_file();
        exec(&path, add("alice", Scheme::Plain), "a").expect("add");
        exec(&path, add("bob@other.test", Scheme::Plain), "b").expect("add");
        let del = |user: &str| UsersCommand::Del { user: user.into() };
        assert_eq!(
            exec(&path, del("alice"), "").expect("del"),
            "deleted alice@example.test\n"
        );
        assert_eq!(
            exec(&path, UsersCommand::List, "").expect("list"),
            "bob@other.test\tPLAIN\n"
        );
        assert!(exec(&path, del("alice"), "").is_err());
    }

    #[test]
    fn list_marks_users_without_or_with_unusable_passwords() {
        let (_dir, path) = users_file();
        fs::write(&path, "a:\nb:{MD5-CRYPT}$1$x$y\nc:{ARGON2ID}junk\n").expect("write");
        let list = exec(&path, UsersCommand::List, "").expect("list");
        let lines: Vec<&str> = list.lines().collect();
        assert_eq!(lines[0], "a@example.test\t-");
        assert!(lines[1].starts_with("b@example.test\tinvalid (unknown password scheme"));
        assert!(lines[2].starts_with("c@example.test\tinvalid (malformed ARGON2ID"));
        assert!(!list.contains("junk"), "{list}");
    }
}
