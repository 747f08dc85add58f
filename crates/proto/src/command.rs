//! Command lines: RFC 5321 4.1.1 verbs and their arguments.
//!
//! MAIL and RCPT are parsed to the end here, paths and parameters typed. What
//! is allowed depends on what the session offered (RFC 1869: parameters only
//! after EHLO; RFC 6531: UTF-8 only with SMTPUTF8), so [`parse`] takes a
//! [`Context`]. Order checks (503) still come first: a MAIL or RCPT whose
//! arguments are refused is a [`CommandError::Mail`] / [`CommandError::Rcpt`]
//! carrying its reply, which the session sends once the command is in sequence.

use pillarbox_codes::{Reply, Row};

use crate::address::{self, AddressError, ForwardPath, ReversePath};

/// A command as received, its verb recognised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `EHLO domain` (RFC 5321 4.1.1.1).
    Ehlo(String),
    /// `HELO domain` (RFC 5321 4.1.1.1).
    Helo(String),
    /// `MAIL FROM:<path> [params]` (RFC 5321 4.1.1.2).
    Mail(MailCommand),
    /// `RCPT TO:<path> [params]` (RFC 5321 4.1.1.3).
    Rcpt(RcptCommand),
    /// `DATA` (RFC 5321 4.1.1.4).
    Data,
    /// RFC 3030 2: `BDAT chunk-size [LAST]`.
    Bdat {
        /// Octets of the chunk that follows the command line.
        size: u64,
        /// The chunk ends the message.
        last: bool,
    },
    /// `RSET` (RFC 5321 4.1.1.5).
    Rset,
    /// `NOOP` (RFC 5321 4.1.1.9).
    Noop,
    /// `VRFY` (RFC 5321 4.1.1.6); its argument is not used.
    Vrfy,
    /// `HELP [topic]` (RFC 5321 4.1.1.8).
    Help(Option<String>),
    /// `QUIT` (RFC 5321 4.1.1.10).
    Quit,
    /// `STARTTLS` (RFC 3207 4).
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954 4).
    Auth(String),
    /// Known but not implemented here (RFC 5321 4.2.4): TURN, ETRN, EXPN ...
    NotImplemented,
}

/// `MAIL FROM:` parsed: the reverse path and its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailCommand {
    /// The reverse path, `<>` included (RFC 5321 4.5.5).
    pub from: ReversePath,
    /// The parameters given.
    pub params: MailParams,
}

/// `RCPT TO:` parsed: the forward path and its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RcptCommand {
    /// The forward path.
    pub to: ForwardPath,
    /// The parameters given (none are offered yet).
    pub params: RcptParams,
}

/// MAIL parameters (RFC 1870 SIZE, RFC 6152 BODY, RFC 6531 SMTPUTF8).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MailParams {
    /// The size the client declared (RFC 1870 6.1), if it did.
    pub size: Option<u64>,
    /// The body type (RFC 6152 2).
    pub body: Body,
    /// The transaction may carry UTF-8 addresses and headers (RFC 6531 3.4).
    pub smtputf8: bool,
}

/// `BODY=` of MAIL (RFC 6152 2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Body {
    /// `BODY=7BIT`, or no BODY parameter.
    #[default]
    SevenBit,
    /// `BODY=8BITMIME`.
    EightBitMime,
}

/// RCPT parameters. None is offered yet; RFC 3461 NOTIFY and ORCPT would go here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RcptParams {}

