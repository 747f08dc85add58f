//! The control socket, `<data_dir>/control.sock`: how `pillarbox queue`
//! steers the queue of the running server (list, show, retry, hold, release,
//! delete, bounce) without stopping it and without racing its writes: every
//! change goes through the server's own queue.
//!
//! One request per connection: a JSON object on one line (at most
//! [`MAX_REQUEST`] bytes), answered by one JSON object. The socket is made by
//! the account the server runs as, with mode 0600, and a peer whose uid is
//! neither that account's nor root's is refused (`SO_PEERCRED`), so the
//! queue is steered only by whom the files belong to.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use pillarbox_codes::Row;
use pillarbox_queue::{Message, QueueError, State, Summary};

use crate::server::Shared;

/// The socket's file name in the data directory.
pub const SOCKET: &str = "control.sock";

/// The longest request line.
pub const MAX_REQUEST: u64 = 64 * 1024;

/// How long one request may take, reading and answering.
const REQUEST_TIME: Duration = Duration::from_secs(10);

/// How long an operation waits for a delivery attempt that holds the message.
const BUSY_WAIT: Duration = Duration::from_secs(5);

/// How much of a message's header `show` returns at most.
const MAX_HEADER: usize = 64 * 1024;

/// One request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    /// Every queued message.
    List,
    /// One message, with its header.
    Show { id: String },
    /// The next attempt now: one message, or every one (`id` absent).
    Retry { id: Option<String> },
    /// No attempt until released.
    Hold { id: String },
    /// Attempts again.
    Release { id: String },
    /// Removed, no DSN.
    Delete { id: String },
    /// Every pending recipient fails now, with a DSN.
    Bounce { id: String },
}

/// One answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Response {
    /// The request was carried out.
    pub ok: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The messages concerned (all of them for `list`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<Message>,
    /// `list`: every message, as the listing shows it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub summaries: Vec<Summary>,
    /// `show`: the message's header section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// The time the server answered (seconds since the epoch), for ages.
    #[serde(default)]
    pub now: u64,
}

impl Response {
    fn error(e: impl std::fmt::Display) -> Self {
        Response {
            ok: false,
            error: Some(e.to_string()),
            messages: Vec::new(),
            summaries: Vec::new(),
            header: None,
            now: 0,
        }
    }
}

/// The socket's path for `data_dir`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET)
}

/// Serves the control socket until `shutdown` turns true. A socket file
/// left by an earlier process is replaced: the data directory's lock says
/// that process is gone.
pub(crate) async fn run(
    shared: Arc<Shared>,
    data_dir: PathBuf,
    mut shutdown: watch::Receiver<bool>,
) {
    let path = socket_path(&data_dir);
    let _ = std::fs::remove_file(&path);
    let listener = match UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(socket = %path.display(), error = %e, "cannot open the control socket; `pillarbox queue` will not reach this server");
            return;
        }
    };
    if let Err(e) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
        tracing::warn!(socket = %path.display(), error = %e, "cannot set the control socket's mode");
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let allowed = stream.peer_cred().map(|c| c.uid() == me || c.uid() == 0).unwrap_or(false);
                if !allowed {
                    tracing::warn!("control socket: a peer of another account was refused");
                    continue;
                }
                let shared = shared.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(REQUEST_TIME, serve(shared, stream)).await;
                });
            }
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    let _ = std::fs::remove_file(&path);
                    return;
                }
            }
        }
    }
}

async fn serve(shared: Arc<Shared>, stream: UnixStream) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST));
    let response = match reader.read_line(&mut line).await {
        Ok(_) if line.ends_with('\n') => match serde_json::from_str::<Request>(line.trim_end()) {
            Ok(req) => {
                tracing::info!(request = ?req, "control request");
                handle(&shared, req).await
            }
            Err(e) => Response::error(format!("bad request: {e}")),
        },
        Ok(_) => Response::error(format!(
            "a request is one line of at most {MAX_REQUEST} bytes"
        )),
        Err(e) => Response::error(format!("cannot read the request: {e}")),
    };
    let mut out = serde_json::to_vec(&response).unwrap_or_default();
    drop(response);
    out.push(b'\n');
    let _ = write.write_all(&out).await;
    drop(out);
    give_back_memory();
}

/// A listing of a large queue builds tens of megabytes that are freed at
/// once; glibc keeps freed memory inside its heaps until told otherwise, so
/// without this the server's RSS would keep the peak of its largest listing.
fn give_back_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of the heaps to the
    // system; it is safe to call at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Carries out one request.
