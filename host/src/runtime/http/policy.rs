//! Which addresses a plugin may connect to. Checked on every address a
//! host name resolves to, after resolution, so an allowed *name* that
//! resolves to loopback, a private network or a cloud metadata service is
//! refused; the connection then goes to the very address that was checked.
//!
//! Denied by default, whatever name led there: loopback, unspecified,
//! private (RFC 1918, unique-local), shared (CGNAT), link-local (which holds
//! the 169.254.169.254 metadata service), multicast, broadcast, reserved and
//! documentation ranges, the Azure platform address 168.63.129.16, and IPv6
//! forms that embed an IPv4 address (mapped, compatible, NAT64, 6to4) when
//! the embedded address is denied. The operator can allow named CIDRs.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The private and special networks a plugin may reach anyway (granted by
/// the operator). Empty by default: public addresses only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkPolicy {
    allowed: Vec<IpNet>,
}

/// Why an address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prohibited(pub &'static str);

impl NetworkPolicy {
    /// Allow these networks (CIDRs such as `127.0.0.1/32` or `10.0.0.0/8`;
    /// a bare address is a single host).
    pub fn parse<S: AsRef<str>>(cidrs: &[S]) -> Result<Self, String> {
        let mut allowed = Vec::new();
        for cidr in cidrs {
            let cidr = cidr.as_ref().trim();
            let net = cidr
                .parse::<IpNet>()
                .or_else(|_| cidr.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("`{cidr}` is not a CIDR like 10.0.0.0/8 or an address"))?;
            allowed.push(net);
        }
        Ok(Self { allowed })
    }

    /// This policy with `other`'s networks allowed as well.
    pub fn with(&self, other: &NetworkPolicy) -> Self {
        let mut allowed = self.allowed.clone();
        allowed.extend(other.allowed.iter().copied());
        Self { allowed }
    }

    /// The allowed networks, as written.
    pub fn entries(&self) -> Vec<String> {
        self.allowed.iter().map(ToString::to_string).collect()
    }

    /// May a plugin connect to `ip`? Returns the address to connect to (an
    /// IPv4-mapped IPv6 address becomes the IPv4 address it stands for).
    pub fn check(&self, ip: IpAddr) -> Result<IpAddr, Prohibited> {
        let ip = canonical(ip);
        if self.allowed.iter().any(|net| net.contains(&ip)) {
            return Ok(ip);
        }
        match special(ip) {
            Some(range) => Err(Prohibited(range)),
            None => Ok(ip),
        }
    }
}

/// `::ffff:a.b.c.d` is the IPv4 address `a.b.c.d` on the wire.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The special range `ip` lies in, if any.
pub fn special(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    const RANGES: &[([u8; 4], u32, &str)] = &[
        ([0, 0, 0, 0], 8, "unspecified"),
        ([10, 0, 0, 0], 8, "private"),
        ([100, 64, 0, 0], 10, "shared (carrier-grade NAT)"),
        ([127, 0, 0, 0], 8, "loopback"),
        ([168, 63, 129, 16], 32, "Azure platform (metadata)"),
        ([169, 254, 0, 0], 16, "link-local (metadata)"),
        ([172, 16, 0, 0], 12, "private"),
        ([192, 0, 0, 0], 24, "reserved (IETF)"),
        ([192, 0, 2, 0], 24, "documentation"),
        ([192, 88, 99, 0], 24, "reserved (6to4 relay)"),
        ([192, 168, 0, 0], 16, "private"),
        ([198, 18, 0, 0], 15, "benchmarking"),
        ([198, 51, 100, 0], 24, "documentation"),
        ([203, 0, 113, 0], 24, "documentation"),
        ([224, 0, 0, 0], 4, "multicast"),
        ([240, 0, 0, 0], 4, "reserved"),
    ];
    if ip == Ipv4Addr::BROADCAST {
        return Some("broadcast");
    }
    RANGES
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map(|(_, _, name)| *name)
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return special_v4(v4).map(|_| "IPv4-mapped special address");
    }
    // ::a.b.c.d (deprecated IPv4-compatible): never a real destination.
    if s[..6] == [0; 6] {
        return Some("IPv4-compatible (deprecated)");
    }
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return special_v4(v4).map(|_| "NAT64 of a special address");
    }
    if s[0] == 0x2002 {
        let v4 = Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
        return special_v4(v4).map(|_| "6to4 of a special address");
    }
    let first = s[0];
    let range = if first == 0x0064 && s[1] == 0xff9b {
        "NAT64 (local use)"
    } else if first == 0x0100 && s[1..4] == [0; 3] {
        "discard"
    } else if first == 0x2001 && s[1] == 0x0db8 {
        "documentation"
    } else if first == 0x2001 && s[1] < 0x0200 {
        "Teredo or IETF"
    } else if first & 0xfe00 == 0xfc00 {
        "unique local (private)"
    } else if first & 0xffc0 == 0xfe80 {
        "link-local"
    } else if first & 0xffc0 == 0xfec0 {
        "site-local (deprecated)"
    } else if first & 0xff00 == 0xff00 {
        "multicast"
    } else {
        return None;
    };
    Some(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied(ip: &str) -> bool {
        NetworkPolicy::default()
            .check(ip.parse().expect(ip))
            .is_err()
    }

    #[test]
    fn special_addresses_are_denied_in_every_form() {
        for ip in [
            "127.0.0.1",
            "127.255.0.9",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "168.63.129.16",
            "100.100.100.200",
            "192.0.0.192",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
        ] {
            assert!(denied(ip), "{ip} should be denied");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "8.8.8.8",
            "20.42.65.92",
            "172.32.0.1",
            "100.128.0.1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2606:4700::1111",
            "2a00:1450::1",
        ] {
            assert!(!denied(ip), "{ip} should pass");
        }
    }

    #[test]
    fn named_networks_are_allowed_and_mapped_forms_with_them() {
        let policy = NetworkPolicy::parse(&["127.0.0.1/32", "10.0.0.0/8"]).expect("parses");
        assert!(policy.check("127.0.0.1".parse().expect("ip")).is_ok());
        assert_eq!(
            policy.check("::ffff:127.0.0.1".parse().expect("ip")),
            Ok("127.0.0.1".parse().expect("ip"))
        );
        assert!(policy.check("127.0.0.2".parse().expect("ip")).is_err());
        assert!(policy.check("10.9.9.9".parse().expect("ip")).is_ok());
        assert!(NetworkPolicy::parse(&["not-a-net"]).is_err());
    }
}
