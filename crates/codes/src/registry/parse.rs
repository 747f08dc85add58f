//! A whole reply as people copy it: from a log, a bounce, a support ticket.
//!
//! ```text
//! 452-4.2.2 The email account that you tried to reach is over quota.
//! 452 4.2.2 Please direct the recipient to https://support.example/quota
//! host mx.example.net[192.0.2.7] said: 550 5.1.1 <a@example.net>: Recipient address rejected: User unknown (in reply to RCPT TO command)
//! Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup'
//! ```
//!
//! The provider's text is kept as given (only the repeated code prefixes of a
//! multi-line reply, RFC 5321 4.2.1, are taken off each line).

use crate::reply::EnhancedCode;

/// A reply found in pasted text.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ParsedReply {
    /// The basic code, `None` when only an enhanced code was given (`Status: 5.1.1`).
    pub code: Option<u16>,
    /// The enhanced code, when the reply has one.
    #[serde(serialize_with = "ser_enhanced")]
    pub enhanced: Option<EnhancedCode>,
    /// The text of each line, code prefixes removed.
    pub lines: Vec<String>,
    /// The provider's text: the lines joined by a space.
    pub text: String,
    /// Words before the reply (`host mx.example.net[192.0.2.7] said:`).
    pub prefix: Option<String>,
    /// The command the reply answered, where the bounce says so
    /// (Postfix `(in reply to RCPT TO command)`, Exim `after RCPT TO:<...>`).
    pub in_reply_to: Option<String>,
    /// Whether the reply had more than one line.
    pub multiline: bool,
}

fn ser_enhanced<S: serde::Serializer>(e: &Option<EnhancedCode>, s: S) -> Result<S::Ok, S::Error> {
    match e {
        Some(e) => s.collect_str(e),
        None => s.serialize_none(),
    }
}

/// Finds the reply in `s`: a basic code (`452`), optionally followed by an
/// enhanced code and text, on one line or several (`452-...` then `452 ...`),
/// with or without words around it. `None` when no code is found.
pub fn parse_reply_text(s: &str) -> Option<ParsedReply> {
    let normalized = normalize(s);
    let Some((start, code)) = find_basic_code(&normalized) else {
        return enhanced_only(&normalized);
    };
    let prefix_raw = normalized[..start].trim();
    let in_reply_to_before = command_in(prefix_raw);
    let prefix = clean_prefix(prefix_raw);
    let quote = opening_quote(prefix_raw);

    let rest = &normalized[start..];
    let code_str = code.to_string();
    let mut lines = Vec::new();
    let mut enhanced = None;
    let mut multiline = false;
    for (i, raw) in rest.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            if i > 0 && !lines.is_empty() {
                // A blank line ends the reply in a bounce.
                break;
            }
            continue;
        }
        let body = if let Some(after) = line.strip_prefix(code_str.as_str()) {
            match after.chars().next() {
                None => Some(""),
                Some('-') => {
                    multiline = true;
                    Some(&after[1..])
                }
                Some(' ') => Some(&after[1..]),
                Some(_) => None,
            }
        } else {
            None
        };
        let text = match body {
            Some(body) => {
                let body = body.trim_start();
                let (e, after_e) = split_enhanced(body);
                if enhanced.is_none() {
                    enhanced = e;
                }
                after_e
            }
            // A wrapped continuation line of a bounce.
            None if i > 0 => {
                multiline = true;
                line
            }
            None => line,
        };
        lines.push(text.trim().to_string());
    }

    // Trailing decorations of the paste: a closing quote, Exchange's `##`,
    // Postfix's `(in reply to ... command)`.
    let mut in_reply_to = in_reply_to_before;
    if let Some(last) = lines.last_mut() {
        if let Some(q) = quote {
            if let Some(stripped) = last.strip_suffix(q) {
                *last = stripped.trim_end().to_string();
            }
        }
        if let Some(stripped) = last.strip_suffix("##") {
            *last = stripped.trim_end().to_string();
        }
    }
    for line in &mut lines {
        if let Some((before, cmd)) = postfix_in_reply_to(line) {
            in_reply_to = Some(cmd);
            *line = before;
        }
    }
    while lines.last().is_some_and(|l| l.is_empty()) && lines.len() > 1 {
        lines.pop();
    }
    let text = lines
        .iter()
        .filter(|l| !l.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    Some(ParsedReply {
        code: Some(code),
        enhanced,
        lines,
        text,
        prefix,
        in_reply_to,
        multiline,
    })
}

