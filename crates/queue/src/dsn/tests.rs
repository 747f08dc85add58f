//! Unit tests of the notification builder.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

const ORIGINAL: &[u8] = b"From: Ann <ann@example.org>\n\
To: Bob <bob@example.net>\n\
Subject: lunch\n\
Message-ID: <orig-1@example.org>\n\
\n\
Shall we meet at noon?\n\
BODY-MARKER\n";

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn recipient(action: Action) -> DsnRecipient {
    let (status, reply) = match action {
        Action::Failed => ("5.1.1", "550 5.1.1 <bob@example.net>: user unknown"),
        Action::Delayed => ("4.2.2", "452 4.2.2 mailbox full, try again later"),
        Action::Delivered | Action::Relayed => ("2.0.0", "250 2.0.0 OK queued as 7F3A"),
    };
    DsnRecipient {
        final_recipient: "bob@example.net".into(),
        original_recipient: Some(("rfc822".into(), "Bob@Example.NET".into())),
        action,
        status: Some(status.into()),
        reply: Some(reply.into()),
        remote_mta: Some("mx.example.net".into()),
        last_attempt: Some(at(1_700_000_600)),
        will_retry_until: Some(at(1_700_432_000)),
    }
}

fn report(recipients: &[DsnRecipient]) -> Report<'_> {
    Report {
        reporting_mta: "mx.example.org",
        envid: Some("QQ314159"),
        arrival: at(1_700_000_000),
        original_sender: "ann@example.org",
        recipients,
        ret: Ret::Full,
        original: ORIGINAL,
        language: Lang::En,
        now: at(1_700_000_900),
        message_id: "dsn.0001",
        max_original: 1 << 20,
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("a notification built from UTF-8 is UTF-8")
}

/// The header block of the notification itself, folded lines joined.
fn top_header(msg: &str) -> String {
    let end = msg.find("\r\n\r\n").expect("a header ends");
    msg[..end].replace("\r\n\t", " ").replace("\r\n ", " ")
}

/// The value of a field of a header block.
fn header_value<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    header.split("\r\n").find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The parts of the multipart/report: (header, body) of each.
fn parts(msg: &str) -> Vec<(String, String)> {
    let header = top_header(msg);
    let ct = header_value(&header, "Content-Type").expect("a Content-Type");
    let b = ct
        .split("boundary=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a boundary");
    let delimiter = format!("\r\n--{b}");
    let body = &msg[msg.find("\r\n\r\n").unwrap() + 2..];
    let close = body
        .find(&format!("{delimiter}--"))
        .expect("a close delimiter");
    body[..close]
        .split(delimiter.as_str())
        .skip(1)
        .map(|part| {
            let part = part.strip_prefix("\r\n").expect("CRLF after a delimiter");
            let (h, b) = part.split_once("\r\n\r\n").expect("a part header");
            (h.to_string(), b.to_string())
        })
        .collect()
}

/// The delivery-status part split into its blocks of fields (RFC 3464 2.1).
fn status_blocks(msg: &str) -> Vec<String> {
    let parts = parts(msg);
    let (h, body) = &parts[1];
    assert_eq!(
        header_value(h, "Content-Type"),
        Some("message/delivery-status")
    );
    body.trim_end_matches("\r\n")
        .split("\r\n\r\n")
        .map(|b| format!("{b}\r\n").replace("\r\n ", " "))
        .collect()
}

fn build_str(r: &Report<'_>) -> String {
    text(&build(r))
}

