//! Delivery status notifications (RFC 3464), carried in a multipart/report
//! (RFC 6522) and shaped by what the sender asked for at MAIL and RCPT
//! (RFC 3461).
//!
//! [`build`] is a pure function: everything it needs, the current time
//! included, comes in a [`Report`], and it returns the whole notification as
//! bytes, ready to be queued with an empty reverse-path (RFC 3464 2,
//! RFC 5321 4.5.5). The notification has three parts:
//!
//! 1. `text/plain; charset=utf-8`: what happened, for a person, in the
//!    report's language, each reply explained by the registry of
//!    `pillarbox-codes` (the explanations `pillarbox explain` prints);
//! 2. `message/delivery-status`: the same facts for programs, 7-bit only
//!    (RFC 3464 2.1);
//! 3. the original message (`message/rfc822`) or only its header
//!    (`text/rfc822-headers`), as RET asked and size allows (RFC 3461 4.3,
//!    RFC 6522 3).

mod text;

use std::time::{SystemTime, UNIX_EPOCH};

use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::date::Date;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use mail_builder::mime::MimePart;
use mail_builder::MessageBuilder;
use pillarbox_codes::registry::{fill, Explanation, Lang};
use pillarbox_codes::{parse_reply_text, EnhancedCode};

/// What the reporting MTA did for one recipient (RFC 3464 2.3.3).
///
/// `expanded` is left out: the queue does not expand aliases into several
/// recipients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Delivery failed for good; no further attempt will be made.
    Failed,
    /// Not delivered yet; delivery is still being retried.
    Delayed,
    /// Delivered to the recipient's mailbox.
    Delivered,
    /// Handed to a system that sends no delivery reports of its own.
    Relayed,
}

impl Action {
    /// The action-value as written in the `Action:` field.
    pub const fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
        }
    }

    /// The enhanced status code written when the given one does not parse:
    /// the class fits the action and nothing more is claimed (RFC 3463 3.1).
    const fn fallback_status(self) -> EnhancedCode {
        match self {
            Action::Failed => EnhancedCode::new(5, 0, 0),
            Action::Delayed => EnhancedCode::new(4, 0, 0),
            Action::Delivered | Action::Relayed => EnhancedCode::new(2, 0, 0),
        }
    }
}

/// How much of the original message the sender asked to get back
/// (the RET parameter of MAIL, RFC 3461 4.3); kept in the queue as `full`
/// or `hdrs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ret {
    /// The whole message, as `message/rfc822`.
    Full,
    /// Only its header, as `text/rfc822-headers` (RFC 6522 / RFC 3462).
    Hdrs,
}

/// One recipient of the original message and what became of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DsnRecipient {
    /// The address delivery was tried for (the RCPT address), bare: no
    /// angle brackets and no address type; it is written as
    /// `Final-Recipient: rfc822; <address>`, or with the `utf-8` type when
    /// it is not ASCII (RFC 6533 3).
    pub final_recipient: String,
    /// The ORCPT parameter of RCPT (RFC 3461 4.2): its address type
    /// (`rfc822`, `utf-8`) and its address, xtext-decoded. A `utf-8` address
    /// may be decoded or kept as given, with its `\x{..}` escapes (RFC 6533
    /// 3): an escape is written as it is. Written as `Original-Recipient:`.
    pub original_recipient: Option<(String, String)>,
    /// What was done for this recipient.
    pub action: Action,
    /// The enhanced status code (`4.2.2`, `5.1.1`, `2.0.0`). When absent or
    /// not parsable, the reply's enhanced code is used, else `X.0.0` of the
    /// action's class.
    pub status: Option<String>,
    /// The whole last reply line, such as
    /// `452 4.2.2 mailbox full, try again later`; written as
    /// `Diagnostic-Code: smtp; <reply>`.
    pub reply: Option<String>,
    /// The host name of the server that gave the reply; written as
    /// `Remote-MTA: dns; <host>`.
    pub remote_mta: Option<String>,
    /// When delivery was last tried.
    pub last_attempt: Option<SystemTime>,
    /// When retrying stops; written only for [`Action::Delayed`]
    /// (RFC 3464 2.3.9).
    pub will_retry_until: Option<SystemTime>,
}

