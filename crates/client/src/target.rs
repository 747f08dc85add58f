//! `HOST[:PORT]` as typed on a command line: a name, an IPv4 address, an
//! IPv6 address bare or in brackets (`::1`, `[::1]:25`, RFC 3986 3.2.2's
//! form for an address with a port).

/// Why a target did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not one of the forms; `port_optional` says which forms were allowed.
    #[error("{target:?} is not {}", if *.port_optional { "HOST, HOST:PORT or [IPv6]:PORT" } else { "HOST:PORT or [IPv6]:PORT" })]
    Malformed { target: String, port_optional: bool },
    /// The port is not a number from 1 to 65535.
    #[error("{target:?}: {port:?} is not a port")]
    BadPort { target: String, port: String },
}

/// Splits `target` into host (an IPv6 address without its brackets) and
/// port. Without a port, `default_port` is used; with `None` the port is
/// required.
pub fn parse_target(target: &str, default_port: Option<u16>) -> Result<(String, u16), TargetError> {
    let malformed = || TargetError::Malformed {
        target: target.to_string(),
        port_optional: default_port.is_some(),
    };
    let port_of = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| TargetError::BadPort {
                target: target.to_string(),
                port: p.to_string(),
            })
    };
    let (host, port) = if let Some(rest) = target.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(malformed)?;
        let port = match after {
            "" => default_port.ok_or_else(malformed)?,
            p => port_of(p.strip_prefix(':').ok_or_else(malformed)?)?,
        };
        (host, port)
    } else {
        match target.matches(':').count() {
            0 => (target, default_port.ok_or_else(malformed)?),
            1 => {
                let (host, port) = target.split_once(':').ok_or_else(malformed)?;
                (host, port_of(port)?)
            }
            // More colons: a bare IPv6 address, which cannot carry a port
            // (`::1:25` is an address too); with a port it needs brackets.
            _ if target.parse::<std::net::Ipv6Addr>().is_ok() => {
                (target, default_port.ok_or_else(malformed)?)
            }
            _ => return Err(malformed()),
        }
    };
    if host.is_empty() {
        return Err(malformed());
    }
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pillarbox probe`'s form: the port defaults to 25.
    fn probe_target(target: &str) -> Result<(String, u16), TargetError> {
        parse_target(target, Some(25))
    }

    /// `pillarbox bench`'s form: the port is required.
    fn bench_target(target: &str) -> Result<(String, u16), TargetError> {
        parse_target(target, None)
    }

    #[test]
    fn targets_parse_with_and_without_port() {
        assert_eq!(probe_target("mx.example"), Ok(("mx.example".into(), 25)));
        assert_eq!(
            probe_target("127.0.0.1:2525"),
            Ok(("127.0.0.1".into(), 2525))
        );
        assert_eq!(probe_target("[::1]:587"), Ok(("::1".into(), 587)));
        assert_eq!(probe_target("[::1]"), Ok(("::1".into(), 25)));
        assert_eq!(probe_target("::1"), Ok(("::1".into(), 25)));
        assert!(probe_target("host:").is_err());
        assert!(probe_target("host:99999").is_err());
        assert!(probe_target(":25").is_err());
        assert!(probe_target("").is_err());
    }

    #[test]
    fn targets_split_when_the_port_is_required() {
        assert_eq!(
            bench_target("127.0.0.1:25"),
            Ok(("127.0.0.1".to_string(), 25))
        );
        assert_eq!(bench_target("[::1]:2525"), Ok(("::1".to_string(), 2525)));
        assert!(bench_target("localhost").is_err());
        assert!(bench_target("h:0").is_err());
        assert!(bench_target("[::1]").is_err());
        assert!(bench_target("::1").is_err());
    }
}
