//! The strict DATA decoder (RFC 5321 4.1.1.4, 4.5.2).
//!
//! Only `CRLF . CRLF` ends the data, where the first CRLF may be the one that
//! ended the DATA command (so `.` on the first line ends an empty message). A
//! line start is entered only after CRLF: after a bare LF or CR the decoder is
//! mid-line, so `\n.\r\n`, `\r\n.\n`, `\n.\n` and `\r.\r\n` never end the data
//! and nothing after them can start a second transaction (SMTP smuggling).
//! Bare CR and LF are recorded so the message can be refused after its end.

/// Decodes a DATA stream incrementally, across reads of any size.
#[derive(Debug)]
pub struct DotDecoder {
    state: State,
    /// Bytes of message content produced so far (counted even past the limit).
    size: u64,
    max_size: u64,
    bare_line_ending: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// After CRLF (or at the start): a '.' here is special.
    LineStart,
    /// '.' at a line start.
    Dot,
    /// ".\r" at a line start.
    DotCr,
    /// Inside a line.
    Text,
    /// A CR inside a line (or at its start), not yet known to be followed by LF.
    Cr,
}

/// What one call to [`DotDecoder::decode`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Input bytes consumed.
    pub consumed: usize,
    /// The terminating `CRLF.CRLF` was consumed.
    pub ended: bool,
}

impl DotDecoder {
    /// A decoder that stops producing output past `max_size` bytes of content
    /// (RFC 1870: the rest is read and dropped, and the message refused).
    pub fn new(max_size: u64) -> Self {
        Self {
            state: State::LineStart,
            size: 0,
            max_size,
            bare_line_ending: false,
        }
    }

    /// Content size so far, dot-unstuffed, CRLF counted as two.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The content exceeded `max_size`.
    pub fn oversize(&self) -> bool {
        self.size > self.max_size
    }

    /// A CR or LF not part of CRLF was seen.
    pub fn bare_line_ending(&self) -> bool {
        self.bare_line_ending
    }

    /// Decodes from `input`, appending message content to `out`. Stops after the
    /// end of data; what follows it is not consumed.
    ///
    /// Content is the input itself except for a line-start `.`, which is held
    /// until the next byte says what it is: dropped (dot-stuffing), the end of
    /// data (with its CRLF), or kept before a bare line ending. So the input is
    /// copied in runs between such dots, not byte by byte, and a line's end is
    /// found with `memchr2`.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Decoded {
        let mut i = 0;
        // Start of the input not yet copied to `out`: everything from here to
        // `i` is content as it came.
        let mut run = 0;
        while i < input.len() {
            match self.state {
                State::Text => match memchr::memchr2(b'\r', b'\n', &input[i..]) {
                    None => i = input.len(),
                    Some(at) => {
                        i += at;
                        if input[i] == b'\r' {
                            self.state = State::Cr;
                        } else {
                            // Bare LF: stays mid-line, so a following '.' is not at a line start.
                            self.bare_line_ending = true;
                        }
                        i += 1;
                    }
                },
                State::Cr => match input[i] {
                    b'\n' => {
                        self.state = State::LineStart;
                        i += 1;
                    }
                    b'\r' => {
                        self.bare_line_ending = true;
                        i += 1;
                    }
                    _ => {
                        // A bare CR; this byte is read again mid-line.
                        self.bare_line_ending = true;
                        self.state = State::Text;
                    }
                },
                State::LineStart => {
                    self.state = match input[i] {
                        b'.' => {
                            // Held back: not content until the next byte says so.
                            self.emit(&input[run..i], out);
                            run = i + 1;
                            State::Dot
                        }
                        b'\r' => State::Cr,
                        b'\n' => {
                            self.bare_line_ending = true;
                            State::Text
                        }
                        _ => State::Text,
                    };
                    i += 1;
                }
                State::Dot => match input[i] {
                    b'\r' => {
                        // ".\r" held back too: the end of data if an LF follows.
                        self.state = State::DotCr;
                        i += 1;
                        run = i;
                    }
                    b'\n' => {
                        // ".\n": not an end of data (smuggling), and a bare LF.
                        self.bare_line_ending = true;
                        self.emit(b".", out);
                        self.state = State::Text;
                        run = i;
                        i += 1;
                    }
                    _ => {
                        // RFC 5321 4.5.2: the first '.' of a line with more on it is removed.
                        self.state = State::Text;
                        run = i;
                    }
                },
                State::DotCr => {
                    if input[i] == b'\n' {
                        self.state = State::LineStart;
                        return Decoded {
                            consumed: i + 1,
                            ended: true,
                        };
                    }
                    // ".\r" then something else: a bare CR. Read this byte again mid-line.
                    self.bare_line_ending = true;
                    self.emit(b".\r", out);
                    self.state = State::Text;
                    run = i;
                }
            }
        }
        self.emit(&input[run..], out);
        Decoded {
            consumed: input.len(),
            ended: false,
        }
    }

    fn emit(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        let new_size = self.size.saturating_add(bytes.len() as u64);
        if new_size <= self.max_size {
            out.extend_from_slice(bytes);
        }
        self.size = new_size;
    }
}

