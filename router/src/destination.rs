//! Which destinations GatePulse may send to (SPEC CORE-9).
//!
//! By default private, loopback, link-local, unspecified, multicast, documentation and
//! cloud-metadata addresses are refused. URL checks at endpoint creation catch literal
//! addresses and well-known internal names early; the delivery engine checks the
//! resolved address it actually connects to with [`is_forbidden_ip`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use reqwest::Url;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    #[error("is not a valid absolute URL: {0}")]
    Invalid(String),
    #[error("must use http or https")]
    Scheme,
    #[error("must not contain credentials; use custom headers instead")]
    Credentials,
    #[error("must name a host")]
    NoHost,
    #[error(
        "points at a private, loopback or link-local address ({0}); allow such destinations \
         with delivery.allow_private_destinations"
    )]
    Private(String),
    #[error("is longer than {0} bytes")]
    TooLong(usize),
}

pub const MAX_URL_BYTES: usize = 2048;

/// True for addresses a default configuration must not reach.
pub fn is_forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4);
            }
            forbidden_v6(v6)
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local() // includes 169.254.169.254 (cloud metadata)
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT 100.64/10
        || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18/15
        || a >= 240 // reserved
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
        || (first == 0x0064 && ip.segments()[1] == 0xff9b) // NAT64 64:ff9b::/96
        || ip.to_ipv4().is_some_and(forbidden_v4) // IPv4-compatible ::a.b.c.d
}

/// Host names that always mean "this machine or its private network".
fn forbidden_name(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    h == "localhost"
        || h.ends_with(".localhost")
        || h.ends_with(".local")
        || h.ends_with(".internal")
        || h == "metadata.google.internal"
}

/// Validates an endpoint URL, refusing private destinations unless allowed.
pub fn validate_url(raw: &str, allow_private: bool) -> Result<Url, DestinationError> {
    if raw.len() > MAX_URL_BYTES {
        return Err(DestinationError::TooLong(MAX_URL_BYTES));
    }
    let url = Url::parse(raw).map_err(|e| DestinationError::Invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(DestinationError::Scheme);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(DestinationError::Credentials);
    }
    let host = url.host().ok_or(DestinationError::NoHost)?;
    if !allow_private {
        let forbidden = match &host {
            url::Host::Ipv4(ip) => is_forbidden_ip(IpAddr::V4(*ip)),
            url::Host::Ipv6(ip) => is_forbidden_ip(IpAddr::V6(*ip)),
            url::Host::Domain(d) => forbidden_name(d),
        };
        if forbidden {
            return Err(DestinationError::Private(host.to_string()));
        }
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_destinations_are_refused_unless_allowed() {
        for bad in [
            "http://127.0.0.1/x",
            "http://10.1.2.3/",
            "http://192.168.0.1/",
            "http://172.16.5.5/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0/",
            "http://localhost:8080/",
            "http://api.localhost/",
            "http://metadata.google.internal/",
            "http://100.64.0.1/",
        ] {
            assert!(
                matches!(validate_url(bad, false), Err(DestinationError::Private(_))),
                "{bad}"
            );
            assert!(validate_url(bad, true).is_ok(), "{bad}");
        }
        for good in [
            "https://example.com/hook",
            "http://93.184.216.34/",
            "https://[2606:4700::1]/",
        ] {
            assert!(validate_url(good, false).is_ok(), "{good}");
        }
    }

    #[test]
    fn malformed_urls_are_refused() {
        assert_eq!(
            validate_url("ftp://example.com", true),
            Err(DestinationError::Scheme)
        );
        assert_eq!(
            validate_url("https://user:pw@example.com", true),
            Err(DestinationError::Credentials)
        );
        assert!(matches!(
            validate_url("not a url", true),
            Err(DestinationError::Invalid(_))
        ));
        let long = format!("https://example.com/{}", "a".repeat(3000));
        assert!(matches!(
            validate_url(&long, true),
            Err(DestinationError::TooLong(_))
        ));
    }
}
