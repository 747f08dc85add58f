//! The registry against its sources and against itself.

use std::collections::HashSet;

use super::*;
use crate::contract::Row;
use crate::reply::EnhancedCode;

/// RFC 5321 4.2.2/4.2.3, RFC 3207, RFC 4954, RFC 7504.
const BASIC: &[u16] = &[
    211, 214, 220, 221, 235, 250, 251, 252, 334, 354, 421, 432, 450, 451, 452, 454, 455, 500, 501,
    502, 503, 504, 521, 530, 534, 535, 538, 550, 551, 552, 553, 554, 555, 556,
];

/// The IANA "Enumerated Status Codes" registry: (subject, highest detail).
const IANA: &[(u16, u16)] = &[
    (0, 0),
    (1, 10),
    (2, 4),
    (3, 6),
    (4, 7),
    (5, 6),
    (6, 10),
    (7, 30),
];

#[test]
fn every_iana_enhanced_code_is_present() {
    let mut n = 0;
    for &(subject, last) in IANA {
        for detail in 0..=last {
            assert!(
                entry(Key::Enhanced(subject, detail)).is_some(),
                "X.{subject}.{detail} missing"
            );
            n += 1;
        }
    }
    assert_eq!(n, 81);
    let enhanced = entries().iter().filter(|e| !e.is_basic()).count();
    assert_eq!(enhanced, 81, "no enhanced code outside the IANA registry");
}

