//! The DATA wire form of a message (RFC 5321 4.5.2, 3.3).

/// `message` as sent after `354`: every line that starts with `.` gets one
/// more (RFC 5321 4.5.2), a final CRLF is added if the message does not end
/// with one, then the end-of-data `.` CRLF (RFC 5321 4.1.1.4).
///
/// The message should already use CRLF line ends ([`to_crlf`]); a bare LF
/// is not a line end here, so a dot after it is not stuffed, exactly as a
/// strict server reads it.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 64 + 5);
    let mut at_line_start = true;
    let mut prev = 0u8;
    for &b in message {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = prev == b'\r' && b == b'\n';
        prev = b;
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Bare LF and bare CR made CRLF, so a message read from a Unix file can be
/// sent (RFC 5321 2.3.8: SMTP lines end with CRLF only).
pub fn to_crlf(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 32);
    let mut i = 0;
    while i < message.len() {
        match message[i] {
            b'\r' if message.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 2;
                continue;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_dots_are_doubled_on_every_line() {
        assert_eq!(
            dot_stuff(b".first\r\nmid.dle\r\n..two\r\n.\r\n"),
            b"..first\r\nmid.dle\r\n...two\r\n..\r\n.\r\n"
        );
    }

    #[test]
    fn missing_final_crlf_is_added_before_the_end_marker() {
        assert_eq!(dot_stuff(b"no newline"), b"no newline\r\n.\r\n");
    }

    #[test]
    fn empty_message_is_only_the_end_marker() {
        assert_eq!(dot_stuff(b""), b".\r\n");
    }

    #[test]
    fn dot_after_bare_lf_is_not_a_line_start() {
        assert_eq!(dot_stuff(b"a\n.b\r\n"), b"a\n.b\r\n.\r\n");
    }

    #[test]
    fn unix_line_ends_become_crlf() {
        assert_eq!(to_crlf(b"a\nb\r\nc\rd"), b"a\r\nb\r\nc\r\nd");
    }
}
