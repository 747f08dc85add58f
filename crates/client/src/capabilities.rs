//! What a server said it supports, from its EHLO reply (RFC 5321 4.1.1.1).

use pillarbox_codes::Reply;
use pillarbox_proto::sasl::Mechanism;

/// One EHLO keyword with its parameters: `SIZE 35882577` -> (`SIZE`, [`35882577`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Extension {
    /// The keyword, upper-cased (EHLO keywords are case-insensitive).
    pub keyword: String,
    pub params: Vec<String>,
}

/// The server's greeting name and extensions.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Capabilities {
    /// The first line of the EHLO reply: the server's name and any greeting text.
    pub server_name: String,
    pub extensions: Vec<Extension>,
}

impl Capabilities {
    /// The capabilities in a positive EHLO reply. The first line is the
    /// server's domain; each later line one extension (RFC 5321 4.1.1.1).
    pub fn from_ehlo(reply: &Reply) -> Capabilities {
        let mut lines = reply.lines.iter();
        let server_name = lines.next().cloned().unwrap_or_default();
        let extensions = lines
            .filter_map(|line| {
                let mut words = line.split_ascii_whitespace();
                let keyword = words.next()?.to_ascii_uppercase();
                Some(Extension {
                    keyword,
                    params: words.map(str::to_string).collect(),
                })
            })
            .collect();
        Capabilities {
            server_name,
            extensions,
        }
    }

    /// The extension with `keyword` (any case), if advertised.
    pub fn get(&self, keyword: &str) -> Option<&Extension> {
        self.extensions
            .iter()
            .find(|e| e.keyword.eq_ignore_ascii_case(keyword))
    }

    pub fn has(&self, keyword: &str) -> bool {
        self.get(keyword).is_some()
    }

    /// RFC 2920.
    pub fn pipelining(&self) -> bool {
        self.has("PIPELINING")
    }

    /// RFC 3207.
    pub fn starttls(&self) -> bool {
        self.has("STARTTLS")
    }

    /// RFC 3030 BDAT.
    pub fn chunking(&self) -> bool {
        self.has("CHUNKING")
    }

    /// RFC 1870: `Some(None)` for `SIZE` without a number or with `0`
    /// (no fixed maximum), `Some(Some(n))` for a maximum, `None` when
    /// SIZE is not advertised.
    pub fn size(&self) -> Option<Option<u64>> {
        let ext = self.get("SIZE")?;
        Some(
            ext.params
                .first()
                .and_then(|p| p.parse::<u64>().ok())
                .filter(|&n| n > 0),
        )
    }

    /// The AUTH mechanisms as advertised (RFC 4954 3), upper-cased. The old
    /// `AUTH=PLAIN LOGIN` form some servers still add is read too.
    pub fn auth_mechanisms(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for ext in &self.extensions {
            let params: Vec<&str> = if ext.keyword == "AUTH" {
                ext.params.iter().map(String::as_str).collect()
            } else if let Some(first) = ext.keyword.strip_prefix("AUTH=") {
                std::iter::once(first)
                    .chain(ext.params.iter().map(String::as_str))
                    .collect()
            } else {
                continue;
            };
            for p in params {
                let p = p.to_ascii_uppercase();
                if !p.is_empty() && !out.contains(&p) {
                    out.push(p);
                }
            }
        }
        out
    }

    /// Whether `mechanism` is advertised.
    pub fn offers(&self, mechanism: Mechanism) -> bool {
        self.auth_mechanisms()
            .iter()
            .any(|m| m.eq_ignore_ascii_case(mechanism.name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply_reader::{parse_reply, ReplyLimits};

    fn caps(text: &str) -> Capabilities {
        Capabilities::from_ehlo(&parse_reply(text.as_bytes(), ReplyLimits::default()).unwrap())
    }

    #[test]
    fn ehlo_keywords_and_parameters_are_parsed() {
        let c = caps(
            "250-mx.example.test greets you\r\n250-pipelining\r\n250-SIZE 10240000\r\n\
             250-AUTH PLAIN LOGIN\r\n250-AUTH=PLAIN LOGIN CRAM-MD5\r\n250-STARTTLS\r\n250 CHUNKING\r\n",
        );
        assert_eq!(c.server_name, "mx.example.test greets you");
        assert!(c.pipelining());
        assert!(c.starttls());
        assert!(c.chunking());
        assert_eq!(c.size(), Some(Some(10_240_000)));
        assert_eq!(c.auth_mechanisms(), ["PLAIN", "LOGIN", "CRAM-MD5"]);
        assert!(c.offers(Mechanism::CramMd5));
        assert!(!c.offers(Mechanism::ScramSha256));
    }

    #[test]
    fn size_without_a_number_means_no_fixed_maximum() {
        assert_eq!(caps("250-mx\r\n250 SIZE\r\n").size(), Some(None));
        assert_eq!(caps("250-mx\r\n250 SIZE 0\r\n").size(), Some(None));
        assert_eq!(caps("250 mx\r\n").size(), None);
    }

    #[test]
    fn one_line_ehlo_has_no_extensions() {
        let c = caps("250 mx.example.test\r\n");
        assert!(c.extensions.is_empty());
        assert!(c.auth_mechanisms().is_empty());
    }
}
