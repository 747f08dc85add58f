#![no_main]
//! Any command line, in any session state: the parser returns a command or an
//! error, never panics.
use libfuzzer_sys::fuzz_target;
use pillarbox_proto::command::{parse, Context};

fuzz_target!(|data: &[u8]| {
    // The first byte picks what the session has offered (EHLO, AUTH, SMTPUTF8).
    let Some((&flags, line)) = data.split_first() else {
        return;
    };
    let cx = Context {
        esmtp: flags & 1 != 0,
        auth: flags & 2 != 0,
        smtputf8: flags & 4 != 0,
    };
    let _ = parse(line, cx);
});
