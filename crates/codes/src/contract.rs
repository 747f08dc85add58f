//! Every reply the Pillarbox server sends, one row per situation; the same
//! table is published as `docs/REPLY-CONTRACT.md` ([`markdown`] writes it, a
//! test keeps the file equal to it).
//!
//! This is the one place a reply code is spelled. The server and the session
//! build replies with [`Row::reply`] or [`Row::reply_with`]; a `{}` in a row's
//! text is where the situation's detail goes (a host name, a queue id, a
//! number of seconds).

use crate::reply::{EnhancedCode, Reply, ReplyCode};

/// One row of the reply contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Spec {
    pub code: u16,
    pub enhanced: Option<(u8, u16, u16)>,
    /// The text; `{}` is replaced by the detail given to [`Row::reply_with`].
    pub text: &'static str,
}

macro_rules! rows {
    ($( $(#[doc = $doc:literal])* $name:ident = $code:literal $(($e:literal, $s:literal, $d:literal))? , $text:literal ;)*) => {
        /// A situation of the reply contract.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Row { $( $(#[doc = $doc])* $name, )* }

        impl Row {
            /// Every row, in contract order.
            pub const ALL: &'static [Row] = &[ $( Row::$name, )* ];

            /// The row's name, as spelled in the source (`MailboxFull`).
            pub const fn name(self) -> &'static str {
                match self {
                    $( Row::$name => stringify!($name), )*
                }
            }

            /// The row's doc comment lines (what the situation is, or why the
            /// reply looks the way it does); empty for most rows.
            pub const fn notes(self) -> &'static [&'static str] {
                match self {
                    $( Row::$name => &[ $( $doc, )* ], )*
                }
            }

            pub const fn spec(self) -> Spec {
                match self {
                    $( Row::$name => Spec {
                        code: $code,
                        enhanced: rows!(@enh $($e, $s, $d)?),
                        text: $text,
                    }, )*
                }
            }
        }
    };
    (@enh) => { None };
    (@enh $e:literal, $s:literal, $d:literal) => { Some(($e, $s, $d)) };
}

