//! Envelope addresses: RFC 5321 4.1.2 paths and mailboxes, RFC 6531 for UTF-8.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// RFC 5321 4.5.3.1.1: a local part is at most 64 octets.
pub const MAX_LOCAL_PART: usize = 64;
/// RFC 5321 4.5.3.1.2: a domain is at most 255 octets.
pub const MAX_DOMAIN: usize = 255;
/// RFC 5321 4.5.3.1.3: a path, brackets included, is at most 256 octets.
pub const MAX_PATH: usize = 256;

/// Why an address was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressError {
    /// Not of the RFC 5321 form.
    Syntax,
    /// Non-ASCII where SMTPUTF8 was not given (RFC 6531 3.4).
    NeedsUtf8,
}

/// The domain of a mailbox or of EHLO: a name or an address literal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Domain {
    /// A domain name as written (U-labels kept as UTF-8).
    Name(String),
    /// `[192.0.2.1]`, `[IPv6:2001:db8::1]` or `[tag:content]`.
    Literal(AddressLiteral),
}

/// RFC 5321 4.1.3 address literals.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AddressLiteral {
    V4(Ipv4Addr),
    V6(Ipv6Addr),
    /// General-address-literal: `Standardized-tag ":" 1*dcontent`.
    General {
        tag: String,
        content: String,
    },
}

impl Domain {
    /// The name in lower case, for comparisons with configured domains.
    pub fn lowercase(&self) -> String {
        match self {
            Domain::Name(n) => n.to_lowercase(),
            Domain::Literal(l) => l.to_string().to_lowercase(),
        }
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Domain::Name(n) => f.write_str(n),
            Domain::Literal(l) => write!(f, "{l}"),
        }
    }
}

impl fmt::Display for AddressLiteral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressLiteral::V4(a) => write!(f, "[{a}]"),
            AddressLiteral::V6(a) => write!(f, "[IPv6:{a}]"),
            AddressLiteral::General { tag, content } => write!(f, "[{tag}:{content}]"),
        }
    }
}

/// A mailbox `local-part@domain`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Mailbox {
    /// The local part as written, quotes included when quoted.
    pub local: String,
    pub domain: Domain,
}

impl Mailbox {
    /// The local part with quoting removed (`"a b"` -> `a b`), as a mailbox name.
    pub fn local_unquoted(&self) -> String {
        unquote(&self.local)
    }

    /// Whether any part is non-ASCII (needs SMTPUTF8 to be relayed).
    pub fn is_utf8(&self) -> bool {
        !self.local.is_ascii() || !self.domain.to_string().is_ascii()
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// The MAIL FROM path: a mailbox or the null path `<>` (RFC 5321 4.5.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReversePath {
    Null,
    Mailbox(Mailbox),
}

impl fmt::Display for ReversePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReversePath::Null => f.write_str("<>"),
            ReversePath::Mailbox(m) => write!(f, "<{m}>"),
        }
    }
}

/// The RCPT TO path: a mailbox or `<Postmaster>` with no domain (RFC 5321 4.1.1.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForwardPath {
    Postmaster,
    Mailbox(Mailbox),
}

impl fmt::Display for ForwardPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardPath::Postmaster => f.write_str("<Postmaster>"),
            ForwardPath::Mailbox(m) => write!(f, "<{m}>"),
        }
    }
}

/// Splits `<path> params` into the bracketed path and the rest.
/// Returns the text inside the brackets and what follows the closing one.
pub fn split_path(s: &str) -> Result<(&str, &str), AddressError> {
    let rest = s.strip_prefix('<').ok_or(AddressError::Syntax)?;
    // A '>' may appear inside a quoted local part; find the closing one outside quotes.
    let bytes = rest.as_bytes();
    let mut i = 0;
    let mut quoted = false;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'>' if !quoted => {
                let inner = &rest[..i];
                let after = &rest[i + 1..];
                if !after.is_empty() && !after.starts_with(' ') {
                    return Err(AddressError::Syntax);
                }
                if inner.len() + 2 > MAX_PATH {
                    return Err(AddressError::Syntax);
                }
                return Ok((inner, after));
            }
            _ => {}
        }
        i += 1;
    }
    Err(AddressError::Syntax)
}

/// Parses the inside of a reverse path (`<` and `>` removed).
pub fn parse_reverse_path(inner: &str, utf8: bool) -> Result<ReversePath, AddressError> {
    if inner.is_empty() {
        return Ok(ReversePath::Null);
    }
    parse_path_mailbox(inner, utf8).map(ReversePath::Mailbox)
}

/// Parses the inside of a forward path (`<` and `>` removed).
pub fn parse_forward_path(inner: &str, utf8: bool) -> Result<ForwardPath, AddressError> {
    // RFC 5321 4.1.1.3: "Postmaster" is case-insensitive.
    if inner.eq_ignore_ascii_case("postmaster") {
        return Ok(ForwardPath::Postmaster);
    }
    parse_path_mailbox(inner, utf8).map(ForwardPath::Mailbox)
}

