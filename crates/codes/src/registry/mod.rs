//! The reply-code registry: every basic reply code of RFC 5321 and its
//! extensions, and every enhanced status code of the IANA "Enumerated Status
//! Codes" registry, each explained in six languages.
//!
//! * [`table`]: the language-independent facts of each code: the classes it is
//!   used with, the commands after which it is met, who must act, whether to
//!   retry, the codes it usually goes with and the RFCs that define it.
//! * one file per language ([`Lang`]): the words. `en.rs` is the reference; every
//!   other language has the same entries and the same labels (a test checks it).
//! * [`check`]: inconsistent combinations of basic code, enhanced code and text.
//! * [`parse`]: a whole reply as copied from a log or a bounce.
//! * [`explanation`]: an explanation of one code or reply, and a comparison of two.
//!
//! The registry is written in our own words from RFC 5321 4.2, RFC 3463,
//! RFC 5248 and the IANA registry; several public reference sites invent
//! codes (422, 431) or commands, and nothing here is taken from them.

pub mod check;
pub mod explanation;
pub mod parse;
pub mod table;

mod en;
mod id;
mod ja;
mod pt;
mod tr;
mod zh;

#[cfg(test)]
mod tests;

use std::fmt;

use crate::reply::EnhancedCode;

pub use check::{check, Finding, FindingKind, Severity};
pub use explanation::{compare, Comparison, Explanation, RetryAdvice};
pub use parse::{parse_reply_text, ParsedReply};
pub use table::{Actor, Entry, Retry, Stage};

/// A language the registry speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// English, the reference text.
    En,
    /// Chinese (simplified).
    Zh,
    /// Indonesian.
    Id,
    /// Portuguese.
    Pt,
    /// Japanese.
    Ja,
    /// Turkish.
    Tr,
}

impl Lang {
    /// Every language, English first.
    pub const ALL: [Lang; 6] = [Lang::En, Lang::Zh, Lang::Id, Lang::Pt, Lang::Ja, Lang::Tr];

    /// The language of a tag such as `zh`, `pt-BR` or `ja_JP` (case-insensitive;
    /// only the primary subtag counts).
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag
            .split(['-', '_'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        match primary.as_str() {
            "en" => Some(Lang::En),
            "zh" => Some(Lang::Zh),
            "id" | "in" => Some(Lang::Id),
            "pt" => Some(Lang::Pt),
            "ja" => Some(Lang::Ja),
            "tr" => Some(Lang::Tr),
            _ => None,
        }
    }

    /// The tag of the language: `en`, `zh`, `id`, `pt`, `ja`, `tr`.
    pub const fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
            Lang::Id => "id",
            Lang::Pt => "pt",
            Lang::Ja => "ja",
            Lang::Tr => "tr",
        }
    }

    /// The labels and headings of explanations in this language.
    pub fn labels(self) -> &'static Labels {
        match self {
            Lang::En => &en::LABELS,
            Lang::Zh => &zh::LABELS,
            Lang::Id => &id::LABELS,
            Lang::Pt => &pt::LABELS,
            Lang::Ja => &ja::LABELS,
            Lang::Tr => &tr::LABELS,
        }
    }

    /// The texts of every entry in this language.
    pub(crate) fn texts(self) -> &'static [Text] {
        match self {
            Lang::En => en::TEXTS,
            Lang::Zh => zh::TEXTS,
            Lang::Id => id::TEXTS,
            Lang::Pt => pt::TEXTS,
            Lang::Ja => ja::TEXTS,
            Lang::Tr => tr::TEXTS,
        }
    }

    /// The separator between items of a list (`, ` or `、`).
    pub fn list_separator(self) -> &'static str {
        match self {
            Lang::Zh | Lang::Ja => "、",
            _ => ", ",
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tag())
    }
}

/// What an entry is about: a basic reply code (`452`) or an enhanced status
/// code without its class (`X.2.2`, RFC 3463 2: the class comes from the reply).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    /// A basic reply code, RFC 5321 4.2.
    Basic(u16),
    /// `X.subject.detail`.
    Enhanced(u16, u16),
}

impl Key {
    /// The key of an enhanced code (its class dropped).
    pub const fn of_enhanced(code: EnhancedCode) -> Key {
        Key::Enhanced(code.subject, code.detail)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Basic(code) => write!(f, "{code}"),
            Key::Enhanced(subject, detail) => write!(f, "X.{subject}.{detail}"),
        }
    }
}

impl serde::Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The words of one entry in one language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Text {
    /// The entry these words belong to.
    pub key: Key,
    /// A short title (`Mailbox full`).
    pub title: &'static str,
    /// What the code means.
    pub description: &'static str,
    /// When a client meets it: after which commands, under what condition.
    pub when: &'static str,
    /// Whether to retry and how.
    pub retry: &'static str,
    /// What the sender (the person, or the sending system's administrator) can do.
    pub fix_sender: &'static str,
    /// What the operator of the replying server can do.
    pub fix_operator: &'static str,
    /// When a server should send this code rather than another.
    pub right_reply: &'static str,
}

