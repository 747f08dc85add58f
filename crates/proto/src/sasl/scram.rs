//! SCRAM-SHA-256 (RFC 5802, RFC 7677), without channel binding.
//!
//! The server works from a [`ScramSecret`] (salt, iteration count, StoredKey,
//! ServerKey: RFC 5802 3) and never sees the password. Messages (RFC 5802 7):
//!
//! ```text
//! client-first  n,,n=user,r=<client nonce>
//! server-first  r=<client nonce><server nonce>,s=<salt b64>,i=<iterations>
//! client-final  c=biws,r=<both nonces>,p=<ClientProof b64>
//! server-final  v=<ServerSignature b64>     (or e=<error>)
//! ```

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::constant_time::ct_eq;
use super::secret::ScramSecret;
use super::{ClientError, Failure, BASE64};

/// Iteration count a decoy secret announces for an unknown user; RFC 7677 4
/// recommends at least 4096, which is also Dovecot's default.
const DECOY_ITERATIONS: u32 = 4096;
/// Salt length of a decoy secret; Dovecot's salts are 16 bytes too.
const DECOY_SALT_LEN: usize = 16;
/// The most iterations our client accepts from a server, so a hostile server
/// cannot make it spin for minutes.
pub const MAX_CLIENT_ITERATIONS: u32 = 10_000_000;

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes a key of any length (RFC 2104 2), so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

impl ScramSecret {
    /// The stored keys for `password` (RFC 5802 3): SaltedPassword =
    /// Hi(password, salt, i) (PBKDF2-HMAC-SHA-256 with one 32-byte block),
    /// StoredKey = H(HMAC(SaltedPassword, "Client Key")), ServerKey =
    /// HMAC(SaltedPassword, "Server Key"). The password is used as given:
    /// SASLprep (RFC 4013) is not applied, which only matters for passwords
    /// outside ASCII. An iteration count of 0 computes like 1.
    pub fn from_password(password: &str, salt: &[u8], iterations: u32) -> ScramSecret {
        let salted = salted_password(password, salt, iterations);
        ScramSecret {
            iterations,
            salt: salt.to_vec(),
            stored_key: sha256(&hmac(&salted, &[b"Client Key"])),
            server_key: hmac(&salted, &[b"Server Key"]),
        }
    }
}

fn salted_password(password: &str, salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2::<Hmac<Sha256>>(password.as_bytes(), salt, iterations, &mut out)
        .expect("HMAC accepts any key length");
    out
}

/// RFC 5802 7: `printable = %x21-2B / %x2D-7E` (no comma): the nonce alphabet.
fn is_nonce_char(c: char) -> bool {
    matches!(c, '\x21'..='\x2b' | '\x2d'..='\x7e')
}

/// The caller's nonce with anything outside the nonce alphabet dropped, so a
/// careless caller cannot break the message syntax.
pub(crate) fn clean_nonce(nonce: &str) -> String {
    nonce.chars().filter(|&c| is_nonce_char(c)).collect()
}

