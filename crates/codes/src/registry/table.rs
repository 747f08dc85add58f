//! The language-independent facts of every code: classes, where it is met,
//! who acts, whether to retry, its usual companions and its RFCs.
//!
//! Basic codes: RFC 5321 4.2.2/4.2.3, RFC 1870 (SIZE), RFC 3207 (STARTTLS),
//! RFC 4954 (AUTH), RFC 7504 (521, 556). RFC 2034 and RFC 3030 add no codes of
//! their own; they use the codes above. Codes such as 422, 431, 523, 524 and
//! 525 appear on some reference sites (and 523/524/525 in the IANA column of
//! "associated basic codes") but no standards-track RFC defines them as basic
//! reply codes, so they are not here and [`check`](super::check) calls them
//! non-standard.
//!
//! Enhanced codes: the IANA "Enumerated Status Codes" registry (RFC 3463,
//! RFC 3886, RFC 4468, RFC 4954, RFC 5248, RFC 6531, RFC 6710, RFC 7293,
//! RFC 7372, RFC 7504, RFC 7505, RFC 8617, RFC 8689, draft-levine-mailbomb-header).
//! `classes` lists the classes a code is registered or plainly used with: the
//! IANA "associated basic status code" column and the registry's own words
//! ("useful only as a permanent error").

use super::Key;

/// A point of the SMTP dialogue after which a code is met.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The connection opening (the greeting).
    Connect,
    /// EHLO or HELO.
    Ehlo,
    /// STARTTLS (RFC 3207).
    StartTls,
    /// AUTH (RFC 4954).
    Auth,
    /// A response line inside an AUTH exchange.
    AuthExchange,
    /// MAIL FROM.
    Mail,
    /// RCPT TO.
    Rcpt,
    /// DATA (the command itself).
    Data,
    /// The end of the message: the final `.` of DATA or `BDAT ... LAST`.
    EndOfData,
    /// BDAT (RFC 3030).
    Bdat,
    /// VRFY.
    Vrfy,
    /// EXPN.
    Expn,
    /// HELP.
    Help,
    /// QUIT.
    Quit,
    /// Any command.
    Any,
    /// In a delivery status notification (a bounce), reported by a later hop.
    Dsn,
}

impl Stage {
    /// The SMTP verb of the stage, or `None` when the stage is not one command
    /// (its name then comes from [`Labels::stage_names`](super::Labels::stage_names)).
    pub const fn verb(self) -> Option<&'static str> {
        match self {
            Stage::Ehlo => Some("EHLO/HELO"),
            Stage::StartTls => Some("STARTTLS"),
            Stage::Auth => Some("AUTH"),
            Stage::Mail => Some("MAIL"),
            Stage::Rcpt => Some("RCPT"),
            Stage::Data => Some("DATA"),
            Stage::Bdat => Some("BDAT"),
            Stage::Vrfy => Some("VRFY"),
            Stage::Expn => Some("EXPN"),
            Stage::Help => Some("HELP"),
            Stage::Quit => Some("QUIT"),
            Stage::Connect | Stage::AuthExchange | Stage::EndOfData | Stage::Any | Stage::Dsn => {
                None
            }
        }
    }

    /// The index into [`Labels::stage_names`](super::Labels::stage_names) of a
    /// stage that is not a verb.
    pub const fn label_index(self) -> Option<usize> {
        match self {
            Stage::Connect => Some(0),
            Stage::EndOfData => Some(1),
            Stage::Any => Some(2),
            Stage::AuthExchange => Some(3),
            Stage::Dsn => Some(4),
            _ => None,
        }
    }

    /// The stage's name in `lang`.
    pub fn name(self, lang: super::Lang) -> &'static str {
        match (self.verb(), self.label_index()) {
            (Some(v), _) => v,
            (None, Some(i)) => lang.labels().stage_names[i],
            (None, None) => "",
        }
    }
}

/// Who must act on a code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// The sending software itself, automatically (continue, retry, split).
    Client,
    /// The sender: the person sending, or the administrator of their mail system.
    Sender,
    /// The recipient, the owner of the mailbox.
    Recipient,
    /// The operator of the server that gave the reply.
    Operator,
}

impl Actor {
    /// The actor's name in `lang`.
    pub fn name(self, lang: super::Lang) -> &'static str {
        lang.labels().actor_names[self as usize]
    }
}

