//! The multi-line reply reader, sans-IO: lines in, [`Reply`] out.
//!
//! RFC 5321 4.2: every line but the last is `code-text`, the last is
//! `code text` (or the bare code), each ended by CRLF, every line with the
//! same code. RFC 2034 3: where the server speaks enhanced status codes,
//! each line's text starts with the same one. Anything else is refused with
//! a [`ReplyError`] that says what was wrong, so a diagnostic never guesses.

use pillarbox_codes::{EnhancedCode, Reply, ReplyCode};

/// Bounds on one reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyLimits {
    /// Octets in one line, CRLF included. RFC 5321 4.5.3.1.5 says 512; real
    /// servers send longer lines (long HELP texts, provider URLs), so the
    /// default is generous but bounded.
    pub max_line: usize,
    /// Lines in one reply (a long EHLO or HELP).
    pub max_lines: usize,
}

impl Default for ReplyLimits {
    fn default() -> Self {
        ReplyLimits {
            max_line: 4096,
            max_lines: 256,
        }
    }
}

/// Why a reply was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// The line does not start with a three-digit code followed by `-`, a
    /// space or the end of the line (RFC 5321 4.2).
    #[error("malformed reply line {line:?}: {reason}")]
    Malformed { line: String, reason: &'static str },
    /// The line is not ended by CRLF (RFC 5321 2.3.8).
    #[error("reply line not ended by CRLF: {line:?}")]
    NotCrlf { line: String },
    /// A line longer than [`ReplyLimits::max_line`].
    #[error("reply line longer than {limit} octets")]
    LineTooLong { limit: usize },
    /// More lines than [`ReplyLimits::max_lines`].
    #[error("reply longer than {limit} lines")]
    TooManyLines { limit: usize },
    /// A continuation line with another code than the first (RFC 5321 4.2.1).
    #[error("reply changes its code from {first} to {line:?}")]
    CodeChanged { first: u16, line: String },
}

/// One checked line of a reply, borrowed from the line as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyLine<'a> {
    /// The line's code, the same on every line of the reply.
    pub code: ReplyCode,
    /// `code SP text` or the bare code: the reply ends with this line.
    pub last: bool,
    /// The text after the code and its separator, without CRLF.
    pub text: &'a [u8],
}

/// Checks the lines of one reply against RFC 5321 4.2 and the limits
/// without keeping them: nothing is allocated unless a line is refused.
/// A load generator reads its replies with this alone; [`ReplyAssembler`]
/// adds the texts.
#[derive(Clone, Debug)]
pub struct ReplyFramer {
    limits: ReplyLimits,
    code: Option<ReplyCode>,
    lines: usize,
}

impl ReplyFramer {
    /// A framer waiting for the first line of a reply.
    pub fn new(limits: ReplyLimits) -> Self {
        ReplyFramer {
            limits,
            code: None,
            lines: 0,
        }
    }

    /// One line, exactly as read, CRLF included. After the last line of a
    /// reply the framer waits for the first line of the next one.
    pub fn push_line<'a>(&mut self, raw: &'a [u8]) -> Result<ReplyLine<'a>, ReplyError> {
        if raw.len() > self.limits.max_line {
            return Err(ReplyError::LineTooLong {
                limit: self.limits.max_line,
            });
        }
        let shown = || String::from_utf8_lossy(raw).trim_end().to_string();
        let Some(body) = raw.strip_suffix(b"\r\n") else {
            return Err(ReplyError::NotCrlf { line: shown() });
        };
        if body.contains(&b'\r') || body.contains(&b'\n') {
            return Err(ReplyError::Malformed {
                line: shown(),
                reason: "bare CR or LF inside the line",
            });
        }
        let (code, last, text) = split_line(body).map_err(|reason| ReplyError::Malformed {
            line: shown(),
            reason,
        })?;
        match self.code {
            None => self.code = Some(code),
            Some(first) if first != code => {
                return Err(ReplyError::CodeChanged {
                    first: first.get(),
                    line: shown(),
                })
            }
            Some(_) => {}
        }
        if self.lines >= self.limits.max_lines {
            return Err(ReplyError::TooManyLines {
                limit: self.limits.max_lines,
            });
        }
        self.lines += 1;
        if last {
            self.code = None;
            self.lines = 0;
        }
        Ok(ReplyLine { code, last, text })
    }

    /// True when part of a reply has been read.
    pub fn in_progress(&self) -> bool {
        self.code.is_some()
    }
}

/// Collects the lines of one reply. Feed it each line as read (CRLF
/// included); it answers `Some(reply)` after the last line.
#[derive(Clone, Debug)]
pub struct ReplyAssembler {
    framer: ReplyFramer,
    texts: Vec<String>,
}

impl ReplyAssembler {
    /// An assembler waiting for the first line of a reply.
    pub fn new(limits: ReplyLimits) -> Self {
        ReplyAssembler {
            framer: ReplyFramer::new(limits),
            texts: Vec::new(),
        }
    }

