#![no_main]
//! Any command line: the parser returns a command or an error, never panics.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(pillarbox_proto::command::Command::Mail(args) | pillarbox_proto::command::Command::Rcpt(args)) =
        pillarbox_proto::command::parse(data)
    {
        let _ = pillarbox_proto::command::parse_params(&args, true);
    }
});