/// `[ A-d-l ":" ] Mailbox`: a source route is accepted and ignored (RFC 5321 4.1.1.3, C).
fn parse_path_mailbox(inner: &str, utf8: bool) -> Result<Mailbox, AddressError> {
    let mailbox = if inner.starts_with('@') {
        let colon = inner.find(':').ok_or(AddressError::Syntax)?;
        for hop in inner[..colon].split(',') {
            let d = hop.strip_prefix('@').ok_or(AddressError::Syntax)?;
            parse_domain(d, utf8)?;
        }
        &inner[colon + 1..]
    } else {
        inner
    };
    parse_mailbox(mailbox, utf8)
}

/// Parses `Local-part "@" ( Domain / address-literal )`.
pub fn parse_mailbox(s: &str, utf8: bool) -> Result<Mailbox, AddressError> {
    if !utf8 && !s.is_ascii() {
        // Check the syntax first so a broken address is a syntax error, not a UTF-8 one.
        parse_mailbox(s, true)?;
        return Err(AddressError::NeedsUtf8);
    }
    let at = local_part_end(s)?;
    let local = &s[..at];
    let domain = s.get(at + 1..).ok_or(AddressError::Syntax)?;
    if local.is_empty() || local.len() > MAX_LOCAL_PART {
        return Err(AddressError::Syntax);
    }
    let domain = if domain.starts_with('[') {
        Domain::Literal(parse_address_literal(domain)?)
    } else {
        parse_domain(domain, utf8)?
    };
    Ok(Mailbox {
        local: local.to_string(),
        domain,
    })
}

/// Finds the '@' that ends the local part, checking Dot-string / Quoted-string.
fn local_part_end(s: &str) -> Result<usize, AddressError> {
    let bytes = s.as_bytes();
    if bytes.first() == Some(&b'"') {
        // Quoted-string: qtextSMTP = %d32-33 / %d35-91 / %d93-126; quoted-pairSMTP = "\" %d32-126
        let mut i = 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => {
                    let next = *bytes.get(i + 1).ok_or(AddressError::Syntax)?;
                    if !(32..=126).contains(&next) {
                        return Err(AddressError::Syntax);
                    }
                    i += 2;
                }
                b'"' => {
                    return if bytes.get(i + 1) == Some(&b'@') {
                        Ok(i + 1)
                    } else {
                        Err(AddressError::Syntax)
                    };
                }
                32..=126 => i += 1,
                b if b >= 0x80 => i += 1, // UTF-8, already gated by the caller (RFC 6531 3.3)
                _ => return Err(AddressError::Syntax),
            }
        }
        return Err(AddressError::Syntax);
    }
    let at = s.rfind('@').ok_or(AddressError::Syntax)?;
    let local = &s[..at];
    // Dot-string = Atom *("." Atom)
    if local
        .split('.')
        .any(|atom| atom.is_empty() || !atom.chars().all(is_atext))
    {
        return Err(AddressError::Syntax);
    }
    Ok(at)
}

/// RFC 5322 3.2.3 atext, plus UTF8-non-ascii (RFC 6531 3.3).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "!#$%&'*+-/=?^_`{|}~".contains(c)
        || (!c.is_ascii() && !c.is_control())
}

/// Parses a domain name: `sub-domain *("." sub-domain)`, each
/// `Let-dig [Ldh-str]` (RFC 5321 4.1.2), U-labels allowed with UTF-8.
pub fn parse_domain(s: &str, utf8: bool) -> Result<Domain, AddressError> {
    if s.is_empty() || s.len() > MAX_DOMAIN {
        return Err(AddressError::Syntax);
    }
    if !utf8 && !s.is_ascii() {
        return Err(AddressError::NeedsUtf8);
    }
    for label in s.split('.') {
        let (Some(first), Some(last)) = (label.chars().next(), label.chars().next_back()) else {
            return Err(AddressError::Syntax);
        };
        let let_dig = |c: char| c.is_ascii_alphanumeric() || (!c.is_ascii() && c.is_alphanumeric());
        if !let_dig(first) || !let_dig(last) || label.len() > 63 {
            return Err(AddressError::Syntax);
        }
        if !label.chars().all(|c| let_dig(c) || c == '-') {
            return Err(AddressError::Syntax);
        }
    }
    Ok(Domain::Name(s.to_string()))
}

