//! `cidr(path, "10.0.0.0/8")`: IPv4 and IPv6 networks, parsed with `std::net` only.
//!
//! An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`) matches IPv4 networks. A network
//! with host bits set (`10.0.0.1/8`) is refused at compile time: it is almost always a
//! typo. A bare address means a single host (`/32` or `/128`).

use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    /// Parses `addr/prefix` or a bare address; the error says what is wrong.
    pub(crate) fn parse(text: &str) -> Result<Net, String> {
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| format!("`{addr_text}` is not an IPv4 or IPv6 address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && !p.starts_with('+') => n,
                _ => return Err(format!("`/{p}` is not a prefix length between 0 and {max}")),
            },
        };
        let net = Net { addr, prefix };
        if net.masked(addr) != addr_bits(addr) {
            return Err(format!(
                "`{text}` has host bits set; did you mean the network address?"
            ));
        }
        Ok(net)
    }

    fn masked(&self, addr: IpAddr) -> u128 {
        let bits = addr_bits(addr);
        let width = if addr.is_ipv4() { 32 } else { 128 };
        let host_bits = width - u32::from(self.prefix);
        if host_bits >= 128 {
            0
        } else {
            (bits >> host_bits) << host_bits
        }
    }

    pub(crate) fn contains(&self, text: &str) -> bool {
        let Ok(addr) = text.parse::<IpAddr>() else {
            return false;
        };
        let addr = match addr {
            IpAddr::V6(v6) if self.addr.is_ipv4() => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            other => other,
        };
        if addr.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        self.masked(addr) == addr_bits(self.addr)
    }
}

fn addr_bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

#[cfg(test)]
mod tests {
    use super::Net;

    #[test]
    fn cidr_contains_v4_v6_and_mapped() {
        let net = Net::parse("10.0.0.0/8").unwrap();
        assert!(net.contains("10.1.2.3"));
        assert!(!net.contains("11.0.0.1"));
        assert!(net.contains("::ffff:10.0.0.1"));
        assert!(!net.contains("not an ip"));
        let v6 = Net::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8::1"));
        assert!(!v6.contains("2001:db9::1"));
        assert!(!v6.contains("10.0.0.1"));
        assert!(Net::parse("0.0.0.0/0").unwrap().contains("1.2.3.4"));
        assert!(Net::parse("::/0").unwrap().contains("::1"));
        assert!(Net::parse("10.0.0.1/8").is_err());
        assert!(Net::parse("10.0.0.0/33").is_err());
        assert!(Net::parse("not-a-cidr").is_err());
        assert!(Net::parse("1.2.3.4").unwrap().contains("1.2.3.4"));
    }
}
