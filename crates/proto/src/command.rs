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
use crate::xtext;

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
    /// The parameters given.
    pub params: RcptParams,
}

/// MAIL parameters (RFC 1870 SIZE, RFC 6152 BODY, RFC 6531 SMTPUTF8,
/// RFC 3461 RET and ENVID).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailParams {
    /// The size the client declared (RFC 1870 6.1), if it did.
    pub size: Option<u64>,
    /// The body type (RFC 6152 2).
    pub body: Body,
    /// The transaction may carry UTF-8 addresses and headers (RFC 6531 3.4).
    pub smtputf8: bool,
    /// What a failure DSN returns of the message (RFC 3461 4.3), if asked.
    pub ret: Option<Ret>,
    /// The envelope identifier to quote in DSNs (RFC 3461 4.4), xtext-decoded:
    /// printable ASCII, at most [`MAX_ENVID`] characters.
    pub envid: Option<String>,
}

/// `RET=` of MAIL (RFC 3461 4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ret {
    /// `RET=FULL`: the whole message.
    Full,
    /// `RET=HDRS`: its header section only.
    Hdrs,
}

impl Ret {
    /// The parameter's value as written on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Ret::Full => "FULL",
            Ret::Hdrs => "HDRS",
        }
    }
}

/// RFC 3461 4.4: an ENVID longer than this, decoded, is refused.
pub const MAX_ENVID: usize = 100;

/// `BODY=` of MAIL (RFC 6152 2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Body {
    /// `BODY=7BIT`, or no BODY parameter.
    #[default]
    SevenBit,
    /// `BODY=8BITMIME`.
    EightBitMime,
}

/// RCPT parameters (RFC 3461 NOTIFY and ORCPT).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RcptParams {
    /// When to send a DSN for this recipient (RFC 3461 4.1), if the client said.
    pub notify: Option<Notify>,
    /// The recipient as the client first had it (RFC 3461 4.2), if given.
    pub orcpt: Option<Orcpt>,
}

/// `NOTIFY=` of RCPT (RFC 3461 4.1): `NEVER`, or the conditions of a DSN.
/// All three false is `NEVER`; the grammar gives no other way to say none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notify {
    /// `SUCCESS`: on delivery.
    pub success: bool,
    /// `FAILURE`: on failure.
    pub failure: bool,
    /// `DELAY`: when delivery is delayed.
    pub delay: bool,
}

impl Notify {
    /// `NOTIFY=NEVER`.
    pub const NEVER: Notify = Notify {
        success: false,
        failure: false,
        delay: false,
    };

    /// No DSN in any case.
    pub const fn is_never(self) -> bool {
        !self.success && !self.failure && !self.delay
    }

    /// The parameter's value as written on the wire: `NEVER` or a comma
    /// list in RFC 3461 4.1's order (`SUCCESS,FAILURE,DELAY`).
    pub fn to_value(self) -> String {
        if self.is_never() {
            return "NEVER".to_string();
        }
        [
            (self.success, "SUCCESS"),
            (self.failure, "FAILURE"),
            (self.delay, "DELAY"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect::<Vec<_>>()
        .join(",")
    }
}

/// `ORCPT=addr-type;xtext` of RCPT (RFC 3461 4.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Orcpt {
    /// The address type as given (an atom: `rfc822`, `utf-8` ...); RFC 3461
    /// 4.2 compares it case-insensitively.
    pub addr_type: String,
    /// The address: xtext-decoded (printable ASCII, RFC 3461 4.2), except for
    /// the `utf-8` type (RFC 6533 3), whose value is kept as given.
    pub address: String,
}

impl Orcpt {
    /// The `utf-8` address type of RFC 6533 3: [`Orcpt::address`] is raw.
    pub fn is_utf8(&self) -> bool {
        self.addr_type.eq_ignore_ascii_case("utf-8")
    }