/// RFC 5802 5.1: in a saslname, `,` is sent as `=2C` and `=` as `=3D`.
fn escape_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// The inverse of [`escape_saslname`]; any other `=` is malformed (RFC 5802 5.1).
fn unescape_saslname(s: &str) -> Result<String, Failure> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if after.starts_with("2C") {
            out.push(',');
        } else if after.starts_with("3D") {
            out.push('=');
        } else {
            return Err(Failure::Malformed);
        }
        rest = &after[2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `x=value` with the expected attribute letter, or malformed.
fn attribute(part: Option<&str>, name: char) -> Result<&str, Failure> {
    let part = part.ok_or(Failure::Malformed)?;
    let mut chars = part.chars();
    match (chars.next(), chars.next()) {
        (Some(n), Some('=')) if n == name => Ok(&part[2..]),
        _ => Err(Failure::Malformed),
    }
}

/// What the server keeps of the client-first message.
#[derive(Clone, Debug)]
pub(crate) struct ClientFirst {
    /// `n,,` or `y,,` (or with `a=`), echoed base64 in the client-final `c=`.
    gs2_header: String,
    pub authcid: String,
    client_nonce: String,
    /// client-first-message-bare, part of the AuthMessage.
    bare: String,
}

/// Parse client-first-message (RFC 5802 7).
///
/// - gs2-cbind-flag `n` (client does not do channel binding) and `y` (client
///   does, but thinks we do not: true, we advertise no -PLUS mechanism) are
///   taken; `p=` asks for channel binding, which only a -PLUS mechanism may do
///   (RFC 5802 6), so it is malformed here.
/// - An authzid other than the username is refused as invalid credentials
///   (as for PLAIN).
/// - `m=` (reserved for mandatory extensions) makes authentication fail
///   (RFC 5802 5.1).
pub(crate) fn parse_client_first(message: &[u8]) -> Result<ClientFirst, Failure> {
    let text = std::str::from_utf8(message).map_err(|_| Failure::Malformed)?;
    let (flag, rest) = text.split_once(',').ok_or(Failure::Malformed)?;
    if flag != "n" && flag != "y" {
        return Err(Failure::Malformed);
    }
    let (authzid, bare) = rest.split_once(',').ok_or(Failure::Malformed)?;
    let authzid = if authzid.is_empty() {
        String::new()
    } else {
        unescape_saslname(attribute(Some(authzid), 'a')?)?
    };
    let gs2_header = text[..flag.len() + 1 + rest.len() - bare.len()].to_owned();

    let mut parts = bare.split(',');
    let first = parts.next();
    if first.is_some_and(|p| p.starts_with("m=")) {
        return Err(Failure::Malformed);
    }
    let authcid = unescape_saslname(attribute(first, 'n')?)?;
    let client_nonce = attribute(parts.next(), 'r')?;
    if authcid.is_empty() || client_nonce.is_empty() || !client_nonce.chars().all(is_nonce_char) {
        return Err(Failure::Malformed);
    }
    // Further attributes are extensions (RFC 5802 5.1); we know none.
    if !authzid.is_empty() && authzid != authcid {
        return Err(Failure::InvalidCredentials);
    }
    Ok(ClientFirst {
        gs2_header,
        authcid,
        client_nonce: client_nonce.to_owned(),
        bare: bare.to_owned(),
    })
}

/// The server between its server-first and the client's client-final.
#[derive(Clone, Debug)]
pub(crate) struct ServerFirst {
    client_first: ClientFirst,
    nonce: String,
    message: String,
    secret: ScramSecret,
    /// No such user: the exchange runs on a made-up secret and always fails
    /// at the proof, so the client learns nothing before that.
    decoy: bool,
}

impl ServerFirst {
    /// Build the server-first-message. `secret` None (unknown user, or no
    /// SCRAM secret for that user) makes a decoy secret whose salt is derived
    /// from `decoy_key` and the user name: the same on every attempt, like a
    /// real user's, and not computable without the key. It announces one of
    /// `decoy_iterations`, picked the same way ([`DECOY_ITERATIONS`] when
    /// there are none).
    pub(crate) fn new(
        client_first: ClientFirst,
        secret: Option<ScramSecret>,
        server_nonce: &str,
        decoy_key: &[u8],
        decoy_iterations: &[u32],
    ) -> ServerFirst {
        let (secret, decoy) = match secret {
            Some(secret) => (secret, false),
            None => (
                decoy_secret(decoy_key, &client_first.authcid, decoy_iterations),
                true,
            ),
        };
        // RFC 5802 5.1: the nonce is the client's followed by our own.
        let nonce = format!("{}{}", client_first.client_nonce, clean_nonce(server_nonce));
        let message = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&secret.salt),
            secret.iterations
        );
        ServerFirst {
            client_first,
            nonce,
            message,
            secret,
            decoy,
        }
    }

    pub(crate) fn message(&self) -> &[u8] {
        self.message.as_bytes()
    }

    pub(crate) fn authcid(&self) -> &str {
        &self.client_first.authcid
    }

    /// Check client-final-message (RFC 5802 7) and return the
    /// server-final-message `v=ServerSignature` (RFC 5802 3).
    ///
    /// The channel binding must repeat our gs2 header and the nonce must be
    /// the one we sent (else invalid credentials: a replayed or spliced
    /// message); the proof must be a 32-byte base64 value, last (RFC 5802 7).
    /// Then ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage) and
    /// H(ClientKey) must be StoredKey, compared in constant time.
    pub(crate) fn verify_client_final(&self, message: &[u8]) -> Result<Vec<u8>, Failure> {
        let text = std::str::from_utf8(message).map_err(|_| Failure::Malformed)?;
        let proof_at = text.rfind(",p=").ok_or(Failure::Malformed)?;
        let (without_proof, proof) = (&text[..proof_at], &text[proof_at + 3..]);
        let mut parts = without_proof.split(',');
        let binding = attribute(parts.next(), 'c')?;
        let nonce = attribute(parts.next(), 'r')?;
        let proof = BASE64.decode(proof).map_err(|_| Failure::Malformed)?;
        let binding = BASE64.decode(binding).map_err(|_| Failure::Malformed)?;
        if proof.len() != 32 {
            return Err(Failure::Malformed);
        }
        if binding != self.client_first.gs2_header.as_bytes() || nonce != self.nonce {
            return Err(Failure::InvalidCredentials);
        }

        // RFC 5802 3: AuthMessage = client-first-message-bare + "," +
        // server-first-message + "," + client-final-message-without-proof.
        let auth_message = [
            self.client_first.bare.as_bytes(),
            b",",
            self.message.as_bytes(),
            b",",
            without_proof.as_bytes(),
        ];
        let client_signature = hmac(&self.secret.stored_key, &auth_message);
        let mut client_key = [0u8; 32];
        for ((k, p), s) in client_key.iter_mut().zip(&proof).zip(client_signature) {
            *k = p ^ s;
        }
        let matches = ct_eq(&sha256(&client_key), &self.secret.stored_key);
        if !matches || self.decoy {
            return Err(Failure::InvalidCredentials);
        }
        let server_signature = hmac(&self.secret.server_key, &auth_message);
        Ok(format!("v={}", BASE64.encode(server_signature)).into_bytes())
    }
}

