//! Least privilege for `serve`: bind and open as root, then run as `user`.
//!
//! Ports 25, 465 and 587 need root (or `CAP_NET_BIND_SERVICE`) to bind; nothing
//! after that does. `serve` decides first what to do ([`plan`]: the accounts
//! are looked up before anything is opened, so a typo in `user` costs nothing),
//! binds its listeners and opens its files as root (`Server::bind`), hands the
//! data directory tree it writes to the account ([`own_data_dir`]), and then
//! drops to it for good ([`drop_to`]): `setgroups`, `setgid`, `setuid`, in that
//! order, each checked, and the result verified on every thread.

use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

use crate::config::Config;

/// A failure to look up, prepare or become the configured account. Each names
/// the config file and the key (`user` or `group`) or the path involved.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// `user` names no account.
    #[error("config {file}: key `user`: no account named {name:?} (add it, e.g. `useradd --system --no-create-home {name}`, or fix the key)")]
    UnknownUser { file: String, name: String },
    /// `group` names no group.
    #[error("config {file}: key `group`: no group named {name:?}")]
    UnknownGroup { file: String, name: String },
    /// The account database could not be asked.
    #[error("config {file}: key `{key}`: cannot look up {name:?}: {source}")]
    Lookup {
        file: String,
        key: &'static str,
        name: String,
        source: io::Error,
    },
    /// `user` is another account and we are not root, so we cannot become it.
    #[error("config {file}: key `user`: cannot run as {name:?} (uid {uid}): started as uid {euid}, not root; start as root (it binds, then drops to {name:?}) or remove the key")]
    NotRoot {
        file: String,
        name: String,
        uid: u32,
        euid: u32,
    },
    /// A file or directory of the data directory could not be created or handed over.
    #[error("config {file}: key `user`: cannot give {path} to {name:?}: {source}")]
    Chown {
        file: String,
        name: String,
        path: PathBuf,
        source: io::Error,
    },
    /// A step of the drop failed, or its result is not what was asked.
    #[error("config {file}: key `user`: cannot drop privileges to {name:?}: {step}: {source}")]
    Drop {
        file: String,
        name: String,
        step: &'static str,
        source: io::Error,
    },
    /// After the drop, a file the server reads again while it runs is not
    /// readable by the account.
    #[error("config {file}: key `user`: {message}")]
    Unreadable { file: String, message: String },
}

/// The account `serve` becomes, as looked up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// The `user` key as written.
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// The group to run as: `group`, else the user's primary group.
    pub gid: u32,
    /// The group's name, for messages (the number when it has none).
    pub group_name: String,
    /// The supplementary groups to hold: the user's groups (from the group
    /// database) when `group` is unset, only `gid` when it is set.
    pub groups: Vec<u32>,
}

/// What `serve` does about privileges, decided before it opens anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Run as we are; `warning` says why that deserves a log line.
    Stay { warning: Option<&'static str> },
    /// Drop to this account once bound.
    Drop(Account),
}

/// Decides from `cfg` (read from `file`) and the effective uid: no `user` keeps
/// the process as it is (a warning when it is root); `user` naming root keeps
/// root with a warning; `user` naming the account we already run as keeps it;
/// any other account is dropped to when we are root, and refused otherwise.
pub fn plan(cfg: &Config, file: &str) -> Result<Plan, PrivilegeError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let Some(name) = &cfg.user else {
        return Ok(Plan::Stay {
            warning: (euid == 0).then_some(
                "running as root: set `user` (e.g. user = \"vmail\") so the server drops privileges once its ports are bound",
            ),
        });
    };
    let account = lookup(name, cfg.group.as_deref(), file)?;
    if account.uid == 0 {
        return Ok(Plan::Stay {
            warning: Some("`user` is root: the server keeps running as root after binding"),
        });
    }
    if euid != 0 {
        // SAFETY: getegid has no preconditions and cannot fail.
        let egid = unsafe { libc::getegid() };
        if euid == account.uid && egid == account.gid {
            return Ok(Plan::Stay { warning: None });
        }
        return Err(PrivilegeError::NotRoot {
            file: file.to_string(),
            name: name.clone(),
            uid: account.uid,
            euid,
        });
    }
    Ok(Plan::Drop(account))
}