    /// One line, exactly as read, CRLF included.
    pub fn push_line(&mut self, raw: &[u8]) -> Result<Option<Reply>, ReplyError> {
        let line = self.framer.push_line(raw)?;
        // Servers are asked for 7-bit text (RFC 5321 4.2); anything else is
        // kept, shown lossily, not refused.
        self.texts
            .push(String::from_utf8_lossy(line.text).into_owned());
        if !line.last {
            return Ok(None);
        }
        let texts = std::mem::take(&mut self.texts);
        Ok(Some(build_reply(line.code, texts)))
    }

    /// True when part of a reply has been read.
    pub fn in_progress(&self) -> bool {
        self.framer.in_progress()
    }
}

/// `250-text` -> (250, false, "text"); `250 text` and `250` -> last line.
fn split_line(body: &[u8]) -> Result<(ReplyCode, bool, &[u8]), &'static str> {
    if body.len() < 3 || !body[..3].iter().all(u8::is_ascii_digit) {
        return Err("does not start with a three-digit code");
    }
    // RFC 5321 4.2: first digit 2..5, second 0..5.
    if !(b'2'..=b'5').contains(&body[0]) || body[1] > b'5' {
        return Err("not an SMTP reply code (first digit 2-5, second 0-5)");
    }
    let value = u16::from(body[0] - b'0') * 100
        + u16::from(body[1] - b'0') * 10
        + u16::from(body[2] - b'0');
    let code = ReplyCode::new(value).ok_or("not an SMTP reply code")?;
    match body.get(3) {
        None => Ok((code, true, &[])),
        Some(b' ') => Ok((code, true, &body[4..])),
        Some(b'-') => Ok((code, false, &body[4..])),
        Some(_) => Err("the code is not followed by a space, '-' or the end of the line"),
    }
}

/// The enhanced code is taken from the first line (RFC 2034 3: every line
/// carries the same one) and removed from each line that repeats it.
fn build_reply(code: ReplyCode, texts: Vec<String>) -> Reply {
    // RFC 3463 2 has no class 3: a 3xx reply's text is data (a SASL
    // challenge, the 354 prompt). A class that disagrees with the code
    // (`452 5.2.2`) is kept as sent: `pillarbox_codes::check` reports it.
    let enhanced = if code.get() / 100 == 3 {
        None
    } else {
        texts.first().and_then(|t| leading_enhanced(t))
    };
    let lines = texts
        .into_iter()
        .map(|t| match enhanced {
            // RFC 2034 3: `status-code SP text`: one space goes with the
            // code, any more belong to the text, so the reply prints back
            // (`Reply::to_wire`) as it was read.
            Some(e) if leading_enhanced(&t) == Some(e) => match t.split_once(' ') {
                Some((_, text)) => text.to_string(),
                None => String::new(),
            },
            _ => t,
        })
        .collect();
    Reply {
        code,
        enhanced,
        lines,
    }
}

/// `4.2.2 mailbox full` -> 4.2.2.
fn leading_enhanced(text: &str) -> Option<EnhancedCode> {
    let token = text.split(' ').next()?;
    EnhancedCode::parse(token)
}

/// The first line of `text` with its LF (or all of it, when it has none), and
/// what follows.
pub(crate) fn first_line(text: &[u8]) -> (&[u8], &[u8]) {
    let end = text
        .iter()
        .position(|&b| b == b'\n')
        .map_or(text.len(), |i| i + 1);
    text.split_at(end)
}

