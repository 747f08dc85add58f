#![no_main]
//! Any DATA stream, cut at a fuzzer-chosen point: the decoder ends exactly
//! after the first CRLF.CRLF (counting the CRLF of the DATA command), and the
//! cut does not change what it produces.
use libfuzzer_sys::fuzz_target;
use pillarbox_proto::dot_decoder::DotDecoder;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, body)) = data.split_first() else { return };
    let whole = {
        let mut d = DotDecoder::new(u64::MAX);
        let mut out = Vec::new();
        let r = d.decode(body, &mut out);
        (out, r, d.bare_line_ending())
    };
    let mut framed = b"\r\n".to_vec();
    framed.extend_from_slice(body);
    let expected = framed.windows(5).position(|w| w == b"\r\n.\r\n").map(|i| i + 3);
    assert_eq!(expected.is_some(), whole.1.ended);
    if let Some(e) = expected {
        assert_eq!(e, whole.1.consumed);
    }
    let cut = (cut as usize).min(body.len());
    let mut d = DotDecoder::new(u64::MAX);
    let mut out = Vec::new();
    let a = d.decode(&body[..cut], &mut out);
    let consumed = if a.ended {
        a.consumed
    } else {
        cut + d.decode(&body[cut..], &mut out).consumed
    };
    assert_eq!(consumed, whole.1.consumed);
    assert_eq!(out, whole.0);
});
