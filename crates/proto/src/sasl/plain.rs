//! PLAIN (RFC 4616): one message, `[authzid] NUL authcid NUL passwd`.

use super::Failure;

/// What a PLAIN message carries, once the authzid rule is applied.
pub(crate) struct PlainCredentials {
    pub authcid: String,
    pub password: String,
}

/// Parse the client's message (RFC 4616 2).
///
/// `message = [authzid] UTF8NUL authcid UTF8NUL passwd`: without the two NULs,
/// with an empty authcid or with text that is not UTF-8 it is
/// [`Failure::Malformed`]. An empty password decodes fine and names a user,
/// so it is credentials, checked like any other: RFC 4616 2 asks for at least
/// one character, so it can never be right, and the exchange makes sure it
/// fails with `535 5.7.8` (RFC 4954 6). We do not act for another identity:
/// an authzid that is neither empty nor the authcid is refused as
/// [`Failure::InvalidCredentials`] (RFC 4616 2 leaves the authorization
/// policy to the server), before the password is looked at.
pub(crate) fn parse(message: &[u8]) -> Result<PlainCredentials, Failure> {
    let mut parts = message.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Failure::Malformed);
    };
    let (authzid, authcid, password) = (utf8(authzid)?, utf8(authcid)?, utf8(password)?);
    if authcid.is_empty() {
        return Err(Failure::Malformed);
    }
    if !authzid.is_empty() && authzid != authcid {
        return Err(Failure::InvalidCredentials);
    }
    Ok(PlainCredentials {
        authcid: authcid.to_owned(),
        password: password.to_owned(),
    })
}

fn utf8(bytes: &[u8]) -> Result<&str, Failure> {
    std::str::from_utf8(bytes).map_err(|_| Failure::Malformed)
}

/// The client's message: no authzid, so the server derives it from the
/// authcid (RFC 4616 2).
pub(crate) fn message(authcid: &str, password: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(authcid.len() + password.len() + 2);
    m.push(0);
    m.extend_from_slice(authcid.as_bytes());
    m.push(0);
    m.extend_from_slice(password.as_bytes());
    m
}