/// Whether and how to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Retry {
    /// Success: nothing to retry.
    None,
    /// Intermediate: send the next part now.
    Continue,
    /// Transient: try the same again later, with backoff.
    Later,
    /// Transient, and the connection is closed: connect again later.
    Reconnect,
    /// Permanent: repeating it unchanged fails again; change something first.
    AfterChange,
    /// An enhanced code used with several classes: the reply's class decides.
    ByClass,
}

impl Retry {
    /// The name of the advice in `lang`.
    pub fn name(self, lang: super::Lang) -> &'static str {
        lang.labels().retry_names[self as usize]
    }

    /// The advice a class implies, for an enhanced code met in a reply.
    pub const fn of_class(class: u8) -> Retry {
        match class {
            2 => Retry::None,
            3 => Retry::Continue,
            4 => Retry::Later,
            _ => Retry::AfterChange,
        }
    }
}

/// The facts of one code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The code.
    pub key: Key,
    /// The classes (2, 3, 4, 5) the code is used with; one for a basic code.
    pub classes: &'static [u8],
    /// Where in the dialogue a client meets it.
    pub stages: &'static [Stage],
    /// Who must act.
    pub actors: &'static [Actor],
    /// Whether to retry.
    pub retry: Retry,
    /// Codes it usually goes with: enhanced codes for a basic code (`4.2.2`),
    /// basic codes for an enhanced code (`452`).
    pub usually_with: &'static [&'static str],
    /// Where it is defined (`RFC 5321 4.2.3`).
    pub references: &'static [&'static str],
}

impl Entry {
    /// Whether the entry is a basic reply code.
    pub const fn is_basic(&self) -> bool {
        matches!(self.key, Key::Basic(_))
    }

    /// The retry advice for a reply of `class` (an enhanced code met with a
    /// concrete basic code), or the entry's own advice.
    pub fn retry_for(&self, class: Option<u8>) -> Retry {
        match (self.key, class) {
            (Key::Enhanced(..), Some(c)) => Retry::of_class(c),
            _ => self.retry,
        }
    }

    /// The subject digit of an enhanced entry.
    pub const fn subject(&self) -> Option<u16> {
        match self.key {
            Key::Enhanced(s, _) => Some(s),
            Key::Basic(_) => None,
        }
    }
}

use Actor::{Client as C, Operator as O, Recipient as R, Sender as S};
use Stage::*;

const fn basic(
    code: u16,
    stages: &'static [Stage],
    actors: &'static [Actor],
    retry: Retry,
    usually_with: &'static [&'static str],
    references: &'static [&'static str],
) -> Entry {
    Entry {
        key: Key::Basic(code),
        classes: match code / 100 {
            2 => &[2],
            3 => &[3],
            4 => &[4],
            _ => &[5],
        },
        stages,
        actors,
        retry,
        usually_with,
        references,
    }
}

const fn enh(
    subject: u16,
    detail: u16,
    classes: &'static [u8],
    stages: &'static [Stage],
    actors: &'static [Actor],
    usually_with: &'static [&'static str],
    references: &'static [&'static str],
) -> Entry {
    Entry {
        key: Key::Enhanced(subject, detail),
        classes,
        stages,
        actors,
        retry: match classes {
            [2] => Retry::None,
            [4] => Retry::Later,
            [5] => Retry::AfterChange,
            _ => Retry::ByClass,
        },
        usually_with,
        references,
    }
}

const R5321: &str = "RFC 5321 4.2.3";
const R3463: &str = "RFC 3463";
const R4954: &str = "RFC 4954";
const R5248: &str = "RFC 5248";
const R6531: &str = "RFC 6531";
const R6710: &str = "RFC 6710";
const R7293: &str = "RFC 7293";
const R7372: &str = "RFC 7372";