/// Looks up `user` (and `group`, when given) in the account databases, with
/// the reentrant calls (`getpwnam_r`, `getgrnam_r`, `getgrouplist`).
pub fn lookup(user: &str, group: Option<&str>, file: &str) -> Result<Account, PrivilegeError> {
    let lookup_err = |key, name: &str, source| PrivilegeError::Lookup {
        file: file.to_string(),
        key,
        name: name.to_string(),
        source,
    };
    let (uid, primary) = passwd_entry(user)
        .map_err(|e| lookup_err("user", user, e))?
        .ok_or_else(|| PrivilegeError::UnknownUser {
            file: file.to_string(),
            name: user.to_string(),
        })?;
    let (gid, group_name, groups) = match group {
        Some(g) => {
            let gid = group_entry(g)
                .map_err(|e| lookup_err("group", g, e))?
                .ok_or_else(|| PrivilegeError::UnknownGroup {
                    file: file.to_string(),
                    name: g.to_string(),
                })?;
            (gid, g.to_string(), vec![gid])
        }
        None => {
            let groups = group_list(user, primary).map_err(|e| lookup_err("user", user, e))?;
            (primary, primary.to_string(), groups)
        }
    };
    Ok(Account {
        name: user.to_string(),
        uid,
        gid,
        group_name,
        groups,
    })
}

/// A name as a C string; a NUL in it is no account's name.
fn c_name(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))
}

/// The largest buffer the lookups grow to before giving up.
const MAX_BUFFER: usize = 1 << 20;

/// Runs a reentrant `get*_r` lookup with a buffer that grows while the C
/// library says it is too small: `call` gets the buffer, makes the call and
/// returns its code with what it found (`None`: no such entry).
fn lookup_r<T>(
    mut call: impl FnMut(&mut [u8]) -> (libc::c_int, Option<T>),
) -> io::Result<Option<T>> {
    let mut buf = vec![0u8; 1024];
    loop {
        match call(&mut buf) {
            (0, found) => return Ok(found),
            (libc::ERANGE, _) if buf.len() < MAX_BUFFER => {
                let bigger = buf.len() * 2;
                buf.resize(bigger, 0);
            }
            // Some C libraries say "not found" with one of these.
            (libc::ENOENT | libc::ESRCH, _) => return Ok(None),
            (e, _) => return Err(io::Error::from_raw_os_error(e)),
        }
    }
}

/// `(uid, primary gid)` of `name`, or `None` when there is no such account.
fn passwd_entry(name: &str) -> io::Result<Option<(u32, u32)>> {
    let cname = c_name(name)?;
    lookup_r(|buf| {
        // SAFETY: passwd is plain data (integers and pointers); all zeroes is a
        // valid value, and getpwnam_r fills it before we read it.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call: the NUL-terminated name,
        // the entry, the buffer with its true length, and the result slot.
        // The strings the entry points to live in `buf`, which we do not read.
        let rc = unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                &mut entry,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        (
            rc,
            (!result.is_null()).then_some((entry.pw_uid, entry.pw_gid)),
        )
    })
}

/// The gid of group `name`, or `None` when there is no such group.
fn group_entry(name: &str) -> io::Result<Option<u32>> {
    let cname = c_name(name)?;
    lookup_r(|buf| {
        // SAFETY: group is plain data; all zeroes is valid and getgrnam_r fills it.
        let mut entry: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: as for getpwnam_r above: valid name, entry, buffer of its
        // true length, result slot.
        let rc = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut entry,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        (rc, (!result.is_null()).then_some(entry.gr_gid))
    })
}

/// The groups `user` belongs to, `primary` among them (what `initgroups`
/// would set).
fn group_list(user: &str, primary: u32) -> io::Result<Vec<u32>> {
    let cname = c_name(user)?;
    let mut groups: Vec<libc::gid_t> = vec![0; 32];
    loop {
        let mut n = groups.len() as libc::c_int;
        // SAFETY: the name is NUL-terminated; `groups` holds `n` gids and
        // getgrouplist writes at most `n` of them, setting `n` to the count
        // (or to the count needed when it returns -1).
        let rc =
            unsafe { libc::getgrouplist(cname.as_ptr(), primary, groups.as_mut_ptr(), &mut n) };
        let n = usize::try_from(n).unwrap_or(0);
        if rc >= 0 {
            groups.truncate(n.min(groups.len()));
            return Ok(groups);
        }
        if n <= groups.len() || n > 65536 {
            return Err(io::Error::other("getgrouplist failed"));
        }
        groups.resize(n, 0);
    }
}