/// What the session offers now, which decides how MAIL and RCPT arguments parse.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// The client greeted with EHLO: parameters are allowed (RFC 1869 4), and
    /// MAIL parameter values may hold UTF-8 (RFC 6531 3.3).
    pub esmtp: bool,
    /// AUTH is advertised, so MAIL's `AUTH=` parameter is known (RFC 4954 5).
    pub auth: bool,
    /// The transaction's MAIL gave SMTPUTF8: RCPT may carry UTF-8 (RFC 6531 3.4).
    pub smtputf8: bool,
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// Not a command we know (500).
    Unknown,
    /// A known command with bad arguments (501); the usage to show.
    Syntax(&'static str),
    /// EHLO/HELO without a domain or address literal (501 5.5.4).
    Greeting(&'static str),
    /// BDAT with a size we cannot read: the chunk that follows cannot be skipped.
    BdatSyntax,
    /// MAIL whose path or parameters are refused: the reply, to send unless
    /// the command is out of sequence (RFC 5321 4.1.4: that is said first).
    Mail(Reply),
    /// RCPT whose path or parameters are refused, as [`CommandError::Mail`].
    Rcpt(Reply),
}

impl CommandError {
    /// The verb, for logs: `MAIL` or `RCPT` when their arguments were
    /// refused, `?` for a line that is not a command.
    pub fn verb(&self) -> &'static str {
        match self {
            CommandError::Mail(_) => "MAIL",
            CommandError::Rcpt(_) => "RCPT",
            _ => "?",
        }
    }
}

const MAIL_USAGE: &str = "MAIL FROM:<address> [parameters]";
const RCPT_USAGE: &str = "RCPT TO:<address> [parameters]";

/// The longest BDAT chunk size we read as a number (RFC 3030 2: 1*DIGIT).
const MAX_BDAT_DIGITS: usize = 18;

/// Parses one command line, CRLF already removed.
pub fn parse(line: &[u8], cx: Context) -> Result<Command, CommandError> {
    let Ok(line) = std::str::from_utf8(line) else {
        return Err(not_utf8(line));
    };
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
        "MAIL" => {
            let args = prefixed(rest, "FROM:").ok_or(CommandError::Syntax(MAIL_USAGE))?;
            parse_mail(args, cx)
                .map(Command::Mail)
                .map_err(CommandError::Mail)
        }
        "RCPT" => {
            let args = prefixed(rest, "TO:").ok_or(CommandError::Syntax(RCPT_USAGE))?;
            parse_rcpt(args, cx)
                .map(Command::Rcpt)
                .map_err(CommandError::Rcpt)
        }
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

/// A line that is not UTF-8. MAIL and RCPT are still recognised (their
/// verbs are ASCII): RFC 5321 4.1.2 and RFC 6531 3.3 allow no such bytes in
/// a path, so the path is refused with its address code, `501 5.1.7` or
/// `501 5.1.3` (RFC 3463 3.2), once the command is in sequence. Any other
/// line is not a command we can read (500).
fn not_utf8(line: &[u8]) -> CommandError {
    let (verb, rest) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &[][..]),
    };
    let has_prefix = |prefix: &[u8]| {
        rest.get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    };
    if verb.eq_ignore_ascii_case(b"MAIL") {
        if has_prefix(b"FROM:") {
            CommandError::Mail(Row::BadSenderSyntax.reply())
        } else {
            CommandError::Syntax(MAIL_USAGE)
        }
    } else if verb.eq_ignore_ascii_case(b"RCPT") {
        if has_prefix(b"TO:") {
            CommandError::Rcpt(Row::BadRecipientSyntax.reply())
        } else {
            CommandError::Syntax(RCPT_USAGE)
        }
    } else {
        CommandError::Unknown
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

/// `<path> [params]` of MAIL. The order of the checks decides which of two
/// faults is reported, and is the session's of old: path brackets, parameters,
/// then the address itself.
fn parse_mail(args: &str, cx: Context) -> Result<MailCommand, Reply> {
    let Ok((inner, rest)) = address::split_path(args) else {
        return Err(Row::BadSenderSyntax.reply());
    };
    let params = mail_params(rest, cx)?;
    let from = match address::parse_reverse_path(inner, params.smtputf8) {
        Ok(p) => p,
        Err(AddressError::NeedsUtf8) => return Err(Row::Utf8NotAnnounced.reply()),
        Err(AddressError::Syntax) => return Err(Row::BadSenderSyntax.reply()),
    };
    Ok(MailCommand { from, params })
}

fn mail_params(rest: &str, cx: Context) -> Result<MailParams, Reply> {
    // RFC 6531 3.3: UTF-8 values only where SMTPUTF8 is advertised (after EHLO).
    let params = esmtp_params(rest, cx.esmtp).ok_or_else(|| Row::Syntax.reply_with(MAIL_USAGE))?;
    let mut out = MailParams::default();
    // Bits of the keywords seen, to refuse a repeated one.
    let mut seen = 0u8;
    for (keyword, value) in params {
        // RFC 1869 / 5321 4.1.2: only parameters of advertised extensions,
        // none after HELO; each at most once.
        if !cx.esmtp {
            return Err(Row::UnknownParameter.reply());
        }
        let (bit, name) = match keyword {
            k if k.eq_ignore_ascii_case("SIZE") => (1, "SIZE"),
            k if k.eq_ignore_ascii_case("BODY") => (2, "BODY"),
            k if k.eq_ignore_ascii_case("SMTPUTF8") => (4, "SMTPUTF8"),
            k if k.eq_ignore_ascii_case("AUTH") => (8, "AUTH"),
            _ => return Err(Row::UnknownParameter.reply()),
        };
        if seen & bit != 0 {
            return Err(Row::Syntax.reply_with(&format!("duplicate {name} parameter")));
        }
        seen |= bit;
        match (name, value) {
            // RFC 1870 3: size-value = 1*20DIGIT; beyond u64 is beyond any limit.
            ("SIZE", Some(v))
                if !v.is_empty() && v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit()) =>
            {
                out.size = Some(v.parse().unwrap_or(u64::MAX));
            }
            ("SIZE", _) => return Err(Row::Syntax.reply_with("SIZE=<octets>")),
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("7BIT") => out.body = Body::SevenBit,
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("8BITMIME") => {
                out.body = Body::EightBitMime
            }
            ("BODY", _) => return Err(Row::Syntax.reply_with("BODY=7BIT|8BITMIME")),
            ("SMTPUTF8", None) => out.smtputf8 = true,
            ("SMTPUTF8", Some(_)) => return Err(Row::Syntax.reply_with("SMTPUTF8 takes no value")),
            // RFC 4954 5: AUTH=<mailbox> or AUTH=<>, only where AUTH is advertised.
            // A client's claim of the original submitter is not trusted: ignored.
            ("AUTH", Some(_)) if cx.auth => {}
            _ => return Err(Row::UnknownParameter.reply()),
        }
    }
    Ok(out)
}

