//! CRAM-MD5 (RFC 2195): the server sends a msg-id-like challenge, the client
//! answers `user SP hex(HMAC-MD5(password, challenge))`.
//!
//! The server keeps no password: a [`CramMd5Secret`] holds the MD5 states
//! after the key-XOR-ipad and key-XOR-opad blocks (RFC 2104 2), which is what
//! Dovecot's `{CRAM-MD5}` scheme stores. HMAC is finished from those states
//! with MD5's compression function alone.

use md5::block_api::compress;

use super::constant_time::ct_eq;
use super::secret::CramMd5Secret;
use super::Failure;

/// MD5's initial state (RFC 1321 3.3).
const MD5_IV: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
/// MD5 and HMAC-MD5 block size in bytes (RFC 2104 2: B = 64).
const BLOCK: usize = 64;

/// Continue MD5 from `state`, which has already consumed `consumed` bytes
/// (a multiple of 64), over `data`, and finish: padding and the bit length,
/// little-endian (RFC 1321 3.1, 3.2, 3.5).
fn md5_finish(mut state: [u32; 4], consumed: u64, data: &[u8]) -> [u8; 16] {
    let mut blocks = data.chunks_exact(BLOCK);
    for block in blocks.by_ref() {
        let mut b = [0u8; BLOCK];
        b.copy_from_slice(block);
        compress(&mut state, &[b]);
    }
    let rest = blocks.remainder();
    let bits = consumed.wrapping_add(data.len() as u64).wrapping_mul(8);
    let mut tail = [0u8; 2 * BLOCK];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    // The length goes in the last 8 bytes of the first block that has room.
    let tail_len = if rest.len() < BLOCK - 8 {
        BLOCK
    } else {
        2 * BLOCK
    };
    tail[tail_len - 8..tail_len].copy_from_slice(&bits.to_le_bytes());
    for block in tail[..tail_len].chunks_exact(BLOCK) {
        let mut b = [0u8; BLOCK];
        b.copy_from_slice(block);
        compress(&mut state, &[b]);
    }
    let mut out = [0u8; 16];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    out
}

/// MD5 of `data`.
fn md5(data: &[u8]) -> [u8; 16] {
    md5_finish(MD5_IV, 0, data)
}

impl CramMd5Secret {
    /// The secret for a password kept in plaintext (a `{PLAIN}` entry), so
    /// it can serve CRAM-MD5 too. RFC 2104 2: a key longer than the block is
    /// hashed first, a shorter one padded with zeros; `inner`/`outer` are the
    /// MD5 state words (a, b, c, d) after one block of key XOR ipad / opad.
    /// (Dovecot's `{CRAM-MD5}` hex is the outer state first, then the inner,
    /// each word little-endian: see the test against `doveadm pw`.)
    pub fn from_password(password: &str) -> CramMd5Secret {
        let mut key = [0u8; BLOCK];
        let pw = password.as_bytes();
        if pw.len() > BLOCK {
            key[..16].copy_from_slice(&md5(pw));
        } else {
            key[..pw.len()].copy_from_slice(pw);
        }
        let pad = |byte: u8| {
            let mut block = key;
            for b in &mut block {
                *b ^= byte;
            }
            let mut state = MD5_IV;
            compress(&mut state, &[block]);
            state
        };
        CramMd5Secret {
            inner: pad(0x36),
            outer: pad(0x5c),
        }
    }

    /// HMAC-MD5 of `message` under the password this secret was made from
    /// (RFC 2104 2: H(K XOR opad, H(K XOR ipad, text))).
    pub fn hmac(&self, message: &[u8]) -> [u8; 16] {
        let inner = md5_finish(self.inner, BLOCK as u64, message);
        md5_finish(self.outer, BLOCK as u64, &inner)
    }
}

/// The server's challenge: RFC 2195 2 asks for "a presumptively arbitrary
/// string of random digits, a timestamp, and the fully-qualified primary host
/// name of the server", in msg-id form: `<nonce@hostname>`. The caller's
/// nonce should carry the random digits and the timestamp, e.g.
/// `1896.697170952`.
pub(crate) fn challenge(nonce: &str, hostname: &str) -> String {
    format!("<{nonce}@{hostname}>")
}

/// The client's response parsed: the user name and the 16-byte digest.
pub(crate) struct CramResponse {
    pub authcid: String,
    pub digest: [u8; 16],
}

/// Parse `user SP digest` (RFC 2195 2). The user name is what comes before
/// the last space; the digest is 32 hex digits (RFC 2195 asks for lowercase;
/// uppercase is accepted).
pub(crate) fn parse_response(message: &[u8]) -> Result<CramResponse, Failure> {
    let text = std::str::from_utf8(message).map_err(|_| Failure::Malformed)?;
    let (user, hex) = text.rsplit_once(' ').ok_or(Failure::Malformed)?;
    if user.is_empty() || hex.len() != 32 {
        return Err(Failure::Malformed);
    }
    let mut digest = [0u8; 16];
    for (byte, pair) in digest.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).map_err(|_| Failure::Malformed)?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| Failure::Malformed)?;
    }
    Ok(CramResponse {
        authcid: user.to_owned(),
        digest,
    })
}

/// Whether `digest` is the HMAC of `challenge` under `secret`, compared in
/// constant time.
pub(crate) fn verify(secret: &CramMd5Secret, challenge: &[u8], digest: &[u8; 16]) -> bool {
    ct_eq(&secret.hmac(challenge), digest)
}

/// The client's response to `challenge` (RFC 2195 2): lowercase hex.
pub(crate) fn response(authcid: &str, password: &str, challenge: &[u8]) -> Vec<u8> {
    let digest = CramMd5Secret::from_password(password).hmac(challenge);
    let mut out = format!("{authcid} ");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::Digest;

    #[test]
    fn md5_matches_the_md5_crate_at_every_padding_boundary() {
        for len in [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 200] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let expected = md5::Md5::digest(&data);
            assert_eq!(md5(&data)[..], expected[..], "length {len}");
        }
    }

    #[test]
    fn hmac_from_password_matches_rfc_2104_test_vector() {
        // RFC 2104 appendix test: key "Jefe".
        let mac = CramMd5Secret::from_password("Jefe").hmac(b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "750c783e6ab0b503eaa86e310a5db738");
    }

    #[test]
    fn long_password_is_hashed_first() {
        // RFC 2104 2: a key longer than B = 64 bytes is replaced by its MD5.
        // Reference values from Python's hmac module.
        let hex = |m: [u8; 16]| m.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let long = CramMd5Secret::from_password(&"k".repeat(100)).hmac(b"msg");
        assert_eq!(hex(long), "a908a4d5326a80f4b50c9a1951513b67");
        let exactly_a_block = CramMd5Secret::from_password(&"k".repeat(64)).hmac(b"msg");
        assert_eq!(hex(exactly_a_block), "7350d7e9ec9d1235174e9ded54edfa8c");
    }
}
