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
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

/// IPv4 ranges refused by default: every block of the IANA IPv4 Special-Purpose
/// Address Registry (iana-ipv4-special-registry, checked 2026-12) that is not
/// globally reachable, plus multicast and the deprecated 6to4 relay anycast block.
/// The registry's globally reachable entries (192.31.196.0/24 AS112, 192.52.193.0/24
/// AMT, 192.175.48.0/24 AS112 direct delegation) stay allowed.
const FORBIDDEN_V4: &[(Ipv4Addr, u8, &str)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8, "this network (RFC 791)"),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private (RFC 1918)"),
    (
        Ipv4Addr::new(100, 64, 0, 0),
        10,
        "shared address space / CGNAT (RFC 6598)",
    ),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback (RFC 1122)"),
    (
        Ipv4Addr::new(169, 254, 0, 0),
        16,
        "link local, cloud metadata (RFC 3927)",
    ),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private (RFC 1918)"),
    (
        Ipv4Addr::new(192, 0, 0, 0),
        24,
        "IETF protocol assignments (RFC 6890)",
    ),
    (
        Ipv4Addr::new(192, 0, 2, 0),
        24,
        "documentation TEST-NET-1 (RFC 5737)",
    ),
    (
        Ipv4Addr::new(192, 88, 99, 0),
        24,
        "6to4 relay anycast, deprecated (RFC 7526)",
    ),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private (RFC 1918)"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "benchmarking (RFC 2544)"),
    (
        Ipv4Addr::new(198, 51, 100, 0),
        24,
        "documentation TEST-NET-2 (RFC 5737)",
    ),
    (
        Ipv4Addr::new(203, 0, 113, 0),
        24,
        "documentation TEST-NET-3 (RFC 5737)",
    ),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast (RFC 5771)"),
    (
        Ipv4Addr::new(240, 0, 0, 0),
        4,
        "reserved, incl. broadcast (RFC 1112, RFC 919)",
    ),
];

/// IPv6 ranges refused by default: every block of the IANA IPv6 Special-Purpose
/// Address Registry (iana-ipv6-special-registry, checked 2026-12) that is not
/// globally reachable, the ones that embed or relay to IPv4 (NAT64, 6to4, Teredo, the
/// deprecated IPv4-compatible block: an embedded private address would pass
/// otherwise), deprecated site-local and multicast. IPv4-mapped addresses
/// (`::ffff:a.b.c.d`) are judged by their IPv4 address. Globally reachable entries
/// inside 2001::/23 (PCP/TURN anycast, AMT, AS112) are refused with the block: no
/// webhook receiver lives there.
const FORBIDDEN_V6: &[(Ipv6Addr, u8, &str)] = &[
    (
        Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0),
        96,
        "unspecified, loopback, IPv4-compatible (RFC 4291)",
    ),
    (
        Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0, 0, 0),
        96,
        "IPv4-translated (RFC 2765)",
    ),
    (
        Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0),
        96,
        "IPv4/IPv6 translation, NAT64 (RFC 6052)",
    ),
    (
        Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0),
        48,
        "local-use IPv4/IPv6 translation (RFC 8215)",
    ),
    (
        Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0),
        64,
        "discard-only (RFC 6666)",
    ),
    (
        Ipv6Addr::new(0x100, 0, 0, 1, 0, 0, 0, 0),
        64,
        "dummy IPv6 prefix (RFC 9780)",
    ),
    (
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        23,
        "IETF protocol assignments, incl. Teredo 2001::/32 (RFC 2928, RFC 4380)",
    ),
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        "documentation (RFC 3849)",
    ),
    (
        Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0),
        16,
        "6to4 (RFC 3056)",
    ),
    (
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        "documentation (RFC 9637)",
    ),
    (
        Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0),
        16,
        "segment routing SIDs (RFC 9602)",
    ),
    (
        Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
        7,
        "unique local (RFC 4193)",
    ),
    (
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
        10,
        "link local (RFC 4291)",
    ),
    (
        Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0),
        10,
        "site local, deprecated (RFC 3879)",
    ),
    (
        Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),
        8,
        "multicast (RFC 4291)",
    ),
];

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let addr = u32::from(ip);
    FORBIDDEN_V4.iter().any(|(net, len, _)| {
        let mask = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
        addr & mask == u32::from(*net) & mask
    })
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    let addr = u128::from(ip);
    FORBIDDEN_V6.iter().any(|(net, len, _)| {
        let mask = u128::MAX.checked_shl(128 - u32::from(*len)).unwrap_or(0);
        addr & mask == u128::from(*net) & mask
    })
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
            "http://192.0.0.8/",
            "http://192.0.0.170/",
            "http://192.88.99.1/",
            "http://198.18.0.1/",
            "http://198.19.255.255/",
            "http://240.0.0.1/",
            "http://255.255.255.255/",
            "http://224.0.0.1/",
            "http://203.0.113.9/",
            "http://[64:ff9b::a00:1]/",
            "http://[64:ff9b:1::1]/",
            "http://[2002:a00:1::1]/",
            "http://[2001::1]/",
            "http://[2001:0:4136:e378::1]/",
            "http://[2001:2::1]/",
            "http://[fec0::1]/",
            "http://[100::1]/",
            "http://[3fff::1]/",
            "http://[5f00::1]/",
            "http://[ff02::1]/",
            "http://[::]/",
            "http://[::a00:1]/",
            "http://[::ffff:0:a00:1]/",
            "http://[::ffff:10.0.0.1]/",
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
            "http://[::ffff:93.184.216.34]/",
            "http://192.31.196.1/",
            "http://192.175.48.1/",
            "http://[2620:4f:8000::1]/",
            "http://100.128.0.1/",
            "http://172.32.0.1/",
            "http://198.20.0.1/",
            "http://[2003::1]/",
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