/// Parses whole reply text (every line CRLF-ended), for tests and tools.
pub fn parse_reply(text: &[u8], limits: ReplyLimits) -> Result<Reply, ReplyError> {
    let mut assembler = ReplyAssembler::new(limits);
    let mut rest = text;
    while !rest.is_empty() {
        let (line, tail) = first_line(rest);
        if let Some(reply) = assembler.push_line(line)? {
            if !tail.is_empty() {
                return Err(ReplyError::Malformed {
                    line: String::from_utf8_lossy(tail).trim_end().to_string(),
                    reason: "text after the last line of the reply",
                });
            }
            return Ok(reply);
        }
        rest = tail;
    }
    Err(ReplyError::Malformed {
        line: String::from_utf8_lossy(text).trim_end().to_string(),
        reason: "the reply has no last line (`code SP text`)",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Reply, ReplyError> {
        parse_reply(text.as_bytes(), ReplyLimits::default())
    }

    #[test]
    fn multi_line_reply_keeps_every_line_and_one_code() {
        let r = parse("250-mx.example.test\r\n250-PIPELINING\r\n250 SIZE 1000\r\n").unwrap();
        assert_eq!(r.code.get(), 250);
        assert_eq!(r.enhanced, None);
        assert_eq!(r.lines, ["mx.example.test", "PIPELINING", "SIZE 1000"]);
    }

    #[test]
    fn enhanced_code_is_parsed_and_stripped_from_every_line() {
        let r = parse("452-4.2.2 mailbox full\r\n452 4.2.2 try later\r\n").unwrap();
        assert_eq!(r.enhanced, Some(EnhancedCode::new(4, 2, 2)));
        assert_eq!(r.lines, ["mailbox full", "try later"]);
    }

    #[test]
    fn enhanced_code_takes_one_space_and_the_reply_prints_back_as_read() {
        let text = "452-4.2.2  indented\r\n452- no code here\r\n452 4.2.2 last\r\n";
        let r = parse(text).unwrap();
        assert_eq!(r.lines, [" indented", " no code here", "last"]);
        assert_eq!(parse(&r.to_wire()).unwrap(), r);
    }

    #[test]
    fn intermediate_reply_text_is_never_an_enhanced_code() {
        let r = parse("334 VXNlcm5hbWU6\r\n").unwrap();
        assert_eq!(r.enhanced, None);
        assert_eq!(r.lines, ["VXNlcm5hbWU6"]);
    }

    #[test]
    fn bare_code_is_a_last_line() {
        let r = parse("250\r\n").unwrap();
        assert_eq!(r.lines, [""]);
        let r = parse("250-first\r\n250-\r\n250\r\n").unwrap();
        assert_eq!(r.lines, ["first", "", ""]);
    }

    #[test]
    fn line_without_crlf_is_refused() {
        assert!(matches!(parse("250 ok\n"), Err(ReplyError::NotCrlf { .. })));
    }

    #[test]
    fn non_numeric_or_out_of_range_code_is_refused() {
        assert!(matches!(
            parse("hello\r\n"),
            Err(ReplyError::Malformed { .. })
        ));
        assert!(matches!(
            parse("25 ok\r\n"),
            Err(ReplyError::Malformed { .. })
        ));
        assert!(matches!(
            parse("199 ok\r\n"),
            Err(ReplyError::Malformed { .. })
        ));
        assert!(matches!(
            parse("260 ok\r\n"),
            Err(ReplyError::Malformed { .. })
        ));
        assert!(matches!(
            parse("250ok\r\n"),
            Err(ReplyError::Malformed { .. })
        ));
    }

    #[test]
    fn code_change_inside_a_reply_is_refused() {
        assert!(matches!(
            parse("250-a\r\n251 b\r\n"),
            Err(ReplyError::CodeChanged { first: 250, .. })
        ));
    }

    #[test]
    fn reply_without_last_line_is_refused() {
        assert!(matches!(
            parse("250-a\r\n"),
            Err(ReplyError::Malformed { .. })
        ));
    }

    #[test]
    fn too_long_line_is_refused() {
        let limits = ReplyLimits {
            max_line: 16,
            max_lines: 4,
        };
        let long = format!("250 {}\r\n", "x".repeat(20));
        assert_eq!(
            parse_reply(long.as_bytes(), limits),
            Err(ReplyError::LineTooLong { limit: 16 })
        );
    }

    #[test]
    fn too_many_lines_are_refused() {
        let limits = ReplyLimits {
            max_line: 100,
            max_lines: 2,
        };
        assert_eq!(
            parse_reply(b"250-a\r\n250-b\r\n250 c\r\n", limits),
            Err(ReplyError::TooManyLines { limit: 2 })
        );
    }

    #[test]
    fn assembler_reads_consecutive_replies() {
        let mut a = ReplyAssembler::new(ReplyLimits::default());
        assert_eq!(a.push_line(b"250-a\r\n").unwrap(), None);
        assert!(a.in_progress());
        let first = a.push_line(b"250 b\r\n").unwrap().unwrap();
        assert_eq!(first.lines, ["a", "b"]);
        assert!(!a.in_progress());
        let second = a.push_line(b"354 go ahead\r\n").unwrap().unwrap();
        assert_eq!(second.code.get(), 354);
    }

    /// The code of one line (CRLF added), as the framer reads it.
    fn line_code(line: &[u8]) -> Option<u16> {
        let raw = [line, b"\r\n"].concat();
        ReplyFramer::new(ReplyLimits::default())
            .push_line(&raw)
            .ok()
            .map(|l| l.code.get())
    }

    #[test]
    fn reply_codes_parse_strictly() {
        assert_eq!(line_code(b"250 ok"), Some(250));
        assert_eq!(line_code(b"250-PIPELINING"), Some(250));
        assert_eq!(line_code(b"354"), Some(354));
        assert_eq!(line_code(b"25x ok"), None);
        assert_eq!(line_code(b"250x"), None);
    }

    #[test]
    fn framer_keeps_no_text_and_resets_after_the_last_line() {
        let mut f = ReplyFramer::new(ReplyLimits::default());
        let first = f.push_line(b"250-a\r\n").unwrap();
        assert!(!first.last);
        assert!(f.in_progress());
        let last = f.push_line(b"250 b\r\n").unwrap();
        assert_eq!(
            (last.code.get(), last.last, last.text),
            (250, true, &b"b"[..])
        );
        assert!(!f.in_progress());
        assert!(f.push_line(b"550 no\r\n").unwrap().last);
    }
}