pub(crate) async fn handle(shared: &Arc<Shared>, req: Request) -> Response {
    let queue = &shared.delivery.queue;
    let now = shared.services.clock.now();
    let result: Result<Answer, QueueError> = match req {
        Request::List => Ok(Answer {
            summaries: queue.summaries(),
            ..Answer::default()
        }),
        Request::Show { id } => match queue.get(&id) {
            Some(m) => Ok(Answer {
                header: Some(read_header(&queue.body_path(&id))),
                ..Answer::of(vec![m])
            }),
            None => Err(QueueError::NotFound(id)),
        },
        Request::Retry { id } => {
            let ids = match id {
                Some(id) => vec![id],
                None => queue.ids(),
            };
            let mut changed = Vec::new();
            let mut error = None;
            for id in ids {
                match modify(shared, &id, |m| {
                    let mut any = false;
                    for r in m.rcpts.iter_mut().filter(|r| r.is_pending()) {
                        r.next_attempt = 0;
                        any = true;
                    }
                    any
                })
                .await
                {
                    Ok(m) => changed.push(m),
                    Err(e) => error = Some(e),
                }
            }
            let ids = changed.iter().map(|m| m.id.clone()).collect();
            crate::delivery::attempt(shared, ids, true).await;
            match error {
                Some(e) => Err(e),
                // As they stand now; one delivered to the end has left the
                // queue and is shown as it was before the attempt.
                None => Ok(Answer::of(
                    changed
                        .into_iter()
                        .map(|m| queue.get(&m.id).unwrap_or(m))
                        .collect(),
                )),
            }
        }
        Request::Hold { id } => modify(shared, &id, |m| !std::mem::replace(&mut m.held, true))
            .await
            .map(|m| Answer::of(vec![m])),
        Request::Release { id } => {
            let r = modify(shared, &id, |m| std::mem::replace(&mut m.held, false)).await;
            if r.is_ok() {
                shared.delivery.deliver_now(id);
            }
            r.map(|m| Answer::of(vec![m]))
        }
        Request::Delete { id } => {
            let r = retry_busy(|| queue.delete(&id)).await;
            if let Ok(m) = &r {
                crate::delivery::give_back_room(&shared.settings(), m);
                tracing::warn!(queue_id = %m.id, "deleted from the queue by the administrator; no DSN");
            }
            r.map(|m| Answer::of(vec![m]))
        }
        Request::Bounce { id } => {
            let reply = Row::ReturnedByAdministrator.reply().to_string();
            let r = modify(shared, &id, |m| {
                let mut any = false;
                for r in m.rcpts.iter_mut().filter(|r| r.is_pending()) {
                    r.record(now, State::Failed, reply.clone(), 0);
                    any = true;
                }
                any
            })
            .await;
            if let Ok(m) = &r {
                // Failed before their first attempt: their room goes back.
                crate::delivery::give_back_room(&shared.settings(), m);
                tracing::warn!(queue_id = %id, "returned to the sender by the administrator");
                crate::delivery::attempt(shared, vec![id.clone()], true).await;
            }
            r.map(|m| Answer::of(vec![queue.get(&m.id).unwrap_or(m)]))
        }
    };
    match result {
        Ok(a) => Response {
            ok: true,
            error: None,
            messages: a.messages,
            summaries: a.summaries,
            header: a.header,
            now,
        },
        Err(e) => Response::error(e),
    }
}

/// What a request answers with, besides `ok` and the time.
#[derive(Default)]
struct Answer {
    messages: Vec<Message>,
    summaries: Vec<Summary>,
    header: Option<String>,
}

impl Answer {
    fn of(messages: Vec<Message>) -> Self {
        Answer {
            messages,
            ..Answer::default()
        }
    }
}

/// [`pillarbox_queue::Queue::modify`], waiting out a delivery attempt that
/// holds the message (they take milliseconds).
async fn modify(
    shared: &Arc<Shared>,
    id: &str,
    f: impl Fn(&mut Message) -> bool,
) -> Result<Message, QueueError> {
    retry_busy(|| shared.delivery.queue.modify(id, &f)).await
}

async fn retry_busy<T>(mut op: impl FnMut() -> Result<T, QueueError>) -> Result<T, QueueError> {
    let deadline = tokio::time::Instant::now() + BUSY_WAIT;
    loop {
        match op() {
            Err(QueueError::Busy(_)) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

/// The header section of a stored body (LF line ends), at most [`MAX_HEADER`].
fn read_header(path: &Path) -> String {
    use std::io::Read;
    let mut buf = Vec::new();
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.take(MAX_HEADER as u64).read_to_end(&mut buf);
    }
    let end = memchr::memmem::find(&buf, b"\n\n")
        .map(|i| i + 1)
        .unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Sends `req` to the server of `data_dir` and returns its answer (the
/// client side, for `pillarbox queue`).
pub async fn request(data_dir: &Path, req: &Request) -> std::io::Result<Response> {
    let path = socket_path(data_dir);
    let mut stream = UnixStream::connect(&path).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "cannot reach the server's control socket {}: {e} (is `pillarbox serve` running on this data directory, as this account?)",
                path.display()
            ),
        )
    })?;
    let mut line = serde_json::to_vec(req).map_err(std::io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    serde_json::from_slice(&answer)
        .map_err(|e| std::io::Error::other(format!("bad answer from the server: {e}")))
}
