//! An explanation of one code, in one language, and the comparison of two.
//!
//! These are plain data (serde-serialisable); `pillarbox explain` renders
//! them as text or JSON, and `probe` annotates transcripts with them.

use super::{entry, fill, text, Actor, Entry, Key, Lang, Retry, Stage};
use crate::reply::EnhancedCode;

/// A class, by digit, with its name and meaning in the explanation's language.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ClassInfo {
    /// 2, 3, 4 or 5.
    pub digit: u8,
    /// `transient negative`.
    pub name: &'static str,
    /// What the class tells a client.
    pub meaning: &'static str,
}

impl ClassInfo {
    fn new(digit: u8, lang: Lang) -> ClassInfo {
        let l = lang.labels();
        ClassInfo {
            digit,
            name: l.class_name(digit),
            meaning: l.class_meaning(digit),
        }
    }
}

/// The subject of an enhanced code (RFC 3463 3).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SubjectInfo {
    /// 0 to 7.
    pub digit: u16,
    /// `mailbox status`.
    pub name: &'static str,
}

/// Who acts, by id and name.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ActorInfo {
    /// The actor.
    pub id: Actor,
    /// Its name in the explanation's language.
    pub name: &'static str,
}

/// Where the code is met, by id and name.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StageInfo {
    /// The stage.
    pub id: Stage,
    /// The verb (`RCPT`) or its name in the explanation's language.
    pub name: &'static str,
}

/// Whether and how to retry.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RetryAdvice {
    /// The advice.
    pub kind: Retry,
    /// Its name in the explanation's language.
    pub name: &'static str,
    /// How, in words.
    pub how: &'static str,
}

/// How to fix it, for each side.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Fix {
    /// What the sender can do.
    pub sender: &'static str,
    /// What the operator of the replying server can do.
    pub operator: &'static str,
}

/// One code explained in one language.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Explanation {
    /// The code as met (`452`, `4.2.2`), or the registry key (`X.2.2`).
    pub code: String,
    /// The registry key (`452`, `X.2.2`).
    pub key: Key,
    /// `basic` or `enhanced`.
    pub kind: &'static str,
    /// The class of the code as met; `None` for an enhanced key met without class.
    pub class: Option<ClassInfo>,
    /// The classes the code is used with (one for a basic code).
    pub classes: Vec<ClassInfo>,
    /// The subject of an enhanced code.
    pub subject: Option<SubjectInfo>,
    /// A short title.
    pub title: &'static str,
    /// What it means.
    pub description: &'static str,
    /// When a client meets it.
    pub when: &'static str,
    /// The commands after which it is met.
    pub after: Vec<StageInfo>,
    /// Who must act.
    pub actors: Vec<ActorInfo>,
    /// Whether and how to retry.
    pub retry: RetryAdvice,
    /// How to fix it.
    pub fix: Fix,
    /// When it is the right reply for a server.
    pub right_reply: &'static str,
    /// Codes it usually goes with.
    pub usually_with: &'static [&'static str],
    /// Where it is defined.
    pub references: &'static [&'static str],
    /// The language of the words.
    pub lang: Lang,
}

impl Explanation {
    /// The explanation of a registry entry; `class` is the class of the code
    /// as met, when known (always known for a basic code).
    pub fn of_entry(entry: &'static Entry, class: Option<u8>, lang: Lang) -> Explanation {
        let words =
            text(entry.key, lang).unwrap_or_else(|| unreachable!("every entry has English text"));
        let l = lang.labels();
        let (code, class) = match (entry.key, class) {
            (Key::Basic(c), _) => (c.to_string(), Some((c / 100) as u8)),
            (Key::Enhanced(s, d), Some(cl)) => (format!("{cl}.{s}.{d}"), Some(cl)),
            (Key::Enhanced(..), None) => (entry.key.to_string(), None),
        };
        let retry_kind = entry.retry_for(class);
        Explanation {
            code,
            key: entry.key,
            kind: if entry.is_basic() {
                "basic"
            } else {
                "enhanced"
            },
            class: class.map(|c| ClassInfo::new(c, lang)),
            classes: entry
                .classes
                .iter()
                .map(|&c| ClassInfo::new(c, lang))
                .collect(),
            subject: entry.subject().map(|s| SubjectInfo {
                digit: s,
                name: l.subject_name(s).unwrap_or(""),
            }),
            title: words.title,
            description: words.description,
            when: words.when,
            after: entry
                .stages
                .iter()
                .map(|&s| StageInfo {
                    id: s,
                    name: s.name(lang),
                })
                .collect(),
            actors: entry
                .actors
                .iter()
                .map(|&a| ActorInfo {
                    id: a,
                    name: a.name(lang),
                })
                .collect(),
            retry: RetryAdvice {
                kind: retry_kind,
                name: retry_kind.name(lang),
                how: words.retry,
            },
            fix: Fix {
                sender: words.fix_sender,
                operator: words.fix_operator,
            },
            right_reply: words.right_reply,
            usually_with: entry.usually_with,
            references: entry.references,
            lang,
        }
    }