/// Every entry: the basic codes in numeric order, then the enhanced codes in
/// IANA order.
pub(crate) const ENTRIES: &[Entry] = &[
    // ---- basic reply codes ----
    basic(211, &[Help], &[C], Retry::None, &["2.0.0"], &[R5321]),
    basic(214, &[Help], &[C], Retry::None, &["2.0.0"], &[R5321]),
    basic(
        220,
        &[Connect, StartTls],
        &[C],
        Retry::None,
        &["2.0.0"],
        &[R5321, "RFC 3207 4"],
    ),
    basic(221, &[Quit], &[C], Retry::None, &["2.0.0"], &[R5321]),
    basic(
        235,
        &[AuthExchange, Auth],
        &[C],
        Retry::None,
        &["2.7.0"],
        &["RFC 4954 6"],
    ),
    basic(
        250,
        &[Ehlo, Mail, Rcpt, EndOfData, Bdat, Any],
        &[C],
        Retry::None,
        &["2.0.0", "2.1.0", "2.1.5", "2.6.0"],
        &[R5321],
    ),
    basic(
        251,
        &[Rcpt],
        &[C],
        Retry::None,
        &["2.1.5"],
        &[R5321, "RFC 5321 3.4"],
    ),
    basic(
        252,
        &[Vrfy],
        &[C],
        Retry::None,
        &["2.5.0", "2.1.5"],
        &[R5321, "RFC 5321 3.5.3"],
    ),
    basic(
        334,
        &[Auth, AuthExchange],
        &[C],
        Retry::Continue,
        &[],
        &["RFC 4954 4"],
    ),
    basic(
        354,
        &[Data],
        &[C],
        Retry::Continue,
        &[],
        &[R5321, "RFC 5321 4.1.1.4"],
    ),
    basic(
        421,
        &[Connect, Any],
        &[C, O],
        Retry::Reconnect,
        &["4.3.2", "4.4.2", "4.7.0"],
        &[R5321, "RFC 5321 3.8"],
    ),
    basic(
        432,
        &[Auth],
        &[S],
        Retry::AfterChange,
        &["4.7.12"],
        &["RFC 4954 6"],
    ),
    basic(
        450,
        &[Mail, Rcpt, Any],
        &[C, R, O],
        Retry::Later,
        &["4.2.0", "4.2.1", "4.7.1", "4.1.1"],
        &[R5321],
    ),
    basic(
        451,
        &[Mail, Rcpt, EndOfData, Any],
        &[C, O],
        Retry::Later,
        &["4.3.0", "4.4.3", "4.7.1"],
        &[R5321],
    ),
    basic(
        452,
        &[Mail, Rcpt, EndOfData],
        &[C, R, O],
        Retry::Later,
        &["4.2.2", "4.3.1", "4.5.3"],
        &[R5321, "RFC 5321 4.5.3.1.10", "RFC 1870 6.2"],
    ),
    basic(
        454,
        &[StartTls, Auth],
        &[C, O],
        Retry::Later,
        &["4.7.0"],
        &["RFC 3207 4", "RFC 4954 6"],
    ),
    basic(
        455,
        &[Mail, Rcpt],
        &[C, O],
        Retry::Later,
        &["4.5.4"],
        &[R5321, "RFC 5321 4.1.1.11"],
    ),
    basic(
        500,
        &[Any, AuthExchange],
        &[S, C],
        Retry::AfterChange,
        &["5.5.2", "5.5.6"],
        &[R5321, "RFC 4954 4"],
    ),
    basic(
        501,
        &[Any, AuthExchange],
        &[S, C],
        Retry::AfterChange,
        &["5.5.4", "5.1.3", "5.1.7", "5.5.2"],
        &[R5321, "RFC 4954 4"],
    ),
    basic(502, &[Any], &[C], Retry::AfterChange, &["5.5.1"], &[R5321]),
    basic(
        503,
        &[Any],
        &[C],
        Retry::AfterChange,
        &["5.5.1"],
        &[R5321, "RFC 5321 4.1.4"],
    ),
    basic(
        504,
        &[Auth, Any],
        &[C, S],
        Retry::AfterChange,
        &["5.5.4", "5.7.4"],
        &[R5321, "RFC 4954 4"],
    ),
    basic(
        521,
        &[Connect, Any],
        &[S, O],
        Retry::AfterChange,
        &["5.3.2"],
        &["RFC 7504 3"],
    ),
    basic(
        530,
        &[Mail, Rcpt, Any],
        &[S, C],
        Retry::AfterChange,
        &["5.7.0"],
        &["RFC 3207 4", "RFC 4954 6"],
    ),
    basic(
        534,
        &[Auth],
        &[S, C],
        Retry::AfterChange,
        &["5.7.9"],
        &["RFC 4954 6"],
    ),
    basic(
        535,
        &[AuthExchange, Auth],
        &[S],
        Retry::AfterChange,
        &["5.7.8"],
        &["RFC 4954 6"],
    ),
    basic(
        538,
        &[Auth],
        &[S, C],
        Retry::AfterChange,
        &["5.7.11"],
        &["RFC 4954 6"],
    ),
    basic(
        550,
        &[Mail, Rcpt, EndOfData, Any],
        &[S, R, O],
        Retry::AfterChange,
        &["5.1.1", "5.2.1", "5.7.1", "5.7.26"],
        &[R5321],
    ),
    basic(
        551,
        &[Rcpt],
        &[S],
        Retry::AfterChange,
        &["5.1.6"],
        &[R5321, "RFC 5321 3.4"],
    ),
    basic(
        552,
        &[Mail, Rcpt, EndOfData, Bdat],
        &[S, R],
        Retry::AfterChange,
        &["5.2.2", "5.3.4", "5.2.3"],
        &[R5321, "RFC 1870 6"],
    ),
    basic(
        553,
        &[Mail, Rcpt],
        &[S],
        Retry::AfterChange,
        &["5.1.3", "5.1.7", "5.6.7", "5.7.1"],
        &[R5321],
    ),
    basic(
        554,
        &[Connect, Data, EndOfData, Rcpt],
        &[S, O],
        Retry::AfterChange,
        &["5.7.1", "5.5.1", "5.6.0", "5.3.0"],
        &[R5321, "RFC 5321 3.1"],
    ),
    basic(
        555,
        &[Mail, Rcpt],
        &[S, C],
        Retry::AfterChange,
        &["5.5.4"],
        &[R5321, "RFC 5321 4.1.1.11"],
    ),
    basic(
        556,
        &[Rcpt, Dsn],
        &[S],
        Retry::AfterChange,
        &["5.1.10"],
        &["RFC 7504 3", "RFC 7505 4"],
    ),
    // ---- enhanced status codes (IANA) ----
    enh(
        0,
        0,
        &[2, 4, 5],
        &[Any],
        &[S, O],
        &["250", "421", "451", "550", "554"],
        &[R3463],
    ),
    enh(
        1,
        0,
        &[2, 4, 5],
        &[Mail, Rcpt, Dsn],
        &[S],
        &["250", "550"],
        &[R3463],
    ),
    enh(1, 1, &[4, 5], &[Rcpt, Dsn], &[S], &["550", "451"], &[R3463]),
    enh(1, 2, &[4, 5], &[Rcpt, Dsn], &[S], &["550", "556"], &[R3463]),
    enh(1, 3, &[5], &[Rcpt], &[S], &["501", "553"], &[R3463]),
    enh(1, 4, &[4, 5], &[Rcpt, Dsn], &[S], &["550"], &[R3463]),
    enh(1, 5, &[2], &[Rcpt, Dsn], &[C], &["250"], &[R3463]),
    enh(1, 6, &[5], &[Rcpt, Dsn], &[S], &["550", "551"], &[R3463]),
    enh(1, 7, &[4, 5], &[Mail], &[S], &["501", "553"], &[R3463]),
    enh(
        1,
        8,
        &[4, 5],
        &[Mail],
        &[S],
        &["451", "501", "553"],
        &[R3463],
    ),
    enh(1, 9, &[2, 4, 5], &[Dsn], &[S], &["250"], &["RFC 3886"]),
    enh(
        1,
        10,
        &[5],
        &[Rcpt, Dsn],
        &[S],
        &["556"],
        &["RFC 7505", "RFC 7504"],
    ),
    enh(
        2,
        0,
        &[4, 5],
        &[Rcpt, EndOfData, Dsn],
        &[R, O],
        &["450", "550"],
        &[R3463],
    ),
    enh(
        2,
        1,
        &[4, 5],
        &[Rcpt, Dsn],
        &[R, O],
        &["450", "550"],
        &[R3463],
    ),
    enh(
        2,
        2,
        &[4, 5],
        &[Rcpt, EndOfData, Dsn],
        &[R, O],
        &["452", "552"],
        &[R3463],
    ),
    enh(2, 3, &[5], &[EndOfData, Dsn], &[S], &["552"], &[R3463]),
    enh(2, 4, &[4, 5], &[Rcpt, Dsn], &[O], &["450", "452"], &[R3463]),
    enh(
        3,
        0,
        &[2, 4, 5],
        &[Any, Dsn],
        &[O],
        &["221", "250", "421", "451", "550", "554"],
        &[R3463],
    ),
    enh(
        3,
        1,
        &[4],
        &[Mail, Rcpt, EndOfData],
        &[O],
        &["452"],
        &[R3463],
    ),
    enh(
        3,
        2,
        &[4, 5],
        &[Connect, Any],
        &[O],
        &["421", "521"],
        &[R3463, "RFC 7504"],
    ),
    enh(
        3,
        3,
        &[4, 5],
        &[Mail, Rcpt, EndOfData, Dsn],
        &[S, O],
        &["554"],
        &[R3463],
    ),
    enh(
        3,
        4,
        &[5],
        &[Mail, EndOfData, Bdat],
        &[S],
        &["552", "554"],
        &[R3463],
    ),
    enh(3, 5, &[4, 5], &[Any, Dsn], &[O], &["451", "554"], &[R3463]),
    enh(
        3,
        6,
        &[2],
        &[Mail, EndOfData],
        &[C],
        &["250", "251"],
        &[R6710],
    ),
    enh(4, 0, &[4, 5], &[Dsn, Any], &[O], &["451", "554"], &[R3463]),
    enh(4, 1, &[4], &[Dsn], &[O], &["451"], &[R3463]),
    enh(4, 2, &[4], &[Any, Dsn], &[C, O], &["421"], &[R3463]),
    enh(
        4,
        3,
        &[4, 5],
        &[Mail, Rcpt, Dsn],
        &[O],
        &["451", "550"],
        &[R3463],
    ),
    enh(
        4,
        4,
        &[4, 5],
        &[Rcpt, Dsn],
        &[S, O],
        &["451", "550"],
        &[R3463],
    ),
    enh(4, 5, &[4], &[Any, Dsn], &[C, O], &["451", "421"], &[R3463]),
    enh(
        4,
        6,
        &[4, 5],
        &[EndOfData, Dsn],
        &[S, O],
        &["554", "550"],
        &[R3463],
    ),
    enh(4, 7, &[4, 5], &[Dsn], &[S, O], &["451", "554"], &[R3463]),
    enh(
        5,
        0,
        &[2, 4, 5],
        &[Any],
        &[C, O],
        &["250", "421", "451", "454", "501", "554"],
        &[R3463],
    ),
    enh(
        5,
        1,
        &[4, 5],
        &[Any],
        &[C],
        &["500", "501", "503", "530", "550", "554"],
        &[R3463],
    ),
    enh(
        5,
        2,
        &[5],
        &[Any, AuthExchange],
        &[C],
        &["500", "501", "502", "555"],
        &[R3463],
    ),
    enh(
        5,
        3,
        &[4, 5],
        &[Rcpt],
        &[C],
        &["451", "452"],
        &[R3463, "RFC 5321 4.5.3.1.10"],
    ),
    enh(
        5,
        4,
        &[4, 5],
        &[Any],
        &[C, S],
        &["501", "504", "555"],
        &[R3463],
    ),
    enh(
        5,
        5,
        &[4, 5],
        &[Ehlo, Any],
        &[C, O],
        &["500", "554"],
        &[R3463],
    ),
    enh(5, 6, &[4, 5], &[AuthExchange], &[C], &["500"], &[R4954]),
    enh(
        6,
        0,
        &[4, 5],
        &[EndOfData, Dsn],
        &[S],
        &["550", "554"],
        &[R3463],
    ),
    enh(6, 1, &[5], &[EndOfData, Dsn], &[S], &["554"], &[R3463]),
    enh(6, 2, &[4, 5], &[EndOfData, Dsn], &[S], &["554"], &[R3463]),
    enh(6, 3, &[5], &[EndOfData, Dsn], &[S, O], &["554"], &[R3463]),
    enh(6, 4, &[2, 5], &[EndOfData, Dsn], &[S], &["250"], &[R3463]),
    enh(
        6,
        5,
        &[4, 5],
        &[EndOfData, Dsn],
        &[S, O],
        &["554"],
        &[R3463],
    ),
    enh(
        6,
        6,
        &[4, 5],
        &[EndOfData],
        &[S, O],
        &["554"],
        &["RFC 4468"],
    ),
    enh(6, 7, &[5], &[Mail, Rcpt], &[S], &["553", "550"], &[R6531]),
    enh(
        6,
        8,
        &[2, 5],
        &[Vrfy, Expn, Rcpt],
        &[C],
        &["252", "553", "550"],
        &[R6531],
    ),
    enh(6, 9, &[5], &[EndOfData], &[S], &["550"], &[R6531]),
    enh(
        6,
        10,
        &[2, 5],
        &[Vrfy, Expn, Rcpt],
        &[C],
        &["252", "553", "550"],
        &[R6531],
    ),
    enh(
        7,
        0,
        &[2, 4, 5],
        &[StartTls, Auth, Mail, Rcpt, Any],
        &[S, O],
        &["220", "235", "454", "530", "550"],
        &[R3463, R4954],
    ),
    enh(
        7,
        1,
        &[4, 5],
        &[Rcpt, Mail, EndOfData],
        &[S, O],
        &["550", "554", "553", "451"],
        &[R3463],
    ),
    enh(7, 2, &[5], &[Rcpt], &[S], &["550"], &[R3463]),
    enh(7, 3, &[5], &[EndOfData, Dsn], &[S], &["554"], &[R3463]),
    enh(7, 4, &[5], &[Auth, EndOfData], &[S], &["504"], &[R3463]),
    enh(
        7,
        5,
        &[4, 5],
        &[EndOfData, Dsn],
        &[S, O],
        &["554"],
        &[R3463],
    ),
    enh(
        7,
        6,
        &[4, 5],
        &[EndOfData, Dsn],
        &[S, O],
        &["554"],
        &[R3463],
    ),
    enh(
        7,
        7,
        &[2, 4, 5],
        &[EndOfData, Dsn],
        &[S],
        &["554"],
        &[R3463],
    ),
    enh(
        7,
        8,
        &[5],
        &[AuthExchange, Auth],
        &[S],
        &["535", "554"],
        &[R4954],
    ),
    enh(7, 9, &[5], &[Auth], &[S, C], &["534"], &[R4954]),
    enh(7, 10, &[5], &[Auth], &[S, C], &["538", "530"], &[R5248]),
    enh(7, 11, &[5], &[Auth], &[S, C], &["538"], &[R4954]),
    enh(7, 12, &[4], &[Auth, AuthExchange], &[S], &["432"], &[R4954]),
    enh(
        7,
        13,
        &[5],
        &[AuthExchange, Auth, Mail],
        &[S, O],
        &["535", "550"],
        &[R5248],
    ),
    enh(
        7,
        14,
        &[5],
        &[AuthExchange, Auth, EndOfData],
        &[O],
        &["535", "554"],
        &[R5248],
    ),
    enh(
        7,
        15,
        &[4, 5],
        &[Mail, Rcpt],
        &[S],
        &["450", "550"],
        &[R6710],
    ),
    enh(
        7,
        16,
        &[4, 5],
        &[Mail, EndOfData],
        &[S],
        &["452", "552"],
        &[R6710],
    ),
    enh(7, 17, &[5], &[Rcpt, Dsn], &[S], &["550"], &[R7293]),
    enh(7, 18, &[5], &[Rcpt, Dsn], &[S], &["550"], &[R7293]),
    enh(7, 19, &[5], &[Rcpt, Dsn], &[S], &["550"], &[R7293]),
    enh(
        7,
        20,
        &[5],
        &[EndOfData],
        &[S],
        &["550"],
        &[R7372, "RFC 6376"],
    ),
    enh(
        7,
        21,
        &[5],
        &[EndOfData],
        &[S],
        &["550"],
        &[R7372, "RFC 6376"],
    ),
    enh(
        7,
        22,
        &[5],
        &[EndOfData],
        &[S],
        &["550"],
        &[R7372, "RFC 6376"],
    ),
    enh(
        7,
        23,
        &[5],
        &[Mail, Rcpt, EndOfData],
        &[S],
        &["550"],
        &[R7372, "RFC 7208 8.4"],
    ),
    enh(
        7,
        24,
        &[4, 5],
        &[Mail, Rcpt, EndOfData],
        &[S, O],
        &["451", "550"],
        &[R7372, "RFC 7208 8.6"],
    ),
    enh(
        7,
        25,
        &[4, 5],
        &[Connect, Ehlo, Mail, Rcpt],
        &[S],
        &["550", "450"],
        &["RFC 7372 3.3"],
    ),
    enh(
        7,
        26,
        &[4, 5],
        &[EndOfData],
        &[S],
        &["550", "421"],
        &[R7372],
    ),
    enh(7, 27, &[5], &[Mail], &[S], &["550"], &["RFC 7505"]),
    enh(
        7,
        28,
        &[4, 5],
        &[Rcpt, EndOfData],
        &[S],
        &["421", "550"],
        &["draft-levine-mailbomb-header"],
    ),
    enh(7, 29, &[5], &[EndOfData], &[S, O], &["550"], &["RFC 8617"]),
    enh(7, 30, &[5], &[Dsn, Mail], &[S, O], &["550"], &["RFC 8689"]),
];
