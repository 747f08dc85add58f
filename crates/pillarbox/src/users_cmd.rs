//! `pillarbox users add|passwd|del|list`: edits the users file, a Dovecot
//! passwd-file. The password comes from the terminal (echo off, asked twice) or the
//! first line of standard input with `--password-stdin`; never from the command
//! line, where `ps` and shell history would show it. `list` never prints hashes.

use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};

use pillarbox_store::password::{self, PasswordError, Scheme, StoredPassword};
use pillarbox_store::users::{self, UserDirectory};

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

/// Runs one `users` command on `users_file`; a user named without a domain is at
/// `default_domain`.
pub fn run(cmd: UsersCommand, users_file: &Path, default_domain: &str) -> anyhow::Result<ExitCode> {
    execute(
        cmd,
        users_file,
        default_domain,
        &mut read_password,
        &mut io::stdout().lock(),
    )
}

/// `run` with the password source and the output passed in, for tests.
fn execute(
    cmd: UsersCommand,
    users_file: &Path,
    default_domain: &str,
    ask: &mut dyn FnMut(bool, &str) -> anyhow::Result<String>,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let name_of = |user: &str| -> String {
        match user.rsplit_once('@') {
            Some(_) => user.to_lowercase(),
            None => format!("{}@{}", user, default_domain).to_lowercase(),
        }
    };
    match cmd {
        UsersCommand::Add {
            user,
            scheme,
            password_stdin,
        } => {
            // Refuse before asking for a password nobody will use; add_user checks
            // again under the lock.
            if find(users_file, default_domain, &user)?.is_some() {
                bail!("user {} already exists", name_of(&user));
            }
            let password = ask(password_stdin, &name_of(&user))?;
            let field = password::hash(scheme, &password)?;
            let address = users::add_user(users_file, default_domain, &user, &field)?;
            warn_plain(scheme);
            writeln!(out, "added {address} ({scheme})")?;
        }
        UsersCommand::Passwd {
            user,
            scheme,
            password_stdin,
        } => {
            let Some(current) = find(users_file, default_domain, &user)? else {
                bail!("no user {}", name_of(&user));
            };
            let scheme = scheme.unwrap_or(match current {
                Ok(Scheme::Plain) | Err(_) => Scheme::default(),
                Ok(scheme) => scheme,
            });
            let password = ask(password_stdin, &name_of(&user))?;
            let field = password::hash(scheme, &password)?;
            users::set_password(users_file, default_domain, &user, &field)?;
            warn_plain(scheme);
            writeln!(out, "password of {} set ({scheme})", name_of(&user))?;
        }
        UsersCommand::Del { user } => {
            users::delete_user(users_file, default_domain, &user)?;
            writeln!(out, "deleted {}", name_of(&user))?;
        }
        UsersCommand::List => {
            let (dir, errors) = UserDirectory::load(users_file, default_domain)?;
            for e in &errors {
                eprintln!("warning: {}: {e}", users_file.display());
            }
            for entry in &dir {
                let scheme = match StoredPassword::parse(&entry.password) {
                    Ok(p) => p.scheme().to_string(),
                    Err(PasswordError::NoPassword) => "-".to_string(),
                    // The error names the scheme and the fault, never the data.
                    Err(e) => format!("invalid ({e})"),
                };
                writeln!(out, "{}@{}\t{scheme}", entry.user, entry.domain)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The user's current scheme (or why it has none), `None` when there is no such user.
fn find(
    users_file: &Path,
    default_domain: &str,
    user: &str,
) -> anyhow::Result<Option<Result<Scheme, PasswordError>>> {
    let (dir, _) = UserDirectory::load(users_file, default_domain)?;
    let (local, domain) = user.rsplit_once('@').unwrap_or((user, default_domain));
    Ok(dir
        .lookup(local, domain)
        .map(|e| StoredPassword::parse(&e.password).map(|p| p.scheme())))
}

fn warn_plain(scheme: Scheme) {
    if scheme == Scheme::Plain {
        eprintln!("warning: the password is stored in clear ({{PLAIN}})");
    }
}

/// The new password: the first line of standard input, or asked twice on the
/// terminal.
fn read_password(from_stdin: bool, user: &str) -> anyhow::Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        io::stdin()
            .lock()
            .read_line(&mut line)
            .context("read the password from standard input")?;
        strip_line_end(line)
    } else {
        let first = prompt_hidden(&format!("New password for {user}: "))?;
        let second = prompt_hidden("Retype the new password: ")?;
        if first != second {
            bail!("the passwords do not match");
        }
        first
    };
    if password.is_empty() {
        bail!("empty password");
    }
    Ok(password)
}

fn strip_line_end(mut line: String) -> String {
    if line.ends_with('\n') {
        line.pop();
        if line.ends_with('\r') {
            line.pop();
        }
    }
    line
}

/// Asks on /dev/tty with echo off, so the password is neither shown nor read from
/// a redirected standard input by mistake.
fn prompt_hidden(prompt: &str) -> anyhow::Result<String> {
    let mut tty = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .context("no terminal to ask for the password on; use --password-stdin")?;
    let echo = EchoOff::new(&tty)?;
    tty.write_all(prompt.as_bytes())?;
    tty.flush()?;
    let mut line = String::new();
    BufReader::new(&tty)
        .read_line(&mut line)
        .context("read the password from the terminal")?;
    drop(echo);
    if !line.ends_with('\n') {
        // End of input (Ctrl-D): no newline was echoed.
        tty.write_all(b"\n")?;
        bail!("no password entered");
    }
    Ok(strip_line_end(line))
}

/// Terminal echo switched off (the newline still echoed) until dropped.
struct EchoOff {
    fd: i32,
    saved: libc::termios,
}

impl EchoOff {
    fn new(tty: &fs::File) -> anyhow::Result<EchoOff> {
        let fd = tty.as_raw_fd();
        // SAFETY: termios is plain data; tcgetattr fills it on success.
        let mut term: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: fd is open for the lifetime of `tty`, term is a valid pointer.
        if unsafe { libc::tcgetattr(fd, &mut term) } != 0 {
            return Err(io::Error::last_os_error()).context("read terminal settings");
        }
        let saved = term;
        term.c_lflag &= !libc::ECHO;
        term.c_lflag |= libc::ECHONL;
        // SAFETY: as above.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &term) } != 0 {
            return Err(io::Error::last_os_error()).context("switch terminal echo off");
        }
        Ok(EchoOff { fd, saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `new` on the same descriptor, which
        // outlives this guard.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users_file() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("users");
        (dir, path)
    }

    /// Runs a command with `password` as what the user typed; returns stdout.
    fn exec(path: &Path, cmd: UsersCommand, password: &str) -> anyhow::Result<String> {
        let mut out = Vec::new();
        let mut asked = |_stdin: bool, _user: &str| Ok(password.to_string());
        execute(cmd, path, "example.test", &mut asked, &mut out)?;
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
            &path,
            "example.test",
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

    #[test]
    fn password_line_end_is_not_part_of_the_password() {
        assert_eq!(strip_line_end("pw\n".into()), "pw");
        assert_eq!(strip_line_end("pw\r\n".into()), "pw");
        assert_eq!(strip_line_end("pw".into()), "pw");
        assert_eq!(strip_line_end("p w \n".into()), "p w ");
    }
}
