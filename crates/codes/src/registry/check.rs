//! Inconsistent combinations of basic code, enhanced code and text.
//!
//! A reply such as `452 5.2.2` (a transient code with a permanent enhanced
//! code), `454 4.7.0 invalid password` (a temporary code for a credential
//! failure that will fail again) or `452 4.2.2 too many recipients` (the
//! mailbox-full code for something that is not a full mailbox) makes clients
//! retry what will never work, or give up on what would. [`check`] says so.

use super::{basic, enhanced, fill, Key, Lang};
use crate::reply::EnhancedCode;

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Contradicts an RFC: clients will act wrongly on it.
    Error,
    /// Allowed by the letter, but misleading.
    Warning,
    /// Unusual; worth knowing when reading the reply.
    Note,
}

impl Severity {
    /// The severity's name in `lang`.
    pub fn name(self, lang: Lang) -> &'static str {
        lang.labels().severity_names[self as usize]
    }
}

/// What is inconsistent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum FindingKind {
    /// The enhanced code's class differs from the basic code's first digit
    /// (RFC 3463 2, RFC 2034 3: they must agree).
    ClassMismatch,
    /// An enhanced code on a 3xx reply: RFC 3463 has no class 3.
    IntermediateWithEnhanced,
    /// The basic code is not defined by RFC 5321 or a standards-track
    /// extension (422, 431, 523 ...).
    NonStandardCode,
    /// 454 (or a 4.7.8) for wrong credentials: RFC 4954 6 says 535 5.7.8;
    /// a transient code makes the client retry a password that will fail again.
    AuthFailureAsTransient,
    /// X.2.2 (mailbox full) for something that is not a full mailbox.
    QuotaCodeMisused,
    /// The enhanced code is not in the IANA registry (often provider-specific).
    UnknownEnhanced,
    /// IANA registers the enhanced code for other classes only.
    UnusualClass,
}

/// One inconsistency found by [`check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Finding {
    /// What is wrong.
    pub kind: FindingKind,
    /// How serious it is.
    pub severity: Severity,
    /// The basic code checked.
    pub code: u16,
    /// The enhanced code checked.
    pub enhanced: Option<EnhancedCode>,
    /// A better enhanced code, when one is clearly meant.
    pub suggest: Option<EnhancedCode>,
}

impl Finding {
    /// The finding said in `lang`.
    pub fn message(&self, lang: Lang) -> String {
        let l = lang.labels();
        let code = self.code.to_string();
        let enh = self.enhanced.map(|e| e.to_string()).unwrap_or_default();
        let classes = self
            .enhanced
            .and_then(enhanced)
            .map(|e| {
                e.classes
                    .iter()
                    .map(|c| format!("{c}xx"))
                    .collect::<Vec<_>>()
                    .join(lang.list_separator())
            })
            .unwrap_or_default();
        let template = match self.kind {
            FindingKind::ClassMismatch => l.finding_class_mismatch,
            FindingKind::IntermediateWithEnhanced => l.finding_intermediate_enhanced,
            FindingKind::NonStandardCode => l.finding_non_standard,
            FindingKind::AuthFailureAsTransient => l.finding_auth_temporary,
            FindingKind::QuotaCodeMisused => l.finding_quota_misused,
            FindingKind::UnknownEnhanced => l.finding_unknown_enhanced,
            FindingKind::UnusualClass => l.finding_unusual_class,
        };
        let subject = self
            .enhanced
            .and_then(|e| l.subject_name(e.subject))
            .unwrap_or("");
        let mut msg = fill(
            template,
            &[
                ("code", &code),
                ("enhanced", &enh),
                ("classes", &classes),
                ("subject", subject),
            ],
        );
        if let Some(s) = self.suggest {
            msg.push(' ');
            msg.push_str(&fill(l.finding_suggest, &[("suggest", &s.to_string())]));
        }
        msg
    }
}

impl serde::Serialize for Finding {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Finding", 5)?;
        st.serialize_field("kind", &self.kind_name())?;
        st.serialize_field("severity", &self.severity)?;
        st.serialize_field("code", &self.code)?;
        st.serialize_field("enhanced", &self.enhanced.map(|e| e.to_string()))?;
        st.serialize_field("suggest", &self.suggest.map(|e| e.to_string()))?;
        st.end()
    }
}

