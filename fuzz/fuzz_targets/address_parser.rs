#![no_main]
//! Any path text: parsed with and without SMTPUTF8; a parsed mailbox prints
//! back to text that parses to the same mailbox.
use libfuzzer_sys::fuzz_target;
use pillarbox_proto::address;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok((inner, _)) = address::split_path(s) {
        let _ = address::parse_reverse_path(inner, false);
        let _ = address::parse_forward_path(inner, true);
    }
    if let Ok(m) = address::parse_mailbox(s, true) {
        let again = address::parse_mailbox(&m.to_string(), true).expect("printed mailbox parses");
        assert_eq!(again, m);
    }
});
