//! The service extensions the server knows: one list, from which both the
//! EHLO reply (RFC 5321 4.1.1.1) and HELP are built.

/// An SMTP service extension (RFC 5321 2.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Extension {
    /// RFC 2920.
    Pipelining,
    /// RFC 1870: `SIZE limit`.
    Size,
    /// RFC 6152.
    EightBitMime,
    /// RFC 6531.
    SmtpUtf8,
    /// RFC 2034.
    EnhancedStatusCodes,
    /// RFC 3030: the BDAT command.
    Chunking,
    /// RFC 3461: delivery status notifications, the MAIL parameters RET and
    /// ENVID and the RCPT parameters NOTIFY and ORCPT.
    Dsn,
    /// RFC 3207: the STARTTLS command.
    StartTls,
    /// RFC 4954: the AUTH command, `AUTH mechanism ...`.
    Auth,
}

impl Extension {
    /// Every extension, in the order EHLO lists them.
    pub const ALL: [Extension; 9] = [
        Extension::Pipelining,
        Extension::Size,
        Extension::EightBitMime,
        Extension::SmtpUtf8,
        Extension::EnhancedStatusCodes,
        Extension::Chunking,
        Extension::Dsn,
        Extension::StartTls,
        Extension::Auth,
    ];

    /// The EHLO keyword (RFC 5321 4.1.1.1 `ehlo-keyword`), which HELP lists too.
    pub const fn keyword(self) -> &'static str {
        match self {
            Extension::Pipelining => "PIPELINING",
            Extension::Size => "SIZE",
            Extension::EightBitMime => "8BITMIME",
            Extension::SmtpUtf8 => "SMTPUTF8",
            Extension::EnhancedStatusCodes => "ENHANCEDSTATUSCODES",
            Extension::Chunking => "CHUNKING",
            Extension::Dsn => "DSN",
            Extension::StartTls => "STARTTLS",
            Extension::Auth => "AUTH",
        }
    }

    /// The command this extension adds and `HELP <command>`'s line for it;
    /// HELP lists the command while the extension is offered. `None` for
    /// those that add parameters or behaviour only, and for CHUNKING: it is
    /// always offered, so its BDAT is among the base commands.
    pub const fn command(self) -> Option<(&'static str, &'static str)> {
        match self {
            Extension::StartTls => Some(("STARTTLS", "STARTTLS: begin TLS, then EHLO again")),
            Extension::Auth => Some((
                "AUTH",
                "AUTH <mechanism> [initial-response]: authenticate (RFC 4954); EHLO lists the mechanisms",
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_distinct_ehlo_keywords() {
        for (i, a) in Extension::ALL.iter().enumerate() {
            let k = a.keyword();
            // RFC 5321 4.1.1.1: ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
            assert!(k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
            assert!(Extension::ALL[i + 1..].iter().all(|b| b.keyword() != k));
        }
    }

    #[test]
    fn commands_are_named_after_their_extension() {
        for e in Extension::ALL {
            if let Some((verb, help)) = e.command() {
                assert_eq!(verb, e.keyword());
                assert!(help.starts_with(verb));
            }
        }
    }
}