#[test]
fn the_header_has_every_field_a_notification_needs() {
    let r = [recipient(Action::Failed)];
    let msg = build_str(&report(&r));
    let h = top_header(&msg);
    assert_eq!(
        header_value(&h, "From"),
        Some("\"Mail Delivery System\" <MAILER-DAEMON@mx.example.org>")
    );
    assert_eq!(header_value(&h, "To"), Some("<ann@example.org>"));
    assert_eq!(
        header_value(&h, "Subject"),
        Some("Undelivered Mail Returned to Sender")
    );
    assert_eq!(
        header_value(&h, "Date"),
        Some("Tue, 14 Nov 2023 22:28:20 +0000")
    );
    assert_eq!(
        header_value(&h, "Message-ID"),
        Some("<dsn.0001@mx.example.org>")
    );
    assert_eq!(header_value(&h, "Auto-Submitted"), Some("auto-replied"));
    assert_eq!(header_value(&h, "MIME-Version"), Some("1.0"));
    let ct = header_value(&h, "Content-Type").unwrap();
    assert!(ct.starts_with("multipart/report;"), "{ct}");
    assert!(ct.contains("report-type=\"delivery-status\""), "{ct}");
    let parts = parts(&msg);
    assert_eq!(parts.len(), 3);
    assert!(parts[0]
        .0
        .contains("Content-Type: text/plain; charset=\"utf-8\""));
    assert!(parts[0].0.contains("Content-Language: en"));
    assert!(parts[1].0.contains("Content-Transfer-Encoding: 7bit"));
    assert!(parts[2].0.contains("Content-Type: message/rfc822"));
}

#[test]
fn each_kind_has_its_subject() {
    for (action, subject) in [
        (Action::Failed, "Undelivered Mail Returned to Sender"),
        (Action::Delayed, "Delayed Mail (still being retried)"),
        (Action::Delivered, "Successful Mail Delivery Report"),
        (Action::Relayed, "Successful Mail Delivery Report"),
    ] {
        let r = [recipient(action)];
        let msg = build_str(&report(&r));
        assert_eq!(
            header_value(&top_header(&msg), "Subject"),
            Some(subject),
            "{action:?}"
        );
    }
}

#[test]
fn per_message_fields_come_first_then_one_group_per_recipient() {
    let mut second = recipient(Action::Failed);
    second.final_recipient = "<carol@example.com>".into();
    second.original_recipient = None;
    second.remote_mta = None;
    second.reply = None;
    second.status = Some("5.4.4".into());
    let r = [recipient(Action::Failed), second];
    let blocks = status_blocks(&build_str(&report(&r)));
    assert_eq!(blocks.len(), 3, "{blocks:#?}");
    assert_eq!(
        blocks[0],
        "Original-Envelope-Id: QQ314159\r\n\
         Reporting-MTA: dns; mx.example.org\r\n\
         Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
    );
    assert_eq!(
        blocks[1],
        "Original-Recipient: rfc822; Bob@Example.NET\r\n\
         Final-Recipient: rfc822; bob@example.net\r\n\
         Action: failed\r\n\
         Status: 5.1.1\r\n\
         Remote-MTA: dns; mx.example.net\r\n\
         Diagnostic-Code: smtp; 550 5.1.1 <bob@example.net>: user unknown\r\n\
         Last-Attempt-Date: Tue, 14 Nov 2023 22:23:20 +0000\r\n"
    );
    assert_eq!(
        blocks[2],
        "Final-Recipient: rfc822; carol@example.com\r\n\
         Action: failed\r\n\
         Status: 5.4.4\r\n\
         Last-Attempt-Date: Tue, 14 Nov 2023 22:23:20 +0000\r\n"
    );
}

#[test]
fn only_a_delayed_recipient_gets_will_retry_until() {
    let r = [recipient(Action::Delayed)];
    let msg = build_str(&report(&r));
    let blocks = status_blocks(&msg);
    assert!(blocks[1].contains("Action: delayed\r\n"));
    assert!(blocks[1].contains("Will-Retry-Until: Sun, 19 Nov 2023 22:13:20 +0000\r\n"));
    assert!(parts(&msg)[0]
        .1
        .contains("Retried until: Sun, 19 Nov 2023 22:13:20 +0000"));
    for action in [Action::Failed, Action::Delivered, Action::Relayed] {
        let r = [recipient(action)];
        let msg = build_str(&report(&r));
        assert!(!msg.contains("Will-Retry-Until"), "{action:?}");
        assert!(status_blocks(&msg)[1].contains(&format!("Action: {}\r\n", action.as_str())));
    }
}

