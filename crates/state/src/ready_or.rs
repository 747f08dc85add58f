//! A future that is either a value at hand or a boxed future of it: an
//! object-safe async trait method answers from a cache (or with a decision
//! that needs no waiting) without allocating, and boxes only real waits.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A value now, or a boxed future of it.
pub enum ReadyOr<'a, T> {
    /// The value, until it is taken by the first poll.
    Ready(Option<T>),
    /// Something to wait for.
    Pending(Pin<Box<dyn Future<Output = T> + Send + 'a>>),
}

impl<'a, T> ReadyOr<'a, T> {
    /// The value, at once (no allocation).
    pub fn ready(value: T) -> Self {
        ReadyOr::Ready(Some(value))
    }

    /// A future to wait for, boxed.
    pub fn boxed(f: impl Future<Output = T> + Send + 'a) -> Self {
        ReadyOr::Pending(Box::pin(f))
    }
}

// The value is never pinned in place: it is moved out whole by the poll, and
// the pending future is pinned in its own box.
impl<T> Unpin for ReadyOr<'_, T> {}

impl<T> Future for ReadyOr<'_, T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.get_mut() {
            // Polled again after it completed: nothing more will come.
            ReadyOr::Ready(value) => value.take().map_or(Poll::Pending, Poll::Ready),
            ReadyOr::Pending(f) => f.as_mut().poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_ready_value_and_a_boxed_future_both_give_their_value() {
        assert_eq!(ReadyOr::ready(7).await, 7);
        assert_eq!(ReadyOr::boxed(async { 8 }).await, 8);
    }
}
