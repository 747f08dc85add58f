#![no_main]
//! Any byte stream into the session, in pieces: no panic, bounded input.
use libfuzzer_sys::fuzz_target;
use pillarbox_proto::{Answer, Event, Input, Question, Session, SessionConfig};

fuzz_target!(|data: &[u8]| {
    let mut s = Session::new(SessionConfig {
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
                Event::Ask(q) => s.answer(match q {
                    Question::Deliver { .. } => Answer::Delivered("Q".into()),
                    Question::Status => Answer::Status(vec![]),
                    _ => Answer::Accept,
                }),
                Event::StartTls => s.tls_established(),
                Event::Close => return,
                _ => {}
            }
        }
        assert!(input.len() < 512 + 97);
    }
});