#[test]
fn an_unparsable_status_falls_back_to_the_reply_then_to_the_class_of_the_action() {
    let mut from_reply = recipient(Action::Failed);
    from_reply.status = Some("bogus".into());
    let mut from_action = recipient(Action::Delayed);
    from_action.status = None;
    from_action.reply = Some("421 service not available".into());
    let r = [from_reply, from_action];
    let blocks = status_blocks(&build_str(&report(&r)));
    assert!(blocks[1].contains("Status: 5.1.1\r\n"), "{}", blocks[1]);
    assert!(blocks[2].contains("Status: 4.0.0\r\n"), "{}", blocks[2]);
}

#[test]
fn ret_full_returns_the_whole_message() {
    let r = [recipient(Action::Failed)];
    let msg = build_str(&report(&r));
    let parts = parts(&msg);
    assert!(parts[2].0.contains("Content-Type: message/rfc822"));
    assert!(parts[2].0.contains("Content-Transfer-Encoding: 7bit"));
    assert!(parts[2].1.contains("Subject: lunch\r\n"));
    assert!(parts[2].1.contains("BODY-MARKER\r\n"));
    assert!(parts[0].1.contains("The original message is attached."));
}

#[test]
fn ret_hdrs_returns_the_header_and_no_body() {
    let r = [recipient(Action::Failed)];
    let mut rep = report(&r);
    rep.ret = Ret::Hdrs;
    let msg = build_str(&rep);
    let parts = parts(&msg);
    assert!(parts[2].0.contains("Content-Type: text/rfc822-headers"));
    assert_eq!(
        parts[2].1,
        "From: Ann <ann@example.org>\r\n\
         To: Bob <bob@example.net>\r\n\
         Subject: lunch\r\n\
         Message-ID: <orig-1@example.org>\r\n"
    );
    assert!(!msg.contains("BODY-MARKER"));
    assert!(!msg.contains("noon"));
    assert!(parts[0]
        .1
        .contains("The header of the original message is attached."));
}

#[test]
fn a_message_over_the_limit_is_cut_to_its_header_and_the_text_says_so() {
    let r = [recipient(Action::Failed)];
    let mut rep = report(&r);
    rep.max_original = ORIGINAL.len() - 1;
    let msg = build_str(&rep);
    let parts = parts(&msg);
    assert!(parts[2].0.contains("Content-Type: text/rfc822-headers"));
    assert!(!msg.contains("BODY-MARKER"));
    let limit = ORIGINAL.len() - 1;
    let unwrapped = parts[0].1.replace("\r\n  ", " ");
    assert!(
        unwrapped.contains(&format!(
            "Only the header of the original message is attached, because the message was larger than {limit} bytes."
        )),
        "{unwrapped}"
    );
    // At the limit it still goes whole.
    rep.max_original = ORIGINAL.len();
    assert!(build_str(&rep).contains("BODY-MARKER"));
}

#[test]
fn a_report_without_failure_returns_only_the_header() {
    // RFC 3461 4.3: RET=FULL is for failures.
    for action in [Action::Delayed, Action::Delivered, Action::Relayed] {
        let r = [recipient(action)];
        let msg = build_str(&report(&r));
        assert!(!msg.contains("BODY-MARKER"), "{action:?}");
        assert!(
            parts(&msg)[2].0.contains("text/rfc822-headers"),
            "{action:?}"
        );
    }
}

#[test]
fn each_language_has_its_own_subject() {
    let r = [recipient(Action::Failed)];
    let mut seen = Vec::new();
    for lang in Lang::ALL {
        let mut rep = report(&r);
        rep.language = lang;
        let msg = build_str(&rep);
        let h = top_header(&msg);
        let subject = header_value(&h, "Subject").unwrap().to_string();
        assert!(subject.is_ascii(), "{lang}: RFC 2047 encodes it: {subject}");
        assert!(!seen.contains(&subject), "{lang}: {subject}");
        seen.push(subject);
        assert!(parts(&msg)[0]
            .0
            .contains(&format!("Content-Language: {}", lang.tag())));
    }
    assert_eq!(seen[0], "Undelivered Mail Returned to Sender");
}

