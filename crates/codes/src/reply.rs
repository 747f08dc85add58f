//! Reply codes, enhanced status codes and replies.

use std::fmt;

/// A basic reply code, `200..=599` (RFC 5321 4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct ReplyCode(u16);

/// The class of a reply, given by its first digit (RFC 5321 4.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum ReplyClass {
    /// 2yz: the requested action was completed.
    PositiveCompletion,
    /// 3yz: accepted, the server waits for more (354, 334).
    PositiveIntermediate,
    /// 4yz: not done now; the same request may succeed later.
    TransientNegative,
    /// 5yz: not done; repeating the same request will fail again.
    PermanentNegative,
}

impl ReplyCode {
    /// A code in `200..=599`; anything else is not an SMTP reply code.
    pub const fn new(code: u16) -> Option<Self> {
        if code >= 200 && code <= 599 {
            Some(Self(code))
        } else {
            None
        }
    }

    pub const fn get(self) -> u16 {
        self.0
    }

    pub const fn class(self) -> ReplyClass {
        match self.0 / 100 {
            2 => ReplyClass::PositiveCompletion,
            3 => ReplyClass::PositiveIntermediate,
            4 => ReplyClass::TransientNegative,
            _ => ReplyClass::PermanentNegative,
        }
    }
}

impl fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An enhanced status code `class.subject.detail` (RFC 3463 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct EnhancedCode {
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl EnhancedCode {
    pub const fn new(class: u8, subject: u16, detail: u16) -> Self {
        Self {
            class,
            subject,
            detail,
        }
    }

    /// Parses `4.2.2`. RFC 3463 2: class is 2, 4 or 5; subject and detail are
    /// one to three digits.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('.');
        let class = parts.next()?;
        let subject = parts.next()?;
        let detail = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        let num = |p: &str| -> Option<u16> {
            if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse().ok()
        };
        let class = match class {
            "2" => 2,
            "4" => 4,
            "5" => 5,
            _ => return None,
        };
        Some(Self::new(class, num(subject)?, num(detail)?))
    }
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// One reply, possibly multi-line. Every line carries the same code and, where
/// the reply has one, the same enhanced code (RFC 2034 3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: ReplyCode,
    pub enhanced: Option<EnhancedCode>,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn class(&self) -> ReplyClass {
        self.code.class()
    }

    pub fn is_positive(&self) -> bool {
        self.code.get() < 400
    }

    /// The reply as sent: `code-text` for every line but the last, `code text`
    /// for the last (RFC 5321 4.2.1), each ended by CRLF.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        use std::io::Write as _;
        let n = self.lines.len().max(1);
        for i in 0..n {
            let text = self.lines.get(i).map(String::as_str).unwrap_or("");
            let sep = if i + 1 < n { '-' } else { ' ' };
            // Formatted straight into `out` (writing to a Vec cannot fail):
            // no String per code, this runs for every reply.
            let _ = write!(out, "{}{}", self.code, sep);
            if let Some(e) = self.enhanced {
                let _ = write!(out, "{e}");
                if !text.is_empty() {
                    out.push(b' ');
                }
            }
            out.extend_from_slice(text.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The wire form as a string (for transcripts, tests and logs).
    pub fn to_wire(&self) -> String {
        let mut out = Vec::new();
        self.write_to(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.to_wire().trim_end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_reply_repeats_code_and_enhanced_code() {
        let r = Reply {
            code: ReplyCode::new(214).unwrap(),
            enhanced: Some(EnhancedCode::new(2, 0, 0)),
            lines: vec!["a".into(), "b".into()],
        };
        assert_eq!(r.to_wire(), "214-2.0.0 a\r\n214 2.0.0 b\r\n");
    }

    #[test]
    fn enhanced_code_parse_rejects_bad_class_and_long_fields() {
        assert_eq!(
            EnhancedCode::parse("4.2.2"),
            Some(EnhancedCode::new(4, 2, 2))
        );
        assert_eq!(EnhancedCode::parse("3.2.2"), None);
        assert_eq!(EnhancedCode::parse("4.2222.2"), None);
        assert_eq!(EnhancedCode::parse("4.2"), None);
    }

    #[test]
    fn class_follows_first_digit() {
        assert_eq!(
            ReplyCode::new(354).unwrap().class(),
            ReplyClass::PositiveIntermediate
        );
        assert_eq!(
            ReplyCode::new(452).unwrap().class(),
            ReplyClass::TransientNegative
        );
        assert!(ReplyCode::new(199).is_none());
        assert!(ReplyCode::new(600).is_none());
    }
}