/// A text with an enhanced code but no basic code (`Status: 5.1.1`).
fn enhanced_only(s: &str) -> Option<ParsedReply> {
    let mut offset = 0;
    for token in s.split_inclusive(|c: char| c.is_whitespace()) {
        let word = token.trim_end();
        let (e, _) = split_enhanced(word);
        if let Some(e) = e {
            let before = s[..offset].trim();
            let after = s[offset + token.len()..].trim();
            let lines: Vec<String> = after.lines().map(|l| l.trim().to_string()).collect();
            return Some(ParsedReply {
                code: None,
                enhanced: Some(e),
                text: lines
                    .iter()
                    .filter(|l| !l.is_empty())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" "),
                lines,
                prefix: clean_prefix(before),
                in_reply_to: None,
                multiline: false,
            });
        }
        offset += token.len();
    }
    None
}

/// Line ends to `\n`; a paste with a literal `\n` (from JSON or a log) split too.
fn normalize(s: &str) -> String {
    let s = s.replace("\r\n", "\n").replace('\r', "\n");
    if !s.contains('\n') && s.contains("\\n") {
        s.replace("\\r\\n", "\n").replace("\\n", "\n")
    } else {
        s
    }
}

/// The first three-digit reply code standing alone: at the start or after a
/// space, quote, colon, `#` or `(`; followed by a space, `-` or the end of a line.
/// A code followed by an enhanced code is preferred over an earlier bare number.
fn find_basic_code(s: &str) -> Option<(usize, u16)> {
    let bytes = s.as_bytes();
    let mut first: Option<(usize, u16)> = None;
    let mut i = 0;
    while i + 3 <= bytes.len() {
        let d = &bytes[i..i + 3];
        let boundary_before = i == 0
            || matches!(
                bytes[i - 1],
                b' ' | b'\t' | b'\n' | b'\'' | b'"' | b':' | b'#' | b'(' | b'=' | b'>' | b';'
            );
        let after = bytes.get(i + 3).copied();
        let boundary_after = matches!(after, None | Some(b' ' | b'-' | b'\n' | b'\'' | b'"'));
        if boundary_before
            && boundary_after
            && (b'2'..=b'5').contains(&d[0])
            && d[1].is_ascii_digit()
            && d[2].is_ascii_digit()
        {
            let code =
                u16::from(d[0] - b'0') * 100 + u16::from(d[1] - b'0') * 10 + u16::from(d[2] - b'0');
            let rest = s.get(i + 4..).unwrap_or("");
            if split_enhanced(rest.trim_start()).0.is_some() {
                return Some((i, code));
            }
            if first.is_none() {
                first = Some((i, code));
            }
        }
        i += 1;
    }
    first
}

/// An enhanced code at the start of `s`, and the text after it.
fn split_enhanced(s: &str) -> (Option<EnhancedCode>, &str) {
    let s = s.strip_prefix('#').unwrap_or(s);
    let end = s.find(|c: char| c.is_whitespace()).unwrap_or(s.len());
    let token = s[..end].trim_end_matches([':', ',', ';']);
    match EnhancedCode::parse(token) {
        Some(e) => (Some(e), s[end..].trim_start()),
        None => (None, s),
    }
}

fn opening_quote(prefix: &str) -> Option<char> {
    match prefix.chars().last() {
        Some(q @ ('\'' | '"')) => Some(q),
        _ => None,
    }
}

/// The prefix without a trailing opening quote or `#`.
fn clean_prefix(prefix: &str) -> Option<String> {
    let p = prefix.trim_end_matches(['\'', '"', '#']).trim();
    (!p.is_empty()).then(|| p.to_string())
}

/// Exim: `SMTP error from remote mail server after RCPT TO:<a@b>:`;
/// Exchange/others: `... after end of data:`.
fn command_in(prefix: &str) -> Option<String> {
    let lower = prefix.to_ascii_lowercase();
    let pos = lower.rfind(" after ")?;
    let after = &prefix[pos + 7..];
    let lower_after = after.to_ascii_lowercase();
    for (pat, name) in [
        ("rcpt to", "RCPT TO"),
        ("mail from", "MAIL FROM"),
        ("end of data", "end of DATA"),
        ("data", "DATA"),
        ("ehlo", "EHLO"),
        ("helo", "HELO"),
        ("auth", "AUTH"),
        ("starttls", "STARTTLS"),
        ("initial connection", "connection"),
        ("bdat", "BDAT"),
    ] {
        if lower_after.starts_with(pat) {
            return Some(name.to_string());
        }
    }
    None
}

