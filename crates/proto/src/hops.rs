//! The routing loop check of RFC 5321 6.3: counting the `Received:` header
//! fields of a message as its bytes stream past, read by read, in constant
//! memory.

/// Counts the `Received:` fields of a message's header section (RFC 5322
/// 2.2, 3.6.7): lines that begin with `Received:`, in any case, before the
/// first empty line. A continuation line (one that begins with a space or a
/// tab) is part of the field before it, so it is never counted; neither is a
/// `Received:` in the body. Feed it the message in wire form (CRLF line ends),
/// cut anywhere: the count does not depend on where the reads end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReceivedCounter {
    state: State,
    count: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    /// At the start of a header line.
    #[default]
    LineStart,
    /// A CR at the start of a line: the empty line that ends the header
    /// section, if LF follows.
    LineStartCr,
    /// The line's first bytes match this many of [`FIELD`].
    Name(u8),
    /// Within a line that is no new `Received:` field: skipped to its LF.
    Rest,
    /// Past the header section.
    Body,
}

/// The field name and its colon, lowercase (RFC 5322 1.2.2: field names are
/// case-insensitive).
const FIELD: &[u8] = b"received:";

impl ReceivedCounter {
    /// A counter at the start of a message.
    pub const fn new() -> Self {
        Self {
            state: State::LineStart,
            count: 0,
        }
    }

    /// The fields counted so far (saturating).
    pub const fn count(&self) -> u32 {
        self.count
    }

    /// The header section has ended: nothing more will be counted.
    pub fn header_done(&self) -> bool {
        self.state == State::Body
    }

    /// Reads the next bytes of the message.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while let Some((&b, rest)) = bytes.split_first() {
            match self.state {
                State::Body => return,
                // Most of a header section is field bodies: jump to the line end.
                State::Rest => match memchr::memchr(b'\n', bytes) {
                    Some(i) => {
                        self.state = State::LineStart;
                        bytes = &bytes[i + 1..];
                    }
                    None => return,
                },
                _ => {
                    self.step(b);
                    bytes = rest;
                }
            }
        }
    }

    fn step(&mut self, b: u8) {
        let matched = match self.state {
            State::LineStart => match b {
                b'\r' => {
                    self.state = State::LineStartCr;
                    return;
                }
                // RFC 5322 2.1: an empty line ends the header section (a bare
                // LF refuses the message anyway; it ends the count here too).
                b'\n' => {
                    self.state = State::Body;
                    return;
                }
                _ => 0,
            },
            State::LineStartCr => {
                self.state = if b == b'\n' { State::Body } else { State::Rest };
                return;
            }
            State::Name(n) => usize::from(n),
            State::Rest | State::Body => return,
        };
        self.state = if b == b'\n' {
            State::LineStart
        } else if b.to_ascii_lowercase() != FIELD[matched] {
            State::Rest
        } else if matched + 1 == FIELD.len() {
            self.count = self.count.saturating_add(1);
            State::Rest
        } else {
            // FIELD is 9 bytes: the count of matched bytes fits.
            State::Name((matched + 1) as u8)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(message: &[u8]) -> u32 {
        let mut c = ReceivedCounter::new();
        c.feed(message);
        c.count()
    }

    #[test]
    fn counts_received_fields_of_the_header_section_only() {
        let m = b"Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\n\
                  RECEIVED: from c\r\n\
                  \tby d; Mon, 1 Jan 2024 00:00:00 +0000\r\n\
                  received:from e\r\n\
                  Subject: Received: not a field\r\n\
                  X-Received: neither\r\n\
                  \r\n\
                  Received: in the body\r\n";
        assert_eq!(count(m), 3);
    }

    #[test]
    fn continuation_lines_are_not_new_fields() {
        let m = b"Received: from a\r\n Received: folded\r\n\tReceived: folded\r\n\r\n";
        assert_eq!(count(m), 1);
    }

    #[test]
    fn a_name_without_its_colon_is_not_counted() {
        assert_eq!(
            count(b"Received from a\r\nReceived\r\nReceive: x\r\n\r\n"),
            0
        );
    }

    #[test]
    fn a_field_split_across_reads_counts_once() {
        let m = b"Subject: x\r\nReceived: from a\r\n\r\nReceived: body\r\n";
        for cut in 0..=m.len() {
            let mut c = ReceivedCounter::new();
            c.feed(&m[..cut]);
            c.feed(&m[cut..]);
            assert_eq!(c.count(), 1, "cut at {cut}");
            assert!(c.header_done());
        }
        let mut c = ReceivedCounter::new();
        for b in m.iter() {
            c.feed(std::slice::from_ref(b));
        }
        assert_eq!(c.count(), 1);
    }

    #[test]
    fn a_message_without_a_body_counts_to_its_end() {
        assert_eq!(count(b"Received: a\r\nReceived: b\r\n"), 2);
        assert_eq!(count(b"Received: a\r\nReceived:"), 2);
        assert_eq!(count(b""), 0);
    }
}
