//! Harness shared by the end-to-end tests: it writes a config into a temporary
//! directory, starts the real `pillarbox` binary on port 0, waits (bounded) for its
//! `ready` line, talks SMTP to it and reads the Maildirs it writes.
//!
//! Every test owns its own directory and port, so the tests run in parallel. Every
//! wait is bounded. A missing outside client (python3, swaks, curl, Dovecot) is a
//! test failure with a message that says what to install, never a silent skip:
//! `.ci/run` installs them all.
//!
//! `PILLARBOX_BIN` overrides the binary under test (for instance a release build).

#![allow(dead_code)] // each test binary uses a different part of this module

use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long the server may take from spawn to its `ready` line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one outside client run (swaks, curl, python) may take.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// Read and write timeout on every test socket.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a server may take to exit after SIGTERM.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The binary under test.
pub fn binary() -> PathBuf {
    match std::env::var_os("PILLARBOX_BIN") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_BIN_EXE_pillarbox")),
    }
}

/// What goes into the config file a test starts the server with.
#[derive(Clone, Debug)]
pub struct Config {
    pub hostname: String,
    pub domains: Vec<String>,
    pub catch_all: bool,
    /// Lines of the Dovecot passwd-file written as `[users] file`.
    pub users: Vec<String>,
    /// `[limits]` keys with their raw TOML values, e.g. `("message_size", "\"10KiB\"")`.
    pub limits: Vec<(String, String)>,
    /// `[log] format`: `text` or `json`.
    pub log_format: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hostname: "mx.example.test".to_string(),
            domains: vec!["example.test".to_string(), "other.test".to_string()],
            catch_all: true,
            users: vec!["alice@example.test::1000:1000::::".to_string()],
            limits: Vec::new(),
            log_format: "text".to_string(),
        }
    }
}

impl Config {
    /// Sets one `[limits]` key; `value` is raw TOML (quote strings yourself).
    pub fn limit(mut self, key: &str, value: &str) -> Self {
        self.limits.retain(|(k, _)| k != key);
        self.limits.push((key.to_string(), value.to_string()));
        self
    }

    /// The TOML text for a server whose data lives in `data_dir`.
    pub fn to_toml(&self, data_dir: &Path, users_file: &Path) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "hostname = {}", toml_str(&self.hostname));
        let _ = writeln!(
            out,
            "data_dir = {}",
            toml_str(&data_dir.display().to_string())
        );
        let _ = writeln!(
            out,
            "\n[[listen]]\naddress = \"127.0.0.1:0\"\nprotocol = \"smtp\""
        );
        let domains: Vec<String> = self.domains.iter().map(|d| toml_str(d)).collect();
        let _ = writeln!(
            out,
            "\n[domains]\nlocal = [{}]\ncatch_all = {}",
            domains.join(", "),
            self.catch_all
        );
        let _ = writeln!(
            out,
            "\n[users]\nfile = {}",
            toml_str(&users_file.display().to_string())
        );
        // Short timeouts by default so no test can hang on a silent server.
        let mut limits = vec![
            ("command_timeout".to_string(), "\"30s\"".to_string()),
            ("data_timeout".to_string(), "\"30s\"".to_string()),
            ("shutdown_grace".to_string(), "\"5s\"".to_string()),
        ];
        for (key, value) in &self.limits {
            limits.retain(|(k, _)| k != key);
            limits.push((key.clone(), value.clone()));
        }
        out.push_str("\n[limits]\n");
        for (key, value) in limits {
            let _ = writeln!(out, "{key} = {value}");
        }
        let _ = writeln!(out, "\n[log]\nformat = {}", toml_str(&self.log_format));
        out
    }
}

fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A temporary directory holding one server's config, users file, data and logs.
/// It outlives server restarts (the crash test starts twice on the same data).
pub struct TestDir {
    pub dir: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
}