impl Text {
    /// Every field, for completeness checks.
    pub fn fields(&self) -> [&'static str; 7] {
        [
            self.title,
            self.description,
            self.when,
            self.retry,
            self.fix_sender,
            self.fix_operator,
            self.right_reply,
        ]
    }
}

/// Builds a [`Text`]; the language files are tables of these calls.
#[allow(clippy::too_many_arguments)]
pub(crate) const fn t(
    key: Key,
    title: &'static str,
    description: &'static str,
    when: &'static str,
    retry: &'static str,
    fix_sender: &'static str,
    fix_operator: &'static str,
    right_reply: &'static str,
) -> Text {
    Text {
        key,
        title,
        description,
        when,
        retry,
        fix_sender,
        fix_operator,
        right_reply,
    }
}

/// Shorthand for [`Key::Basic`] in the language tables.
pub(crate) const fn b(code: u16) -> Key {
    Key::Basic(code)
}

/// Shorthand for [`Key::Enhanced`] in the language tables.
pub(crate) const fn x(subject: u16, detail: u16) -> Key {
    Key::Enhanced(subject, detail)
}

/// Every heading, label and message template of an explanation, in one language.
///
/// Templates name their placeholders in braces (`{code}`); [`fill`] replaces them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Labels {
    /// Heading: the basic or enhanced code.
    pub code: &'static str,
    /// Heading: the class of a code.
    pub class: &'static str,
    /// Heading: the classes an enhanced code is used with.
    pub classes: &'static str,
    /// Heading: the subject of an enhanced code.
    pub subject: &'static str,
    /// Heading: what the code means.
    pub meaning: &'static str,
    /// Heading: when a client meets it.
    pub when: &'static str,
    /// Heading: the commands after which it is met.
    pub after: &'static str,
    /// Heading: who must act.
    pub actors: &'static str,
    /// Heading: whether to retry.
    pub retry: &'static str,
    /// Heading: how to fix (both sides).
    pub fix: &'static str,
    /// Heading: what the sender can do.
    pub fix_sender: &'static str,
    /// Heading: what the server operator can do.
    pub fix_operator: &'static str,
    /// Heading: when this is the right reply.
    pub right_reply: &'static str,
    /// Heading: codes it usually goes with.
    pub usually_with: &'static str,
    /// Heading: RFCs.
    pub references: &'static str,
    /// Heading: the reply as given.
    pub reply: &'static str,
    /// Heading: the provider's own text, kept as given.
    pub provider_text: &'static str,
    /// Heading: the words before the reply (`host mx.example said:`).
    pub reported_as: &'static str,
    /// Heading: the command the reply answered, when the bounce says.
    pub in_reply_to: &'static str,
    /// Heading: findings of the consistency check.
    pub findings: &'static str,
    /// Said when the check finds nothing.
    pub no_findings: &'static str,
    /// Heading of a comparison; `{a}` and `{b}` are the two codes.
    pub comparison: &'static str,
    /// Heading: the numbered differences.
    pub differences: &'static str,
    /// Heading: the explanation of the basic code of a reply.
    pub basic_code: &'static str,
    /// Heading: the explanation of the enhanced code of a reply.
    pub enhanced_code: &'static str,
    /// Error: `{input}` is not a known code.
    pub unknown_code: &'static str,
    /// Error: no reply code could be found in `{input}`.
    pub no_code_found: &'static str,
    /// Class names and meanings, index 0 = 2xx, 1 = 3xx, 2 = 4xx, 3 = 5xx.
    pub class_names: [&'static str; 4],
    /// One-line meaning of each class, same order.
    pub class_meanings: [&'static str; 4],
    /// Subject names, index = subject digit 0..=7 (RFC 3463 3).
    pub subject_names: [&'static str; 8],
    /// Actor names: client software, sender, recipient, operator.
    pub actor_names: [&'static str; 4],
    /// Retry advice names: none, continue, later, reconnect, after a change, depends on class.
    pub retry_names: [&'static str; 6],
    /// Stage names that are not command verbs: connection opening, end of data,
    /// any command, inside an AUTH exchange, in a delivery report.
    pub stage_names: [&'static str; 5],
    /// Severity names: error, warning, note.
    pub severity_names: [&'static str; 3],
    /// Finding: basic class `{code}` and enhanced class `{enhanced}` disagree.
    pub finding_class_mismatch: &'static str,
    /// Finding: an enhanced code `{enhanced}` on a 3xx reply `{code}` (there is no class 3).
    pub finding_intermediate_enhanced: &'static str,
    /// Finding: `{code}` is not a standard reply code.
    pub finding_non_standard: &'static str,
    /// Finding: 454 (`{code}`) used for bad credentials.
    pub finding_auth_temporary: &'static str,
    /// Finding: X.2.2 (`{enhanced}`) for something that is not a full mailbox; `{suggest}`.
    pub finding_quota_misused: &'static str,
    /// Suggestion appended when a better code is known: `{suggest}`.
    pub finding_suggest: &'static str,
    /// Finding: `{enhanced}` is not in the IANA registry.
    pub finding_unknown_enhanced: &'static str,
    /// Finding: `{enhanced}` registered for classes `{classes}` only.
    pub finding_unusual_class: &'static str,
    /// Difference: both have class `{class}`.
    pub diff_same_class: &'static str,
    /// Difference: `{a}` is `{class_a}`, `{b}` is `{class_b}`.
    pub diff_class: &'static str,
    /// Difference: `{a}` retry `{retry_a}`, `{b}` retry `{retry_b}`.
    pub diff_retry: &'static str,
    /// Difference: `{a}` after `{after_a}`, `{b}` after `{after_b}`.
    pub diff_after: &'static str,
    /// Difference: `{a}` acted on by `{actors_a}`, `{b}` by `{actors_b}`.
    pub diff_actors: &'static str,
    /// Difference: subjects `{subject_a}` and `{subject_b}`.
    pub diff_subject: &'static str,
    /// Difference: `{a}` is intermediate: the exchange goes on.
    pub diff_intermediate: &'static str,
    /// Difference: `{a}` ends the transaction or connection and `{b}` does not.
    pub diff_closes: &'static str,
    /// Difference: the two are the same entry.
    pub diff_same: &'static str,
}

impl Labels {
    /// Every label and template, for completeness checks.
    pub fn all(&self) -> Vec<&'static str> {
        let mut v = vec![
            self.code,
            self.class,
            self.classes,
            self.subject,
            self.meaning,
            self.when,
            self.after,
            self.actors,
            self.retry,
            self.fix,
            self.fix_sender,
            self.fix_operator,
            self.right_reply,
            self.usually_with,
            self.references,
            self.reply,
            self.provider_text,
            self.reported_as,
            self.in_reply_to,
            self.findings,
            self.no_findings,
            self.comparison,
            self.differences,
            self.basic_code,
            self.enhanced_code,
            self.unknown_code,
            self.no_code_found,
            self.finding_class_mismatch,
            self.finding_intermediate_enhanced,
            self.finding_non_standard,
            self.finding_auth_temporary,
            self.finding_quota_misused,
            self.finding_suggest,
            self.finding_unknown_enhanced,
            self.finding_unusual_class,
            self.diff_same_class,
            self.diff_class,
            self.diff_retry,
            self.diff_after,
            self.diff_actors,
            self.diff_subject,
            self.diff_intermediate,
            self.diff_closes,
            self.diff_same,
        ];
        v.extend(self.class_names);
        v.extend(self.class_meanings);
        v.extend(self.subject_names);
        v.extend(self.actor_names);
        v.extend(self.retry_names);
        v.extend(self.stage_names);
        v.extend(self.severity_names);
        v
    }

    /// The name of a class by its digit (2..=5).
    pub fn class_name(&self, class: u8) -> &'static str {
        self.class_names[class_index(class)]
    }

    /// The one-line meaning of a class by its digit (2..=5).
    pub fn class_meaning(&self, class: u8) -> &'static str {
        self.class_meanings[class_index(class)]
    }

    /// The name of a subject by its digit (0..=7); `None` past 7.
    pub fn subject_name(&self, subject: u16) -> Option<&'static str> {
        self.subject_names.get(usize::from(subject)).copied()
    }
}

fn class_index(class: u8) -> usize {
    usize::from(class.clamp(2, 5) - 2)
}

/// Replaces each `{name}` in `template` by its value.
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (name, value) in values {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

/// Every entry of the registry, basic codes first.
pub fn entries() -> &'static [Entry] {
    table::ENTRIES
}

/// The entry of a key, if the registry has it.
pub fn entry(key: Key) -> Option<&'static Entry> {
    table::ENTRIES.iter().find(|e| e.key == key)
}

/// The entry of a basic reply code (`452`), if it is a standard one.
pub fn basic(code: u16) -> Option<&'static Entry> {
    entry(Key::Basic(code))
}

/// The entry of an enhanced status code (`4.2.2`), if IANA registers it.
pub fn enhanced(code: EnhancedCode) -> Option<&'static Entry> {
    entry(Key::of_enhanced(code))
}

/// The words of `key` in `lang`. Falls back to English when a language lacks
/// the entry (a test forbids that), and is `None` only for keys not in the registry.
pub fn text(key: Key, lang: Lang) -> Option<&'static Text> {
    lang.texts()
        .iter()
        .find(|t| t.key == key)
        .or_else(|| en::TEXTS.iter().find(|t| t.key == key))
}
