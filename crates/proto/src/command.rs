//! Command lines: RFC 5321 4.1.1 verbs and their arguments.
//!
//! Paths and parameters of MAIL and RCPT are kept as text here: whether UTF-8
//! and which parameters are allowed depends on the session (RFC 6531, RFC 1869),
//! so [`crate::session`] finishes parsing them.

/// A command as received, its verb recognised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Ehlo(String),
    Helo(String),
    /// `MAIL FROM:` and the rest of the line: `<path> [params]`.
    Mail(String),
    /// `RCPT TO:` and the rest of the line.
    Rcpt(String),
    Data,
    /// RFC 3030 2: `BDAT chunk-size [LAST]`.
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Vrfy,
    Help(Option<String>),
    Quit,
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954 4).
    Auth(String),
    /// Known but not implemented here (RFC 5321 4.2.4): TURN, ETRN, EXPN ...
    NotImplemented,
}

impl Command {
    /// The verb, for logs.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Ehlo(_) => "EHLO",
            Command::Helo(_) => "HELO",
            Command::Mail(_) => "MAIL",
            Command::Rcpt(_) => "RCPT",
            Command::Data => "DATA",
            Command::Bdat { .. } => "BDAT",
            Command::Rset => "RSET",
            Command::Noop => "NOOP",
            Command::Vrfy => "VRFY",
            Command::Help(_) => "HELP",
            Command::Quit => "QUIT",
            Command::StartTls => "STARTTLS",
            Command::Auth(_) => "AUTH",
            Command::NotImplemented => "(not implemented)",
        }
    }
}

/// Why a line is not a command we can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// Not a command we know (500).
    Unknown,
    /// A known command with bad arguments (501); the usage to show.
    Syntax(&'static str),
    /// EHLO/HELO without a domain or address literal (501 5.5.4).
    Greeting(&'static str),
    /// BDAT with a size we cannot read: the chunk that follows cannot be skipped.
    BdatSyntax,
}

/// The longest BDAT chunk size we read as a number (RFC 3030 2: 1*DIGIT).
const MAX_BDAT_DIGITS: usize = 18;

/// Parses one command line, CRLF already removed.
pub fn parse(line: &[u8]) -> Result<Command, CommandError> {
    let line = std::str::from_utf8(line).map_err(|_| CommandError::Unknown)?;
    let (verb, rest) = match line.find(' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, ""),
    };
    let no_args = |cmd: Command, usage: &'static str| {
        if rest.trim().is_empty() {
            Ok(cmd)
        } else {
            Err(CommandError::Syntax(usage))
        }
    };
    match verb.to_ascii_uppercase().as_str() {
        "EHLO" => greeting_arg(rest, "EHLO").map(Command::Ehlo),
        "HELO" => greeting_arg(rest, "HELO").map(Command::Helo),
        "MAIL" => prefixed(rest, "FROM:")
            .map(|a| Command::Mail(a.to_string()))
            .ok_or(CommandError::Syntax("MAIL FROM:<address> [parameters]")),
        "RCPT" => prefixed(rest, "TO:")
            .map(|a| Command::Rcpt(a.to_string()))
            .ok_or(CommandError::Syntax("RCPT TO:<address> [parameters]")),
        "DATA" => no_args(Command::Data, "DATA"),
        "BDAT" => parse_bdat(rest),
        "RSET" => no_args(Command::Rset, "RSET"),
        // RFC 5321 4.1.1.9: NOOP [ SP String ]; the string is ignored.
        "NOOP" => Ok(Command::Noop),
        "VRFY" => {
            if rest.trim().is_empty() {
                Err(CommandError::Syntax("VRFY <address>"))
            } else {
                Ok(Command::Vrfy)
            }
        }
        "HELP" => Ok(Command::Help(
            Some(rest.trim())
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        )),
        "QUIT" => no_args(Command::Quit, "QUIT"),
        "STARTTLS" => {
            if rest.trim().is_empty() {
                Ok(Command::StartTls)
            } else {
                Err(CommandError::Syntax("STARTTLS"))
            }
        }
        "AUTH" => Ok(Command::Auth(rest.to_string())),
        "EXPN" | "TURN" | "ETRN" | "ATRN" | "SEND" | "SOML" | "SAML" | "VERB" => {
            Ok(Command::NotImplemented)
        }
        _ => Err(CommandError::Unknown),
    }
}

fn greeting_arg(rest: &str, verb: &'static str) -> Result<String, CommandError> {
    let arg = rest.trim();
    // RFC 5321 4.1.1.1: EHLO SP ( Domain / address-literal ). Real clients send
    // host names with '_' (Windows) or without dots; accept those, refuse what is
    // plainly not a name.
    let ok = !arg.is_empty()
        && !arg.contains(' ')
        && (arg.starts_with('[') && crate::address::parse_address_literal(arg).is_ok()
            || arg.chars().all(|c| {
                c.is_ascii_alphanumeric()
                    || "-._".contains(c)
                    || (!c.is_ascii() && c.is_alphanumeric())
            }));
    if ok {
        Ok(arg.to_string())
    } else {
        Err(CommandError::Greeting(verb))
    }
}