/// Hands the data directory tree the server writes to `account`, before the
/// drop: `data_dir`, `mail/`, the queue (`queue/` with its journal and every
/// message body in it), `pillarbox.lock`, `state.sqlite` with
/// its `-wal`, `-shm` and `-journal`, and `tls/` with the generated
/// certificate and key (only when `[tls]` is unset: configured files are the
/// administrator's). What is missing and is a directory is created first
/// (`Server::bind` has created the rest). When `mail/` was not the account's
/// yet (the first start with `user`, or a new `user`), the Maildirs under it
/// are handed over too, so mail delivered while running as root stays
/// deliverable. Symbolic links are never followed nor changed (`lchown`); the
/// users and aliases files are not touched (they stay the administrator's).
pub fn own_data_dir(account: &Account, cfg: &Config, file: &str) -> Result<(), PrivilegeError> {
    let err = |path: &Path, source| PrivilegeError::Chown {
        file: file.to_string(),
        name: account.name.clone(),
        path: path.to_path_buf(),
        source,
    };
    let modes = cfg.storage.modes();
    let data = &cfg.data_dir;
    let queue = data.join("queue");
    let mut dirs = vec![
        data.clone(),
        data.join("mail"),
        queue.clone(),
        data.join(pillarbox_store::maildir::SPOOL_DIR),
        data.join(pillarbox_store::maildir::KEPT_DIR),
    ];
    let generated_tls = cfg.tls.is_none();
    if generated_tls {
        dirs.push(data.join("tls"));
    }
    for dir in &dirs {
        if let Err(e) = std::fs::DirBuilder::new().mode(modes.dir).create(dir) {
            if e.kind() != io::ErrorKind::AlreadyExists {
                return Err(err(dir, e));
            }
        }
    }
    let mail = data.join("mail");
    let mail_was_ours = std::fs::symlink_metadata(&mail)
        .map(|m| m.uid() == account.uid)
        .unwrap_or(false);
    let mut paths: Vec<PathBuf> = dirs;
    let state = cfg.state_path();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = state.clone().into_os_string();
        p.push(suffix);
        paths.push(p.into());
    }
    paths.push(data.join(pillarbox_store::maildir::LOCK_FILE));
    if generated_tls {
        paths.push(data.join("tls").join("cert.pem"));
        paths.push(data.join("tls").join("key.pem"));
    }
    for path in &paths {
        give(path, account).map_err(|e| err(path, e))?;
    }
    if !mail_was_ours {
        give_tree(&mail, account, &err)?;
    }
    // The journal (rewritten beside itself) and the bodies of what is queued,
    // whoever ran before: the queue is small next to the Maildirs.
    give_tree(&queue, account, &err)?;
    Ok(())
}

/// Gives `path` to the account unless it is missing or a symbolic link (which
/// is left alone and not followed).
fn give(path: &Path, account: &Account) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Ok(()),
        Ok(m) if m.uid() == account.uid && m.gid() == account.gid => Ok(()),
        Ok(_) => std::os::unix::fs::lchown(path, Some(account.uid), Some(account.gid)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Gives every directory and file below `root` to the account, never entering
/// or changing a symbolic link.
fn give_tree(
    root: &Path,
    account: &Account,
    err: &dyn Fn(&Path, io::Error) -> PrivilegeError,
) -> Result<(), PrivilegeError> {
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(err(&dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| err(&dir, e))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|e| err(&path, e))?;
            if kind.is_symlink() {
                continue;
            }
            give(&path, account).map_err(|e| err(&path, e))?;
            if kind.is_dir() {
                todo.push(path);
            }
        }
    }
    Ok(())
}