    /// The parameter's value as written on the wire: `addr-type;xtext`
    /// (RFC 3461 4.2), the address encoded again unless it is kept raw.
    pub fn to_value(&self) -> String {
        if self.is_utf8() {
            format!("{};{}", self.addr_type, self.address)
        } else {
            format!(
                "{};{}",
                self.addr_type,
                xtext::encode(self.address.as_bytes())
            )
        }
    }
}

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
            // RFC 3461 4.3, 4.4: DSN is always offered after EHLO.
            k if k.eq_ignore_ascii_case("RET") => (16, "RET"),
            k if k.eq_ignore_ascii_case("ENVID") => (32, "ENVID"),
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
            ("RET", Some(v)) if v.eq_ignore_ascii_case("FULL") => out.ret = Some(Ret::Full),
            ("RET", Some(v)) if v.eq_ignore_ascii_case("HDRS") => out.ret = Some(Ret::Hdrs),
            ("ENVID", Some(v)) => out.envid = Some(envid(v).ok_or_else(|| dsn_syntax(name))?),
            ("RET" | "ENVID", _) => return Err(dsn_syntax(name)),
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
    let Some(params) = esmtp_params(rest, cx.smtputf8) else {
        return Err(Row::Syntax.reply_with(RCPT_USAGE));
    };
    let params = rcpt_params(params, cx)?;
    let to = match address::parse_forward_path(inner, cx.smtputf8) {
        Ok(p) => p,
        Err(AddressError::NeedsUtf8) => return Err(Row::Utf8NotAnnounced.reply()),
        Err(AddressError::Syntax) => return Err(Row::BadRecipientSyntax.reply()),
    };
    Ok(RcptCommand { to, params })
}

fn rcpt_params<'a>(
    params: impl Iterator<Item = (&'a str, Option<&'a str>)>,
    cx: Context,
) -> Result<RcptParams, Reply> {
    let mut out = RcptParams::default();
    for (keyword, value) in params {
        // As for MAIL: none after HELO (RFC 1869 4), each at most once.
        if !cx.esmtp {
            return Err(Row::UnknownParameter.reply());
        }
        let name = match keyword {
            k if k.eq_ignore_ascii_case("NOTIFY") => "NOTIFY",
            k if k.eq_ignore_ascii_case("ORCPT") => "ORCPT",
            _ => return Err(Row::UnknownParameter.reply()),
        };
        let duplicate = match name {
            "NOTIFY" => out.notify.is_some(),
            _ => out.orcpt.is_some(),
        };
        if duplicate {
            return Err(Row::Syntax.reply_with(&format!("duplicate {name} parameter")));
        }
        let value = value.ok_or_else(|| dsn_syntax(name))?;
        match name {
            "NOTIFY" => out.notify = Some(notify(value).ok_or_else(|| dsn_syntax(name))?),
            _ => out.orcpt = Some(orcpt(value).ok_or_else(|| dsn_syntax(name))?),
        }
    }
    Ok(out)
}

/// A malformed DSN parameter, named in the reply.
fn dsn_syntax(name: &str) -> Reply {
    Row::DsnParameterSyntax.reply_with(name)
}

/// RFC 3461 4.1: `"NEVER" / 1#( "SUCCESS" / "FAILURE" / "DELAY" )`, each
/// keyword case-insensitive and at most once.
fn notify(value: &str) -> Option<Notify> {
    if value.eq_ignore_ascii_case("NEVER") {
        return Some(Notify::NEVER);
    }
    let mut n = Notify::NEVER;
    for word in value.split(',') {
        let flag = match word {
            w if w.eq_ignore_ascii_case("SUCCESS") => &mut n.success,
            w if w.eq_ignore_ascii_case("FAILURE") => &mut n.failure,
            w if w.eq_ignore_ascii_case("DELAY") => &mut n.delay,
            // NEVER with others, an empty item, an unknown word.
            _ => return None,
        };
        if std::mem::replace(flag, true) {
            return None;
        }
    }
    Some(n)
}

/// RFC 3461 4.2: `addr-type ";" xtext`, `addr-type = atom`. The address is
/// not held to its type's syntax (RFC 3461 4.2 says it need not conform),
/// only to printable ASCII once decoded; a `utf-8` address (RFC 6533 3) is
/// kept as given, its own escapes included.
fn orcpt(value: &str) -> Option<Orcpt> {
    let (addr_type, address) = value.split_once(';')?;
    // RFC 5322 3.2.3: atom = 1*atext.
    let atext = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b);
    if addr_type.is_empty() || !addr_type.bytes().all(atext) || address.is_empty() {
        return None;
    }
    let address = if addr_type.eq_ignore_ascii_case("utf-8") {
        address.to_string()
    } else {
        printable_ascii(xtext::decode(address).ok()?)?
    };
    Some(Orcpt {
        addr_type: addr_type.to_string(),
        address,
    })
}

