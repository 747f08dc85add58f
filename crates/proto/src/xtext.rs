//! xtext (RFC 3461 4), the encoding of the DSN parameters ENVID and ORCPT:
//! `xchar` is any ASCII character from `!` (33) to `~` (126) but `+` and `=`,
//! and any other octet is `+` followed by two uppercase hex digits.

use std::fmt;

/// Why a string is not xtext: the offset of the first octet that breaks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XtextError {
    /// Offset in the encoded string.
    pub at: usize,
}

impl fmt::Display for XtextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not xtext at offset {}", self.at)
    }
}

impl std::error::Error for XtextError {}

/// The octets `s` encodes. RFC 3461 4: `hexchar = "+" 2(%x30-39 / %x41-46)`,
/// so lowercase hex digits, a `+` without two digits and a bare `=` (or
/// anything outside 33..=126) are refused.
pub fn decode(s: &str) -> Result<Vec<u8>, XtextError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                let digit = |at: usize| {
                    b.get(at)
                        .and_then(|&d| upper_hex(d))
                        .ok_or(XtextError { at })
                };
                let (hi, lo) = (digit(i + 1)?, digit(i + 2)?);
                out.push((hi << 4) | lo);
                i += 3;
            }
            c if is_xchar(c) => {
                out.push(c);
                i += 1;
            }
            _ => return Err(XtextError { at: i }),
        }
    }
    Ok(out)
}

/// `bytes` as xtext: each octet that is an `xchar` as itself, any other as
/// `+XX` (RFC 3461 4: "+" and "=" and controls, space and non-ASCII encoded).
pub fn encode(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len());
    for &c in bytes {
        if is_xchar(c) {
            out.push(char::from(c));
        } else {
            out.push('+');
            out.push(char::from(HEX[usize::from(c >> 4)]));
            out.push(char::from(HEX[usize::from(c & 0xf)]));
        }
    }
    out
}

/// RFC 3461 4: `xchar`, an octet that stands for itself.
fn is_xchar(c: u8) -> bool {
    matches!(c, 33..=126) && c != b'+' && c != b'='
}

/// RFC 3461 4: hexchar's digits are uppercase only.
fn upper_hex(d: u8) -> Option<u8> {
    match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'A'..=b'F' => Some(d - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_reads_hexchars_and_literal_xchars() {
        assert_eq!(decode("a+2Bb+3D").as_deref(), Ok(&b"a+b="[..]));
        assert_eq!(decode("+20+00+FF").as_deref(), Ok(&b" \x00\xff"[..]));
        assert_eq!(decode("").as_deref(), Ok(&b""[..]));
        assert_eq!(
            decode("rfc822;alice@example.test").as_deref(),
            Ok(&b"rfc822;alice@example.test"[..])
        );
    }

    #[test]
    fn decode_refuses_lowercase_hex_and_short_hexchars() {
        assert_eq!(decode("+2b"), Err(XtextError { at: 2 }));
        assert_eq!(decode("+zz"), Err(XtextError { at: 1 }));
        assert_eq!(decode("ab+4"), Err(XtextError { at: 4 }));
        assert_eq!(decode("+"), Err(XtextError { at: 1 }));
    }

    #[test]
    fn decode_refuses_equals_space_and_non_ascii() {
        assert_eq!(decode("a=b"), Err(XtextError { at: 1 }));
        assert_eq!(decode("a b"), Err(XtextError { at: 1 }));
        assert_eq!(decode("\u{e9}"), Err(XtextError { at: 0 }));
        assert_eq!(decode("a\tb"), Err(XtextError { at: 1 }));
    }

    #[test]
    fn encode_escapes_plus_equals_space_controls_and_non_ascii() {
        assert_eq!(encode(b"a+b=c d"), "a+2Bb+3Dc+20d");
        assert_eq!(encode(b"\x00\x7f\xff"), "+00+7F+FF");
        assert_eq!(encode(b"<id@host.test>"), "<id@host.test>");
    }
}
