#![no_main]
//! Any byte stream into the session, in pieces: no panic, bounded input.
use libfuzzer_sys::fuzz_target;
use pillarbox_proto::{Event, Input, PasswordAnswer, Question, Session, SessionConfig};

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

fuzz_target!(|data: &[u8]| {
    let mut s: Session = Session::new(SessionConfig {
        max_line: 512,
        starttls: true,
        max_message_size: 4096,
        ..SessionConfig::default()
    });
    let mut input = Input::new();
    for piece in data.chunks(97) {
        input.extend(piece);
        while let Some(ev) = s.handle(&mut input) {
            match ev {
                Event::Ask(q) => accept(&mut s, q),
                Event::StartTls => s.tls_established(),
                Event::Close => return,
                _ => {}
            }
        }
        assert!(input.len() < 512 + 97);
    }
});