/// Postfix: `... (in reply to RCPT TO command)`.
fn postfix_in_reply_to(line: &str) -> Option<(String, String)> {
    let pos = line.rfind("(in reply to ")?;
    let rest = &line[pos + "(in reply to ".len()..];
    let cmd = rest.strip_suffix(')')?.trim();
    let cmd = cmd.strip_suffix(" command").unwrap_or(cmd);
    Some((line[..pos].trim_end().to_string(), cmd.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_gmail_style_reply_keeps_provider_text() {
        let r = parse_reply_text(
            "452-4.2.2 The email account that you tried to reach is over quota. Please direct\n\
             452-4.2.2 the recipient to\n\
             452 4.2.2  https://support.google.com/mail/?p=OverQuotaTemp d2-20020a05 - gsmtp",
        )
        .unwrap();
        assert_eq!(r.code, Some(452));
        assert_eq!(r.enhanced, Some(EnhancedCode::new(4, 2, 2)));
        assert!(r.multiline);
        assert_eq!(r.lines.len(), 3);
        assert!(r
            .text
            .starts_with("The email account that you tried to reach is over quota."));
        assert!(r.text.ends_with("gsmtp"));
    }

    #[test]
    fn postfix_bounce_prefix_and_command_are_found() {
        let r = parse_reply_text(
            "host mx.example.net[192.0.2.7] said: 550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown in virtual mailbox table (in reply to RCPT TO command)",
        )
        .unwrap();
        assert_eq!(r.code, Some(550));
        assert_eq!(r.enhanced, Some(EnhancedCode::new(5, 1, 1)));
        assert_eq!(
            r.prefix.as_deref(),
            Some("host mx.example.net[192.0.2.7] said:")
        );
        assert_eq!(r.in_reply_to.as_deref(), Some("RCPT TO"));
        assert!(r.text.ends_with("virtual mailbox table"));
    }

    #[test]
    fn exchange_quoted_reply_loses_only_the_quotes() {
        let r = parse_reply_text(
            "Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup'",
        )
        .unwrap();
        assert_eq!(r.code, Some(550));
        assert_eq!(r.enhanced, Some(EnhancedCode::new(5, 1, 10)));
        assert_eq!(
            r.text,
            "RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"
        );
        assert_eq!(r.prefix.as_deref(), Some("Remote Server returned"));
    }

    #[test]
    fn exim_after_command_is_found() {
        let r = parse_reply_text(
            "SMTP error from remote mail server after RCPT TO:<a@example.org>:\n450 4.2.0 <a@example.org>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/example.org.html",
        )
        .unwrap();
        assert_eq!(r.code, Some(450));
        assert_eq!(r.in_reply_to.as_deref(), Some("RCPT TO"));
        assert!(r.text.contains("Greylisted"));
    }

    #[test]
    fn bare_code_and_code_without_enhanced_parse() {
        let r = parse_reply_text("354").unwrap();
        assert_eq!(r.code, Some(354));
        assert_eq!(r.enhanced, None);
        assert_eq!(r.text, "");
        let r = parse_reply_text("221 mx.example.org closing connection").unwrap();
        assert_eq!(r.enhanced, None);
        assert_eq!(r.text, "mx.example.org closing connection");
    }

    #[test]
    fn numbers_inside_addresses_are_not_codes() {
        assert!(parse_reply_text("connect to 192.0.2.250 failed").is_none());
        let r = parse_reply_text("host [203.0.113.5] said: 421 4.7.0 Try again later").unwrap();
        assert_eq!(r.code, Some(421));
    }

    #[test]
    fn enhanced_code_alone_is_found() {
        let r = parse_reply_text("Status: 5.1.1").unwrap();
        assert_eq!(r.code, None);
        assert_eq!(r.enhanced, Some(EnhancedCode::new(5, 1, 1)));
        assert_eq!(r.prefix.as_deref(), Some("Status:"));
    }

    #[test]
    fn literal_backslash_n_splits_lines() {
        let r = parse_reply_text("452-4.2.2 over quota\\n452 4.2.2 try later").unwrap();
        assert_eq!(r.lines, vec!["over quota", "try later"]);
    }
}
