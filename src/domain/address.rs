//! Endpoint URLs and the addresses hookline refuses to send to (SSRF guard).
//!
//! The same rules apply when a webhook is saved and, through the delivery
//! client's resolver, to every address actually connected to.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use url::{Host, Url};

pub const MAX_URL_LEN: usize = 2048;

/// Parses an endpoint URL: absolute `http` or `https`, with a host, without
/// credentials, at most 2 048 characters. Decimal, octal and hex IPv4
/// spellings come back normalised (`http://2130706433/` is `127.0.0.1`).
pub fn parse_endpoint_url(text: &str) -> Result<Url, String> {
    if text.len() > MAX_URL_LEN {
        return Err(format!("must be at most {MAX_URL_LEN} characters"));
    }
    let url = Url::parse(text).map_err(|err| format!("is not an absolute URL ({err})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must use http or https".into());
    }
    if url.host().is_none() {
        return Err("must have a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials; use a custom Authorization header".into());
    }
    Ok(url)
}

/// Whether hookline refuses to connect to `ip` unless private endpoints are
/// allowed: loopback, private, link-local (cloud metadata), unspecified,
/// shared (CGNAT), multicast, broadcast and reserved ranges, and IPv6 forms
/// that embed such an IPv4 address.
pub fn is_forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => is_forbidden_v6(v6),
    }
}

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240 // reserved
}

fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return is_forbidden_v4(v4);
    }
    let first = ip.segments()[0];
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first & 0xffc0) == 0xfec0 // site-local (deprecated)
        || first == 0x2001 && ip.segments()[1] == 0x0db8 // documentation
}

/// The IPv4 address carried by IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`), NAT64 (`64:ff9b::/96`) and 6to4 (`2002::/16`) addresses.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(mapped) = ip.to_ipv4_mapped() {
        return Some(mapped);
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_loopback() && !ip.is_unspecified() {
        return Some(tail);
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return Some(tail);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

/// Resolves the URL's host and refuses it when any address it resolves to is
/// forbidden. Used when a webhook is saved; delivery checks again on connect.
pub async fn check_public(url: &Url) -> Result<(), String> {
    let port = url.port_or_known_default().unwrap_or(443);
    let host = match url.host() {
        Some(Host::Ipv4(ip)) => return check_ip(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => return check_ip(IpAddr::V6(ip)),
        Some(Host::Domain(domain)) => domain.to_owned(),
        None => return Err("must have a host".into()),
    };
    let lookup = tokio::net::lookup_host((host.as_str(), port));
    let addrs = match tokio::time::timeout(Duration::from_secs(3), lookup).await {
        Ok(Ok(addrs)) => addrs.collect::<Vec<_>>(),
        Ok(Err(_)) => return Err(format!("host `{host}` does not resolve")),
        Err(_) => return Err(format!("host `{host}` did not resolve within 3s")),
    };
    if addrs.is_empty() {
        return Err(format!("host `{host}` does not resolve"));
    }
    addrs.iter().try_for_each(|addr| check_ip(addr.ip()))
}

/// Said with every refusal at save time: the person trying a receiver on
/// their laptop is the one who meets it first, and the switch is far from
/// the error otherwise.
const HOW_TO_ALLOW: &str = "for local development only, start `hookline serve` with \
     --allow-private-endpoints (or HOOKLINE_ALLOW_PRIVATE_ENDPOINTS=true) to allow it";

fn check_ip(ip: IpAddr) -> Result<(), String> {
    if is_forbidden_ip(ip) {
        Err(format!(
            "resolves to {ip}, a private, loopback, link-local or reserved address; {HOW_TO_ALLOW}"
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_ip(text: &str) -> IpAddr {
        match parse_endpoint_url(text).expect("parses").host() {
            Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
            other => panic!("{text} has no IP host: {other:?}"),
        }
    }

    #[test]
    fn private_and_special_addresses_are_forbidden() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "::127.0.0.1",
        ] {
            assert!(
                is_forbidden_ip(ip.parse().expect("ip")),
                "{ip} should be forbidden"
            );
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(
                !is_forbidden_ip(ip.parse().expect("ip")),
                "{ip} should be allowed"
            );
        }
    }

    #[test]
    fn numeric_ipv4_spellings_normalise_to_the_real_address() {
        for spelling in [
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://0x7f.0.0.1/",
        ] {
            let ip = host_ip(spelling);
            assert_eq!(ip, IpAddr::V4(Ipv4Addr::LOCALHOST), "{spelling}");
            assert!(is_forbidden_ip(ip));
        }
        assert!(is_forbidden_ip(host_ip("http://[::ffff:7f00:1]/")));
    }

    #[test]
    fn urls_must_be_absolute_http_without_credentials() {
        assert!(parse_endpoint_url("https://hooks.example.com/in?x=1").is_ok());
        for bad in [
            "ftp://example.com/",
            "/relative",
            "example.com",
            "http://user:pw@example.com/",
            "javascript:alert(1)",
            "http://",
        ] {
            assert!(parse_endpoint_url(bad).is_err(), "{bad} should be refused");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(parse_endpoint_url(&long).is_err());
    }

    #[tokio::test]
    async fn localhost_names_are_refused_at_save_time() {
        let url = parse_endpoint_url("http://localhost:9/").expect("parses");
        assert!(check_public(&url).await.is_err());
        let url = parse_endpoint_url("http://[::ffff:10.0.0.1]/").expect("parses");
        assert!(check_public(&url).await.is_err());
    }
}

#[cfg(test)]
mod properties {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn url_parsing_never_panics(text in "\\PC{0,200}") {
            let _ = parse_endpoint_url(&text);
        }

        #[test]
        fn every_spelling_of_a_forbidden_ipv4_is_caught(octets in any::<[u8; 4]>()) {
            let ip = Ipv4Addr::from(octets);
            let n = u32::from(ip);
            let spellings = [
                format!("http://{ip}/"),
                format!("http://{n}/"),
                format!("http://0x{n:x}/"),
                format!("http://0{:o}.0{:o}.0{:o}.0{:o}/", octets[0], octets[1], octets[2], octets[3]),
                format!("http://[::ffff:{ip}]/"),
            ];
            for spelling in spellings {
                let url = parse_endpoint_url(&spelling).expect("numeric hosts parse");
                let host = match url.host() {
                    Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
                    Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
                    other => panic!("{spelling}: {other:?}"),
                };
                prop_assert_eq!(is_forbidden_ip(host), is_forbidden_ip(IpAddr::V4(ip)), "{}", spelling);
            }
        }

        #[test]
        fn mapped_and_nat64_addresses_inherit_the_ipv4_verdict(octets in any::<[u8; 4]>()) {
            let v4 = Ipv4Addr::from(octets);
            let mapped = v4.to_ipv6_mapped();
            let [a, b, c, d] = octets;
            let nat64 = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]));
            prop_assert_eq!(is_forbidden_ip(IpAddr::V6(mapped)), is_forbidden_ip(IpAddr::V4(v4)));
            prop_assert_eq!(is_forbidden_ip(IpAddr::V6(nat64)), is_forbidden_ip(IpAddr::V4(v4)));
        }
    }
}