/// Everything one notification says: one message, one kind of outcome.
#[derive(Clone, Copy, Debug)]
pub struct Report<'a> {
    /// This server's host name: `Reporting-MTA: dns; <host>`, and the domain
    /// of the From: address and of the Message-ID.
    pub reporting_mta: &'a str,
    /// The ENVID parameter of MAIL (RFC 3461 4.4), decoded; written
    /// xtext-encoded as `Original-Envelope-Id:` (RFC 3464 2.2.1).
    pub envid: Option<&'a str>,
    /// When the original message arrived here: `Arrival-Date:`.
    pub arrival: SystemTime,
    /// The reverse-path of the original message, which receives the
    /// notification (To:). Never empty: nothing is reported to the null
    /// reverse-path (RFC 5321 6.1); the caller checks that.
    pub original_sender: &'a str,
    /// The recipients reported on, normally all with the same action (one
    /// notification per message and kind). The subject follows the gravest
    /// action present; the text groups recipients by action.
    pub recipients: &'a [DsnRecipient],
    /// What the sender asked to get back.
    pub ret: Ret,
    /// The original message as stored; LF or CRLF line endings.
    pub original: &'a [u8],
    /// The language of the human-readable part and of the subject.
    pub language: Lang,
    /// Now: the `Date:` of the notification.
    pub now: SystemTime,
    /// A unique id: the notification's Message-ID is
    /// `<message_id@reporting_mta>`.
    pub message_id: &'a str,
    /// The largest original, in bytes, returned whole; a larger one is cut
    /// to its header, and the text says so.
    pub max_original: usize,
}

/// Builds the notification: a complete RFC 5322 message with CRLF line
/// endings.
pub fn build(report: &Report<'_>) -> Vec<u8> {
    let lang = report.language;
    let words = text::words(lang);
    let host = clean_token(report.reporting_mta, is_host_char, "localhost");
    let recipients: Vec<Prepared<'_>> = report.recipients.iter().map(Prepared::new).collect();

    let returned = Returned::choose(report);
    let (third_type, third_body) = match returned {
        Returned::Full => ("message/rfc822", crlf(report.original)),
        Returned::Headers | Returned::Cut => ("text/rfc822-headers", header_crlf(report.original)),
    };
    let human = human_readable(report, &host, &recipients, returned);
    let status = delivery_status(report, &host, &recipients);
    let boundary = boundary(
        report,
        &[human.as_bytes(), status.as_bytes(), third_body.as_slice()],
    );
    let third_encoding = transfer_encoding(&third_body);

    let parts = vec![
        MimePart::new(
            ContentType::new("text/plain").attribute("charset", "utf-8"),
            human,
        )
        .language(lang.tag()),
        // RFC 3464 2.1: 7bit "MUST be used"; the body is written as is, so
        // mail-builder must not choose an encoding of its own.
        MimePart::new("message/delivery-status", status.into_bytes()).transfer_encoding("7bit"),
        // RFC 2046 5.2.1: message/rfc822 takes no encoding but 7bit, 8bit or
        // binary, so the original goes as it is, only its line ends made CRLF.
        MimePart::new(third_type, third_body).transfer_encoding(third_encoding),
    ];

    let sender = clean_address(report.original_sender);
    let message_id = format!(
        "{}@{host}",
        clean_token(report.message_id, is_id_char, "dsn")
    );
    let mut message = MessageBuilder::new()
        .header("Date", Date::new(unix_seconds(report.now)))
        .from(Address::new_address(
            Some("Mail Delivery System"),
            format!("MAILER-DAEMON@{host}"),
        ))
        .to(Address::new_address(None::<&str>, sender))
        .subject(Text::new(subject(report, words)))
        .message_id(MessageId::new(message_id))
        // RFC 3834 5: a notification is an automatic reply; responders and
        // vacation programs must not answer it.
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .header("MIME-Version", Raw::new("1.0"));
    if third_encoding != "7bit" {
        // RFC 2045 6.4: a multipart is labelled with the most general
        // encoding of what it holds (7bit is the default when unlabelled).
        message = message.header("Content-Transfer-Encoding", Raw::new(third_encoding));
    }
    let message = message.body(MimePart::new(
        ContentType::new("multipart/report")
            .attribute("report-type", "delivery-status")
            .attribute("boundary", boundary),
        parts,
    ));
    let mut out = Vec::new();
    // Writing to a Vec<u8> does not fail.
    let _ = message.write_to(&mut out);
    out
}