/// `FROM:` / `TO:` case-insensitively; spaces after the colon are tolerated
/// (RFC 5321 4.1.1.2 has none, but many clients send one).
fn prefixed<'a>(rest: &'a str, prefix: &str) -> Option<&'a str> {
    let head = rest.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    Some(rest[prefix.len()..].trim_start_matches(' '))
}

fn parse_bdat(rest: &str) -> Result<Command, CommandError> {
    let mut words = rest.split(' ').filter(|w| !w.is_empty());
    let size = words.next().ok_or(CommandError::BdatSyntax)?;
    if size.is_empty() || size.len() > MAX_BDAT_DIGITS || !size.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(CommandError::BdatSyntax);
    }
    let size: u64 = size.parse().map_err(|_| CommandError::BdatSyntax)?;
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(CommandError::BdatSyntax),
    };
    if words.next().is_some() {
        return Err(CommandError::BdatSyntax);
    }
    Ok(Command::Bdat { size, last })
}

/// One ESMTP parameter `keyword[=value]` (RFC 5321 4.1.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    /// Upper-cased keyword.
    pub keyword: String,
    pub value: Option<String>,
}

/// A parameter list that is not `esmtp-param *(SP esmtp-param)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamSyntaxError;

/// Splits `SP esmtp-param *(SP esmtp-param)`. With `utf8`, values may hold
/// UTF-8 (RFC 6531 3.3).
pub fn parse_params(s: &str, utf8: bool) -> Result<Vec<Param>, ParamSyntaxError> {
    let mut out = Vec::new();
    for word in s.split(' ').filter(|w| !w.is_empty()) {
        let (kw, value) = match word.find('=') {
            Some(i) => (&word[..i], Some(&word[i + 1..])),
            None => (word, None),
        };
        // esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
        let kw_ok = kw.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && kw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        // esmtp-value = 1*(%d33-60 / %d62-126)
        let value_ok = value.is_none_or(|v| {
            !v.is_empty()
                && v.chars().all(|c| {
                    matches!(c as u32, 33..=60 | 62..=126)
                        || (utf8 && !c.is_ascii() && !c.is_control())
                })
        });
        if !kw_ok || !value_ok {
            return Err(ParamSyntaxError);
        }
        out.push(Param {
            keyword: kw.to_ascii_uppercase(),
            value: value.map(str::to_string),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_are_case_insensitive() {
        assert_eq!(
            parse(b"ehlo client.test"),
            Ok(Command::Ehlo("client.test".into()))
        );
        assert_eq!(
            parse(b"mail from:<a@b.test>"),
            Ok(Command::Mail("<a@b.test>".into()))
        );
        assert_eq!(
            parse(b"Rcpt To: <a@b.test>"),
            Ok(Command::Rcpt("<a@b.test>".into()))
        );
    }

    #[test]
    fn ehlo_needs_a_domain_or_literal() {
        assert_eq!(parse(b"EHLO"), Err(CommandError::Greeting("EHLO")));
        assert_eq!(parse(b"HELO a b"), Err(CommandError::Greeting("HELO")));
        assert!(parse(b"EHLO [127.0.0.1]").is_ok());
        assert!(parse(b"EHLO [IPv6:::1]").is_ok());
        assert!(parse(b"EHLO WIN_PC").is_ok());
        assert_eq!(parse(b"EHLO a<b"), Err(CommandError::Greeting("EHLO")));
    }

    #[test]
    fn bdat_arguments() {
        assert_eq!(
            parse(b"BDAT 10 LAST"),
            Ok(Command::Bdat {
                size: 10,
                last: true
            })
        );
        assert_eq!(
            parse(b"BDAT 0"),
            Ok(Command::Bdat {
                size: 0,
                last: false
            })
        );
        assert_eq!(parse(b"BDAT x"), Err(CommandError::BdatSyntax));
        assert_eq!(parse(b"BDAT 1 FIRST"), Err(CommandError::BdatSyntax));
        assert_eq!(
            parse(b"BDAT 9999999999999999999999"),
            Err(CommandError::BdatSyntax)
        );
    }

    #[test]
    fn commands_without_arguments_refuse_them() {
        assert_eq!(parse(b"DATA x"), Err(CommandError::Syntax("DATA")));
        assert_eq!(
            parse(b"STARTTLS now"),
            Err(CommandError::Syntax("STARTTLS"))
        );
        assert_eq!(parse(b"NOOP anything"), Ok(Command::Noop));
    }

    #[test]
    fn unknown_and_unimplemented() {
        assert_eq!(parse(b"FOO"), Err(CommandError::Unknown));
        assert_eq!(parse(b"\xff\xfe"), Err(CommandError::Unknown));
        assert_eq!(parse(b"ETRN x"), Ok(Command::NotImplemented));
    }

    #[test]
    fn params_grammar() {
        let p = parse_params(" SIZE=100  BODY=8BITMIME SMTPUTF8", false).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].keyword, "SIZE");
        assert_eq!(p[2].value, None);
        assert!(parse_params("SIZE=", false).is_err());
        assert!(parse_params("-X=1", false).is_err());
        assert!(parse_params("X=a=b", false).is_err());
    }
}