impl Finding {
    /// The kind as the JSON schema spells it (`class_mismatch`, ...).
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            FindingKind::ClassMismatch => "class_mismatch",
            FindingKind::IntermediateWithEnhanced => "intermediate_with_enhanced",
            FindingKind::NonStandardCode => "non_standard_code",
            FindingKind::AuthFailureAsTransient => "auth_failure_as_transient",
            FindingKind::QuotaCodeMisused => "quota_code_misused",
            FindingKind::UnknownEnhanced => "unknown_enhanced",
            FindingKind::UnusualClass => "unusual_class",
        }
    }
}

/// Checks a reply's basic code, enhanced code and text against the registry.
///
/// Recognises: a class mismatch (`452 5.2.2`, `550 4.1.1`), an enhanced code on
/// a 3xx reply, a non-standard basic code, `454` used for bad credentials, X.2.2
/// given for something that is not a full mailbox, an enhanced code not in the
/// IANA registry, and an enhanced code IANA registers for other classes only.
pub fn check(code: u16, enhanced_code: Option<EnhancedCode>, text: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut push = |kind, severity, suggest| {
        out.push(Finding {
            kind,
            severity,
            code,
            enhanced: enhanced_code,
            suggest,
        })
    };
    let lower = text.to_lowercase();
    let class = u8::try_from(code / 100).unwrap_or(0);

    if basic(code).is_none() {
        push(FindingKind::NonStandardCode, Severity::Warning, None);
    }

    if let Some(e) = enhanced_code {
        // RFC 3463 2 / RFC 2034 3: the class of the enhanced code repeats the
        // class of the basic code; there is no class 3.
        if class == 3 {
            push(
                FindingKind::IntermediateWithEnhanced,
                Severity::Warning,
                None,
            );
        } else if (2..=5).contains(&class) && e.class != class {
            let suggest = EnhancedCode::new(class, e.subject, e.detail);
            let suggest = (super::enhanced(suggest).is_some()).then_some(suggest);
            push(FindingKind::ClassMismatch, Severity::Error, suggest);
        }
        match super::enhanced(e) {
            None => push(FindingKind::UnknownEnhanced, Severity::Note, None),
            Some(entry) => {
                if (2..=5).contains(&class)
                    && class != 3
                    && e.class == class
                    && !entry.classes.contains(&class)
                    // 4.7.8 is reported below as a credential failure.
                    && !(class == 4 && entry.key == Key::Enhanced(7, 8))
                {
                    push(FindingKind::UnusualClass, Severity::Note, None);
                }
            }
        }
        if e.subject == 2
            && e.detail == 2
            && !lower.trim().is_empty()
            && !speaks_of_full_mailbox(&lower)
        {
            let suggest = better_than_quota(&lower, if class == 5 { 5 } else { 4 });
            push(FindingKind::QuotaCodeMisused, Severity::Warning, suggest);
        }
    }

    // RFC 4954 6: 454 is a temporary failure (a directory down); wrong
    // credentials are 535 5.7.8. A 4xx here makes clients retry a password
    // that will fail again, and lock accounts.
    let enhanced_is_bad_credentials =
        enhanced_code.is_some_and(|e| e.subject == 7 && e.detail == 8);
    if class == 4
        && (code == 454 || enhanced_is_bad_credentials)
        && (enhanced_is_bad_credentials || speaks_of_bad_credentials(&lower))
    {
        push(
            FindingKind::AuthFailureAsTransient,
            Severity::Error,
            Some(EnhancedCode::new(5, 7, 8)),
        );
    }
    out
}

fn contains_any(text: &str, words: &[&str]) -> bool {
    words.iter().any(|w| text.contains(w))
}

/// Whether a (lower-cased) text says a mailbox is full.
fn speaks_of_full_mailbox(text: &str) -> bool {
    let system = contains_any(
        text,
        &["system storage", "disk", "file system", "filesystem"],
    );
    !system
        && contains_any(
            text,
            &[
                "full",
                "quota",
                "storage",
                "space",
                "capacity",
                "exceed",
                "over ",
                "size",
                "too large",
                "too big",
                "limit",
            ],
        )
        && !contains_any(
            text,
            &["too many recipients", "rate limit", "recipient limit"],
        )
}

/// The code a misused X.2.2 most likely meant, from its text.
fn better_than_quota(text: &str, class: u8) -> Option<EnhancedCode> {
    if contains_any(
        text,
        &["system storage", "disk", "file system", "filesystem"],
    ) {
        Some(EnhancedCode::new(4, 3, 1))
    } else if contains_any(text, &["too many recipients", "recipient limit"]) {
        Some(EnhancedCode::new(class, 5, 3))
    } else if contains_any(
        text,
        &[
            "rate",
            "too many messages",
            "too many connections",
            "slow down",
        ],
    ) {
        Some(EnhancedCode::new(class, 7, 0))
    } else if contains_any(
        text,
        &["busy", "locked", "temporarily unavailable", "maintenance"],
    ) {
        Some(EnhancedCode::new(class, 2, 1))
    } else if contains_any(text, &["greylist", "graylist"]) {
        Some(EnhancedCode::new(class, 2, 0))
    } else if contains_any(
        text,
        &[
            "no such user",
            "unknown user",
            "does not exist",
            "user unknown",
        ],
    ) {
        Some(EnhancedCode::new(5, 1, 1))
    } else {
        None
    }
}