impl TestDir {
    pub fn new(config: &Config) -> TestDir {
        let dir = tempfile::Builder::new()
            .prefix("pillarbox-e2e-")
            .tempdir()
            .expect("create a temporary directory");
        let data_dir = dir.path().join("data");
        let users_file = dir.path().join("users");
        let mut users = config.users.join("\n");
        users.push('\n');
        fs::write(&users_file, users).expect("write the users file");
        let config_path = dir.path().join("pillarbox.toml");
        fs::write(&config_path, config.to_toml(&data_dir, &users_file)).expect("write config");
        let log_path = dir.path().join("server.log");
        TestDir {
            dir,
            data_dir,
            config_path,
            log_path,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Appends raw TOML to the config (sections the `Config` above does not
    /// model: `[storage]`, `[quota]`, `[auth]`, `[greylist]`, more `[[listen]]`).
    pub fn append_config(&self, toml: &str) {
        let mut text = fs::read_to_string(&self.config_path).expect("read config");
        text.push('\n');
        text.push_str(toml);
        fs::write(&self.config_path, text).expect("write config");
    }

    /// Starts `pillarbox serve --config <file>` and waits for `ready`.
    pub fn start(&self) -> Server {
        Server::start(self, &[])
    }

    /// As `start`, with extra environment variables for the server process
    /// (e.g. `NOTIFY_SOCKET`).
    pub fn start_with_env(&self, env: &[(&str, &std::ffi::OsStr)]) -> Server {
        Server::start(self, env)
    }

    /// The Maildir of `address` (`user@domain`), `<data_dir>/mail/<domain>/<user>/Maildir`.
    pub fn maildir(&self, address: &str) -> PathBuf {
        maildir(&self.data_dir, address)
    }

    /// Every message in `new/` and `cur/` of `address`'s Maildir, by file name,
    /// once the queue has delivered what it holds (see [`settle_queue`]).
    pub fn messages(&self, address: &str) -> Vec<Stored> {
        messages_in(&self.maildir(address))
    }

    /// Every message in any `new/` or `cur/` under `<data_dir>/mail`, once
    /// the queue has delivered what it holds.
    pub fn all_messages(&self) -> Vec<Stored> {
        settle_queue(&self.data_dir);
        let mut out = Vec::new();
        for domain in read_dir_sorted(&self.data_dir.join("mail")) {
            for user in read_dir_sorted(&domain) {
                out.extend(messages_in(&user.join("Maildir")));
            }
        }
        out
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// `pillarbox ARGS --config <file>`: its stdout, after checking that it
    /// succeeded.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(binary())
            .args(args)
            .arg("--config")
            .arg(&self.config_path)
            .output()
            .unwrap_or_else(|e| panic!("run pillarbox {args:?}: {e}"));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "pillarbox {args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    /// `pillarbox quota get <address>`, checked: its stdout.
    pub fn quota_get(&self, address: &str) -> String {
        self.cli(&["quota", "get", address])
    }
}

/// A running server; killed (SIGKILL) on drop if it is still alive.
pub struct Server {
    child: Option<Child>,
    pub pid: u32,
    pub port: u16,
    /// Every stdout line up to and including `ready`.
    pub startup: Vec<String>,
    log_path: PathBuf,
    stdout: mpsc::Receiver<String>,
}

impl Server {
    fn start(dir: &TestDir, env: &[(&str, &std::ffi::OsStr)]) -> Server {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&dir.log_path)
            .expect("open the server log");
        let bin = binary();
        let mut child = Command::new(&bin)
            .arg("serve")
            .arg("--config")
            .arg(&dir.config_path)
            .current_dir(dir.path())
            .env_remove("NOTIFY_SOCKET")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let pid = child.id();
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child: Some(child),
            pid,
            port: 0,
            startup: Vec::new(),
            log_path: dir.log_path.clone(),
            stdout: rx,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match server.stdout.recv_timeout(left) {
                Ok(line) => {
                    let line = line.trim_end().to_string();
                    server.startup.push(line.clone());
                    if line == "ready" {
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "server did not print `ready` within {READY_TIMEOUT:?}; stdout so far: {:?}\n--- server log ---\n{}",
                    server.startup,
                    server.log()
                ),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = server.wait_exit(Duration::from_secs(5));
                    panic!(
                        "server exited ({status:?}) before `ready`; stdout: {:?}\n--- server log ---\n{}",
                        server.startup,
                        server.log()
                    )
                }
            }
        }
        let port = server
            .startup
            .iter()
            .find_map(|l| l.strip_prefix("listening smtp "))
            .and_then(|addr| addr.rsplit(':').next())
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or_else(|| {
                panic!(
                    "no `listening smtp 127.0.0.1:PORT` line in startup output {:?}",
                    server.startup
                )
            });
        assert_ne!(
            port, 0,
            "the server printed port 0 instead of the real port"
        );
        server.port = port;
        server
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Opens an SMTP connection (the greeting is not read yet).
    pub fn connect(&self) -> Smtp {
        Smtp::connect(self.port).unwrap_or_else(|e| {
            panic!(
                "connect to 127.0.0.1:{}: {e}\n--- server log ---\n{}",
                self.port,
                self.log()
            )
        })
    }

    /// Opens an SMTP connection and expects the `220` greeting.
    pub fn session(&self) -> Smtp {
        let mut smtp = self.connect();
        let greeting = smtp.read_reply().expect("read the greeting");
        assert_eq!(greeting.code, 220, "greeting: {greeting}");
        smtp
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`) with the shell's `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("sh")
            .arg("-c")
            .arg("kill -s \"$1\" \"$2\"")
            .arg("sh")
            .arg(name)
            .arg(self.pid.to_string())
            .status()
            .expect("run sh -c kill");
        assert!(status.success(), "kill -s {name} {} failed", self.pid);
    }

    /// SIGKILL, then reap the process.
    pub fn kill_hard(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill(); // std sends SIGKILL on Unix
            let _ = child.wait();
        }
    }

    /// Waits (bounded) for the process to exit; `None` when it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
                _ => return None,
            }
        }
    }

    /// Stdout lines printed after `ready`, collected so far.
    pub fn later_stdout(&self) -> Vec<String> {
        self.stdout.try_iter().collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        if thread::panicking() {
            let log = self.log();
            let tail: String = log
                .lines()
                .rev()
                .take(80)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            eprintln!("--- server log (last 80 lines) ---\n{tail}\n--- end ---");
        }
    }
}