/// Watches BDAT content for bare CR or LF (the same rule as DATA, so a
/// message is refused alike whichever way it came).
#[derive(Debug, Default)]
pub struct LineEndingCheck {
    pending_cr: bool,
    bare: bool,
}

impl LineEndingCheck {
    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match (self.pending_cr, b) {
                (true, b'\n') => self.pending_cr = false,
                (true, b'\r') => self.bare = true,
                (true, _) => {
                    self.bare = true;
                    self.pending_cr = false;
                }
                (false, b'\r') => self.pending_cr = true,
                (false, b'\n') => self.bare = true,
                _ => {}
            }
        }
    }

    /// At the end of the message: was any CR or LF not part of CRLF?
    pub fn finish(&self) -> bool {
        self.bare || self.pending_cr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8]) -> (Vec<u8>, Decoded, bool) {
        let mut d = DotDecoder::new(u64::MAX);
        let mut out = Vec::new();
        let r = d.decode(input, &mut out);
        (out, r, d.bare_line_ending())
    }

    #[test]
    fn dot_on_the_first_line_ends_an_empty_message() {
        let (out, r, bare) = run(b".\r\nQUIT\r\n");
        assert!(out.is_empty());
        assert_eq!(
            r,
            Decoded {
                consumed: 3,
                ended: true
            }
        );
        assert!(!bare);
    }

    #[test]
    fn dot_stuffed_lines_are_unstuffed() {
        let (out, r, _) = run(b"..first\r\nx\r\n..\r\n.\r\n");
        assert_eq!(out, b".first\r\nx\r\n.\r\n");
        assert!(r.ended);
    }

    #[test]
    fn bare_lf_dot_does_not_end_data() {
        for body in [
            &b"a\n.\nb\r\n.\r\n"[..],
            b"a\n.\r\nb\r\n.\r\n",
            b"a\r\n.\nb\r\n.\r\n",
            b"a\r.\r\nb\r\n.\r\n",
        ] {
            let (_, r, bare) = run(body);
            assert!(r.ended, "{body:?}");
            assert_eq!(r.consumed, body.len(), "ended early on {body:?}");
            assert!(bare, "{body:?}");
        }
    }

    #[test]
    fn end_split_across_every_boundary() {
        let body = b"Subject: x\r\n\r\n..hi\r\n.\r\nNEXT";
        for split in 0..body.len() {
            let mut d = DotDecoder::new(u64::MAX);
            let mut out = Vec::new();
            let a = d.decode(&body[..split], &mut out);
            assert!(!a.ended || split >= body.len() - 4);
            let total = if a.ended {
                a.consumed
            } else {
                let b = d.decode(&body[split..], &mut out);
                assert!(b.ended);
                split + b.consumed
            };
            assert_eq!(total, body.len() - 4);
            assert_eq!(out, b"Subject: x\r\n\r\n.hi\r\n");
        }
    }

    #[test]
    fn size_limit_stops_output_but_reads_to_the_end() {
        let mut d = DotDecoder::new(5);
        let mut out = Vec::new();
        let r = d.decode(b"0123456789\r\n.\r\n", &mut out);
        assert!(r.ended);
        assert!(d.oversize());
        assert!(out.len() <= 5);
    }

    #[test]
    fn bdat_line_ending_check() {
        let mut c = LineEndingCheck::default();
        c.feed(b"a\r");
        c.feed(b"\nb\r\n");
        assert!(!c.finish());
        let mut c = LineEndingCheck::default();
        c.feed(b"a\nb");
        assert!(c.finish());
        let mut c = LineEndingCheck::default();
        c.feed(b"a\r");
        assert!(c.finish());
    }
}