/// `<path> [params]` of RCPT, checked in the same order as MAIL's.
fn parse_rcpt(args: &str, cx: Context) -> Result<RcptCommand, Reply> {
    let Ok((inner, rest)) = address::split_path(args) else {
        return Err(Row::BadRecipientSyntax.reply());
    };
    let Some(mut params) = esmtp_params(rest, cx.smtputf8) else {
        return Err(Row::Syntax.reply_with(RCPT_USAGE));
    };
    // No RCPT parameter is advertised (DSN, RFC 3461, is not offered yet).
    if params.next().is_some() {
        return Err(Row::UnknownParameter.reply());
    }
    let to = match address::parse_forward_path(inner, cx.smtputf8) {
        Ok(p) => p,
        Err(AddressError::NeedsUtf8) => return Err(Row::Utf8NotAnnounced.reply()),
        Err(AddressError::Syntax) => return Err(Row::BadRecipientSyntax.reply()),
    };
    Ok(RcptCommand {
        to,
        params: RcptParams::default(),
    })
}

/// Splits `SP esmtp-param *(SP esmtp-param)` (RFC 5321 4.1.2) into
/// `(keyword, value)` pairs, or `None` if any of them breaks the grammar: the
/// whole list is checked before any is acted on. With `utf8`, values may hold
/// UTF-8 (RFC 6531 3.3). Nothing is allocated: this runs for every MAIL and RCPT.
fn esmtp_params(s: &str, utf8: bool) -> Option<impl Iterator<Item = (&str, Option<&str>)>> {
    let params = || {
        s.split(' ')
            .filter(|w| !w.is_empty())
            .map(|word| match word.split_once('=') {
                Some((kw, value)) => (kw, Some(value)),
                None => (word, None),
            })
    };
    params()
        .all(|(kw, value)| {
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
            kw_ok && value_ok
        })
        .then(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::{Domain, Mailbox};

    const EHLO: Context = Context {
        esmtp: true,
        auth: false,
        smtputf8: false,
    };

    fn mailbox(local: &str, domain: &str) -> Mailbox {
        Mailbox {
            local: local.into(),
            domain: Domain::Name(domain.into()),
        }
    }

    fn mail(line: &str, cx: Context) -> Result<Command, CommandError> {
        parse(line.as_bytes(), cx)
    }

    #[test]
    fn verbs_are_case_insensitive() {
        let cx = Context::default();
        assert_eq!(
            parse(b"ehlo client.test", cx),
            Ok(Command::Ehlo("client.test".into()))
        );
        assert_eq!(
            parse(b"mail from:<a@b.test>", cx),
            Ok(Command::Mail(MailCommand {
                from: ReversePath::Mailbox(mailbox("a", "b.test")),
                params: MailParams::default(),
            }))
        );
        assert_eq!(
            parse(b"Rcpt To: <a@b.test>", cx),
            Ok(Command::Rcpt(RcptCommand {
                to: ForwardPath::Mailbox(mailbox("a", "b.test")),
                params: RcptParams::default(),
            }))
        );
    }

    #[test]
    fn ehlo_needs_a_domain_or_literal() {
        let cx = Context::default();
        assert_eq!(parse(b"EHLO", cx), Err(CommandError::Greeting("EHLO")));
        assert_eq!(parse(b"HELO a b", cx), Err(CommandError::Greeting("HELO")));
        assert!(parse(b"EHLO [127.0.0.1]", cx).is_ok());
        assert!(parse(b"EHLO [IPv6:::1]", cx).is_ok());
        assert!(parse(b"EHLO WIN_PC", cx).is_ok());
        assert_eq!(parse(b"EHLO a<b", cx), Err(CommandError::Greeting("EHLO")));
    }

    #[test]
    fn bdat_arguments() {
        let cx = Context::default();
        assert_eq!(
            parse(b"BDAT 10 LAST", cx),
            Ok(Command::Bdat {
                size: 10,
                last: true
            })
        );
        assert_eq!(
            parse(b"BDAT 0", cx),
            Ok(Command::Bdat {
                size: 0,
                last: false
            })
        );
        assert_eq!(parse(b"BDAT x", cx), Err(CommandError::BdatSyntax));
        assert_eq!(parse(b"BDAT 1 FIRST", cx), Err(CommandError::BdatSyntax));
        assert_eq!(
            parse(b"BDAT 9999999999999999999999", cx),
            Err(CommandError::BdatSyntax)
        );
    }

    #[test]
    fn commands_without_arguments_refuse_them() {
        let cx = Context::default();
        assert_eq!(parse(b"DATA x", cx), Err(CommandError::Syntax("DATA")));
        assert_eq!(
            parse(b"STARTTLS now", cx),
            Err(CommandError::Syntax("STARTTLS"))
        );
        assert_eq!(parse(b"NOOP anything", cx), Ok(Command::Noop));
    }

    #[test]
    fn unknown_and_unimplemented() {
        let cx = Context::default();
        assert_eq!(parse(b"FOO", cx), Err(CommandError::Unknown));
        assert_eq!(parse(b"\xff\xfe", cx), Err(CommandError::Unknown));
        assert_eq!(parse(b"ETRN x", cx), Ok(Command::NotImplemented));
    }

    #[test]
    fn mail_and_rcpt_with_invalid_utf8_are_refused_with_their_address_code() {
        let cx = Context {
            esmtp: true,
            smtputf8: true,
            ..Context::default()
        };
        assert_eq!(
            parse(b"MAIL FROM:<a\xff@example.test>", cx),
            Err(CommandError::Mail(Row::BadSenderSyntax.reply()))
        );
        assert_eq!(
            parse(b"mail from:<a@example.test> SIZE=\xc3", cx),
            Err(CommandError::Mail(Row::BadSenderSyntax.reply()))
        );
        assert_eq!(
            parse(b"RCPT TO:<\xe9t\xe9@example.test>", cx),
            Err(CommandError::Rcpt(Row::BadRecipientSyntax.reply()))
        );
        // Without FROM:/TO: it is the command's syntax that is wrong.
        assert_eq!(
            parse(b"MAIL <\xff>", cx),
            Err(CommandError::Syntax(MAIL_USAGE))
        );
        assert_eq!(
            parse(b"RCPT \xff", cx),
            Err(CommandError::Syntax(RCPT_USAGE))
        );
        // Other commands with bytes that are not UTF-8 stay unrecognised.
        assert_eq!(parse(b"HELO \xff", cx), Err(CommandError::Unknown));
        assert_eq!(parse(b"MAILX \xff", cx), Err(CommandError::Unknown));
    }

    #[test]
    fn mail_parameters_are_typed() {
        let Ok(Command::Mail(m)) = mail("MAIL FROM:<> size=100  BODY=8bitmime SMTPUTF8", EHLO)
        else {
            panic!("MAIL with parameters did not parse");
        };
        assert_eq!(m.from, ReversePath::Null);
        assert_eq!(
            m.params,
            MailParams {
                size: Some(100),
                body: Body::EightBitMime,
                smtputf8: true,
            }
        );
    }

    #[test]
    fn mail_parameter_faults_carry_their_reply() {
        let refused = |line: &str, cx: Context| match mail(line, cx) {
            Err(CommandError::Mail(r)) => r,
            other => panic!("{line}: {other:?}"),
        };
        assert_eq!(
            refused("MAIL FROM:<a@b.test> SIZE=1", Context::default()),
            Row::UnknownParameter.reply(),
            "RFC 1869: no parameters after HELO"
        );
        assert_eq!(
            refused("MAIL FROM:<a@b.test> SIZE=1 SIZE=2", EHLO),
            Row::Syntax.reply_with("duplicate SIZE parameter")
        );
        assert_eq!(
            refused("MAIL FROM:<a@b.test> SIZE=1 -X", EHLO),
            Row::Syntax.reply_with(MAIL_USAGE),
            "the list's grammar is checked before any parameter"
        );
        assert_eq!(
            refused("MAIL FROM:<a@b.test> AUTH=<>", EHLO),
            Row::UnknownParameter.reply(),
            "AUTH= only where AUTH is advertised"
        );
        assert!(mail(
            "MAIL FROM:<a@b.test> AUTH=<>",
            Context { auth: true, ..EHLO }
        )
        .is_ok());
        assert_eq!(
            refused("MAIL FROM:<j\u{f6}rg@b.test>", EHLO),
            Row::Utf8NotAnnounced.reply()
        );
        assert_eq!(
            refused("MAIL FROM:a@b.test", EHLO),
            Row::BadSenderSyntax.reply()
        );
    }

    #[test]
    fn rcpt_takes_utf8_only_after_mail_smtputf8() {
        let line = "RCPT TO:<j\u{f6}rg@b.test>";
        assert_eq!(
            mail(line, EHLO),
            Err(CommandError::Rcpt(Row::Utf8NotAnnounced.reply()))
        );
        assert!(mail(
            line,
            Context {
                smtputf8: true,
                ..EHLO
            }
        )
        .is_ok());
    }

    #[test]
    fn rcpt_refuses_any_parameter() {
        assert_eq!(
            mail("RCPT TO:<a@b.test> NOTIFY=NEVER", EHLO),
            Err(CommandError::Rcpt(Row::UnknownParameter.reply()))
        );
        assert_eq!(
            mail("RCPT TO:<a@b.test> =x", EHLO),
            Err(CommandError::Rcpt(Row::Syntax.reply_with(RCPT_USAGE)))
        );
    }

    #[test]
    fn esmtp_params_grammar() {
        let p: Vec<_> = esmtp_params(" SIZE=100  BODY=8BITMIME SMTPUTF8", false)
            .map(Iterator::collect)
            .unwrap_or_default();
        assert_eq!(
            p,
            [
                ("SIZE", Some("100")),
                ("BODY", Some("8BITMIME")),
                ("SMTPUTF8", None)
            ]
        );
        assert!(esmtp_params("SIZE=", false).is_none());
        assert!(esmtp_params("-X=1", false).is_none());
        assert!(esmtp_params("X=a=b", false).is_none());
        assert!(esmtp_params("X=\u{e9}", false).is_none());
        assert!(esmtp_params("X=\u{e9}", true).is_some());
    }
}