fn decoy_secret(key: &[u8], authcid: &str, counts: &[u32]) -> ScramSecret {
    let derive = |label: &[u8]| {
        hmac(
            key,
            &[b"pillarbox scram decoy ", label, b"\0", authcid.as_bytes()],
        )
    };
    // One user's count, spread over the names as over the users (the
    // modulo's bias is below 2^-40 for any users file).
    let pick = |counts: &[u32]| {
        let mut first = [0u8; 8];
        first.copy_from_slice(&derive(b"iterations")[..8]);
        counts[(u64::from_le_bytes(first) % counts.len() as u64) as usize]
    };
    ScramSecret {
        iterations: match counts {
            [] => DECOY_ITERATIONS,
            counts => pick(counts).max(1),
        },
        salt: derive(b"salt")[..DECOY_SALT_LEN].to_vec(),
        stored_key: derive(b"stored key"),
        server_key: derive(b"server key"),
    }
}

/// client-first-message-bare for `authcid` and our nonce (RFC 5802 7).
pub(crate) fn client_first_bare(authcid: &str, client_nonce: &str) -> String {
    format!("n={},r={client_nonce}", escape_saslname(authcid))
}

/// The gs2 header our client sends: no channel binding, no authzid.
pub(crate) const CLIENT_GS2_HEADER: &str = "n,,";

/// The client's answer to server-first-message: the client-final-message and
/// the ServerSignature it expects in server-final (RFC 5802 3, 5.1).
pub(crate) fn client_final(
    password: &str,
    client_first_bare: &str,
    client_nonce: &str,
    server_first: &[u8],
) -> Result<(Vec<u8>, [u8; 32]), ClientError> {
    let text = std::str::from_utf8(server_first).map_err(|_| ClientError::MalformedChallenge)?;
    if let Some(error) = text.strip_prefix("e=") {
        return Err(ClientError::Server(error.to_owned()));
    }
    let mut parts = text.split(',');
    let malformed = |_| ClientError::MalformedChallenge;
    let first = parts.next();
    // RFC 5802 5.1: a client that sees m= must fail.
    let nonce = attribute(first, 'r').map_err(malformed)?;
    let salt = attribute(parts.next(), 's').map_err(malformed)?;
    let iterations = attribute(parts.next(), 'i').map_err(malformed)?;
    // RFC 5802 5.1: the server's nonce starts with ours and adds to it.
    if !nonce.starts_with(client_nonce)
        || nonce.len() == client_nonce.len()
        || !nonce.chars().all(is_nonce_char)
    {
        return Err(ClientError::MalformedChallenge);
    }
    let salt = BASE64
        .decode(salt)
        .map_err(|_| ClientError::MalformedChallenge)?;
    let iterations: u32 = iterations
        .parse()
        .map_err(|_| ClientError::MalformedChallenge)?;
    if iterations == 0 || iterations > MAX_CLIENT_ITERATIONS || salt.is_empty() {
        return Err(ClientError::MalformedChallenge);
    }

    let salted = salted_password(password, &salt, iterations);
    let client_key = hmac(&salted, &[b"Client Key"]);
    let stored_key = sha256(&client_key);
    let server_key = hmac(&salted, &[b"Server Key"]);
    let without_proof = format!("c={},r={nonce}", BASE64.encode(CLIENT_GS2_HEADER));
    let auth_message = [
        client_first_bare.as_bytes(),
        b",",
        server_first,
        b",",
        without_proof.as_bytes(),
    ];
    let client_signature = hmac(&stored_key, &auth_message);
    let mut proof = client_key;
    for (p, s) in proof.iter_mut().zip(client_signature) {
        *p ^= s;
    }
    let server_signature = hmac(&server_key, &auth_message);
    let message = format!("{without_proof},p={}", BASE64.encode(proof));
    Ok((message.into_bytes(), server_signature))
}