/// One SMTP reply: its code and every line, in order.
#[derive(Clone, Debug)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// The last line, e.g. `250 2.0.0 ok: queued as 1A2B`.
    pub fn last(&self) -> &str {
        self.lines.last().map(String::as_str).unwrap_or("")
    }

    /// The last line without the code, e.g. `2.0.0 ok: queued as 1A2B`.
    pub fn text(&self) -> &str {
        self.last().get(4..).unwrap_or("")
    }

    /// True when the last line starts with `prefix` (e.g. `"421 4.3.2"`).
    pub fn starts_with(&self, prefix: &str) -> bool {
        self.last().starts_with(prefix)
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.lines.join(" / "))
    }
}

/// A plain blocking SMTP client with timeouts, for the tests that need exact
/// control over what is sent when (crash, drain, limits).
pub struct Smtp {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Smtp {
    pub fn connect(port: u16) -> io::Result<Smtp> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Smtp {
            writer: stream,
            reader,
        })
    }

    pub fn set_read_timeout(&self, timeout: Duration) {
        let _ = self.writer.set_read_timeout(Some(timeout));
    }

    /// Reads one (possibly multi-line) reply.
    pub fn read_reply(&mut self) -> io::Result<Reply> {
        let mut lines = Vec::new();
        loop {
            let mut raw = Vec::new();
            let n = (&mut self.reader).take(4096).read_until(b'\n', &mut raw)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("connection closed after {lines:?}"),
                ));
            }
            if !raw.ends_with(b"\r\n") {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "reply line not ended by CRLF: {:?}",
                        String::from_utf8_lossy(&raw)
                    ),
                ));
            }
            let line = String::from_utf8_lossy(&raw[..raw.len() - 2]).into_owned();
            let code = line
                .get(..3)
                .and_then(|c| c.parse::<u16>().ok())
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("bad reply line {line:?}"),
                    )
                })?;
            let more = line.as_bytes().get(3) == Some(&b'-');
            lines.push(line);
            if !more {
                return Ok(Reply { code, lines });
            }
        }
    }

    /// True when the server closed the connection (EOF or reset) within the read timeout.
    pub fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self.reader.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)?;
        self.writer.flush()
    }

    /// Sends one command line (CRLF added) and reads its reply.
    pub fn cmd(&mut self, line: &str) -> io::Result<Reply> {
        self.send(format!("{line}\r\n").as_bytes())?;
        self.read_reply()
    }

    /// Like `cmd`, but panics unless the reply has `code`.
    pub fn expect(&mut self, line: &str, code: u16) -> Reply {
        let reply = self
            .cmd(line)
            .unwrap_or_else(|e| panic!("`{line}`: no reply: {e}"));
        assert_eq!(reply.code, code, "`{line}` got {reply}");
        reply
    }

    /// MAIL, RCPT for each recipient, DATA, the dot-stuffed message; returns the
    /// final reply (which the caller checks).
    pub fn send_mail(&mut self, from: &str, rcpts: &[&str], message: &[u8]) -> io::Result<Reply> {
        let r = self.cmd(&format!("MAIL FROM:<{from}>"))?;
        if r.code != 250 {
            return Ok(r);
        }
        for rcpt in rcpts {
            let r = self.cmd(&format!("RCPT TO:<{rcpt}>"))?;
            if r.code != 250 {
                return Ok(r);
            }
        }
        let r = self.cmd("DATA")?;
        if r.code != 354 {
            return Ok(r);
        }
        self.send(&dot_stuff(message))?;
        self.read_reply()
    }
}