    /// The explanation of a basic reply code, if the registry has it.
    pub fn basic(code: u16, lang: Lang) -> Option<Explanation> {
        entry(Key::Basic(code)).map(|e| Explanation::of_entry(e, None, lang))
    }

    /// The explanation of an enhanced status code, if IANA registers it.
    pub fn enhanced(code: EnhancedCode, lang: Lang) -> Option<Explanation> {
        entry(Key::of_enhanced(code)).map(|e| Explanation::of_entry(e, Some(code.class), lang))
    }

    /// Whether the code closes the connection after it is sent (RFC 5321 3.8, 4.2.3; RFC 7504).
    fn closes_connection(&self) -> bool {
        matches!(self.key, Key::Basic(221 | 421 | 521))
    }

    fn joined_after(&self) -> String {
        self.after
            .iter()
            .map(|s| s.name)
            .collect::<Vec<_>>()
            .join(self.lang.list_separator())
    }

    fn joined_actors(&self) -> String {
        self.actors
            .iter()
            .map(|a| a.name)
            .collect::<Vec<_>>()
            .join(self.lang.list_separator())
    }

    fn class_label(&self) -> String {
        match &self.class {
            Some(c) => format!("{}xx {}", c.digit, c.name),
            None => self
                .classes
                .iter()
                .map(|c| format!("{}xx {}", c.digit, c.name))
                .collect::<Vec<_>>()
                .join(" / "),
        }
    }
}

/// Two codes side by side, with their key differences.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Comparison {
    /// The first code.
    pub a: Explanation,
    /// The second code.
    pub b: Explanation,
    /// The key differences, most important first.
    pub differences: Vec<String>,
}

/// Compares two explanations (in the language of `a`).
pub fn compare(a: Explanation, b: Explanation) -> Comparison {
    let lang = a.lang;
    let l = lang.labels();
    let mut d = Vec::new();
    let names = [("a", a.code.as_str()), ("b", b.code.as_str())];
    let with = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
        names
            .iter()
            .chain(extra.iter())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let fill_owned = |tpl: &str, vals: Vec<(String, String)>| {
        let refs: Vec<(&str, &str)> = vals.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        fill(tpl, &refs)
    };

    if a.key == b.key && a.class.as_ref().map(|c| c.digit) == b.class.as_ref().map(|c| c.digit) {
        d.push(fill_owned(l.diff_same, with(&[])));
        return Comparison {
            a,
            b,
            differences: d,
        };
    }

    let (ca, cb) = (a.class_label(), b.class_label());
    if ca == cb {
        d.push(fill_owned(l.diff_same_class, with(&[("class", &ca)])));
    } else {
        d.push(fill_owned(
            l.diff_class,
            with(&[("class_a", &ca), ("class_b", &cb)]),
        ));
    }
    for (x, y) in [(&a, &b), (&b, &a)] {
        if x.class.as_ref().is_some_and(|c| c.digit == 3)
            && y.class.as_ref().is_none_or(|c| c.digit != 3)
        {
            d.push(fill_owned(
                l.diff_intermediate,
                vec![("a".into(), x.code.clone())],
            ));
        }
    }
    if a.retry.kind != b.retry.kind {
        d.push(fill_owned(
            l.diff_retry,
            with(&[("retry_a", a.retry.name), ("retry_b", b.retry.name)]),
        ));
    }
    if let (Some(sa), Some(sb)) = (&a.subject, &b.subject) {
        if sa.digit != sb.digit {
            d.push(fill_owned(
                l.diff_subject,
                with(&[("subject_a", sa.name), ("subject_b", sb.name)]),
            ));
        }
    }
    let (aa, ab) = (a.joined_after(), b.joined_after());
    if aa != ab {
        d.push(fill_owned(
            l.diff_after,
            with(&[("after_a", &aa), ("after_b", &ab)]),
        ));
    }
    let (pa, pb) = (a.joined_actors(), b.joined_actors());
    if pa != pb {
        d.push(fill_owned(
            l.diff_actors,
            with(&[("actors_a", &pa), ("actors_b", &pb)]),
        ));
    }
    for (x, y) in [(&a, &b), (&b, &a)] {
        if x.closes_connection() && !y.closes_connection() {
            d.push(fill_owned(
                l.diff_closes,
                vec![("a".into(), x.code.clone()), ("b".into(), y.code.clone())],
            ));
        }
    }
    Comparison {
        a,
        b,
        differences: d,
    }
}