rows! {
    // Connection
    /// Greeting; RFC 2034 3: no enhanced code on the greeting.
    Greeting = 220, "{} ESMTP Pillarbox";
    ShuttingDown = 421 (4, 3, 2), "{} service shutting down, try again later";
    /// This address holds `limits.sessions_per_client` sessions already: a
    /// policy refusal of this client (RFC 3463 X.7.0).
    TooManyConnections = 421 (4, 7, 0), "too many connections from your address";
    /// The server holds `limits.sessions` sessions in all: it is not taking
    /// connections for now, whoever asks (RFC 3463 X.3.2).
    TooManySessions = 421 (4, 3, 2), "too many connections, try again later";
    Timeout = 421 (4, 4, 2), "timeout, closing connection";
    TooManyErrors = 421 (4, 7, 0), "too many errors";
    /// After a BDAT whose chunk size cannot be read: the chunk that follows
    /// cannot be told from the next command, so the connection ends
    /// (RFC 3030 2; RFC 3463 X.5.0).
    BdatOutOfStep = 421 (4, 5, 0), "cannot skip a BDAT chunk of unknown size, closing connection";
    EarlyTalker = 554 (5, 5, 1), "protocol error: talked before greeting";
    Bye = 221 (2, 0, 0), "bye";

    // Commands
    /// First line of the EHLO reply; RFC 2034 3: no enhanced code on EHLO/HELO replies.
    Ehlo = 250, "{}";
    Helo = 250, "{}";
    EhloSyntax = 501 (5, 5, 4), "syntax: {} <domain>";
    UnknownCommand = 500 (5, 5, 2), "command not recognized";
    LineTooLong = 500 (5, 5, 2), "line too long";
    NotImplemented = 502 (5, 5, 1), "command not implemented";
    BadSequence = 503 (5, 5, 1), "bad sequence of commands: {}";
    Syntax = 501 (5, 5, 4), "syntax: {}";
    BadSenderSyntax = 501 (5, 1, 7), "bad sender address syntax";
    BadRecipientSyntax = 501 (5, 1, 3), "bad recipient address syntax";
    UnknownParameter = 555 (5, 5, 4), "parameter not recognized";
    /// A DSN parameter of MAIL or RCPT (RFC 3461 4.1-4.4: NOTIFY, ORCPT, RET,
    /// ENVID) whose value breaks its grammar; the detail names the parameter.
    DsnParameterSyntax = 501 (5, 5, 4), "syntax: {}";
    Ok = 250 (2, 0, 0), "ok";
    Vrfy = 252 (2, 5, 0), "cannot VRFY user, but will accept message";
    Help = 214 (2, 0, 0), "{}";
    Status = 211 (2, 0, 0), "{}";

    // Mail transaction
    SenderOk = 250 (2, 1, 0), "sender ok";
    SizeExceeded = 552 (5, 3, 4), "message size exceeds fixed maximum";
    InsufficientStorage = 452 (4, 3, 1), "insufficient system storage";
    RecipientOk = 250 (2, 1, 5), "recipient ok";
    NoSuchUser = 550 (5, 1, 1), "no such user here";
    RelayDenied = 554 (5, 7, 1), "relay access denied";
    TooManyRecipients = 452 (4, 5, 3), "too many recipients";
    MailboxFull = 452 (4, 2, 2), "mailbox full, try again later";
    MailboxFullPermanent = 552 (5, 2, 2), "mailbox full";
    MailboxUnavailable = 450 (4, 2, 1), "mailbox temporarily unavailable, try again later";
    MailboxDisabled = 550 (5, 2, 1), "mailbox disabled";
    Greylisted = 450 (4, 2, 0), "greylisted, try again in {} seconds";
    RateLimited = 450 (4, 7, 1), "rate limit exceeded, try again later";
    NoValidRecipients = 554 (5, 5, 1), "no valid recipients";
    StartData = 354, "end data with <CR><LF>.<CR><LF>";
    BareLineEnding = 550 (5, 6, 0), "bare CR or LF not allowed in message";
    /// The message's header section has more `Received:` fields than
    /// `limits.hops` (RFC 5321 6.3); refused at the end of data (RFC 3463 X.4.6).
    RoutingLoop = 554 (5, 4, 6), "routing loop detected";
    /// Not a reply to a client: what a DSN says of a recipient that
    /// `pillarbox queue bounce` failed.
    ReturnedByAdministrator = 550 (5, 0, 0), "returned to the sender by the mail administrator";
    LocalError = 451 (4, 3, 0), "local error in processing, try again later";
    /// Remote recipient from a client allowed to relay, before the outbound queue exists.
    RemoteNotAvailable = 451 (4, 3, 0), "remote delivery not yet available";
    Queued = 250 (2, 0, 0), "ok: queued as {}";
    BdatReceived = 250 (2, 0, 0), "{} octets received";
    /// SMTPUTF8 address without the SMTPUTF8 parameter (RFC 6531 3.4).
    Utf8NotAnnounced = 553 (5, 6, 7), "non-ASCII address requires SMTPUTF8";

    // Authentication (RFC 4954)
    AuthChallenge = 334, "{}";
    AuthOk = 235 (2, 7, 0), "authentication successful";
    AuthInvalid = 535 (5, 7, 8), "authentication credentials invalid";
    AuthMechanism = 504 (5, 5, 4), "unrecognized authentication type";
    AuthCancelled = 501 (5, 0, 0), "authentication cancelled";
    AuthBadBase64 = 501 (5, 5, 2), "cannot decode response";
    AuthLineTooLong = 500 (5, 5, 6), "authentication exchange line too long";
    AuthNeedsTls = 538 (5, 7, 11), "encryption required for requested authentication mechanism";
    AuthTemporary = 454 (4, 7, 0), "temporary authentication failure";
    AuthRequired = 530 (5, 7, 0), "authentication required";
    SenderNotOwned = 553 (5, 7, 1), "sender address not owned by user";
    AuthTooManyFailures = 421 (4, 7, 0), "too many authentication failures, try later";

    // STARTTLS (RFC 3207)
    TlsReady = 220 (2, 0, 0), "ready to start TLS";
    TlsSyntax = 501 (5, 5, 4), "syntax: STARTTLS";
    TlsAlready = 503 (5, 5, 1), "already under TLS";
    TlsNotAvailable = 454 (4, 7, 0), "TLS not available";
    TlsRequired = 530 (5, 7, 0), "must issue a STARTTLS command first";
}