/// Check server-final-message (RFC 5802 7): `e=` is the server's error,
/// `v=` must be the ServerSignature we computed (the server's proof that it
/// knows the keys: RFC 5802 5.1).
pub(crate) fn check_server_final(expected: &[u8; 32], message: &[u8]) -> Result<(), ClientError> {
    let text = std::str::from_utf8(message).map_err(|_| ClientError::MalformedChallenge)?;
    if let Some(error) = text.strip_prefix("e=") {
        return Err(ClientError::Server(
            error.split(',').next().unwrap_or("").to_owned(),
        ));
    }
    let signature = text
        .split(',')
        .next()
        .and_then(|v| v.strip_prefix("v="))
        .ok_or(ClientError::MalformedChallenge)?;
    let signature = BASE64
        .decode(signature)
        .map_err(|_| ClientError::MalformedChallenge)?;
    if ct_eq(&signature, expected) {
        Ok(())
    } else {
        Err(ClientError::ServerNotVerified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saslname_escapes_round_trip() {
        assert_eq!(escape_saslname("a,b=c"), "a=2Cb=3Dc");
        assert_eq!(
            unescape_saslname("a=2Cb=3Dc").ok().as_deref(),
            Some("a,b=c")
        );
        assert!(unescape_saslname("a=2").is_err());
        assert!(unescape_saslname("a=41").is_err());
        assert!(unescape_saslname("=").is_err());
    }

    #[test]
    fn decoy_salt_is_stable_per_user_and_key() {
        let a = decoy_secret(b"key", "nobody", &[]);
        assert_eq!(a, decoy_secret(b"key", "nobody", &[]));
        assert_ne!(a.salt, decoy_secret(b"key", "other", &[]).salt);
        assert_ne!(a.salt, decoy_secret(b"other key", "nobody", &[]).salt);
        assert_eq!(a.salt.len(), DECOY_SALT_LEN);
    }

    #[test]
    fn decoy_announces_one_of_the_users_iterations_or_4096() {
        assert_eq!(decoy_secret(b"key", "nobody", &[]).iterations, 4096);
        let a = decoy_secret(b"key", "nobody", &[12_000]);
        assert_eq!(a.iterations, 12_000);
        assert_eq!(a.salt, decoy_secret(b"key", "nobody", &[]).salt);
        // Three users at 4,096 and one at 20,000: each name keeps its count,
        // and the names are spread over the counts as the users are.
        let counts = [4096, 20_000, 4096, 4096];
        let mut high = 0;
        for i in 0..400 {
            let name = format!("nobody{i}@example.test");
            let n = decoy_secret(b"key", &name, &counts).iterations;
            assert_eq!(n, decoy_secret(b"key", &name, &counts).iterations);
            assert!(n == 4096 || n == 20_000, "{n}");
            high += usize::from(n == 20_000);
        }
        // A quarter of 400 is 100; 60 and 140 are over four standard deviations off.
        assert!((60..=140).contains(&high), "{high} of 400 at 20,000");
        // Another key picks otherwise for some names.
        assert!((0..50).any(|i| {
            let name = format!("nobody{i}@example.test");
            decoy_secret(b"key", &name, &counts).iterations
                != decoy_secret(b"other key", &name, &counts).iterations
        }));
    }
}