/// RFC 3461 4.4: ENVID is xtext of printable ASCII, at most 100 characters.
fn envid(value: &str) -> Option<String> {
    let id = printable_ascii(xtext::decode(value).ok()?)?;
    (id.len() <= MAX_ENVID).then_some(id)
}

/// RFC 3461 4.2, 4.4: decoded values are "printable (graphic and white
/// space) characters from the US-ASCII repertoire".
fn printable_ascii(bytes: Vec<u8>) -> Option<String> {
    if bytes.iter().all(|&b| (b' '..=b'~').contains(&b)) {
        String::from_utf8(bytes).ok()
    } else {
        None
    }
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
                ..MailParams::default()
            }
        );
    }

    fn rcpt_params(line: &str, cx: Context) -> Result<RcptParams, CommandError> {
        match mail(line, cx)? {
            Command::Rcpt(r) => Ok(r.params),
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn mail_takes_ret_and_an_xtext_decoded_envid() {
        let Ok(Command::Mail(m)) = mail("MAIL FROM:<a@b.test> ret=hdrs ENVID=QQ+2B+3D1", EHLO)
        else {
            panic!("MAIL with DSN parameters did not parse");
        };
        assert_eq!(m.params.ret, Some(Ret::Hdrs));
        assert_eq!(m.params.envid.as_deref(), Some("QQ+=1"));
        let Ok(Command::Mail(m)) = mail("MAIL FROM:<> RET=FULL", EHLO) else {
            panic!("MAIL RET=FULL did not parse");
        };
        assert_eq!(m.params.ret, Some(Ret::Full));
        assert_eq!(m.params.envid, None);
    }

    #[test]
    fn malformed_ret_and_envid_are_named_in_the_reply() {
        let refused = |line: &str| match mail(line, EHLO) {
            Err(CommandError::Mail(r)) => r,
            other => panic!("{line}: {other:?}"),
        };
        let ret = Row::DsnParameterSyntax.reply_with("RET");
        let envid = Row::DsnParameterSyntax.reply_with("ENVID");
        assert_eq!(refused("MAIL FROM:<> RET=BODY"), ret);
        assert_eq!(refused("MAIL FROM:<> RET"), ret);
        assert_eq!(refused("MAIL FROM:<> ENVID=+zz"), envid);
        assert_eq!(refused("MAIL FROM:<> ENVID=a+2b"), envid, "lowercase hex");
        assert_eq!(
            refused("MAIL FROM:<> ENVID=a+0D+0A"),
            envid,
            "not printable"
        );
        assert_eq!(refused("MAIL FROM:<> ENVID=\u{e9}"), envid);
        assert_eq!(refused("MAIL FROM:<> ENVID"), envid);
        assert_eq!(
            refused(&format!("MAIL FROM:<> ENVID={}", "x".repeat(MAX_ENVID + 1))),
            envid
        );
        assert!(mail(
            &format!("MAIL FROM:<> ENVID={}", "x".repeat(MAX_ENVID)),
            EHLO
        )
        .is_ok());
        assert!(
            mail(
                &format!("MAIL FROM:<> ENVID={}", "+41".repeat(MAX_ENVID)),
                EHLO
            )
            .is_ok(),
            "the limit is on the decoded value"
        );
        assert_eq!(
            refused("MAIL FROM:<> RET=FULL RET=HDRS"),
            Row::Syntax.reply_with("duplicate RET parameter")
        );
        assert_eq!(
            refused("MAIL FROM:<> ENVID=a envid=b"),
            Row::Syntax.reply_with("duplicate ENVID parameter")
        );
    }

    #[test]
    fn rcpt_takes_notify_and_orcpt() {
        let p = rcpt_params(
            "RCPT TO:<a@b.test> notify=failure,Success ORCPT=rfc822;alice+2Bx@example.test",
            EHLO,
        );
        assert_eq!(
            p,
            Ok(RcptParams {
                notify: Some(Notify {
                    success: true,
                    failure: true,
                    delay: false,
                }),
                orcpt: Some(Orcpt {
                    addr_type: "rfc822".into(),
                    address: "alice+x@example.test".into(),
                }),
            })
        );
        let p = rcpt_params("RCPT TO:<a@b.test> NOTIFY=never", EHLO);
        assert_eq!(p.map(|p| p.notify), Ok(Some(Notify::NEVER)));
        assert_eq!(
            rcpt_params("RCPT TO:<a@b.test>", EHLO),
            Ok(RcptParams::default())
        );
    }

    #[test]
    fn orcpt_of_type_utf8_is_kept_as_given() {
        let cx = Context {
            smtputf8: true,
            ..EHLO
        };
        let p = rcpt_params("RCPT TO:<a@b.test> ORCPT=utf-8;j\u{f6}rg\\x{20}@b.test", cx);
        let orcpt = p.ok().and_then(|p| p.orcpt);
        assert_eq!(
            orcpt,
            Some(Orcpt {
                addr_type: "utf-8".into(),
                address: "j\u{f6}rg\\x{20}@b.test".into(),
            })
        );
    }

    #[test]
    fn malformed_notify_and_orcpt_are_named_in_the_reply() {
        let refused = |line: &str| match mail(line, EHLO) {
            Err(CommandError::Rcpt(r)) => r,
            other => panic!("{line}: {other:?}"),
        };
        let notify = Row::DsnParameterSyntax.reply_with("NOTIFY");
        let orcpt = Row::DsnParameterSyntax.reply_with("ORCPT");
        for bad in [
            "NEVER,SUCCESS",
            "SUCCESS,NEVER",
            "SUCCESS,SUCCESS",
            "SUCCESS,",
            "ALWAYS",
            "SUCCESS,,DELAY",
        ] {
            assert_eq!(
                refused(&format!("RCPT TO:<a@b.test> NOTIFY={bad}")),
                notify,
                "{bad}"
            );
        }
        assert_eq!(refused("RCPT TO:<a@b.test> NOTIFY"), notify);
        for bad in [
            "alice@example.test",
            ";alice@example.test",
            "rfc822;",
            "rfc(822);a@b.test",
            "rfc822;a+zz@b.test",
            "rfc822;a+00@b.test",
        ] {
            assert_eq!(
                refused(&format!("RCPT TO:<a@b.test> ORCPT={bad}")),
                orcpt,
                "{bad}"
            );
        }
        assert_eq!(
            refused("RCPT TO:<a@b.test> NOTIFY=DELAY NOTIFY=FAILURE"),
            Row::Syntax.reply_with("duplicate NOTIFY parameter")
        );
        assert_eq!(
            refused("RCPT TO:<a@b.test> ORCPT=rfc822;a@b.test ORCPT=rfc822;c@b.test"),
            Row::Syntax.reply_with("duplicate ORCPT parameter")
        );
    }

    #[test]
    fn dsn_values_are_written_back_as_they_parse() {
        assert_eq!(Notify::NEVER.to_value(), "NEVER");
        let n = Notify {
            success: true,
            failure: false,
            delay: true,
        };
        assert_eq!(n.to_value(), "SUCCESS,DELAY");
        assert_eq!(notify(&n.to_value()), Some(n));
        let o = Orcpt {
            addr_type: "rfc822".into(),
            address: "a+b=c d@example.test".into(),
        };
        assert_eq!(o.to_value(), "rfc822;a+2Bb+3Dc+20d@example.test");
        assert_eq!(orcpt(&o.to_value()), Some(o));
        assert_eq!(Ret::Hdrs.as_str(), "HDRS");
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
    fn rcpt_refuses_parameters_after_helo_and_unknown_ones() {
        assert_eq!(
            mail("RCPT TO:<a@b.test> NOTIFY=NEVER", Context::default()),
            Err(CommandError::Rcpt(Row::UnknownParameter.reply())),
            "RFC 1869: no parameters after HELO"
        );
        assert_eq!(
            mail("RCPT TO:<a@b.test> SIZE=10", EHLO),
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