impl Row {
    /// The reply of a row whose text has no detail.
    pub fn reply(self) -> Reply {
        self.reply_with("")
    }

    /// The reply of a row, with `detail` in place of the text's `{}`.
    pub fn reply_with(self, detail: &str) -> Reply {
        let spec = self.spec();
        Reply {
            code: ReplyCode::new(spec.code)
                .unwrap_or_else(|| unreachable!("contract codes are valid")),
            enhanced: spec.enhanced.map(|(c, s, d)| EnhancedCode::new(c, s, d)),
            lines: vec![fill(spec.text, detail)],
        }
    }

    /// A multi-line reply of a row: the row's text pattern applied to each line.
    pub fn reply_lines<I, S>(self, lines: I) -> Reply
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let spec = self.spec();
        let mut reply = self.reply();
        reply.lines = lines
            .into_iter()
            .map(|l| fill(spec.text, l.as_ref()))
            .collect();
        if reply.lines.is_empty() {
            reply.lines.push(String::new());
        }
        reply
    }
}

/// `text` with `detail` in place of its first `{}`, in a string allocated
/// once at its final size (`replacen` grows it; this runs for every reply).
fn fill(text: &str, detail: &str) -> String {
    match text.split_once("{}") {
        Some((head, tail)) => {
            let mut out = String::with_capacity(text.len() - 2 + detail.len());
            out.push_str(head);
            out.push_str(detail);
            out.push_str(tail);
            out
        }
        None => text.to_owned(),
    }
}

/// The contract as a Markdown table (row, code, enhanced code, text, notes),
/// the content of `docs/REPLY-CONTRACT.md`.
pub fn markdown() -> String {
    let mut out = String::from(
        "Generated from `crates/codes/src/contract.rs`; do not edit by hand. Regenerate with \
         `UPDATE_GOLDEN=1 cargo test -p pillarbox-codes --test reply_contract_doc`.\n\n\
         # Reply contract\n\n\
         Every reply the Pillarbox server sends, one row per situation, in the order of \
         `crates/codes/src/contract.rs`. In the text, `{}` is where the situation's \
         detail goes (a host name, a queue id, a number of seconds). A row without an \
         enhanced code is sent without one.\n\n\
         | Row | Code | Enhanced | Text | Notes |\n\
         |-----|------|----------|------|-------|\n",
    );
    for row in Row::ALL {
        let spec = row.spec();
        let enhanced = match spec.enhanced {
            Some((c, s, d)) => format!("{c}.{s}.{d}"),
            None => "—".to_owned(),
        };
        let notes: Vec<&str> = row.notes().iter().map(|n| n.trim()).collect();
        out.push_str(&format!(
            "| {} | {} | {} | `{}` | {} |\n",
            row.name(),
            spec.code,
            enhanced,
            cell(spec.text),
            cell(&notes.join(" ")),
        ));
    }
    out
}

/// `text` made safe for one Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_has_a_valid_code_and_matching_enhanced_class() {
        for row in Row::ALL {
            let spec = row.spec();
            let code = ReplyCode::new(spec.code).expect("valid code");
            if let Some((class, _, _)) = spec.enhanced {
                // RFC 3463 2: the enhanced class agrees with the basic code's class.
                assert_eq!(u16::from(class), code.get() / 100, "{row:?}");
            }
        }
    }

    #[test]
    fn greeting_and_ehlo_carry_no_enhanced_code() {
        assert!(Row::Greeting.spec().enhanced.is_none());
        assert!(Row::Ehlo.spec().enhanced.is_none());
        assert_eq!(
            Row::Greeting.reply_with("mx.test").to_wire(),
            "220 mx.test ESMTP Pillarbox\r\n"
        );
    }

    #[test]
    fn detail_fills_the_placeholder() {
        assert_eq!(
            Row::Greylisted.reply_with("42").to_wire(),
            "450 4.2.0 greylisted, try again in 42 seconds\r\n"
        );
    }
}