/// Turns a CRLF message into DATA wire form: leading dots doubled, CRLF.CRLF added.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 16);
    let mut at_line_start = true;
    for &b in message {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// A small CRLF message with lines that need dot-stuffing, unique by `tag`.
pub fn sample_message(tag: &str, to: &str) -> Vec<u8> {
    format!(
        "From: Sender <sender@client.test>\r\n\
         To: <{to}>\r\n\
         Subject: pillarbox e2e {tag}\r\n\
         Message-ID: <{tag}@client.test>\r\n\
         \r\n\
         Hello from the {tag} test.\r\n\
         .a line that starts with a dot\r\n\
         ..and one with two\r\n\
         \r\n\
         a line with trailing space \r\n\
         the last line\r\n"
    )
    .into_bytes()
}

/// CRLF -> LF, the way the server stores messages.
pub fn to_lf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// LF -> CRLF (for comparison with what IMAP serves).
pub fn to_crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 20);
    for &b in bytes {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// One message file in a Maildir.
#[derive(Clone, Debug)]
pub struct Stored {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

impl Stored {
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Splits off the header lines the server prepends (`Return-Path`, then
    /// `Received` with its continuation lines) from the message as received.
    pub fn split_added(&self) -> (String, Vec<u8>) {
        split_added_headers(&self.bytes)
    }

    /// The stored message without our added headers.
    pub fn original(&self) -> Vec<u8> {
        self.split_added().1
    }

    /// The value of the first `name:` header of the original message, if any.
    pub fn header(&self, name: &str) -> Option<String> {
        let original = self.original();
        let text = String::from_utf8_lossy(&original);
        let prefix = format!("{}:", name.to_ascii_lowercase());
        for line in text.split('\n') {
            if line.is_empty() {
                break;
            }
            if line.to_ascii_lowercase().starts_with(&prefix) {
                return Some(line[prefix.len()..].trim().to_string());
            }
        }
        None
    }

    /// Checks the Maildir file name and the on-disk form: `,S=` is the file size,
    /// `,W=` the size with CRLF line ends, line ends are LF only.
    pub fn assert_well_formed(&self) {
        let name = self.name();
        let base = name.split(':').next().unwrap_or("");
        let field = |key: &str| -> Option<u64> {
            base.split(',')
                .skip(1)
                .find_map(|part| part.strip_prefix(key))
                .and_then(|v| v.parse().ok())
        };
        let size = self.bytes.len() as u64;
        let lfs = self.bytes.iter().filter(|&&b| b == b'\n').count() as u64;
        assert_eq!(
            field("S="),
            Some(size),
            "Maildir name {name:?}: S= must be the file size {size}"
        );
        assert_eq!(
            field("W="),
            Some(size + lfs),
            "Maildir name {name:?}: W= must be the size with CRLF line ends {}",
            size + lfs
        );
        assert!(
            !self.bytes.windows(2).any(|w| w == b"\r\n"),
            "{name:?} is stored with CRLF line ends; Maildir files use LF"
        );
    }

    /// Asserts the message is well formed, starts with `Return-Path: <from>` and a
    /// `Received` header, and otherwise equals `sent` (CRLF, as given to the client).
    pub fn assert_is(&self, from: &str, sent: &[u8]) {
        self.assert_well_formed();
        let (added, original) = self.split_added();
        let first = added.lines().next().unwrap_or("");
        assert_eq!(
            first,
            format!("Return-Path: <{from}>"),
            "first stored line of {:?}",
            self.name()
        );
        assert!(
            added.contains("\nReceived:"),
            "no Received header prepended in {:?}: {added:?}",
            self.name()
        );
        let expected = to_lf(sent);
        assert!(
            original == expected,
            "stored message {:?} differs from what was sent\n--- sent (LF) ---\n{}\n--- stored (our headers removed) ---\n{}",
            self.name(),
            String::from_utf8_lossy(&expected),
            String::from_utf8_lossy(&original)
        );
    }

    /// The unfolded `Received` header the server added.
    pub fn received(&self) -> String {
        let (added, _) = self.split_added();
        let mut out = String::new();
        let mut inside = false;
        for line in added.lines() {
            if line.starts_with("Received:") {
                inside = true;
                out.push_str(line);
            } else if inside && (line.starts_with(' ') || line.starts_with('\t')) {
                out.push(' ');
                out.push_str(line.trim());
            } else {
                inside = false;
            }
        }
        out
    }
}

/// See [`Stored::split_added`]; works on LF or CRLF text.
pub fn split_added_headers(bytes: &[u8]) -> (String, Vec<u8>) {
    let mut pos = 0;
    let mut in_ours = false;
    while pos < bytes.len() {
        let end = bytes[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| pos + i + 1)
            .unwrap_or(bytes.len());
        let line = &bytes[pos..end];
        let lower = String::from_utf8_lossy(line).to_ascii_lowercase();
        let ours = lower.starts_with("return-path:") || lower.starts_with("received:");
        let continuation = in_ours && (line.starts_with(b" ") || line.starts_with(b"\t"));
        if !(ours || continuation) {
            break;
        }
        in_ours = true;
        pos = end;
    }
    (
        String::from_utf8_lossy(&bytes[..pos]).into_owned(),
        bytes[pos..].to_vec(),
    )
}

pub fn maildir(data_dir: &Path, address: &str) -> PathBuf {
    let (user, domain) = address
        .rsplit_once('@')
        .unwrap_or_else(|| panic!("{address:?} is not user@domain"));
    data_dir
        .join("mail")
        .join(domain)
        .join(user)
        .join("Maildir")
}

/// Waits (at most [`SETTLE`]) until the queue of `data_dir` holds no message
/// body: the server answers `250` once a message is durable in its queue, and
/// copies it into the Maildir a moment later. A test that leaves a recipient
/// deferred pays the whole wait; it looks at the queue instead.
pub fn settle_queue(data_dir: &Path) {
    let bodies = data_dir.join("queue/messages");
    let deadline = std::time::Instant::now() + SETTLE;
    while std::time::Instant::now() < deadline {
        let empty = fs::read_dir(&bodies).map_or(true, |mut e| e.next().is_none());
        if empty {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How long [`settle_queue`] waits at most.
pub const SETTLE: Duration = Duration::from_secs(3);

/// Messages in `new/` and `cur/` of one Maildir, sorted by file name, once
/// the queue of its data directory has delivered what it holds.
pub fn messages_in(maildir: &Path) -> Vec<Stored> {
    // <data_dir>/mail/<domain>/<user>/Maildir
    if let Some(data_dir) = maildir.ancestors().nth(4) {
        settle_queue(data_dir);
    }
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        for path in read_dir_sorted(&maildir.join(sub)) {
            if path.is_file() {
                let bytes =
                    fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
                out.push(Stored { path, bytes });
            }
        }
    }
    out
}

fn read_dir_sorted(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

/// Runs an outside client, bounded by `timeout`, feeding `stdin`. A client that
/// is not installed fails the test and says what to install.
pub fn run_client(
    mut cmd: Command,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
    install: &str,
) -> Output {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == io::ErrorKind::NotFound => panic!(
            "`{program}` is not installed, and the end-to-end tests need it: {install} (.ci/run installs it)"
        ),
        Err(e) => panic!("cannot run `{program}`: {e}"),
    };
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let mut out_pipe = child.stdout.take().expect("piped stdout");
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let out_thread = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out_pipe.read_to_end(&mut buf);
        buf
    });
    let err_thread = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                let stdout = out_thread.join().unwrap_or_default();
                let stderr = err_thread.join().unwrap_or_default();
                panic!(
                    "`{program}` did not finish within {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    String::from_utf8_lossy(&stdout),
                    String::from_utf8_lossy(&stderr)
                );
            }
            Err(e) => panic!("wait for `{program}`: {e}"),
        }
    };
    Output {
        status,
        stdout: out_thread.join().unwrap_or_default(),
        stderr: err_thread.join().unwrap_or_default(),
    }
}