/// Parses `[...]` (RFC 5321 4.1.3).
pub fn parse_address_literal(s: &str) -> Result<AddressLiteral, AddressError> {
    let inner = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .ok_or(AddressError::Syntax)?;
    if let Some(v6) = inner.get(..5).filter(|p| p.eq_ignore_ascii_case("IPv6:")) {
        let _ = v6;
        return inner[5..]
            .parse::<Ipv6Addr>()
            .map(AddressLiteral::V6)
            .map_err(|_| AddressError::Syntax);
    }
    if let Some(colon) = inner.find(':') {
        // General-address-literal: Standardized-tag = Ldh-str; dcontent = %d33-90 / %d94-126
        let (tag, content) = (&inner[..colon], &inner[colon + 1..]);
        let tag_ok = !tag.is_empty()
            && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !tag.ends_with('-');
        let content_ok = !content.is_empty()
            && content
                .bytes()
                .all(|b| (33..=90).contains(&b) || (94..=126).contains(&b));
        if tag_ok && content_ok {
            return Ok(AddressLiteral::General {
                tag: tag.to_string(),
                content: content.to_string(),
            });
        }
        return Err(AddressError::Syntax);
    }
    // IPv4-address-literal = Snum 3("." Snum); Rust's parser refuses leading zeros' ambiguity.
    inner
        .parse::<Ipv4Addr>()
        .map(AddressLiteral::V4)
        .map_err(|_| AddressError::Syntax)
}

/// Removes the quoting of a quoted local part; a dot-string is returned as is.
fn unquote(local: &str) -> String {
    let Some(inner) = local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) else {
        return local.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(s: &str) -> Result<Mailbox, AddressError> {
        parse_mailbox(s, false)
    }

    #[test]
    fn plain_and_quoted_local_parts() {
        assert_eq!(mb("alice@example.test").unwrap().local, "alice");
        let q = mb("\"a b@c\"@example.test").unwrap();
        assert_eq!(q.local, "\"a b@c\"");
        assert_eq!(q.local_unquoted(), "a b@c");
        assert_eq!(mb("\"a\\\"b\"@x.test").unwrap().local_unquoted(), "a\"b");
    }

    #[test]
    fn dot_string_rules() {
        assert!(mb("a.b@x.test").is_ok());
        assert!(mb(".a@x.test").is_err());
        assert!(mb("a..b@x.test").is_err());
        assert!(mb("a.@x.test").is_err());
        assert!(mb("a b@x.test").is_err());
        assert!(mb("@x.test").is_err());
        assert!(mb("a@").is_err());
    }

    #[test]
    fn address_literals() {
        assert_eq!(
            mb("a@[192.0.2.1]").unwrap().domain,
            Domain::Literal(AddressLiteral::V4("192.0.2.1".parse().unwrap()))
        );
        assert_eq!(
            mb("a@[IPv6:2001:db8::1]").unwrap().domain,
            Domain::Literal(AddressLiteral::V6("2001:db8::1".parse().unwrap()))
        );
        assert!(mb("a@[300.0.0.1]").is_err());
        assert!(mb("a@[IPv6:zz]").is_err());
        assert!(mb("a@[x-tag:stuff]").is_ok());
    }

    #[test]
    fn domain_syntax_is_checked() {
        assert!(mb("a@-x.test").is_err());
        assert!(mb("a@x-.test").is_err());
        assert!(mb("a@x..test").is_err());
        assert!(mb("a@x_y.test").is_err());
        assert!(mb(&format!("a@{}.test", "x".repeat(64))).is_err());
    }

    #[test]
    fn non_ascii_needs_smtputf8() {
        assert_eq!(mb("пример@example.test"), Err(AddressError::NeedsUtf8));
        assert!(parse_mailbox("пример@пример.испытание", true).is_ok());
        assert_eq!(mb("bad ü@example.test"), Err(AddressError::Syntax));
    }

    #[test]
    fn source_routes_are_accepted_and_ignored() {
        let p = parse_forward_path("@relay.test,@b.test:bob@example.test", false).unwrap();
        assert_eq!(p.to_string(), "<bob@example.test>");
        assert!(parse_forward_path("@relay.test:", false).is_err());
    }

    #[test]
    fn postmaster_and_null_paths() {
        assert_eq!(
            parse_forward_path("PostMaster", false).unwrap(),
            ForwardPath::Postmaster
        );
        assert_eq!(parse_reverse_path("", false).unwrap(), ReversePath::Null);
        assert!(parse_forward_path("", false).is_err());
    }

    #[test]
    fn split_path_finds_the_closing_bracket_outside_quotes() {
        assert_eq!(
            split_path("<\"a>b\"@x.test> SIZE=1"),
            Ok(("\"a>b\"@x.test", " SIZE=1"))
        );
        assert!(split_path("<a@x.test>SIZE=1").is_err());
        assert!(split_path("a@x.test").is_err());
        assert!(split_path(&format!("<{}@x.test>", "a".repeat(300))).is_err());
    }

    #[test]
    fn local_part_length_limit() {
        assert!(mb(&format!("{}@x.test", "a".repeat(64))).is_ok());
        assert!(mb(&format!("{}@x.test", "a".repeat(65))).is_err());
    }
}
