//! Property tests for the parser, the DATA decoder and the session.

use pillarbox_proto::address::{parse_forward_path, parse_mailbox};
use pillarbox_proto::command;
use pillarbox_proto::dot_decoder::DotDecoder;
use pillarbox_proto::hops::ReceivedCounter;
use pillarbox_proto::xtext;
use pillarbox_proto::{Event, Input, PasswordAnswer, Question, Session, SessionConfig};
use proptest::prelude::*;

/// Decodes `input` fed in pieces cut at `cuts`; returns (content, consumed, ended, bare).
fn decode_in_pieces(input: &[u8], cuts: &[usize]) -> (Vec<u8>, usize, bool, bool) {
    let mut d = DotDecoder::new(u64::MAX);
    let mut out = Vec::new();
    let mut pos = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.push(input.len());
    points.sort_unstable();
    for end in points {
        if end <= pos {
            continue;
        }
        let r = d.decode(&input[pos..end], &mut out);
        pos += r.consumed;
        if r.ended {
            return (out, pos, true, d.bare_line_ending());
        }
    }
    (out, pos, false, d.bare_line_ending())
}

/// Dot-stuffs content made of CRLF lines and appends the end of data.
fn encode(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at_line_start = true;
    for &b in content {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// The DATA rules read off one byte at a time over the whole input, the way
/// RFC 5321 states them: the content, where the data ended (if it did), and
/// whether a CR or LF not part of CRLF came before that. A line-start `.` or
/// `.` CR with nothing after it yet is held back, as the decoder holds it.
fn model(input: &[u8]) -> (Vec<u8>, Option<usize>, bool) {
    let (mut out, mut bare, mut line_start, mut i) = (Vec::new(), false, true, 0);
    while i < input.len() {
        let b = input[i];
        if line_start && b == b'.' {
            match (input.get(i + 1), input.get(i + 2)) {
                (Some(b'\r'), Some(b'\n')) => return (out, Some(i + 3), bare),
                (None, _) | (Some(b'\r'), None) => return (out, None, bare),
                // Kept: a bare line ending follows it.
                (Some(b'\r'), Some(_)) | (Some(b'\n'), _) => out.push(b'.'),
                // Dot-stuffing: dropped.
                (Some(_), _) => {}
            }
            i += 1;
            line_start = false;
            continue;
        }
        match (b, input.get(i + 1)) {
            (b'\r', Some(b'\n')) => {
                out.extend_from_slice(b"\r\n");
                i += 2;
                line_start = true;
                continue;
            }
            (b'\r', Some(_)) | (b'\n', _) => bare = true,
            _ => {}
        }
        out.push(b);
        i += 1;
        line_start = false;
    }
    (out, None, bare)
}

fn crlf_lines() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec("[ -~]{0,40}", 0..20).prop_map(|lines| {
        let mut v = Vec::new();
        for l in lines {
            v.extend_from_slice(l.as_bytes());
            v.extend_from_slice(b"\r\n");
        }
        v
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn command_parser_never_panics(line in proptest::collection::vec(any::<u8>(), 0..600),
                                   esmtp in any::<bool>(), auth in any::<bool>(), smtputf8 in any::<bool>()) {
        let _ = command::parse(&line, command::Context { esmtp, auth, smtputf8 });
    }

    #[test]
    fn address_parser_never_panics(s in "\\PC{0,80}", utf8 in any::<bool>()) {
        let _ = parse_mailbox(&s, utf8);
        let _ = parse_forward_path(&s, utf8);
    }

    #[test]
    fn mailbox_display_round_trips(local in "[a-z0-9!#$%&'*+/=?^_`{|}~-]{1,20}(\\.[a-z0-9_-]{1,10}){0,2}",
                                    domain in "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\\.[a-z]{2,6}){1,3}") {
        let s = format!("{local}@{domain}");
        let m = parse_mailbox(&s, false).unwrap();
        prop_assert_eq!(m.to_string(), s);
    }

    /// RFC 3461 4: what `encode` writes is xtext, and decodes to the octets encoded.
    #[test]
    fn xtext_round_trips_any_octets(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
        let encoded = xtext::encode(&bytes);
        prop_assert!(encoded.bytes().all(|b| (33..=126).contains(&b) && b != b'='));
        prop_assert_eq!(xtext::decode(&encoded), Ok(bytes));
    }

    #[test]
    fn xtext_decode_never_panics(s in "[+=A-Fa-f0-9!~ \u{e9}]{0,40}") {
        let _ = xtext::decode(&s);
    }

    #[test]
    fn stuffed_content_decodes_to_itself_in_any_pieces(content in crlf_lines(),
                                                       cuts in proptest::collection::vec(any::<usize>(), 0..8),
                                                       trailer in "[A-Z]{0,10}") {
        let mut wire = encode(&content);
        let end = wire.len();
        wire.extend_from_slice(trailer.as_bytes());
        let (out, consumed, ended, bare) = decode_in_pieces(&wire, &cuts);
        prop_assert!(ended);
        prop_assert_eq!(consumed, end);
        prop_assert!(!bare);
        prop_assert_eq!(out, content);
    }

    /// Only CRLF.CRLF ends data: the end is exactly after the first
    /// "\r\n.\r\n" of CRLF + input, however the input is cut.
    #[test]
    fn data_ends_exactly_at_the_first_crlf_dot_crlf(body in proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'.'), Just(b'a')], 0..60),
            cuts in proptest::collection::vec(any::<usize>(), 0..6)) {
        let mut framed = b"\r\n".to_vec();
        framed.extend_from_slice(&body);
        let expected_end = framed.windows(5).position(|w| w == b"\r\n.\r\n").map(|i| i + 5 - 2);
        let (_, consumed, ended, _) = decode_in_pieces(&body, &cuts);
        match expected_end {
            Some(e) => { prop_assert!(ended); prop_assert_eq!(consumed, e); }
            None => { prop_assert!(!ended); prop_assert_eq!(consumed, body.len()); }
        }
    }

    /// The decoder (which copies runs and holds back line-start dots across
    /// reads) produces what the byte-at-a-time rules say, in any pieces.
    #[test]
    fn decoder_agrees_with_the_byte_at_a_time_rules(body in proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'.'), Just(b'a')], 0..80),
            cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
        let (out, end, bare) = model(&body);
        let (got, consumed, ended, got_bare) = decode_in_pieces(&body, &cuts);
        prop_assert_eq!(got, out);
        prop_assert_eq!(ended, end.is_some());
        prop_assert_eq!(consumed, end.unwrap_or(body.len()));
        prop_assert_eq!(got_bare, bare);
    }

    #[test]
    fn decoder_result_does_not_depend_on_read_sizes(body in proptest::collection::vec(any::<u8>(), 0..200),
                                                     cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
        prop_assert_eq!(decode_in_pieces(&body, &[]), decode_in_pieces(&body, &cuts));
    }

    /// RFC 5321 6.3's count is the same however the message is cut into reads.
    #[test]
    fn received_count_does_not_depend_on_read_sizes(
            lines in proptest::collection::vec(
                "(Received: x|received:|RECEIVED: y| Received: folded|Subject: s|Rec|)\r\n", 0..12),
            cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
        let message = lines.concat().into_bytes();
        let mut whole = ReceivedCounter::new();
        whole.feed(&message);
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (message.len() + 1)).collect();
        points.push(message.len());
        points.sort_unstable();
        let (mut pieces, mut pos) = (ReceivedCounter::new(), 0);
        for end in points {
            pieces.feed(&message[pos..end]);
            pos = end;
        }
        prop_assert_eq!(pieces.count(), whole.count());
        // The model: fields are the lines before the first empty one that start so.
        let model = lines.iter()
            .take_while(|l| l.as_str() != "\r\n")
            .filter(|l| l.to_ascii_lowercase().starts_with("received:"))
            .count();
        prop_assert_eq!(whole.count() as usize, model);
    }

    /// Whatever a client sends, in whatever pieces, the session does not panic,
    /// keeps its input bounded, and every reply has a valid code.
    #[test]
    fn session_survives_any_input(chunks in proptest::collection::vec(
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..300),
                "(EHLO x|MAIL FROM:<a@b.c>|RCPT TO:<d@e.f>|DATA|BDAT 5|BDAT 3 LAST|RSET|STARTTLS|\\.)\r\n".prop_map(|s| s.into_bytes()),
            ], 0..30)) {
        let cfg = SessionConfig { max_line: 512, starttls: true, max_message_size: 1000, ..SessionConfig::default() };
        let mut s: Session = Session::new(cfg);
        let mut input = Input::new();
        'outer: for c in chunks {
            input.extend(&c);
            let mut guard = 0;
            while let Some(ev) = s.handle(&mut input) {
                guard += 1;
                prop_assert!(guard < 10_000);
                match ev {
                    Event::Reply(r) => prop_assert!((200..600).contains(&r.code.get())),
                    Event::Ask(q) => accept(&mut s, q),
                    Event::StartTls => s.tls_established(),
                    Event::Close => break 'outer,
                    Event::Body(_) | Event::AbortMessage | Event::AuthAttempt { .. } => {}
                }
            }
            // Command mode keeps less than one line; body modes consume everything.
            prop_assert!(input.len() < 512 + 300);
        }
    }
}

/// Answers every question yes.
fn accept(s: &mut Session, q: Question) {
    match q {
        Question::Sender(q) => s.answer_sender(q, Ok(())),
        Question::Recipient(q) => s.answer_recipient(q, Ok(())),
        Question::BeginMessage(q) => s.answer_begin(q, Ok(())),
        Question::Deliver(q) => s.answer_deliver(q, Ok("Q".into())),
        Question::Status(q) => s.answer_status(q, vec![]),
        Question::CheckPassword(q) => s.answer_password(q, PasswordAnswer::Valid),
        Question::Secret(q) => s.answer_secret(q, Ok(None)),
    }
}
