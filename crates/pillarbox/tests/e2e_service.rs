//! Running as a service: the readiness notifications `serve` sends to the
//! socket in `NOTIFY_SOCKET`, the shell completions and man pages the binary
//! prints, and the systemd unit in `dist/`.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{binary, Config, TestDir, EXIT_TIMEOUT};

/// How long a notification may take to arrive.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// A datagram socket bound at `path` for the server to notify.
fn notify_socket(path: &Path) -> UnixDatagram {
    let socket = UnixDatagram::bind(path).expect("bind the notify socket");
    socket
        .set_read_timeout(Some(NOTIFY_TIMEOUT))
        .expect("set a read timeout");
    socket
}

/// The next notification, as text.
fn next(socket: &UnixDatagram, waiting_for: &str, dir: &TestDir) -> String {
    let mut buf = [0u8; 1024];
    match socket.recv(&mut buf) {
        Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(e) => panic!(
            "no notification within {NOTIFY_TIMEOUT:?} while waiting for {waiting_for}: {e}\n--- server log ---\n{}",
            dir.log()
        ),
    }
}

#[test]
fn serve_notifies_ready_reloading_and_stopping() {
    let dir = TestDir::new(&Config::default());
    let path = dir.path().join("notify");
    let socket = notify_socket(&path);
    let mut server = dir.start_with_env(&[("NOTIFY_SOCKET", path.as_os_str())]);

    assert_eq!(next(&socket, "READY=1", &dir), "READY=1");

    server.signal("HUP");
    let reloading = next(&socket, "RELOADING=1", &dir);
    let mut lines = reloading.lines();
    assert_eq!(lines.next(), Some("RELOADING=1"), "{reloading:?}");
    let usec = lines
        .next()
        .and_then(|l| l.strip_prefix("MONOTONIC_USEC="))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        usec.is_some_and(|u| u > 0),
        "no MONOTONIC_USEC=<microseconds> after RELOADING=1: {reloading:?}"
    );
    assert_eq!(next(&socket, "READY=1 after the reload", &dir), "READY=1");

    server.signal("TERM");
    assert_eq!(next(&socket, "STOPPING=1", &dir), "STOPPING=1");
    let status = server
        .wait_exit(EXIT_TIMEOUT)
        .unwrap_or_else(|| panic!("server still running {EXIT_TIMEOUT:?} after SIGTERM"));
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status:?}"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn serve_notifies_an_abstract_socket() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::SocketAddr;

    let dir = TestDir::new(&Config::default());
    let name = format!("pillarbox-e2e-notify-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("an abstract address");
    let socket = UnixDatagram::bind_addr(&addr).expect("bind the abstract socket");
    socket
        .set_read_timeout(Some(NOTIFY_TIMEOUT))
        .expect("set a read timeout");
    let at_name = format!("@{name}");
    let _server = dir.start_with_env(&[("NOTIFY_SOCKET", OsStr::new(&at_name))]);
    assert_eq!(next(&socket, "READY=1", &dir), "READY=1");
}

#[test]
fn a_bad_notify_socket_is_logged_and_the_server_serves() {
    let dir = TestDir::new(&Config::default());
    let server = dir.start_with_env(&[("NOTIFY_SOCKET", OsStr::new("not-a-socket-name"))]);
    let _smtp = server.session();
    assert!(
        dir.log().contains("NOTIFY_SOCKET=not-a-socket-name"),
        "the log should name the unusable NOTIFY_SOCKET:\n{}",
        dir.log()
    );
}

/// Runs the binary with `args`; its stdout, after checking it succeeded.
fn run(args: &[&str]) -> String {
    let out = Command::new(binary())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run pillarbox {args:?}: {e}"));
    assert!(
        out.status.success(),
        "pillarbox {args:?}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("the output is UTF-8")
}

#[test]
fn completions_name_the_subcommands_for_every_shell() {
    let bash = run(&["completions", "bash"]);
    for sub in [
        "serve",
        "check-config",
        "users",
        "mailbox",
        "probe",
        "completions",
        "man",
    ] {
        assert!(bash.contains(sub), "bash completions lack {sub}");
    }
    assert!(bash.contains("complete -F"), "not a bash completion script");
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        assert!(
            run(&["completions", shell]).contains("check-config"),
            "{shell} completions lack check-config"
        );
    }
}