/// Becomes `account` for good: `setgroups` (its groups), `setgid`, `setuid`, in
/// that order (once the uid is not root, the groups can no longer be changed),
/// then checks that real, effective and saved uid and gid are the account's,
/// that root cannot be taken back, and that every thread of the process says
/// so in `/proc/self/task/*/status` (glibc and musl apply the set*id calls to
/// every thread; this is verified, not assumed). Any failure is an error: the
/// caller must not go on.
pub fn drop_to(account: &Account, file: &str) -> Result<(), PrivilegeError> {
    let fail = |step: &'static str, source: io::Error| PrivilegeError::Drop {
        file: file.to_string(),
        name: account.name.clone(),
        step,
        source,
    };
    let check = |rc: libc::c_int, step| {
        if rc == 0 {
            Ok(())
        } else {
            Err(fail(step, io::Error::last_os_error()))
        }
    };
    // SAFETY: `groups` holds exactly `len` gids, which setgroups only reads.
    check(
        unsafe { libc::setgroups(account.groups.len() as _, account.groups.as_ptr()) },
        "setgroups",
    )?;
    // SAFETY: setgid takes a number; no memory is involved.
    check(unsafe { libc::setgid(account.gid) }, "setgid")?;
    // SAFETY: setuid takes a number; no memory is involved.
    check(unsafe { libc::setuid(account.uid) }, "setuid")?;
    verify(account).map_err(|e| fail("verify", e))
}

/// Checks that the process is `account` and nothing more.
fn verify(account: &Account) -> io::Result<()> {
    let (mut ru, mut eu, mut su) = (0, 0, 0);
    let (mut rg, mut eg, mut sg) = (0, 0, 0);
    // SAFETY: the six pointers are to live locals the calls write.
    let rc = unsafe { libc::getresuid(&mut ru, &mut eu, &mut su) }
        | unsafe { libc::getresgid(&mut rg, &mut eg, &mut sg) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if [ru, eu, su] != [account.uid; 3] || [rg, eg, sg] != [account.gid; 3] {
        return Err(io::Error::other(format!(
            "uids {ru}/{eu}/{su} and gids {rg}/{eg}/{sg}, not {}/{}",
            account.uid, account.gid
        )));
    }
    // SAFETY: getuid and geteuid cannot fail; setuid(0) must fail now (and
    // if it does not, we say so rather than run as root).
    if unsafe { libc::setuid(0) } == 0 || unsafe { libc::geteuid() } == 0 {
        return Err(io::Error::other("root could be taken back"));
    }
    let want_uid = format!("{0}\t{0}\t{0}\t{0}", account.uid);
    let want_gid = format!("{0}\t{0}\t{0}\t{0}", account.gid);
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        // No /proc: the process-wide checks above are all there is.
        return Ok(());
    };
    for task in tasks.flatten() {
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue; // the thread has ended
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
                .unwrap_or("")
                .to_string()
        };
        if field("Uid:") != want_uid || field("Gid:") != want_gid {
            return Err(io::Error::other(format!(
                "thread {} still has Uid {} Gid {}",
                task.file_name().to_string_lossy(),
                field("Uid:"),
                field("Gid:")
            )));
        }
    }
    Ok(())
}

/// After the drop: the files the server reads again while it runs (the users
/// file and the aliases file, re-read when they change) must be readable by
/// the account when they exist, or every login would fail later; an error
/// names the key. A configured TLS certificate or key it cannot read is only
/// worth a warning (returned): it was loaded as root and serves until a
/// SIGHUP, whose re-read would then be refused.
pub fn check_access(
    account: &Account,
    cfg: &Config,
    file: &str,
) -> Result<Vec<String>, PrivilegeError> {
    let key = |set: bool, key: &str, default: &str| {
        if set {
            format!("key `{key}`")
        } else {
            format!("`{key}` unset: {default}")
        }
    };
    let files = [
        (
            cfg.users_file(),
            "users file",
            key(cfg.users.file.is_some(), "users.file", "<data_dir>/users"),
        ),
        (
            cfg.aliases_file(),
            "aliases file",
            key(
                cfg.aliases.file.is_some(),
                "aliases.file",
                "<data_dir>/aliases",
            ),
        ),
    ];
    for (path, what, key) in files {
        match std::fs::File::open(&path) {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(PrivilegeError::Unreadable {
                    file: file.to_string(),
                    message: format!(
                        "{:?} cannot read the {what} {} ({key}): {e}; give it read access (e.g. `chgrp {} FILE; chmod 0640 FILE`: `pillarbox users` keeps owner, group and mode)",
                        account.name,
                        path.display(),
                        account.group_name,
                    ),
                })
            }
            _ => {}
        }
    }
    let mut warnings = Vec::new();
    if let Some(tls) = &cfg.tls {
        for (path, key) in [(&tls.cert, "tls.cert"), (&tls.key, "tls.key")] {
            if let Err(e) = std::fs::File::open(path) {
                warnings.push(format!(
                    "config {file}: key `{key}`: {:?} cannot read {} ({e}); it was loaded before the drop, but a SIGHUP cannot re-read it",
                    account.name,
                    path.display()
                ));
            }
        }
    }
    Ok(warnings)
}