#[test]
fn the_reply_is_explained_in_the_report_language() {
    let r = [recipient(Action::Failed)];
    for lang in Lang::ALL {
        let mut rep = report(&r);
        rep.language = lang;
        let human = human_readable(
            &rep,
            "mx.example.org",
            &r.iter().map(Prepared::new).collect::<Vec<_>>(),
            Returned::Full,
        );
        let e = Explanation::enhanced(EnhancedCode::new(5, 1, 1), lang).unwrap();
        let l = lang.labels();
        assert!(
            human.contains(&format!("5.1.1  {}", e.title)),
            "{lang}: {human}"
        );
        assert!(human.contains(l.meaning), "{lang}");
        assert!(human.contains(l.fix_sender), "{lang}");
        assert!(
            human.contains(text::words(lang).intro_failed.split(' ').next().unwrap()),
            "{lang}"
        );
        assert!(
            human.contains("550 5.1.1 <bob@example.net>: user unknown"),
            "{lang}"
        );
    }
}

#[test]
fn an_undefined_enhanced_code_gives_way_to_the_basic_code() {
    let mut p = recipient(Action::Failed);
    p.status = Some("5.0.0".into());
    p.reply = Some("554 transaction failed".into());
    let prepared = Prepared::new(&p);
    let e = prepared.explanation(Lang::En).unwrap();
    assert_eq!(e.code, "554");
    // Without a basic code the enhanced one is still explained.
    p.reply = None;
    let e = Prepared::new(&p).explanation(Lang::En).unwrap();
    assert_eq!(e.code, "5.0.0");
}

#[test]
fn crlf_everywhere_and_no_bare_lf_or_cr() {
    let lf = ORIGINAL.to_vec();
    let crlf_original: Vec<u8> = text(ORIGINAL).replace('\n', "\r\n").into_bytes();
    let mixed = b"Subject: x\r\nX-A: 1\n\nline\rcr\r\n".to_vec();
    for original in [&lf, &crlf_original, &mixed] {
        for action in [
            Action::Failed,
            Action::Delayed,
            Action::Delivered,
            Action::Relayed,
        ] {
            for lang in Lang::ALL {
                let r = [recipient(action)];
                let mut rep = report(&r);
                rep.original = original;
                rep.language = lang;
                let msg = build(&rep);
                for (i, &b) in msg.iter().enumerate() {
                    if b == b'\n' {
                        assert!(
                            i > 0 && msg[i - 1] == b'\r',
                            "bare LF at {i} ({lang}, {action:?})"
                        );
                    }
                    if b == b'\r' {
                        assert_eq!(
                            msg.get(i + 1),
                            Some(&b'\n'),
                            "bare CR at {i} ({lang}, {action:?})"
                        );
                    }
                }
                assert!(msg.ends_with(b"\r\n"));
            }
        }
    }
}

#[test]
fn an_8bit_original_passes_unchanged_as_8bit() {
    let original = "Subject: caf\u{e9}\r\n\r\nol\u{e1}\r\n".as_bytes();
    let r = [recipient(Action::Failed)];
    let mut rep = report(&r);
    rep.original = original;
    let msg = build_str(&rep);
    let parts = parts(&msg);
    assert!(parts[2].0.contains("Content-Transfer-Encoding: 8bit"));
    assert_eq!(parts[2].1.as_bytes(), original);
}

#[test]
fn a_non_ascii_address_is_typed_utf_8_and_the_status_part_stays_7bit() {
    let mut p = recipient(Action::Failed);
    p.final_recipient = "\u{7528}\u{6237}@\u{4f8b}\u{5b50}.example".into();
    p.original_recipient = Some(("utf-8".into(), "a+b@example.net".into()));
    p.reply = Some("550 5.1.1 unknown user \u{7528}\u{6237}".into());
    let r = [p];
    let msg = build_str(&report(&r));
    let status = &parts(&msg)[1].1;
    assert!(status.is_ascii(), "{status}");
    assert!(status
        .contains("Final-Recipient: utf-8; \\x{7528}\\x{6237}@\\x{4F8B}\\x{5B50}.example\r\n"));
    assert!(status.contains("Original-Recipient: utf-8; a\\x{2B}b@example.net\r\n"));
    assert!(status.contains("Diagnostic-Code: smtp; 550 5.1.1 unknown user ??\r\n"));
}