/// `man -l FILE` rendered as plain text, with groff's warnings turned on;
/// `None` (and a note) when `man` is not installed.
fn render_man(page: &Path) -> Option<(String, String)> {
    let out = match Command::new("man")
        .args(["--warnings", "-l"])
        .arg(page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("note: `man` not runnable ({e}); the page is not rendered (apt-get install man-db groff-base)");
            return None;
        }
    };
    assert!(
        out.status.success(),
        "man -l {}: {:?}\n{}",
        page.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Some((
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn man_prints_the_main_page_and_writes_one_per_command() {
    let page = run(&["man"]);
    // The roff crate puts a two-line string definition before the header.
    let th = page
        .lines()
        .take(3)
        .find(|l| l.starts_with(".TH "))
        .unwrap_or_else(|| panic!("no .TH header at the top:\n{page}"));
    assert_eq!(
        th,
        format!(
            ".TH pillarbox 1 \"\" \"pillarbox {}\" \"Pillarbox Manual\"",
            env!("CARGO_PKG_VERSION")
        )
    );
    assert!(page.contains(".SH SYNOPSIS"), "{page}");

    let dir = tempfile::tempdir().expect("a temporary directory");
    let written = run(&["man", "--dir", &dir.path().display().to_string()]);
    let files: Vec<PathBuf> = written.lines().map(PathBuf::from).collect();
    for name in [
        "pillarbox.1",
        "pillarbox-serve.1",
        "pillarbox-check-config.1",
        "pillarbox-users-add.1",
        "pillarbox-completions.1",
        "pillarbox-man.1",
    ] {
        let path = dir.path().join(name);
        assert!(files.contains(&path), "{name} not listed in {written}");
        assert!(path.is_file(), "{name} not written");
    }
    assert!(
        !files.iter().any(|f| f.ends_with("pillarbox-help.1")),
        "a page for the help subcommand: {written}"
    );
    let main = fs::read_to_string(dir.path().join("pillarbox.1")).expect("read pillarbox.1");
    assert_eq!(main, page, "--dir and stdout give different main pages");

    let Some((text, warnings)) = render_man(&dir.path().join("pillarbox-serve.1")) else {
        return;
    };
    assert!(text.contains("pillarbox-serve(1)"), "{text}");
    assert!(
        text.contains("SYNOPSIS") && text.contains("--config"),
        "{text}"
    );
    assert!(warnings.trim().is_empty(), "man warns:\n{warnings}");
}

/// Every key the unit may use, by section (what the minimal check accepts).
const UNIT_KEYS: &[(&str, &[&str])] = &[
    (
        "Unit",
        &["Description", "Documentation", "After", "Wants", "Requires"],
    ),
    (
        "Service",
        &[
            "Type",
            "ExecStart",
            "ExecReload",
            "ReloadSignal",
            "TimeoutStopSec",
            "Restart",
            "RestartSec",
            "User",
            "Group",
            "AmbientCapabilities",
            "CapabilityBoundingSet",
            "LimitNOFILE",
            "StateDirectory",
            "ReadWritePaths",
            "ProtectSystem",
            "ProtectHome",
            "PrivateTmp",
            "NoNewPrivileges",
            "ProtectKernelTunables",
            "ProtectControlGroups",
            "RestrictAddressFamilies",
            "LockPersonality",
            "MemoryDenyWriteExecute",
            "RestrictRealtime",
            "SystemCallArchitectures",
        ],
    ),
    ("Install", &["WantedBy"]),
];

/// The unit's `(section, key, value)` assignments; panics on a line that is
/// neither a comment, a section header nor `Key=value` with a known key.
fn parse_unit(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            assert!(
                UNIT_KEYS.iter().any(|(s, _)| *s == name),
                "line {}: unknown section [{name}]",
                n + 1
            );
            section = name.to_string();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not Key=value: {line}", n + 1));
        let known = UNIT_KEYS
            .iter()
            .find(|(s, _)| *s == section)
            .unwrap_or_else(|| panic!("line {}: {key}= before any section", n + 1))
            .1;
        assert!(
            known.contains(&key),
            "line {}: unknown key {key} in [{section}]",
            n + 1
        );
        out.push((section.clone(), key.to_string(), value.to_string()));
    }
    out
}

#[test]
fn the_systemd_unit_is_sound() {
    let unit_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/pillarbox.service");
    let unit = fs::read_to_string(&unit_path).expect("read dist/pillarbox.service");
    let keys = parse_unit(&unit);
    let value = |key: &str| -> &str {
        keys.iter()
            .find(|(_, k, _)| k == key)
            .map(|(_, _, v)| v.as_str())
            .unwrap_or_else(|| panic!("the unit has no {key}="))
    };
    assert_eq!(value("Type"), "notify");
    assert_eq!(
        value("ExecStart"),
        "/usr/local/bin/pillarbox serve --config /etc/pillarbox/pillarbox.toml"
    );
    assert_eq!(value("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(value("AmbientCapabilities"), "CAP_NET_BIND_SERVICE");
    assert_eq!(value("CapabilityBoundingSet"), "CAP_NET_BIND_SERVICE");
    assert_eq!(value("User"), "vmail");
    assert_eq!(value("ProtectSystem"), "strict");
    assert_eq!(value("ReadWritePaths"), "/var/lib/pillarbox");
    assert_eq!(value("StateDirectory"), "pillarbox");
    assert_eq!(value("LimitNOFILE"), "65536");
    assert_eq!(value("WantedBy"), "multi-user.target");

    // systemd's own check, where it is installed: with ExecStart= pointed at
    // the binary under test (it must exist) and the man page check off (the
    // page is not installed). It exits 0 on unknown keys and bad values, so
    // any output is a failure.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let copy = dir.path().join("pillarbox.service");
    let bin = binary();
    fs::write(
        &copy,
        unit.replace("/usr/local/bin/pillarbox", &bin.display().to_string()),
    )
    .expect("write the unit copy");
    let out = match Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!(
                "note: systemd-analyze not runnable ({e}); the unit got the minimal key check only"
            );
            return;
        }
    };
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {:?}\n{said}",
        out.status
    );
}