/// Whether a (lower-cased) text says the credentials were wrong, as opposed to
/// a temporary trouble of the server.
fn speaks_of_bad_credentials(text: &str) -> bool {
    if contains_any(
        text,
        &[
            "temporar",
            "try again",
            "unavailable",
            "try later",
            "not available",
        ],
    ) {
        return false;
    }
    let about_credentials = contains_any(
        text,
        &[
            "password",
            "credential",
            "username",
            "user name",
            "login",
            "authenticat",
            "passphrase",
        ],
    );
    let failed = contains_any(
        text,
        &[
            "invalid",
            "incorrect",
            "wrong",
            "bad ",
            "not accepted",
            "rejected",
            "mismatch",
            "failed",
            "failure",
            "denied",
        ],
    );
    about_credentials && failed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(code: u16, e: &str, text: &str) -> Vec<FindingKind> {
        check(code, EnhancedCode::parse(e), text)
            .into_iter()
            .map(|f| f.kind)
            .collect()
    }

    #[test]
    fn transient_code_with_permanent_enhanced_code_is_a_class_mismatch() {
        assert_eq!(
            kinds(452, "5.2.2", "mailbox full"),
            vec![FindingKind::ClassMismatch]
        );
        assert_eq!(
            kinds(550, "4.1.1", "no such user"),
            vec![FindingKind::ClassMismatch]
        );
        let f = check(452, EnhancedCode::parse("5.2.2"), "mailbox full");
        assert_eq!(f[0].suggest, Some(EnhancedCode::new(4, 2, 2)));
    }

    #[test]
    fn invented_basic_codes_are_non_standard() {
        assert_eq!(
            kinds(422, "4.2.2", "mailbox full"),
            vec![FindingKind::NonStandardCode]
        );
        assert_eq!(
            kinds(431, "", "out of memory"),
            vec![FindingKind::NonStandardCode]
        );
        assert!(kinds(452, "4.2.2", "mailbox full").is_empty());
    }

    #[test]
    fn temporary_code_for_bad_credentials_is_named() {
        assert_eq!(
            kinds(454, "4.7.0", "Invalid username or password"),
            vec![FindingKind::AuthFailureAsTransient]
        );
        assert_eq!(
            kinds(454, "4.7.8", "Error: authentication failed"),
            vec![FindingKind::AuthFailureAsTransient]
        );
        assert!(kinds(454, "4.7.0", "temporary authentication failure").is_empty());
        assert!(kinds(454, "4.7.0", "TLS not available").is_empty());
        assert!(kinds(535, "5.7.8", "authentication credentials invalid").is_empty());
    }

    #[test]
    fn mailbox_full_code_for_other_things_is_named() {
        let f = check(452, EnhancedCode::parse("4.2.2"), "Too many recipients");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind, FindingKind::QuotaCodeMisused);
        assert_eq!(f[0].suggest, Some(EnhancedCode::new(4, 5, 3)));
        let f = check(
            452,
            EnhancedCode::parse("4.2.2"),
            "insufficient system storage",
        );
        assert_eq!(f[0].suggest, Some(EnhancedCode::new(4, 3, 1)));
        assert!(kinds(
            452,
            "4.2.2",
            "The email account that you tried to reach is over quota"
        )
        .is_empty());
        assert!(kinds(552, "5.2.2", "Mailbox full").is_empty());
    }

    #[test]
    fn enhanced_codes_outside_the_registry_are_noted() {
        assert_eq!(
            kinds(550, "5.7.606", "Access denied, banned sending IP"),
            vec![FindingKind::UnknownEnhanced]
        );
    }

    #[test]
    fn intermediate_replies_carry_no_enhanced_code() {
        assert_eq!(
            kinds(354, "2.0.0", "go ahead"),
            vec![FindingKind::IntermediateWithEnhanced]
        );
    }

    #[test]
    fn enhanced_code_registered_for_other_classes_is_noted() {
        assert_eq!(
            kinds(552, "5.3.1", "mail system full"),
            vec![FindingKind::UnusualClass]
        );
    }
}
