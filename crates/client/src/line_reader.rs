//! Reply lines off a connection: one buffer per connection, lines cut at
//! LF, every read bounded by a deadline and every line by the line limit.
//!
//! [`crate::Client`] reads its lines here and assembles them with
//! [`crate::reply_reader::ReplyAssembler`]; a load generator, which wants
//! the code and nothing kept, calls [`LineReader::read_reply_code`], which
//! checks each line with [`ReplyFramer`] and allocates nothing per reply.

use std::io;

use pillarbox_codes::ReplyCode;
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::time::Instant;

use crate::reply_reader::{ReplyError, ReplyFramer, ReplyLimits};

/// Bytes of buffer to start with; it grows toward the line limit only when
/// a longer line arrives.
const INITIAL_BUFFER: usize = 4096;

/// Why no line (or no reply) was read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The deadline passed first.
    #[error("no reply in time")]
    Timeout,
    /// The socket (or TLS) read failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// End of stream before the end of a line.
    #[error("the server closed the connection")]
    Closed,
    /// The line broke RFC 5321 4.2 or a limit.
    #[error(transparent)]
    Reply(#[from] ReplyError),
}

/// Reads the lines of replies from a byte stream.
#[derive(Debug)]
pub struct LineReader {
    limits: ReplyLimits,
    framer: ReplyFramer,
    buf: Vec<u8>,
    /// Unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// The line last returned, CRLF included: `buf[last.0..last.1]`.
    last: (usize, usize),
}

impl LineReader {
    /// A reader for replies within `limits`.
    pub fn new(limits: ReplyLimits) -> Self {
        LineReader {
            limits,
            framer: ReplyFramer::new(limits),
            buf: vec![0; INITIAL_BUFFER.min(limits.max_line.max(1))],
            start: 0,
            end: 0,
            last: (0, 0),
        }
    }

    /// Bytes read from the stream and not yet returned as a line. RFC 3207
    /// 5: after the `220` to STARTTLS this must be empty.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// The line last read, without its line end; valid until the next read.
    pub fn last_line(&self) -> &[u8] {
        let line = &self.buf[self.last.0..self.last.1];
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        line.strip_suffix(b"\r").unwrap_or(line)
    }

    /// The next line, up to and with its LF (the CR is for the caller's
    /// checks to judge), read from `io` by `deadline`.
    pub async fn read_line<S: AsyncRead + Unpin + ?Sized>(
        &mut self,
        io: &mut S,
        deadline: Instant,
    ) -> Result<&[u8], ReadError> {
        let max = self.limits.max_line;
        loop {
            if let Some(nl) = self.buf[self.start..self.end]
                .iter()
                .position(|&b| b == b'\n')
            {
                let (from, to) = (self.start, self.start + nl + 1);
                if to - from > max {
                    return Err(ReplyError::LineTooLong { limit: max }.into());
                }
                self.start = to;
                self.last = (from, to);
                return Ok(&self.buf[from..to]);
            }
            if self.end - self.start >= max {
                return Err(ReplyError::LineTooLong { limit: max }.into());
            }
            // No whole line yet: move the partial line to the front, make
            // room for the longest line allowed, read more.
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
                self.last = (0, 0);
            }
            if self.end == self.buf.len() {
                let grown = (self.buf.len() * 2).min(max.max(1));
                self.buf.resize(grown, 0);
            }
            let read = tokio::time::timeout_at(deadline, io.read(&mut self.buf[self.end..])).await;
            match read {
                Err(_) => return Err(ReadError::Timeout),
                Ok(Err(e)) => return Err(ReadError::Io(e)),
                Ok(Ok(0)) => return Err(ReadError::Closed),
                Ok(Ok(n)) => self.end += n,
            }
        }
    }

    /// One whole reply (RFC 5321 4.2.1), checked line by line and not kept:
    /// its code. [`LineReader::last_line`] then holds its last line.
    pub async fn read_reply_code<S: AsyncRead + Unpin + ?Sized>(
        &mut self,
        io: &mut S,
        deadline: Instant,
    ) -> Result<ReplyCode, ReadError> {
        // A reply that failed part-way leaves the framer mid-reply; the
        // caller gives the connection up, but a fresh start is still right.
        self.framer = ReplyFramer::new(self.limits);
        loop {
            self.read_line(io, deadline).await?;
            let (from, to) = self.last;
            let line = self.framer.push_line(&self.buf[from..to])?;
            if line.last {
                return Ok(line.code);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[tokio::test]
    async fn replies_are_read_one_after_another_across_reads() {
        let (mut client, mut server) = tokio::io::duplex(64);
        let mut rd = LineReader::new(ReplyLimits::default());
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt as _;
            let _ = server.write_all(b"250-a\r\n250 b").await;
            let _ = server.write_all(b"\r\n550 5.1.1 no\r\n").await;
        });
        let code = rd.read_reply_code(&mut client, soon()).await.unwrap();
        assert_eq!(code.get(), 250);
        assert_eq!(rd.last_line(), b"250 b");
        let code = rd.read_reply_code(&mut client, soon()).await.unwrap();
        assert_eq!(code.get(), 550);
        assert_eq!(rd.last_line(), b"550 5.1.1 no");
        assert!(rd.buffered().is_empty());
        assert!(matches!(
            rd.read_reply_code(&mut client, soon()).await,
            Err(ReadError::Closed)
        ));
    }

    #[tokio::test]
    async fn a_line_over_the_limit_is_refused_and_a_long_one_fits() {
        let limits = ReplyLimits {
            max_line: 8192,
            max_lines: 4,
        };
        let long = format!("250 {}\r\n", "x".repeat(6000));
        let mut rd = LineReader::new(limits);
        let mut io = long.as_bytes();
        assert_eq!(
            rd.read_reply_code(&mut io, soon()).await.unwrap().get(),
            250
        );
        let mut rd = LineReader::new(ReplyLimits {
            max_line: 16,
            max_lines: 4,
        });
        let mut io = long.as_bytes();
        assert!(matches!(
            rd.read_reply_code(&mut io, soon()).await,
            Err(ReadError::Reply(ReplyError::LineTooLong { limit: 16 }))
        ));
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let (mut client, _server) = tokio::io::duplex(64);
        let mut rd = LineReader::new(ReplyLimits::default());
        let deadline = Instant::now() + Duration::from_millis(20);
        assert!(matches!(
            rd.read_reply_code(&mut client, deadline).await,
            Err(ReadError::Timeout)
        ));
    }
}
