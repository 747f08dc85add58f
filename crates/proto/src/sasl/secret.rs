//! What the server keeps of a password, per mechanism. The user directory
//! (crates/store) builds these from the stored hash; the mechanisms use them.

/// SCRAM-SHA-256 keys (RFC 5802 3, RFC 7677): no plaintext kept.
/// Dovecot stores them as `{SCRAM-SHA-256}iter,salt_b64,storedkey_b64,serverkey_b64`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScramSecret {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

/// CRAM-MD5 (RFC 2195) needs HMAC-MD5 keyed with the password. Dovecot's
/// `{CRAM-MD5}` scheme stores the two MD5 states after hashing the key XOR
/// ipad and the key XOR opad blocks; HMAC is finished from those states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CramMd5Secret {
    pub inner: [u32; 4],
    pub outer: [u32; 4],
}
