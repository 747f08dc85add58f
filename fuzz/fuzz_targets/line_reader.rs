#![no_main]
//! Any server output, delivered in reads of a fuzzer-chosen size: the
//! client's `LineReader` reads the same reply codes, and stops with the same
//! error, as a plain model that cuts lines at LF and frames them with
//! `ReplyFramer`; `last_line` and `buffered` agree with the model too.
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use pillarbox_client::reply_reader::{ReplyError, ReplyFramer, ReplyLimits};
use pillarbox_client::{LineReader, ReadError};
use tokio::io::{AsyncRead, ReadBuf};

/// The bytes, at most `chunk` per read.
struct Chunked<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.chunk.min(buf.remaining()).min(self.data.len());
        let (now, later) = self.data.split_at(n);
        buf.put_slice(now);
        self.data = later;
        Poll::Ready(Ok(()))
    }
}

/// How the model's read of one reply ends.
#[derive(Debug, PartialEq)]
enum Outcome {
    Code(u16),
    TooLong,
    Closed,
    Reply(ReplyError),
}

/// One reply read from `rest` by the model; the last line read.
fn model_reply<'a>(rest: &mut &'a [u8], limits: ReplyLimits) -> (Outcome, &'a [u8]) {
    let mut framer = ReplyFramer::new(limits);
    loop {
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            let outcome = if rest.len() >= limits.max_line {
                Outcome::TooLong
            } else {
                Outcome::Closed
            };
            return (outcome, &[]);
        };
        if nl + 1 > limits.max_line {
            return (Outcome::TooLong, &[]);
        }
        let (line, tail) = rest.split_at(nl + 1);
        *rest = tail;
        match framer.push_line(line) {
            Err(e) => return (Outcome::Reply(e), line),
            Ok(l) if l.last => return (Outcome::Code(l.code.get()), line),
            Ok(_) => {}
        }
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let [max_line, max_lines, chunk, stream @ ..] = data else {
        return;
    };
    let limits = ReplyLimits {
        max_line: 1 + usize::from(*max_line) * 3,
        max_lines: 1 + usize::from(max_lines % 8),
    };
    let mut io = Chunked {
        data: stream,
        chunk: 1 + usize::from(*chunk),
    };
    let mut model = stream;
    let mut reader = LineReader::new(limits);
    runtime().block_on(async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
        loop {
            let got = match reader.read_reply_code(&mut io, deadline).await {
                Ok(code) => Outcome::Code(code.get()),
                Err(ReadError::Reply(ReplyError::LineTooLong { .. })) => Outcome::TooLong,
                Err(ReadError::Closed) => Outcome::Closed,
                Err(ReadError::Reply(e)) => Outcome::Reply(e),
                Err(e) => panic!("unexpected error {e}"),
            };
            let (expected, line) = model_reply(&mut model, limits);
            assert_eq!(got, expected);
            let Outcome::Code(_) = got else { return };
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            assert_eq!(reader.last_line(), line);
            // What the reader holds plus what it has not read yet is what
            // the model has left.
            let mut left = reader.buffered().to_vec();
            left.extend_from_slice(io.data);
            assert_eq!(left, model);
        }
    });
});