/// Sets the process umask so that it takes no group or other bit that
/// `[storage] file_mode` and `dir_mode` ask for (the owner's bits are never
/// masked): the store hands those modes to `open(2)` and `mkdir(2)`, which the
/// umask narrows, and one umask set at start costs nothing per message where
/// an `fchmod` after each create would cost a call. Files created without an
/// explicit mode get no more than the configured modes allow either. Call it
/// before any thread starts: the umask is process-wide.
pub fn set_umask(modes: pillarbox_store::Modes) {
    let mask = 0o077 & !(modes.file | modes.dir);
    // SAFETY: umask takes a number and cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) };
}

/// The name of the account with `uid`, for messages; `None` when it has none.
pub fn user_name(uid: u32) -> Option<String> {
    lookup_r(|buf| {
        // SAFETY: passwd is plain data; all zeroes is valid, getpwuid_r fills it.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: valid entry, buffer of its true length, and result slot.
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                &mut entry,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        let name = (!result.is_null() && !entry.pw_name.is_null()).then(|| {
            // SAFETY: on success pw_name points to a NUL-terminated string in
            // `buf`, alive for this call of the closure.
            let name = unsafe { CStr::from_ptr(entry.pw_name) };
            name.to_string_lossy().into_owned()
        });
        (rc, name)
    })
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_user_is_refused_naming_the_key_and_the_file() {
        let e = lookup("no-such-user-pillarbox", None, "/etc/p.toml").unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, PrivilegeError::UnknownUser { .. }), "{e:?}");
        assert!(
            text.contains("/etc/p.toml")
                && text.contains("key `user`")
                && text.contains("no-such-user-pillarbox"),
            "{text}"
        );
    }

    #[test]
    fn an_unknown_group_is_refused_naming_the_key_and_the_file() {
        let e = lookup("root", Some("no-such-group-pillarbox"), "/etc/p.toml").unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("/etc/p.toml") && text.contains("key `group`"),
            "{text}"
        );
    }

    #[test]
    fn root_is_found_with_uid_and_gid_0_and_its_groups() {
        let a = lookup("root", None, "f").expect("root exists");
        assert_eq!((a.uid, a.gid), (0, 0));
        assert!(a.groups.contains(&0), "{:?}", a.groups);
        assert_eq!(user_name(0).as_deref(), Some("root"));
    }

    #[test]
    fn an_explicit_group_is_the_only_group_held() {
        let a = lookup("root", Some("root"), "f").expect("root exists");
        assert_eq!(a.groups, vec![0]);
    }

    #[test]
    fn without_user_root_is_warned_and_user_root_is_allowed_with_a_warning() {
        let mut cfg = Config::embedded();
        let p = plan(&cfg, "f").expect("plan");
        // SAFETY: geteuid cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        assert_eq!(
            p,
            Plan::Stay {
                warning: p_warning(&p)
            }
        );
        assert_eq!(p_warning(&p).is_some(), root);
        cfg.user = Some("root".into());
        let p = plan(&cfg, "f").expect("plan");
        assert!(matches!(p, Plan::Stay { warning: Some(_) }), "{p:?}");
    }

    fn p_warning(p: &Plan) -> Option<&'static str> {
        match p {
            Plan::Stay { warning } => *warning,
            Plan::Drop(_) => None,
        }
    }
}