/// What the third part holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Returned {
    /// The whole original.
    Full,
    /// Its header, as asked (RET=HDRS) or because nothing failed.
    Headers,
    /// Its header, because the whole one is larger than the limit.
    Cut,
}

impl Returned {
    /// RFC 3461 4.3: RET=FULL applies to notifications of failure; when
    /// nothing failed only the header is returned.
    fn choose(report: &Report<'_>) -> Returned {
        let failed = report.recipients.iter().any(|r| r.action == Action::Failed);
        match (report.ret, failed) {
            (Ret::Full, true) if report.original.len() > report.max_original => Returned::Cut,
            (Ret::Full, true) => Returned::Full,
            _ => Returned::Headers,
        }
    }
}

/// A recipient with its fields cleaned and its codes worked out once.
struct Prepared<'a> {
    r: &'a DsnRecipient,
    /// The enhanced code actually written.
    status: EnhancedCode,
    /// The basic code of the reply, when it has one.
    basic: Option<u16>,
    /// The reply as one line of printable text.
    reply: Option<String>,
    /// The remote MTA's name, cleaned.
    remote: Option<String>,
}

impl<'a> Prepared<'a> {
    fn new(r: &'a DsnRecipient) -> Prepared<'a> {
        let reply = r.reply.as_deref().map(one_line).filter(|s| !s.is_empty());
        let parsed = reply.as_deref().and_then(parse_reply_text);
        let status = r
            .status
            .as_deref()
            .and_then(|s| EnhancedCode::parse(s.trim()))
            .or_else(|| parsed.as_ref().and_then(|p| p.enhanced))
            .unwrap_or(r.action.fallback_status());
        let remote = r
            .remote_mta
            .as_deref()
            .map(|h| clean_token(h, is_host_char, ""))
            .filter(|h| !h.is_empty());
        Prepared {
            r,
            status,
            basic: parsed.and_then(|p| p.code),
            reply,
            remote,
        }
    }

    /// The registry's explanation: of the enhanced code, or of the reply's
    /// basic code when the enhanced one is unknown or only says "other or
    /// undefined" (X.0.0, RFC 3463 3.1) and the basic code says more.
    fn explanation(&self, lang: Lang) -> Option<Explanation> {
        let basic = || self.basic.and_then(|c| Explanation::basic(c, lang));
        let undefined = self.status.subject == 0 && self.status.detail == 0;
        match Explanation::enhanced(self.status, lang) {
            Some(e) if !undefined => Some(e),
            enhanced => basic().or(enhanced),
        }
    }
}

fn subject(report: &Report<'_>, words: &text::Words) -> &'static str {
    let has = |a: Action| report.recipients.iter().any(|r| r.action == a);
    if has(Action::Failed) {
        words.subject_failed
    } else if has(Action::Delayed) {
        words.subject_delayed
    } else {
        words.subject_delivered
    }
}

/// The first part (RFC 6522 3: "human-readable"), in the report's language.
fn human_readable(
    report: &Report<'_>,
    host: &str,
    recipients: &[Prepared<'_>],
    returned: Returned,
) -> String {
    let lang = report.language;
    let words = text::words(lang);
    let labels = lang.labels();
    let colon = colon(lang);
    let mut out = Vec::new();
    out.push(fill(words.reporter, &[("host", host)]));
    out.push(String::new());

    for (action, intro) in [
        (Action::Failed, words.intro_failed),
        (Action::Delayed, words.intro_delayed),
        (Action::Delivered, words.intro_delivered),
        (Action::Relayed, words.intro_relayed),
    ] {
        let group: Vec<&Prepared<'_>> =
            recipients.iter().filter(|p| p.r.action == action).collect();
        if group.is_empty() {
            continue;
        }
        out.push(intro.to_string());
        out.push(String::new());
        for p in group {
            out.push(format!(
                "<{}>",
                one_line(&clean_address(&p.r.final_recipient))
            ));
            let mut field = |label: &str, value: &str| {
                out.push(format!("  {label}{colon}{value}"));
            };
            if let Some((kind, addr)) = &p.r.original_recipient {
                let shown = if kind.eq_ignore_ascii_case("utf-8") {
                    unescape_unicode(addr)
                } else {
                    addr.clone()
                };
                field(words.original_recipient, &one_line(&shown));
            }
            field(words.status, &p.status.to_string());
            if let Some(remote) = &p.remote {
                field(words.remote_server, remote);
            }
            if let Some(reply) = &p.reply {
                field(labels.reply, reply);
            }
            if let Some(t) = p.r.last_attempt {
                field(words.last_attempt, &rfc5322_date(t));
            }
            if let (Action::Delayed, Some(t)) = (action, p.r.will_retry_until) {
                field(words.retry_until, &rfc5322_date(t));
            }
            if let Some(e) = p.explanation(lang) {
                out.push(String::new());
                out.push(format!("  {}  {}", e.code, e.title));
                let mut field = |label: &str, value: &str| {
                    if !value.is_empty() {
                        out.push(format!("    {label}{colon}{value}"));
                    }
                };
                field(labels.meaning, e.description);
                // Who must act and what to do matter when something went
                // wrong; for a success they would only say "nothing".
                if p.status.class != 2 {
                    let actors: Vec<&str> = e.actors.iter().map(|a| a.name).collect();
                    field(labels.actors, &actors.join(lang.list_separator()));
                    field(labels.fix_sender, e.fix.sender);
                }
            }
            out.push(String::new());
        }
    }

    out.push(format!(
        "{}{colon}{}",
        words.arrival,
        rfc5322_date(report.arrival)
    ));
    out.push(match returned {
        Returned::Full => words.attached_full.to_string(),
        Returned::Headers => words.attached_headers.to_string(),
        Returned::Cut => fill(
            words.attached_cut,
            &[("limit", &report.max_original.to_string())],
        ),
    });

    // Chinese and Japanese have no spaces between words to wrap at, and
    // their text is base64-encoded anyway.
    let width = match lang {
        Lang::Zh | Lang::Ja => usize::MAX,
        _ => WRAP,
    };
    let mut text = String::new();
    for line in &out {
        for piece in wrap(line, width) {
            text.push_str(&piece);
            text.push_str("\r\n");
        }
    }
    text
}

/// Where the human-readable text is wrapped, in characters: well within the
/// 78 RFC 5322 2.1.1 recommends, so that a plain-ASCII text goes as 7bit
/// (mail-builder turns to quoted-printable once a line, its CRLF included,
/// passes 77 octets).
const WRAP: usize = 72;

/// The label separator `pillarbox explain` uses.
fn colon(lang: Lang) -> &'static str {
    match lang {
        Lang::Zh | Lang::Ja => "：",
        _ => ": ",
    }
}

/// Cuts a line at spaces so that each piece is at most `width` characters
/// where the words allow; continuation pieces are indented two more spaces
/// than the line. Text without spaces (Chinese, Japanese) stays one line.
fn wrap(line: &str, width: usize) -> Vec<String> {
    if line.chars().count() <= width {
        return vec![line.to_string()];
    }
    let indent = line.len() - line.trim_start_matches(' ').len();
    let hang = " ".repeat(indent + 2);
    let mut pieces = Vec::new();
    let mut current = " ".repeat(indent);
    let mut current_len = indent;
    let mut empty = true;
    for word in line[indent..].split(' ').filter(|w| !w.is_empty()) {
        let len = word.chars().count();
        if !empty && current_len + 1 + len > width {
            pieces.push(std::mem::replace(&mut current, hang.clone()));
            current_len = hang.len();
            empty = true;
        }
        if !empty {
            current.push(' ');
            current_len += 1;
        }
        current.push_str(word);
        current_len += len;
        empty = false;
    }
    pieces.push(current);
    pieces
}

/// The second part: per-message fields, then one group of per-recipient
/// fields per recipient, each group preceded by a blank line (RFC 3464 2.1).
fn delivery_status(report: &Report<'_>, host: &str, recipients: &[Prepared<'_>]) -> String {
    let mut out = String::new();
    // RFC 3464 2.2: Original-Envelope-Id comes first when present.
    if let Some(envid) = report.envid {
        field(&mut out, "Original-Envelope-Id", &xtext(envid));
    }
    field(&mut out, "Reporting-MTA", &format!("dns; {host}"));
    field(&mut out, "Arrival-Date", &rfc5322_date(report.arrival));
    for p in recipients {
        out.push_str("\r\n");
        if let Some((kind, addr)) = &p.r.original_recipient {
            field(&mut out, "Original-Recipient", &typed_address(kind, addr));
        }
        field(
            &mut out,
            "Final-Recipient",
            &typed_address("rfc822", &clean_address(&p.r.final_recipient)),
        );
        field(&mut out, "Action", p.r.action.as_str());
        field(&mut out, "Status", &p.status.to_string());
        if let Some(remote) = &p.remote {
            field(&mut out, "Remote-MTA", &format!("dns; {remote}"));
        }
        if let Some(reply) = &p.reply {
            field(
                &mut out,
                "Diagnostic-Code",
                &format!("smtp; {}", seven_bit(reply)),
            );
        }
        if let Some(t) = p.r.last_attempt {
            field(&mut out, "Last-Attempt-Date", &rfc5322_date(t));
        }
        // RFC 3464 2.3.9: "MUST NOT appear" in other than delayed reports.
        if let (Action::Delayed, Some(t)) = (p.r.action, p.r.will_retry_until) {
            field(&mut out, "Will-Retry-Until", &rfc5322_date(t));
        }
    }
    out
}

/// The longest line a field is folded to where it has spaces
/// (RFC 5322 2.1.1, 2.2.3; RFC 3464 2.1.1 allows folding).
const FOLD: usize = 78;

/// Writes `name: value` CRLF, folded before a space when longer than
/// [`FOLD`]. A fold never starts a line of only white space: it is made
/// only before a space that a non-space follows.
fn field(out: &mut String, name: &str, value: &str) {
    let line = format!("{name}: {value}");
    let mut rest = line.as_str();
    let min = name.len() + 2;
    while rest.len() > FOLD {
        let breaks = rest
            .char_indices()
            .zip(rest.chars().skip(1))
            .filter(|((i, c), next)| *i > min && *c == ' ' && *next != ' ')
            .map(|((i, _), _)| i);
        let mut best = None;
        for i in breaks {
            if i <= FOLD || best.is_none() {
                best = Some(i);
            }
            if i > FOLD {
                break;
            }
        }
        let Some(at) = best else { break };
        out.push_str(&rest[..at]);
        out.push_str("\r\n");
        rest = &rest[at..];
    }
    out.push_str(rest);
    out.push_str("\r\n");
}

/// An address as a delivery-status field types it: `type; address` when it is
/// ASCII, else the `utf-8` type in its 7-bit utf-8-addr-xtext form, which
/// RFC 6533 3 requires in message/delivery-status. An address already typed
/// `utf-8` is written in that form too, since the type forbids a bare `+`,
/// `=`, `\` or space.
fn typed_address(kind: &str, address: &str) -> String {
    let address: String = address.chars().filter(|c| !c.is_control()).collect();
    let kind = clean_token(kind, is_atom_char, "unknown");
    if !address.is_ascii() || kind.eq_ignore_ascii_case("utf-8") {
        format!("utf-8; {}", utf8_addr_xtext(&address))
    } else {
        format!("{kind}; {address}")
    }
}

/// utf-8-addr-xtext (RFC 6533 3): QCHARs as they are, everything else as
/// `\x{HEXPOINT}` (two digits at least, no leading zero past two). An
/// address still in its utf-8-addr-unitext or xtext form keeps its escapes:
/// a backslash that starts an EmbeddedUnicodeChar is copied with it, any
/// other backslash is escaped.
fn utf8_addr_xtext(address: &str) -> String {
    let mut out = String::with_capacity(address.len());
    let mut rest = address;
    while let Some(c) = rest.chars().next() {
        if let Some((len, _)) = embedded_unicode_char(rest) {
            out.push_str(&rest[..len]);
            rest = &rest[len..];
            continue;
        }
        match c {
            '!'..='*' | ','..='<' | '>'..='[' | ']'..='~' => out.push(c),
            _ => out.push_str(&format!("\\x{{{:02X}}}", u32::from(c))),
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// An EmbeddedUnicodeChar (`\x{` two to six hex digits `}`, RFC 6533 3) at
/// the start of `s`: its length and the character it stands for.
fn embedded_unicode_char(s: &str) -> Option<(usize, char)> {
    let hex = s.strip_prefix("\\x{")?;
    let end = hex.find('}')?;
    let digits = &hex[..end];
    if !(2..=6).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let c = char::from_u32(u32::from_str_radix(digits, 16).ok()?)?;
    Some((3 + end + 1, c))
}

/// A `utf-8` address for people: each EmbeddedUnicodeChar (RFC 6533 3)
/// replaced by its character.
fn unescape_unicode(address: &str) -> String {
    let mut out = String::with_capacity(address.len());
    let mut rest = address;
    while let Some(c) = rest.chars().next() {
        if let Some((len, decoded)) = embedded_unicode_char(rest) {
            out.push(decoded);
            rest = &rest[len..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// xtext (RFC 3461 4): printable ASCII but `+` and `=` as they are, every
/// other octet as `+` and two upper-case hex digits.
fn xtext(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        match b {
            b'!'..=b'*' | b','..=b'<' | b'>'..=b'~' => out.push(char::from(b)),
            _ => out.push_str(&format!("+{b:02X}")),
        }
    }
    out
}

/// Text for a 7-bit field: what is not printable ASCII becomes `?`
/// (RFC 3464 2.1: "7bit" MUST be used).
fn seven_bit(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// A value on one line: line breaks and other control characters become
/// spaces, runs of spaces one space, no space at either end. Nothing from
/// outside can start a header field or a MIME part of its own.
fn one_line(s: &str) -> String {
    let spaced: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    spaced
        .split(' ')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// An address without control characters, spaces at its ends, or the angle
/// brackets of a path (RFC 5321 4.1.2).
fn clean_address(s: &str) -> String {
    let s: String = s.chars().filter(|c| !c.is_control()).collect();
    let s = s.trim();
    let s = s
        .strip_prefix('<')
        .and_then(|x| x.strip_suffix('>'))
        .unwrap_or(s);
    s.trim().to_string()
}

/// The characters of `s` that `keep` accepts; `fallback` when none is left.
fn clean_token(s: &str, keep: fn(char) -> bool, fallback: &str) -> String {
    let t: String = s.chars().filter(|&c| keep(c)).collect();
    if t.is_empty() {
        fallback.to_string()
    } else {
        t
    }
}

/// A host name, or an address literal in brackets (RFC 5321 4.1.3).
fn is_host_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '[' | ']' | ':')
}

/// The characters of a dot-atom (RFC 5322 3.2.3), for the Message-ID's left side.
fn is_id_char(c: char) -> bool {
    is_atom_char(c) || c == '.'
}

/// atext (RFC 5322 3.2.3): an address type is an atom (RFC 3464 2.1.2).
fn is_atom_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

/// Seconds since the epoch; times before it are taken as the epoch.
fn unix_seconds(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A date-time of RFC 5322 3.3 in UTC, with the numeric zone RFC 3464 2.2.5
/// requires ("Numeric timezones ... MUST be used").
fn rfc5322_date(t: SystemTime) -> String {
    Date::new(unix_seconds(t)).to_rfc822()
}

/// The lines of `input`, without their ends: CRLF, a bare LF or a bare CR
/// each end a line (a stored message may have any of them).
fn lines(input: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = input;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let Some(end) = rest.iter().position(|&b| b == b'\r' || b == b'\n') else {
            return Some(std::mem::take(&mut rest));
        };
        let line = &rest[..end];
        let crlf = rest[end] == b'\r' && rest.get(end + 1) == Some(&b'\n');
        rest = &rest[end + if crlf { 2 } else { 1 }..];
        Some(line)
    })
}

/// `input` with every line ended by CRLF (RFC 5322 2.3, RFC 5321 2.3.8: no
/// bare CR or LF), a last line without an end included.
fn crlf(input: &[u8]) -> Vec<u8> {
    join_crlf(lines(input), input.len())
}

/// The header of `message`: every line before the first empty one, each
/// ended by CRLF (RFC 5322 2.1). A message without an empty line is all
/// header. Only the header is read, however large the body.
fn header_crlf(message: &[u8]) -> Vec<u8> {
    join_crlf(lines(message).take_while(|l| !l.is_empty()), 4096)
}

fn join_crlf<'a>(lines: impl Iterator<Item = &'a [u8]>, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity + capacity / 32);
    for line in lines {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The Content-Transfer-Encoding that describes `body` as it is
/// (RFC 2045 2.7-2.9): 7bit and 8bit lines are at most 998 octets and hold
/// no NUL; 8bit also has octets above 127; anything else is binary.
fn transfer_encoding(body: &[u8]) -> &'static str {
    let long = body
        .split(|&b| b == b'\n')
        .any(|line| line.strip_suffix(b"\r").unwrap_or(line).len() > 998);
    if long || body.contains(&0) {
        "binary"
    } else if body.is_ascii() {
        "7bit"
    } else {
        "8bit"
    }
}

/// A boundary found in none of the parts (RFC 2046 5.1.1), derived from the
/// report alone so that the same report gives the same bytes. It starts
/// with `=_`, which neither quoted-printable (RFC 2045 6.7) nor base64
/// (RFC 2045 6.8) can produce, so only the parts written as they are can
/// hold it, and those are searched.
fn boundary(report: &Report<'_>, bodies: &[&[u8]]) -> String {
    // FNV-1a: a small, stable hash; nothing here needs to be secret.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let seed = unix_seconds(report.now).to_be_bytes();
    for &b in report.message_id.as_bytes().iter().chain(seed.iter()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut n = 0u32;
    loop {
        let candidate = format!("=_pillarbox_dsn_{h:016x}_{n}");
        if !bodies
            .iter()
            .any(|body| find(body, candidate.as_bytes()).is_some())
        {
            return candidate;
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests;
