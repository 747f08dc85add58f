//! The trace fields we prepend: `Return-Path` and `Received` (RFC 5321 4.4,
//! RFC 3848 for the `with` protocol names).

use std::fmt::{self, Write as _};
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// What the Received field says about the session.
pub struct Trace<'a> {
    pub helo: &'a str,
    pub client_ip: IpAddr,
    pub hostname: &'a str,
    /// ESMTP, ESMTPS, SMTP (RFC 3848).
    pub protocol: &'a str,
    /// `TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384`, when under TLS.
    pub tls: Option<String>,
    pub queue_id: &'a str,
    pub session_id: &'a str,
    /// Named only when there is one recipient (more would disclose Bcc).
    pub single_rcpt: Option<&'a dyn fmt::Display>,
    pub return_path: &'a dyn fmt::Display,
}

impl Trace<'_> {
    /// The header block, CRLF line ends (it goes through the same writer as the body).
    /// Written into one string: this runs for every message.
    pub fn header(&self, now: SystemTime) -> String {
        let mut h = String::with_capacity(320);
        // Writing to a String cannot fail.
        let _ = write!(
            h,
            "Return-Path: {}\r\nReceived: from {} ([{}])\r\n\tby {} (Pillarbox) with {} id {}",
            self.return_path,
            self.helo,
            self.client_ip,
            self.hostname,
            self.protocol,
            self.queue_id
        );
        if let Some(tls) = &self.tls {
            let _ = write!(h, "\r\n\t(using {tls})");
        }
        let _ = write!(h, "\r\n\t(session {})", self.session_id);
        if let Some(r) = self.single_rcpt {
            let _ = write!(h, "\r\n\tfor {r}");
        }
        let _ = write!(h, ";\r\n\t{}\r\n", Rfc5322Date(now));
        h
    }
}

/// `Mon, 23 Nov 2026 12:00:00 +0000` (RFC 5322 3.3), in UTC.
pub fn rfc5322_date(t: SystemTime) -> String {
    Rfc5322Date(t).to_string()
}

/// Displays as [`rfc5322_date`], without a string of its own.
pub struct Rfc5322Date(pub SystemTime);

impl fmt::Display for Rfc5322Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self
            .0
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
        const MON: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        write!(
            f,
            "{}, {} {} {} {:02}:{:02}:{:02} +0000",
            WD[(days.rem_euclid(7)) as usize],
            d,
            MON[(m - 1) as usize],
            y,
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_are_rfc5322() {
        assert_eq!(rfc5322_date(UNIX_EPOCH), "Thu, 1 Jan 1970 00:00:00 +0000");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_435_200);
        assert_eq!(rfc5322_date(t), "Mon, 23 Nov 2026 12:00:00 +0000");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc5322_date(leap), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn received_names_session_protocol_and_single_recipient() {
        let t = Trace {
            helo: "client.test",
            client_ip: "127.0.0.1".parse().unwrap(),
            hostname: "mx.test",
            protocol: "ESMTPS",
            tls: Some("TLSv1.3 with cipher X".into()),
            queue_id: "Q1",
            session_id: "S1",
            single_rcpt: Some(&"<b@x.test>"),
            return_path: &"<a@x.test>",
        };
        let h = t.header(UNIX_EPOCH);
        assert!(h.starts_with("Return-Path: <a@x.test>\r\nReceived: from client.test ([127.0.0.1])\r\n\tby mx.test (Pillarbox) with ESMTPS id Q1"));
        assert!(h.contains("(session S1)") && h.contains("for <b@x.test>;"));
        assert!(h.ends_with("+0000\r\n"));
    }
}
