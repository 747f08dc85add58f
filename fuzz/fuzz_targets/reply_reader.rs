#![no_main]
//! Any server output, cut into lines at LF: the framer and the assembler agree
//! line by line, every code is 200..=599 with first digit 2-5 and second 0-5,
//! and each reply read prints (`Reply::to_wire`) to text that reads back as
//! the same reply.
use libfuzzer_sys::fuzz_target;
use pillarbox_client::reply_reader::{parse_reply, ReplyAssembler, ReplyFramer, ReplyLimits};

fuzz_target!(|data: &[u8]| {
    let Some((&limit, stream)) = data.split_first() else {
        return;
    };
    // Small limits too, to reach them.
    let limits = ReplyLimits {
        max_line: 4 + usize::from(limit) * 4,
        max_lines: 1 + usize::from(limit % 16),
    };
    let mut framer = ReplyFramer::new(limits);
    let mut assembler = ReplyAssembler::new(limits);
    for line in stream.split_inclusive(|&b| b == b'\n') {
        let framed = framer.push_line(line);
        let assembled = assembler.push_line(line);
        match (&framed, &assembled) {
            (Ok(l), Ok(reply)) => {
                let code = l.code.get();
                assert!((200..=599).contains(&code), "code {code}");
                assert!((code / 10) % 10 <= 5, "code {code}");
                assert!(!l.text.contains(&b'\r') && !l.text.contains(&b'\n'));
                assert_eq!(l.last, reply.is_some());
                assert_eq!(framer.in_progress(), assembler.in_progress());
                if let Some(reply) = reply {
                    assert_eq!(reply.code, l.code);
                    assert!(!reply.lines.is_empty() && reply.lines.len() <= limits.max_lines);
                    let wire = reply.to_wire();
                    let unlimited = ReplyLimits {
                        max_line: usize::MAX,
                        max_lines: usize::MAX,
                    };
                    let again = parse_reply(wire.as_bytes(), unlimited)
                        .unwrap_or_else(|e| panic!("printed reply does not parse: {e}\n{wire}"));
                    assert_eq!(&again, reply, "printed reply reads back otherwise:\n{wire}");
                }
            }
            (Err(a), Err(b)) => assert_eq!(a, b),
            _ => panic!("framer {framed:?} and assembler {assembled:?} disagree"),
        }
        if framed.is_err() {
            // A client gives the connection up after a bad reply.
            return;
        }
    }
});
