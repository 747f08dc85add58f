//! A small DER reader for the few fields of an X.509 certificate a
//! diagnostic shows: subject, issuer, validity and DNS names (RFC 5280
//! 4.1). Only what is needed, every length checked; a certificate it cannot
//! read is shown as such, never trusted because of it (trust is rustls's job).

use std::fmt::Write as _;

/// What a probe shows of one certificate.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CertificateSummary {
    /// `CN=mx.example.test, O=Example`.
    pub subject: String,
    pub issuer: String,
    /// RFC 3339, UTC.
    pub not_before: String,
    pub not_after: String,
    /// `not_after` in seconds since the Unix epoch.
    pub not_after_unix: i64,
    /// The dNSName and iPAddress entries of subjectAltName (RFC 5280 4.2.1.6).
    pub dns_names: Vec<String>,
}

/// Why a certificate could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot read certificate: {0}")]
pub struct CertificateError(&'static str);

impl CertificateSummary {
    /// Reads a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<CertificateSummary, CertificateError> {
        let (cert, _) = expect(der, 0x30, "Certificate is not a SEQUENCE")?;
        let (tbs, _) = expect(cert, 0x30, "tbsCertificate is not a SEQUENCE")?;
        let mut rest = tbs;
        // version [0] EXPLICIT, optional.
        if rest.first() == Some(&0xa0) {
            rest = tlv(rest)?.2;
        }
        let (_, _serial, r) = tlv(rest)?;
        let (_, _signature, r) = tlv(r)?;
        let (issuer, r) = expect(r, 0x30, "issuer is not a SEQUENCE")?;
        let (validity, r) = expect(r, 0x30, "validity is not a SEQUENCE")?;
        let (subject, r) = expect(r, 0x30, "subject is not a SEQUENCE")?;
        let (_spki, mut r) = expect(r, 0x30, "subjectPublicKeyInfo is not a SEQUENCE")?;
        let (not_before, vr) = time(validity)?;
        let (not_after, _) = time(vr)?;
        let mut dns_names = Vec::new();
        // issuerUniqueID [1], subjectUniqueID [2], extensions [3].
        while !r.is_empty() {
            let (tag, content, next) = tlv(r)?;
            if tag == 0xa3 {
                dns_names = subject_alt_names(content)?;
            }
            r = next;
        }
        Ok(CertificateSummary {
            subject: name(subject)?,
            issuer: name(issuer)?,
            not_before: rfc3339(not_before),
            not_after: rfc3339(not_after),
            not_after_unix: unix(not_after),
            dns_names,
        })
    }

    /// Whether `not_after` has passed at `now` (Unix seconds).
    pub fn expired_at(&self, now: i64) -> bool {
        now > self.not_after_unix
    }

    /// Whole days from `now` to `not_after` (negative once expired).
    pub fn days_left(&self, now: i64) -> i64 {
        (self.not_after_unix - now).div_euclid(86_400)
    }
}

/// One TLV: (tag, content, rest). Single-octet tags, definite lengths (DER).
fn tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), CertificateError> {
    let short = CertificateError("truncated DER");
    let (&tag, r) = input.split_first().ok_or(short.clone())?;
    let (&first, mut r) = r.split_first().ok_or(short.clone())?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || r.len() < n {
            return Err(CertificateError("bad DER length"));
        }
        let mut len = 0usize;
        for &b in &r[..n] {
            len = (len << 8) | usize::from(b);
        }
        r = &r[n..];
        len
    };
    if r.len() < len {
        return Err(short);
    }
    Ok((tag, &r[..len], &r[len..]))
}

fn expect<'a>(
    input: &'a [u8],
    tag: u8,
    err: &'static str,
) -> Result<(&'a [u8], &'a [u8]), CertificateError> {
    let (t, content, rest) = tlv(input)?;
    if t != tag {
        return Err(CertificateError(err));
    }
    Ok((content, rest))
}

/// A calendar time, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Time {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

/// UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ), RFC 5280 4.1.2.5.
fn time(input: &[u8]) -> Result<(Time, &[u8]), CertificateError> {
    let (tag, content, rest) = tlv(input)?;
    let bad = CertificateError("bad validity time");
    let text = std::str::from_utf8(content).map_err(|_| bad.clone())?;
    let digits = text.strip_suffix('Z').ok_or(bad.clone())?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad);
    }
    let (year, tail) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy: i64 = digits[..2].parse().map_err(|_| bad.clone())?;
            // RFC 5280 4.1.2.5.1: YY >= 50 is 19YY.
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (0x18, 14) => (digits[..4].parse().map_err(|_| bad.clone())?, &digits[4..]),
        _ => return Err(bad),
    };
    let field = |i: usize| -> u32 { tail[i..i + 2].parse().unwrap_or(0) };
    let t = Time {
        year,
        month: field(0),
        day: field(2),
        hour: field(4),
        minute: field(6),
        second: field(8),
    };
    if !(1..=12).contains(&t.month) || !(1..=31).contains(&t.day) {
        return Err(CertificateError("bad validity date"));
    }
    Ok((t, rest))
}