/// Runs a Python 3 script (standard library only) with arguments.
pub fn run_python(script: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(script).args(args);
    run_client(
        cmd,
        None,
        CLIENT_TIMEOUT,
        "install Python 3 (`apt-get install python3`)",
    )
}

/// Stdout and stderr of a finished client, for assertion messages.
pub fn transcript(output: &Output) -> String {
    format!(
        "exit: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `docs/dovecot.md`, the guide whose configuration the Dovecot tests run.
pub fn dovecot_doc_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/dovecot.md")
}

/// The body of the first ```` ```conf ```` block after the line `## {heading}`
/// (before the next `## ` heading), or why there is none.
pub fn conf_block_after(doc: &str, heading: &str) -> Result<String, String> {
    let marker = format!("## {heading}");
    let mut lines = doc.lines().skip_while(|l| l.trim_end() != marker);
    if lines.next().is_none() {
        return Err(format!("no heading `{marker}`"));
    }
    let mut block = String::new();
    let mut inside = false;
    for line in lines {
        if !inside && line.starts_with("## ") {
            break;
        }
        if !inside {
            inside = line.trim_end() == "```conf";
        } else if line.trim_end() == "```" {
            return Ok(block);
        } else {
            block.push_str(line);
            block.push('\n');
        }
    }
    Err(if inside {
        format!("the ```conf block after `{marker}` is not closed")
    } else {
        format!("no ```conf block after `{marker}`")
    })
}

/// The Dovecot configuration of `docs/dovecot.md` as the tests run it: the block
/// after "The configuration", then the block after "What the tests add", with
/// each `(placeholder, value)` replaced (`("DATA_DIR", "/x")` replaces
/// `@DATA_DIR@`). Every placeholder given must occur in the doc, and none may be
/// left over, so the doc and the tests cannot drift apart silently.
pub fn dovecot_config_from_docs(values: &[(&str, String)]) -> String {
    let path = dovecot_doc_path();
    let doc = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the Dovecot guide {}: {e}", path.display()));
    let mut conf = String::new();
    for heading in ["The configuration", "What the tests add"] {
        let block =
            conf_block_after(&doc, heading).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        conf.push_str(&block);
    }
    for (name, value) in values {
        let placeholder = format!("@{name}@");
        assert!(
            conf.contains(&placeholder),
            "{}: the configuration has no {placeholder}, which the tests fill in",
            path.display()
        );
        conf = conf.replace(&placeholder, value);
    }
    let left_over = conf.match_indices('@').find_map(|(at, _)| {
        let rest = &conf[at + 1..];
        let name = &rest[..rest.find('@')?];
        let is_name = !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_');
        is_name.then_some(name)
    });
    if let Some(left) = left_over {
        panic!(
            "{}: placeholder @{left}@ is not one the tests fill in",
            path.display()
        );
    }
    conf
}

impl TestDir {
    /// `pillarbox queue ARGS` against the running server, checked: its stdout.
    pub fn queue_cli(&self, args: &[&str]) -> String {
        let args: Vec<&str> = std::iter::once("queue")
            .chain(args.iter().copied())
            .collect();
        self.cli(&args)
    }

    /// The users file the config names (`[users] file`).
    pub fn users_file(&self) -> PathBuf {
        self.path().join("users")
    }

    /// `pillarbox users add ADDRESS [--scheme SCHEME] --password-stdin`, checked.
    pub fn users_add(&self, address: &str, scheme: Option<&str>, password: &str) {
        let mut cmd = Command::new(binary());
        cmd.arg("users")
            .arg("--config")
            .arg(&self.config_path)
            .args(["add", address]);
        if let Some(scheme) = scheme {
            cmd.args(["--scheme", scheme]);
        }
        cmd.arg("--password-stdin");
        let out = run_client(
            cmd,
            Some(format!("{password}\n").into_bytes()),
            CLIENT_TIMEOUT,
            "-",
        );
        assert!(
            out.status.success(),
            "users add {address}: {}",
            transcript(&out)
        );
    }
}

fn id_of(args: &[&str]) -> String {
    let out = Command::new("id").args(args).output().expect("run id");
    assert!(out.status.success(), "id {args:?} failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A real Dovecot (`dovecot -F`, Debian `dovecot-core` and `dovecot-imapd`) on a
/// test's data directory, configured by `docs/dovecot.md`; stopped on drop.
pub struct Dovecot {
    child: Child,
    /// The dovecot.conf it runs, for `doveadm -c`.
    pub conf: PathBuf,
    pub log_path: PathBuf,
    /// Its IMAP listener on 127.0.0.1.
    pub imap_port: u16,
}

impl Dovecot {
    /// Starts Dovecot on `dir`'s Maildirs and users file. The mail user is
    /// `nobody`: as the guide says for a server that ran as root, the mail tree
    /// and the users file are handed to it first (so call this after Pillarbox
    /// has created them).
    pub fn start(dir: &TestDir) -> Dovecot {
        assert_eq!(
            id_of(&["-u"]),
            "0",
            "the Dovecot tests run as root (as scripts/test and CI do): Dovecot's master process starts its services as other users"
        );
        for bin in ["dovecot", "doveadm", "/usr/lib/dovecot/imap-login"] {
            let found = if bin.starts_with('/') {
                Path::new(bin).exists()
            } else {
                Command::new("which")
                    .arg(bin)
                    .output()
                    .is_ok_and(|o| o.status.success())
            };
            assert!(
                found,
                "{bin} is missing: install Dovecot (`apt-get install dovecot-core dovecot-imapd`; scripts/test installs them)"
            );
        }
        let users_file = dir.users_file();
        let mail_uid = id_of(&["-u", "nobody"]);
        let mail_gid = id_of(&["-g", "nobody"]);
        let owner = format!("{mail_uid}:{mail_gid}");
        for path in [dir.data_dir.join("mail"), users_file.clone()] {
            let status = Command::new("chown")
                .args(["-R", &owner])
                .arg(&path)
                .status()
                .expect("run chown");
            assert!(status.success(), "chown -R {owner} {}", path.display());
        }
        // The test's own directories are root's; nobody must pass them.
        for path in [dir.path(), dir.data_dir.as_path()] {
            fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
        }
        for ancestor in dir.path().ancestors().skip(1) {
            let mode = std::os::unix::fs::PermissionsExt::mode(
                &fs::metadata(ancestor)
                    .map(|m| m.permissions())
                    .unwrap_or_else(|e| panic!("stat {}: {e}", ancestor.display())),
            );
            assert!(
                mode & 0o001 != 0,
                "Dovecot reads mail as nobody and cannot pass {} (mode {:o}): point TMPDIR at a world-traversable directory",
                ancestor.display(),
                mode & 0o7777
            );
        }
        let base_dir = dir.path().join("dovecot-run");
        fs::create_dir_all(&base_dir).expect("create Dovecot's base_dir");
        let log_path = dir.path().join("dovecot.log");
        let imap_port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("find a free port")
            .port();
        let conf = dir.path().join("dovecot.conf");
        let text = dovecot_config_from_docs(&[
            ("DATA_DIR", dir.data_dir.display().to_string()),
            ("USERS_FILE", users_file.display().to_string()),
            ("MAIL_USER", "nobody".to_string()),
            ("MAIL_UID", mail_uid),
            ("MAIL_GID", mail_gid),
            ("BASE_DIR", base_dir.display().to_string()),
            ("LOG_PATH", log_path.display().to_string()),
            ("IMAP_PORT", imap_port.to_string()),
        ]);
        fs::write(&conf, text).expect("write dovecot.conf");
        let child = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start dovecot (Debian dovecot-core): {e}"));
        let mut dovecot = Dovecot {
            child,
            conf,
            log_path,
            imap_port,
        };
        // Ready: the auth service's socket exists and IMAP accepts connections.
        let socket = base_dir.join("auth-userdb");
        let deadline = Instant::now() + READY_TIMEOUT;
        while !(socket.exists() && TcpStream::connect(("127.0.0.1", imap_port)).is_ok()) {
            if let Ok(Some(status)) = dovecot.child.try_wait() {
                panic!(
                    "dovecot exited ({status}) at start\n--- its log ---\n{}",
                    dovecot.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "dovecot did not create {} and listen on 127.0.0.1:{imap_port} within {READY_TIMEOUT:?}\n--- its log ---\n{}",
                socket.display(),
                dovecot.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
        dovecot
    }

    /// Dovecot's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// `doveadm -c <conf> ARGS`: its stdout, after checking that it succeeded.
    pub fn doveadm(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("doveadm");
        cmd.arg("-c").arg(&self.conf).args(args);
        let out = run_client(
            cmd,
            None,
            CLIENT_TIMEOUT,
            "install Dovecot (`apt-get install dovecot-core`)",
        );
        assert!(
            out.status.success(),
            "doveadm {args:?} failed:\n{}\n--- Dovecot's log ---\n{}",
            transcript(&out),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // SIGTERM stops the master and with it every service; SIGKILL if it lingers.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + EXIT_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `<dir>/pillarbox.toml` for the management commands: data in
/// `<dir>/data`, domain `example.test`, users file `<dir>/users` (absent at first).
pub fn write_users_config(dir: &Path) {
    let config = format!(
        "data_dir = \"{data}\"\n\n[domains]\nlocal = [\"example.test\"]\n\n[users]\nfile = \"{users}\"\n",
        data = dir.join("data").display(),
        users = dir.join("users").display(),
    );
    fs::write(dir.join("pillarbox.toml"), config).expect("write config");
}
