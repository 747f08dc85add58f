//! The exact record of a session: every line sent and received, when
//! (relative to the start of the connect), and whether it went under TLS.

use std::time::{Duration, Instant};

/// Which way a line went, or an event of the connection itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Client to server: a command.
    Sent,
    /// Client to server: a line of message content (DATA or a BDAT chunk).
    SentBody,
    /// Server to client: one reply line.
    Received,
    /// Not on the wire: connected, TLS established, closed ...
    Event,
}

/// One transcript line.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    /// Time since the connect began.
    #[serde(rename = "at_ms", serialize_with = "as_millis")]
    pub at: Duration,
    pub direction: Direction,
    /// Whether this line crossed the wire inside TLS.
    pub tls: bool,
    /// The line without its CRLF (lossy UTF-8), as on the wire, except for
    /// AUTH credentials, which are replaced by a note of their length.
    pub text: String,
    /// Index of the reply this line belongs to in the session's reply list
    /// (received lines only), so a reader can attach annotations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<usize>,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0)
}

/// How many content lines are recorded per message before the rest is
/// summarised in one entry: the transcript stays bounded for a large message.
pub const BODY_LINES_KEPT: usize = 200;

/// Every line of one session, in order.
#[derive(Clone, Debug)]
pub struct Transcript {
    start: Instant,
    entries: Vec<Entry>,
}

impl Transcript {
    pub fn new(start: Instant) -> Self {
        Transcript {
            start,
            entries: Vec::new(),
        }
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The instant the connect began.
    pub fn start(&self) -> Instant {
        self.start
    }

    pub(crate) fn push(
        &mut self,
        direction: Direction,
        tls: bool,
        text: String,
        reply: Option<usize>,
    ) {
        self.entries.push(Entry {
            at: self.start.elapsed(),
            direction,
            tls,
            text,
            reply,
        });
    }

    /// Records content as sent, one entry per line, at most
    /// [`BODY_LINES_KEPT`] lines then a summary.
    pub(crate) fn push_body(&mut self, tls: bool, bytes: &[u8]) {
        let mut kept = 0;
        let mut rest = bytes;
        while !rest.is_empty() {
            if kept == BODY_LINES_KEPT {
                let lines = rest.iter().filter(|&&b| b == b'\n').count();
                self.push(
                    Direction::Event,
                    tls,
                    format!(
                        "[{} more octets of content in about {lines} lines not shown]",
                        rest.len()
                    ),
                    None,
                );
                return;
            }
            let (line, tail) = crate::reply_reader::first_line(rest);
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            self.push(
                Direction::SentBody,
                tls,
                String::from_utf8_lossy(line).into_owned(),
                None,
            );
            kept += 1;
            rest = tail;
        }
    }

    /// The transcript as text: `[  0.012s] C: EHLO x`, `S:` for replies,
    /// `~` after the time for lines under TLS, `*` for events.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for e in &self.entries {
            out.push_str(&e.to_text());
            out.push('\n');
        }
        out
    }
}

impl Entry {
    /// One line of [`Transcript::to_text`].
    pub fn to_text(&self) -> String {
        let who = match self.direction {
            Direction::Sent | Direction::SentBody => "C:",
            Direction::Received => "S:",
            Direction::Event => "* ",
        };
        let tls = if self.tls { "~" } else { " " };
        format!("[{:>8.3}s]{tls}{who} {}", self.at.as_secs_f64(), self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_recorded_line_by_line_and_bounded() {
        let mut t = Transcript::new(Instant::now());
        let mut body = Vec::new();
        for i in 0..(BODY_LINES_KEPT + 10) {
            body.extend_from_slice(format!("line {i}\r\n").as_bytes());
        }
        t.push_body(false, &body);
        assert_eq!(t.entries().len(), BODY_LINES_KEPT + 1);
        assert_eq!(t.entries()[0].text, "line 0");
        assert_eq!(t.entries()[0].direction, Direction::SentBody);
        assert!(t.entries()[BODY_LINES_KEPT]
            .text
            .contains("10 lines not shown"));
    }
}