fn rfc3339(t: Time) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn unix(t: Time) -> i64 {
    days_from_civil(t.year, t.month, t.day) * 86_400
        + i64::from(t.hour) * 3600
        + i64::from(t.minute) * 60
        + i64::from(t.second)
}

/// A Name (RDNSequence) as `CN=..., O=...`, in the order it is encoded.
fn name(mut input: &[u8]) -> Result<String, CertificateError> {
    let mut parts = Vec::new();
    let mut guard = 0;
    while !input.is_empty() && guard < 64 {
        guard += 1;
        let (set, rest) = expect(input, 0x31, "RDN is not a SET")?;
        let mut s = set;
        while !s.is_empty() {
            let (atv, next) = expect(s, 0x30, "attribute is not a SEQUENCE")?;
            let (oid, value_tlv) = expect(atv, 0x06, "attribute type is not an OID")?;
            let (tag, value, _) = tlv(value_tlv)?;
            parts.push(format!(
                "{}={}",
                attribute_name(oid),
                string_value(tag, value)
            ));
            s = next;
        }
        input = rest;
    }
    Ok(parts.join(", "))
}

fn attribute_name(oid: &[u8]) -> String {
    match oid {
        [0x55, 0x04, 0x03] => "CN".into(),
        [0x55, 0x04, 0x05] => "serialNumber".into(),
        [0x55, 0x04, 0x06] => "C".into(),
        [0x55, 0x04, 0x07] => "L".into(),
        [0x55, 0x04, 0x08] => "ST".into(),
        [0x55, 0x04, 0x0a] => "O".into(),
        [0x55, 0x04, 0x0b] => "OU".into(),
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "emailAddress".into(),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC".into(),
        other => dotted_oid(other),
    }
}

fn dotted_oid(oid: &[u8]) -> String {
    let mut out = String::new();
    let mut value: u64 = 0;
    let mut first = true;
    for &b in oid {
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if first {
                let (a, b) = if value < 80 {
                    (value / 40, value % 40)
                } else {
                    (2, value - 80)
                };
                let _ = write!(out, "{a}.{b}");
                first = false;
            } else {
                let _ = write!(out, ".{value}");
            }
            value = 0;
        }
    }
    out
}

fn string_value(tag: u8, value: &[u8]) -> String {
    match tag {
        // BMPString: UTF-16BE.
        0x1e => {
            let units: Vec<u16> = value
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        // UTF8String, PrintableString, IA5String, TeletexString (read as text).
        _ => String::from_utf8_lossy(value).into_owned(),
    }
}

/// subjectAltName dNSName and iPAddress entries in the [3] extensions.
fn subject_alt_names(explicit: &[u8]) -> Result<Vec<String>, CertificateError> {
    let (mut exts, _) = expect(explicit, 0x30, "extensions are not a SEQUENCE")?;
    let mut out = Vec::new();
    while !exts.is_empty() {
        let (ext, next) = expect(exts, 0x30, "extension is not a SEQUENCE")?;
        let (oid, mut r) = expect(ext, 0x06, "extension id is not an OID")?;
        // critical BOOLEAN DEFAULT FALSE.
        if r.first() == Some(&0x01) {
            r = tlv(r)?.2;
        }
        if oid == [0x55, 0x1d, 0x11] {
            let (octets, _) = expect(r, 0x04, "extension value is not an OCTET STRING")?;
            let (mut names, _) = expect(octets, 0x30, "GeneralNames is not a SEQUENCE")?;
            while !names.is_empty() {
                let (tag, value, rest) = tlv(names)?;
                match tag {
                    0x82 => out.push(String::from_utf8_lossy(value).into_owned()),
                    0x87 if value.len() == 4 => out.push(format!(
                        "{}.{}.{}.{}",
                        value[0], value[1], value[2], value[3]
                    )),
                    0x87 if value.len() == 16 => {
                        let mut a = [0u8; 16];
                        a.copy_from_slice(value);
                        out.push(std::net::Ipv6Addr::from(a).to_string());
                    }
                    _ => {}
                }
                names = rest;
            }
        }
        exts = next;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_convert_to_unix_time() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        let t = Time {
            year: 2038,
            month: 1,
            day: 19,
            hour: 3,
            minute: 14,
            second: 7,
        };
        assert_eq!(unix(t), 2_147_483_647);
    }

    #[test]
    fn oids_are_named_or_dotted() {
        assert_eq!(attribute_name(&[0x55, 0x04, 0x03]), "CN");
        assert_eq!(
            dotted_oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d]),
            "1.2.840.113549"
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(CertificateSummary::from_der(b"").is_err());
        assert!(CertificateSummary::from_der(&[0x30, 0x85, 1, 2, 3, 4, 5]).is_err());
        assert!(CertificateSummary::from_der(&[0x30, 0x03, 0x30, 0x01]).is_err());
    }
}