#[test]
fn every_standard_basic_code_is_present_and_no_invented_one() {
    for &c in BASIC {
        assert!(basic(c).is_some(), "{c} missing");
    }
    let basics: Vec<u16> = entries()
        .iter()
        .filter_map(|e| match e.key {
            Key::Basic(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(basics, BASIC, "basic codes in numeric order, nothing more");
    for invented in [422, 431, 523, 524, 525] {
        assert!(
            basic(invented).is_none(),
            "{invented} is not a standard code"
        );
    }
}

#[test]
fn keys_are_unique() {
    let mut seen = HashSet::new();
    for e in entries() {
        assert!(seen.insert(e.key), "{} twice", e.key);
    }
}

#[test]
fn every_class_is_consistent_with_the_first_digit() {
    for e in entries() {
        assert!(!e.classes.is_empty(), "{}", e.key);
        match e.key {
            Key::Basic(c) => {
                assert_eq!(e.classes, &[(c / 100) as u8], "{c}");
                let expected = match c / 100 {
                    2 => Retry::None,
                    3 => Retry::Continue,
                    _ => e.retry,
                };
                assert_eq!(e.retry, expected, "{c}");
                if c / 100 == 4 {
                    assert!(
                        matches!(
                            e.retry,
                            Retry::Later | Retry::Reconnect | Retry::AfterChange
                        ),
                        "{c}"
                    );
                }
                if c / 100 == 5 {
                    assert_eq!(e.retry, Retry::AfterChange, "{c}");
                }
                // Usual companions share the class (RFC 3463 2).
                for w in e.usually_with {
                    let enh = EnhancedCode::parse(w).expect(w);
                    assert_eq!(u16::from(enh.class), c / 100, "{c} with {w}");
                    assert!(enhanced(enh).is_some(), "{w} not in the registry");
                }
            }
            Key::Enhanced(..) => {
                for &class in e.classes {
                    assert!(matches!(class, 2 | 4 | 5), "{}: class {class}", e.key);
                }
                for w in e.usually_with {
                    let code: u16 = w.parse().expect(w);
                    assert!(
                        basic(code).is_some(),
                        "{}: {w} is not a standard basic code",
                        e.key
                    );
                }
            }
        }
        assert!(
            !e.stages.is_empty() && !e.actors.is_empty() && !e.references.is_empty(),
            "{}",
            e.key
        );
    }
}

#[test]
fn iana_class_notes_are_kept() {
    // X.7.8 is registered with 535 and 554 only: a permanent failure.
    assert_eq!(entry(Key::Enhanced(7, 8)).unwrap().classes, &[5]);
    // X.3.1 "useful only as a persistent transient error".
    assert_eq!(entry(Key::Enhanced(3, 1)).unwrap().classes, &[4]);
    // X.2.2 both ways; X.1.5 success only.
    assert_eq!(entry(Key::Enhanced(2, 2)).unwrap().classes, &[4, 5]);
    assert_eq!(entry(Key::Enhanced(1, 5)).unwrap().classes, &[2]);
}

#[test]
fn every_language_has_every_entry_with_no_empty_field() {
    for lang in Lang::ALL {
        let texts = lang.texts();
        for e in entries() {
            let n = texts.iter().filter(|t| t.key == e.key).count();
            assert_eq!(n, 1, "{lang}: {} present {n} times", e.key);
        }
        for t in texts {
            assert!(
                entry(t.key).is_some(),
                "{lang}: text for {} not in the registry",
                t.key
            );
            for (i, f) in t.fields().iter().enumerate() {
                assert!(!f.trim().is_empty(), "{lang}: {} field {i} empty", t.key);
            }
        }
        // Entries follow the order of the registry, so a missing one is easy to spot.
        let order: Vec<usize> = texts
            .iter()
            .map(|t| entries().iter().position(|e| e.key == t.key).unwrap())
            .collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "{lang}: texts out of registry order"
        );
        for label in lang.labels().all() {
            assert!(!label.trim().is_empty(), "{lang}: empty label");
        }
    }
}

#[test]
fn every_language_covers_the_whole_registry() {
    for lang in Lang::ALL {
        assert_eq!(lang.texts().len(), entries().len(), "{lang}");
    }
}

#[test]
fn every_language_answers_in_its_own_words() {
    // `text` falls back to English only for a missing entry, and no language
    // misses one: every key is answered from the language's own table.
    for lang in Lang::ALL {
        for e in entries() {
            let t = text(e.key, lang).unwrap_or_else(|| panic!("{lang}: no text for {}", e.key));
            assert_eq!(t.key, e.key);
            let own = lang
                .texts()
                .iter()
                .find(|t| t.key == e.key)
                .unwrap_or_else(|| panic!("{lang}: {} only in English", e.key));
            // Compared by value: a `const` table may be one copy per use in
            // an optimised build, so addresses say nothing.
            assert_eq!(t, own, "{lang}: {} from English", e.key);
        }
    }
    let en = text(Key::Enhanced(7, 30), Lang::En).unwrap();
    for lang in [Lang::Zh, Lang::Id, Lang::Pt, Lang::Ja, Lang::Tr] {
        let t = text(Key::Enhanced(7, 30), lang).unwrap();
        assert_ne!(t.title, en.title, "{lang}: X.7.30 shown in English");
    }
}

#[test]
fn translations_are_not_english_copies() {
    let en = Lang::En.texts();
    for lang in Lang::ALL.into_iter().skip(1) {
        assert_ne!(lang.labels().when, Lang::En.labels().when, "{lang} labels");
        for t in lang.texts() {
            let e = en.iter().find(|e| e.key == t.key).unwrap();
            assert_ne!(
                t.description, e.description,
                "{lang}: {} description is English",
                t.key
            );
        }
    }
}

#[test]
fn templates_keep_their_placeholders_in_every_language() {
    let en = Lang::En.labels();
    for lang in Lang::ALL {
        let l = lang.labels();
        let pairs = [
            (en.comparison, l.comparison),
            (en.unknown_code, l.unknown_code),
            (en.no_code_found, l.no_code_found),
            (en.finding_class_mismatch, l.finding_class_mismatch),
            (
                en.finding_intermediate_enhanced,
                l.finding_intermediate_enhanced,
            ),
            (en.finding_non_standard, l.finding_non_standard),
            (en.finding_auth_temporary, l.finding_auth_temporary),
            (en.finding_quota_misused, l.finding_quota_misused),
            (en.finding_suggest, l.finding_suggest),
            (en.finding_unknown_enhanced, l.finding_unknown_enhanced),
            (en.finding_unusual_class, l.finding_unusual_class),
            (en.diff_same_class, l.diff_same_class),
            (en.diff_class, l.diff_class),
            (en.diff_retry, l.diff_retry),
            (en.diff_after, l.diff_after),
            (en.diff_actors, l.diff_actors),
            (en.diff_subject, l.diff_subject),
            (en.diff_intermediate, l.diff_intermediate),
            (en.diff_closes, l.diff_closes),
            (en.diff_same, l.diff_same),
        ];
        for (e, t) in pairs {
            for ph in placeholders(e) {
                assert!(t.contains(&ph), "{lang}: {ph} missing in {t:?}");
            }
            for ph in placeholders(t) {
                assert!(e.contains(&ph), "{lang}: unknown {ph} in {t:?}");
            }
        }
    }
}

fn placeholders(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('{') {
        if let Some(j) = rest[i..].find('}') {
            out.push(rest[i..i + j + 1].to_string());
            rest = &rest[i + j + 1..];
        } else {
            break;
        }
    }
    out
}

#[test]
fn the_six_codes_are_explained_and_compared_in_every_language() {
    let six = [211, 235, 334, 354, 450, 452];
    for lang in Lang::ALL {
        for &c in &six {
            let e = Explanation::basic(c, lang).unwrap();
            assert_eq!(e.code, c.to_string());
            assert_eq!(e.class.as_ref().unwrap().digit, (c / 100) as u8);
            for f in [
                e.title,
                e.description,
                e.when,
                e.retry.how,
                e.fix.sender,
                e.fix.operator,
                e.right_reply,
            ] {
                assert!(!f.is_empty(), "{lang} {c}");
            }
        }
        for (i, &a) in six.iter().enumerate() {
            for &b in &six[i + 1..] {
                let cmp = compare(
                    Explanation::basic(a, lang).unwrap(),
                    Explanation::basic(b, lang).unwrap(),
                );
                assert!(
                    cmp.differences.len() >= 2,
                    "{lang} {a} vs {b}: {:?}",
                    cmp.differences
                );
                for d in &cmp.differences {
                    assert!(!d.contains('{'), "{lang}: unfilled template {d}");
                    assert!(
                        d.contains(&a.to_string()) || d.contains(&b.to_string()) || !d.is_empty()
                    );
                }
            }
        }
    }
}

#[test]
fn comparing_235_and_452_names_class_retry_and_commands() {
    let cmp = compare(
        Explanation::basic(235, Lang::En).unwrap(),
        Explanation::basic(452, Lang::En).unwrap(),
    );
    let all = cmp.differences.join("\n");
    assert!(
        all.contains("235 is 2xx positive completion; 452 is 4xx transient negative"),
        "{all}"
    );
    assert!(all.contains("retry later"), "{all}");
    assert!(all.contains("AUTH"), "{all}");
    assert!(all.contains("RCPT"), "{all}");
}

#[test]
fn every_contract_row_is_in_the_registry_and_passes_the_check() {
    for row in Row::ALL {
        let spec = row.spec();
        assert!(
            basic(spec.code).is_some(),
            "{row:?}: {} not in the registry",
            spec.code
        );
        let enh = spec.enhanced.map(|(c, s, d)| EnhancedCode::new(c, s, d));
        if let Some(e) = enh {
            let entry = enhanced(e).unwrap_or_else(|| panic!("{row:?}: {e} not in the registry"));
            assert!(
                entry.classes.contains(&e.class),
                "{row:?}: {e} not registered for class {}",
                e.class
            );
        }
        let findings = check(spec.code, enh, spec.text);
        assert!(findings.is_empty(), "{row:?}: {findings:?}");
    }
}

#[test]
fn findings_are_said_in_every_language() {
    let f = check(454, EnhancedCode::parse("4.7.0"), "invalid password");
    assert_eq!(f.len(), 1);
    for lang in Lang::ALL {
        let m = f[0].message(lang);
        assert!(
            m.contains("454") && m.contains("535 5.7.8") && m.contains("5.7.8"),
            "{lang}: {m}"
        );
        assert!(!m.contains('{'), "{lang}: {m}");
    }
}

#[test]
fn lang_from_tag_takes_the_primary_subtag() {
    assert_eq!(Lang::from_tag("zh"), Some(Lang::Zh));
    assert_eq!(Lang::from_tag("pt-BR"), Some(Lang::Pt));
    assert_eq!(Lang::from_tag("ja_JP"), Some(Lang::Ja));
    assert_eq!(Lang::from_tag("TR"), Some(Lang::Tr));
    assert_eq!(Lang::from_tag("id"), Some(Lang::Id));
    assert_eq!(Lang::from_tag("fr"), None);
    for l in Lang::ALL {
        assert_eq!(Lang::from_tag(l.tag()), Some(l));
    }
}