#[test]
fn utf8_addr_xtext_escapes_what_qchar_leaves_out() {
    assert_eq!(
        utf8_addr_xtext("a b\\c=d+e"),
        "a\\x{20}b\\x{5C}c\\x{3D}d\\x{2B}e"
    );
    assert_eq!(utf8_addr_xtext("\u{e9}\u{1F600}"), "\\x{E9}\\x{1F600}");
}

#[test]
fn a_utf_8_address_kept_with_its_escapes_is_not_escaped_twice() {
    // RCPT keeps a utf-8 ORCPT as given (RFC 6533 3), escapes included.
    assert_eq!(
        typed_address("utf-8", "j\u{f6}rg\\x{20}@b.test"),
        "utf-8; j\\x{F6}rg\\x{20}@b.test"
    );
    assert_eq!(
        typed_address("UTF-8", "a\\b\\x{zz}\\x{1}@b.test"),
        "utf-8; a\\x{5C}b\\x{5C}x{zz}\\x{5C}x{1}@b.test"
    );
    assert_eq!(
        unescape_unicode("j\\x{F6}rg\\x{20}@b.test"),
        "j\u{f6}rg @b.test"
    );
    let mut p = recipient(Action::Failed);
    p.original_recipient = Some(("utf-8".into(), "j\u{f6}rg\\x{20}@b.test".into()));
    let r = [p];
    let msg = build_str(&report(&r));
    assert!(parts(&msg)[1]
        .1
        .contains("Original-Recipient: utf-8; j\\x{F6}rg\\x{20}@b.test\r\n"));
}

#[test]
fn the_envelope_id_is_written_as_xtext() {
    assert_eq!(xtext("QQ314159"), "QQ314159");
    assert_eq!(xtext("a+b=c d\u{e9}"), "a+2Bb+3Dc+20d+C3+A9");
    let r = [recipient(Action::Failed)];
    let mut rep = report(&r);
    rep.envid = Some("id=1+2");
    assert!(build_str(&rep).contains("Original-Envelope-Id: id+3D1+2B2\r\n"));
    rep.envid = None;
    assert!(!build_str(&rep).contains("Original-Envelope-Id"));
}

#[test]
fn a_long_diagnostic_is_folded_and_unfolds_to_itself() {
    let words: Vec<String> = (0..40).map(|i| format!("word{i}")).collect();
    let reply = format!("550 5.7.1 {}", words.join(" "));
    let mut p = recipient(Action::Failed);
    p.reply = Some(reply.clone());
    let r = [p];
    let msg = build_str(&report(&r));
    let status = &parts(&msg)[1].1;
    for line in status.split("\r\n") {
        assert!(line.len() <= 78, "{line}");
        assert!(
            line.is_empty() || !line.trim().is_empty(),
            "a line of only white space"
        );
    }
    let unfolded = status.replace("\r\n ", " ");
    assert!(unfolded.contains(&format!("Diagnostic-Code: smtp; {reply}\r\n")));
}

#[test]
fn a_word_longer_than_a_line_is_not_broken() {
    let mut out = String::new();
    let long = "x".repeat(120);
    field(&mut out, "Diagnostic-Code", &format!("smtp; {long} end"));
    assert_eq!(
        out,
        format!("Diagnostic-Code: smtp;\r\n {long}\r\n end\r\n")
    );
}

#[test]
fn line_breaks_in_values_cannot_add_fields() {
    let mut p = recipient(Action::Failed);
    p.reply = Some("550 no\r\nX-Injected: 1".into());
    p.final_recipient = "bob@example.net\r\nX-Also: 1".into();
    let r = [p];
    let mut rep = report(&r);
    rep.original_sender = "ann@example.org\r\nBcc: eve@example.com";
    rep.reporting_mta = "mx.example.org\r\nX-Host: 1";
    let msg = build_str(&rep);
    for line in msg.split("\r\n") {
        assert!(!line.starts_with("X-Injected"), "{line}");
        assert!(!line.starts_with("X-Also"), "{line}");
        assert!(!line.starts_with("Bcc"), "{line}");
        assert!(!line.starts_with("X-Host"), "{line}");
    }
}

#[test]
fn the_same_report_gives_the_same_bytes() {
    let r = [recipient(Action::Failed)];
    assert_eq!(build(&report(&r)), build(&report(&r)));
}

