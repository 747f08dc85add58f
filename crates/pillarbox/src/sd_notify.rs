//! The service manager's readiness protocol (systemd's `sd_notify(3)`): when
//! `NOTIFY_SOCKET` names a Unix datagram socket, `serve` sends it `READY=1`
//! once it is ready, `RELOADING=1` then `READY=1` around a SIGHUP reload, and
//! `STOPPING=1` when it starts draining. One datagram per message, a few
//! `KEY=value` lines each; written here over `UnixDatagram` rather than taken
//! from a crate.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// The environment variable the service manager sets to its socket.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// How long one send may block on a full socket queue before it is given up.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// A connection to the service manager's notification socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// The notifier for `NOTIFY_SOCKET`: `Ok(None)` when it is unset or empty
    /// (not run by a service manager that wants to hear), an error when it
    /// names a socket that cannot be used.
    pub fn from_env() -> io::Result<Option<Notifier>> {
        match std::env::var_os(NOTIFY_SOCKET) {
            Some(name) if !name.is_empty() => Notifier::connect(&name).map(Some),
            _ => Ok(None),
        }
    }

    /// A notifier for the socket `name`: a path (`/run/systemd/notify`), or an
    /// abstract socket name written with a leading `@`.
    pub fn connect(name: &OsStr) -> io::Result<Notifier> {
        let bytes = name.as_bytes();
        let addr = match bytes.split_first() {
            Some((b'@', abstract_name)) => abstract_addr(abstract_name)?,
            Some((b'/', _)) => SocketAddr::from_pathname(name)?,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "{NOTIFY_SOCKET}={}: neither a path nor an @abstract socket name",
                        name.to_string_lossy()
                    ),
                ))
            }
        };
        let socket = UnixDatagram::unbound()?;
        socket.set_write_timeout(Some(SEND_TIMEOUT))?;
        Ok(Notifier { socket, addr })
    }

    /// Sends `state` (newline-separated `KEY=value` assignments) as one datagram.
    pub fn send(&self, state: &str) -> io::Result<()> {
        let sent = self.socket.send_to_addr(state.as_bytes(), &self.addr)?;
        if sent != state.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("notification cut short: {sent} of {} bytes", state.len()),
            ));
        }
        Ok(())
    }

    /// `READY=1`: start-up, or a reload, is complete.
    pub fn ready(&self) -> io::Result<()> {
        self.send("READY=1")
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=` (the monotonic clock now, which a
    /// `Type=notify-reload` service manager compares with its reload request).
    pub fn reloading(&self) -> io::Result<()> {
        self.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}",
            monotonic_usec()?
        ))
    }

    /// `STOPPING=1`: the server is draining and will exit.
    pub fn stopping(&self) -> io::Result<()> {
        self.send("STOPPING=1")
    }
}

/// The address of the abstract socket `name` (Linux; no leading NUL given).
#[cfg(target_os = "linux")]
fn abstract_addr(name: &[u8]) -> io::Result<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

/// Abstract socket names exist on Linux only.
#[cfg(not(target_os = "linux"))]
fn abstract_addr(_name: &[u8]) -> io::Result<SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract socket names are Linux-only",
    ))
}

/// `CLOCK_MONOTONIC` in microseconds, the clock the service manager uses.
fn monotonic_usec() -> io::Result<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes into the timespec we own and pass by
    // a valid mutable reference; CLOCK_MONOTONIC is always available.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let micros = u64::try_from(ts.tv_nsec).unwrap_or(0) / 1_000;
    Ok(secs.saturating_mul(1_000_000).saturating_add(micros))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Receives one datagram as text, waiting at most a few seconds.
    fn recv(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).expect("a notification arrives");
        String::from_utf8(buf[..n].to_vec()).expect("notifications are UTF-8")
    }

    fn listener(socket: UnixDatagram) -> UnixDatagram {
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("set a read timeout");
        socket
    }

    #[test]
    fn sends_each_state_as_one_datagram_to_a_path() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("notify");
        let socket = listener(UnixDatagram::bind(&path).expect("bind the socket"));
        let notifier = Notifier::connect(path.as_os_str()).expect("connect");

        notifier.ready().expect("send READY");
        assert_eq!(recv(&socket), "READY=1");

        notifier.reloading().expect("send RELOADING");
        let reloading = recv(&socket);
        let mut lines = reloading.lines();
        assert_eq!(lines.next(), Some("RELOADING=1"), "{reloading:?}");
        let usec: u64 = lines
            .next()
            .and_then(|l| l.strip_prefix("MONOTONIC_USEC="))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no MONOTONIC_USEC= number in {reloading:?}"));
        assert!(usec > 0, "{reloading:?}");
        assert_eq!(lines.next(), None, "{reloading:?}");

        notifier.ready().expect("send READY");
        assert_eq!(recv(&socket), "READY=1");
        notifier.stopping().expect("send STOPPING");
        assert_eq!(recv(&socket), "STOPPING=1");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_at_sign_names_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("pillarbox-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract address");
        let socket = listener(UnixDatagram::bind_addr(&addr).expect("bind the abstract socket"));
        let notifier = Notifier::connect(OsStr::new(&format!("@{name}"))).expect("connect");
        notifier.ready().expect("send READY");
        assert_eq!(recv(&socket), "READY=1");
    }

    #[test]
    fn a_name_that_is_no_socket_address_is_refused() {
        let e = Notifier::connect(OsStr::new("relative/notify")).expect_err("refused");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(
            e.to_string().contains("NOTIFY_SOCKET=relative/notify"),
            "{e}"
        );
    }

    #[test]
    fn monotonic_clock_moves_forward() {
        let a = monotonic_usec().expect("read the clock");
        let b = monotonic_usec().expect("read the clock");
        assert!(b >= a);
    }
}
