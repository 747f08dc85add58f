//! The queue of the running server: listed, shown and steered through its
//! control socket (`<data_dir>/control.sock`), so nothing here writes the
//! queue itself and nothing races the server's own writes.

use pillarbox_queue::{Message, Summary};
use pillarbox_server::control::{request, Request, Response};

use crate::{Admin, AdminError};

/// What `queue show` returns.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QueueEntry {
    /// The message, with each recipient's state and history.
    pub message: Message,
    /// Its header section as stored.
    pub header: String,
    /// The server's clock when it answered (seconds since the epoch).
    pub now: u64,
}

impl Admin {
    /// Sends `req` to the running server; a refusal (no such message, say)
    /// is an error that says why.
    pub async fn queue(&self, req: Request) -> Result<Response, AdminError> {
        let data_dir = &self.config().data_dir;
        let r = request(data_dir, &req).await.map_err(AdminError::Control)?;
        if r.ok {
            Ok(r)
        } else {
            Err(AdminError::Queue(r.error.unwrap_or_default()))
        }
    }

    /// Every queued message as the listing shows it, oldest first, and the
    /// server's clock.
    pub async fn queue_list(&self) -> Result<(Vec<Summary>, u64), AdminError> {
        self.queue(Request::List)
            .await
            .map(|r| (r.summaries, r.now))
    }

    /// One message with its header.
    pub async fn queue_show(&self, id: &str) -> Result<QueueEntry, AdminError> {
        let r = self.queue(Request::Show { id: id.into() }).await?;
        let message = r
            .messages
            .into_iter()
            .next()
            .ok_or_else(|| AdminError::Queue(format!("no message {id} in the queue")))?;
        Ok(QueueEntry {
            message,
            header: r.header.unwrap_or_default(),
            now: r.now,
        })
    }
}
