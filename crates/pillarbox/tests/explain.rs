//! `pillarbox explain` run as a binary, on whole replies as providers send
//! them, on pairs, as JSON, in every language and on unknown input.
//!
//! Some renderings are pinned whole in `tests/golden/explain/`: the output is
//! compared byte for byte with the file. After a deliberate change to the
//! output, rewrite them with
//! `UPDATE_GOLDEN=1 cargo test -p pillarbox --test explain` and review the diff.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pillarbox_codes::Lang;
use serde_json::Value;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/explain")
}

/// Whether `actual` is the content of golden file `name`; with
/// `UPDATE_GOLDEN=1`, writes it there instead. Returns a description of the
/// mismatch, if any.
fn golden(name: &str, actual: &str) -> Option<String> {
    let path = golden_dir().join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(golden_dir()).expect("create golden dir");
        std::fs::write(&path, actual).expect("write golden file");
        return None;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (UPDATE_GOLDEN=1 cargo test -p pillarbox --test explain writes it)",
            path.display()
        )
    });
    (expected != actual).then(|| {
        format!(
            "{} differs from the output (rerun with UPDATE_GOLDEN=1 to accept it):\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        )
    })
}

/// Asserts that every `(golden file, output)` pair matches, naming all that do not.
fn assert_golden(pairs: &[(String, String)]) {
    let wrong: Vec<String> = pairs.iter().filter_map(|(n, a)| golden(n, a)).collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

fn ok_stdout(args: &[&str]) -> String {
    let o = explain(args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    stdout(&o)
}

fn explain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pillarbox"))
        .arg("explain")
        .args(args)
        .output()
        .expect("run pillarbox")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 stdout")
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("utf-8 stderr")
}

fn json(args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let o = explain(&all);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).expect("valid JSON")
}

const GMAIL_OVER_QUOTA: &str = "452-4.2.2 The email account that you tried to reach is over quota. Please direct\n\
452-4.2.2 the recipient to\n\
452 4.2.2  https://support.google.com/mail/?p=OverQuotaTemp a640c23a62f3a-ab2c3ad3e4si12345 - gsmtp";

const OUTLOOK_NOT_FOUND: &str = "Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup'";

const POSTFIX_GREYLIST: &str = "host mx.example.org[192.0.2.25] said: 450 4.2.0 <ann@example.org>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/example.org.html (in reply to RCPT TO command)";

const AUTH_454_BAD_PASSWORD: &str = "454 4.7.0 Invalid username or password";

const YAHOO_MAILBOX_DISABLED: &str =
    "554 5.2.1 Mailbox disabled for this recipient - fox@yahoo.example";

const GMAIL_DMARC: &str = "550-5.7.26 This mail is unauthenticated, which poses a security risk to the sender and Gmail users,\n550-5.7.26 and has been blocked. The sender must authenticate with at least one of SPF or DKIM.\n550 5.7.26  https://support.google.com/mail/answer/81126#authentication 4si12345 - gsmtp";

const EXIM_TOO_MANY: &str = "SMTP error from remote mail server after RCPT TO:<zoe@example.net>:\n452 4.2.2 Too many recipients";

#[test]
fn gmail_over_quota_multi_line_keeps_the_provider_text() {
    let o = explain(&[GMAIL_OVER_QUOTA]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("Provider's text: The email account that you tried to reach is over quota. Please direct the recipient to https://support.google.com/mail/?p=OverQuotaTemp"), "{out}");
    assert!(out.contains("452  Insufficient storage"), "{out}");
    assert!(out.contains("4.2.2  Mailbox full"), "{out}");
    assert!(out.contains("retry later"), "{out}");
    assert!(out.contains("No inconsistencies found."), "{out}");
}

#[test]
fn outlook_recipient_not_found_is_a_null_mx_code_met_with_550() {
    let v = json(&[OUTLOOK_NOT_FOUND]);
    assert_eq!(v["reply"]["code"], 550);
    assert_eq!(v["reply"]["enhanced"], "5.1.10");
    assert_eq!(
        v["reply"]["text"],
        "RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"
    );
    assert_eq!(v["reply"]["prefix"], "Remote Server returned");
    assert_eq!(v["enhanced"]["title"], "Recipient address has null MX");
    assert_eq!(v["basic"]["retry"]["kind"], "after_change");
}