#[test]
fn the_boundary_is_in_no_part() {
    let r = [recipient(Action::Failed)];
    let first = {
        let msg = build_str(&report(&r));
        let h = top_header(&msg);
        let ct = header_value(&h, "Content-Type").unwrap().to_string();
        ct.split("boundary=\"")
            .nth(1)
            .unwrap()
            .trim_end_matches('"')
            .to_string()
    };
    let original = format!("Subject: x\r\n\r\n--{first}\r\n");
    let mut rep = report(&r);
    rep.original = original.as_bytes();
    let msg = build_str(&rep);
    let h = top_header(&msg);
    let ct = header_value(&h, "Content-Type").unwrap();
    assert!(!ct.contains(&first), "{ct}");
    assert_eq!(parts(&msg).len(), 3);
    assert!(parts(&msg)[2].1.contains(&first));
}

#[test]
fn the_header_is_every_line_before_the_first_empty_one() {
    assert_eq!(header_crlf(b"A: 1\r\nB: 2\r\n"), b"A: 1\r\nB: 2\r\n");
    assert_eq!(header_crlf(b"A: 1\nB: 2"), b"A: 1\r\nB: 2\r\n");
    assert_eq!(header_crlf(b"\r\nbody\r\n"), b"");
    assert_eq!(header_crlf(b"\nbody\n"), b"");
    assert_eq!(header_crlf(b"A: 1\r\n\r\nbody\r\n"), b"A: 1\r\n");
    assert_eq!(header_crlf(b"A: 1\n\nbody\n"), b"A: 1\r\n");
    assert_eq!(header_crlf(b"A: 1\n\r\nbody\n"), b"A: 1\r\n");
    assert_eq!(header_crlf(b""), b"");
}

#[test]
fn every_line_end_becomes_crlf() {
    assert_eq!(crlf(b"a\nb\r\nc\rd"), b"a\r\nb\r\nc\r\nd\r\n");
    assert_eq!(crlf(b"a\n\n"), b"a\r\n\r\n");
    assert_eq!(crlf(b"\r\n"), b"\r\n");
    assert_eq!(crlf(b""), b"");
}

#[test]
fn an_8bit_original_labels_the_whole_message_8bit() {
    let original = "Subject: caf\u{e9}\r\n\r\nol\u{e1}\r\n".as_bytes();
    let r = [recipient(Action::Failed)];
    let mut rep = report(&r);
    rep.original = original;
    let msg = build_str(&rep);
    assert_eq!(
        header_value(&top_header(&msg), "Content-Transfer-Encoding"),
        Some("8bit")
    );
    rep.original = ORIGINAL;
    let msg = build_str(&rep);
    assert_eq!(
        header_value(&top_header(&msg), "Content-Transfer-Encoding"),
        None
    );
}

#[test]
fn transfer_encoding_names_what_the_body_is() {
    assert_eq!(transfer_encoding(b"a\r\n"), "7bit");
    assert_eq!(transfer_encoding("\u{e9}\r\n".as_bytes()), "8bit");
    assert_eq!(transfer_encoding(b"a\0b\r\n"), "binary");
    let long = vec![b'a'; 999];
    assert_eq!(transfer_encoding(&long), "binary");
    assert_eq!(transfer_encoding(&long[..998]), "7bit");
}

#[test]
fn wrap_keeps_short_lines_and_hangs_continuations() {
    assert_eq!(wrap("short", 10), vec!["short"]);
    assert_eq!(
        wrap("  aaa bbb ccc ddd", 10),
        vec!["  aaa bbb", "    ccc", "    ddd"]
    );
    let cjk = "\u{60a8}".repeat(100);
    assert_eq!(wrap(&cjk, 72), vec![cjk.clone()]);
}

#[test]
fn a_success_is_explained_without_advice() {
    let r = [recipient(Action::Delivered)];
    let human = human_readable(
        &report(&r),
        "mx.example.org",
        &r.iter().map(Prepared::new).collect::<Vec<_>>(),
        Returned::Headers,
    );
    let l = Lang::En.labels();
    assert!(human.contains(l.meaning), "{human}");
    assert!(!human.contains(l.fix_sender), "{human}");
    assert!(!human.contains(l.actors), "{human}");
}