#[test]
fn postfix_greylisting_bounce_names_the_command_and_says_retry_later() {
    let v = json(&[POSTFIX_GREYLIST]);
    assert_eq!(v["reply"]["code"], 450);
    assert_eq!(v["reply"]["enhanced"], "4.2.0");
    assert_eq!(v["reply"]["in_reply_to"], "RCPT TO");
    assert_eq!(
        v["reply"]["prefix"],
        "host mx.example.org[192.0.2.25] said:"
    );
    assert!(v["reply"]["text"].as_str().unwrap().contains("Greylisted"));
    assert_eq!(v["basic"]["retry"]["kind"], "later");
    assert_eq!(v["enhanced"]["retry"]["kind"], "later");
    assert_eq!(v["findings"].as_array().unwrap().len(), 0);
}

#[test]
fn temporary_code_for_a_wrong_password_is_flagged() {
    let o = explain(&[AUTH_454_BAD_PASSWORD]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(out.contains("535 5.7.8"), "{out}");
    let v = json(&[AUTH_454_BAD_PASSWORD]);
    let f = &v["findings"][0];
    assert_eq!(f["kind"], "auth_failure_as_transient");
    assert_eq!(f["severity"], "error");
    assert_eq!(f["suggest"], "5.7.8");
    assert!(f["message"].as_str().unwrap().contains("535 5.7.8"));
}

#[test]
fn mailbox_full_code_for_too_many_recipients_is_flagged() {
    let v = json(&[EXIM_TOO_MANY]);
    assert_eq!(v["reply"]["in_reply_to"], "RCPT TO");
    let f = &v["findings"][0];
    assert_eq!(f["kind"], "quota_code_misused");
    assert_eq!(f["suggest"], "4.5.3");
}

#[test]
fn permanent_and_policy_replies_are_explained() {
    let v = json(&[YAHOO_MAILBOX_DISABLED]);
    assert_eq!(v["basic"]["class"]["digit"], 5);
    assert_eq!(v["enhanced"]["code"], "5.2.1");
    let v = json(&[GMAIL_DMARC]);
    assert_eq!(v["reply"]["multiline"], true);
    assert_eq!(v["enhanced"]["code"], "5.7.26");
    assert!(v["reply"]["text"]
        .as_str()
        .unwrap()
        .starts_with("This mail is unauthenticated"));
}

#[test]
fn class_mismatch_is_flagged() {
    let v = json(&["452", "5.2.2"]);
    assert_eq!(v["mode"], "explain");
    assert_eq!(v["findings"][0]["kind"], "class_mismatch");
    assert_eq!(v["findings"][0]["suggest"], "4.2.2");
}

#[test]
fn bare_codes_are_explained() {
    let o = explain(&["452"]);
    assert!(o.status.success());
    assert!(stdout(&o).starts_with("452  Insufficient storage"));
    let o = explain(&["4.2.2"]);
    assert!(o.status.success());
    assert!(stdout(&o).starts_with("4.2.2  Mailbox full"));
    let v = json(&["334"]);
    assert_eq!(v["basic"]["class"]["digit"], 3);
    assert_eq!(v["basic"]["retry"]["kind"], "continue");
    assert!(v["reply"].is_null());
    assert_eq!(v["findings"].as_array().unwrap().len(), 0);
}

#[test]
fn pinned_renderings_match_their_golden_files() {
    let cases: [(&str, &[&str]); 5] = [
        ("452.txt", &["452"]),
        ("4.2.2.txt", &["4.2.2"]),
        ("235-452.txt", &["235", "452"]),
        ("ja-452.txt", &["--lang", "ja", "452"]),
        ("452.json", &["--json", "452"]),
    ];
    let pairs: Vec<(String, String)> = cases
        .iter()
        .map(|(name, args)| (name.to_string(), ok_stdout(args)))
        .collect();
    assert_golden(&pairs);
}

#[test]
fn two_codes_are_compared_side_by_side() {
    let o = explain(&["235", "452"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("235 compared with 452"), "{out}");
    for heading in [
        "Class",
        "Meaning",
        "When you meet it",
        "How to fix",
        "Key differences",
        "The right reply when",
    ] {
        assert!(
            out.contains(&format!("\n{heading}\n")),
            "{heading} missing in {out}"
        );
    }
    assert!(
        out.contains("  1. 235 is 2xx positive completion; 452 is 4xx transient negative."),
        "{out}"
    );
    assert!(out.contains("  2. "), "{out}");
}

#[test]
fn comparison_as_json_has_both_sides_and_numbered_differences() {
    let v = json(&["450", "452"]);
    assert_eq!(v["schema"], "pillarbox-explain/1");
    assert_eq!(v["mode"], "compare");
    assert_eq!(v["sides"][0]["basic"]["code"], "450");
    assert_eq!(v["sides"][1]["basic"]["code"], "452");
    let d = v["differences"].as_array().unwrap();
    assert!(!d.is_empty());
    assert_eq!(d[0], "Both are 4xx transient negative.");
    let v = json(&["4.2.2", "5.2.2"]);
    assert_eq!(v["sides"][0]["enhanced"]["class"]["digit"], 4);
    assert_eq!(v["sides"][1]["enhanced"]["class"]["digit"], 5);
}

#[test]
fn two_whole_replies_are_compared() {
    let v = json(&["452 4.2.2 mailbox full", "552 5.2.2 mailbox full"]);
    assert_eq!(v["mode"], "compare");
    assert_eq!(v["sides"][0]["reply"]["text"], "mailbox full");
    assert_eq!(v["sides"][1]["basic"]["retry"]["kind"], "after_change");
}

#[test]
fn every_language_gives_headings_and_text_in_that_language() {
    // A whole provider reply in each language, pinned: headings, labels and
    // the registry's text as that language has them, the provider's text kept.
    let pairs: Vec<(String, String)> = Lang::ALL
        .into_iter()
        .map(|lang| {
            let out = ok_stdout(&["--lang", lang.tag(), GMAIL_OVER_QUOTA]);
            assert!(
                out.contains("over quota"),
                "{lang}: provider text kept as given"
            );
            (format!("gmail-over-quota.{}.txt", lang.tag()), out)
        })
        .collect();
    assert_golden(&pairs);
    // No language without its file, no file without its language.
    let mut files: Vec<String> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("gmail-over-quota."))
        .collect();
    files.sort();
    let mut names: Vec<String> = pairs.into_iter().map(|(n, _)| n).collect();
    names.sort();
    assert_eq!(files, names);

    for lang in Lang::ALL {
        let out = ok_stdout(&["--lang", lang.tag(), "235", "452"]);
        assert!(
            out.contains("\n  1. "),
            "{lang}: numbered differences in {out}"
        );
        assert!(out.contains("\n  2. "), "{lang}: {out}");
        let v = json(&["--lang", lang.tag(), "211", "354"]);
        assert_eq!(v["lang"], lang.tag());
        let class = &v["sides"][0]["basic"]["class"]["name"];
        if lang == Lang::En {
            assert_eq!(class, "positive completion");
        } else {
            assert!(
                !out.contains("Key differences") && !out.contains("The right reply when"),
                "{lang}: English headings in {out}"
            );
            assert_ne!(
                class, "positive completion",
                "{lang}: class names in the language"
            );
        }
        assert!(v["differences"].as_array().unwrap().len() >= 2);
    }
}

#[test]
fn non_english_output_is_not_english() {
    let en = stdout(&explain(&["452"]));
    for lang in Lang::ALL.into_iter().skip(1) {
        let out = stdout(&explain(&["--lang", lang.tag(), "452"]));
        assert_ne!(out, en, "{lang}");
        assert!(!out.contains("Insufficient storage"), "{lang}: {out}");
    }
}

#[test]
fn unknown_code_is_a_clear_error_with_exit_2() {
    for input in ["431", "422", "5.9.9", "6.0.0x"] {
        let o = explain(&[input]);
        assert_eq!(o.status.code(), Some(2), "{input}");
        assert!(stdout(&o).is_empty(), "{input}");
        let err = stderr(&o);
        assert!(err.starts_with("pillarbox explain: "), "{input}: {err}");
    }
    let err = stderr(&explain(&["431"]));
    assert!(err.contains("unknown code: 431"), "{err}");
    let err = stderr(&explain(&["no code in here"]));
    assert!(err.contains("no reply code found"), "{err}");
    let o = explain(&["--json", "431"]);
    assert_eq!(o.status.code(), Some(2));
    let v: Value = serde_json::from_str(&stdout(&o)).expect("JSON error object");
    assert_eq!(v["mode"], "error");
    assert_eq!(v["error"]["kind"], "unknown_code");
    assert_eq!(v["error"]["input"], "431");
}

#[test]
fn unknown_code_message_follows_the_language() {
    let o = explain(&["--lang", "ja", "431"]);
    assert_eq!(o.status.code(), Some(2));
    assert_golden(&[("ja-431.stderr.txt".into(), stderr(&o))]);
}

#[test]
fn unknown_language_is_refused() {
    let o = explain(&["--lang", "xx", "452"]);
    assert!(!o.status.success());
}
