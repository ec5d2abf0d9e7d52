#![doc = include_str!("../README.md")]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use url::{Host, Url};

/// Hosts that may be fetched from: exact names (`photos.example.com`) or all
/// subdomains of one (`*.example.com`), case-insensitive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    exact: BTreeSet<String>,
    suffixes: BTreeSet<String>,
}

impl AllowedHosts {
    /// Whether no host is allowed (fetching by URL is off).
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.suffixes.is_empty()
    }

    /// Whether `host` (a name or an IP literal, IPv6 without brackets) is on the list.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.exact.contains(&host)
            || self
                .suffixes
                .iter()
                .any(|s| host.len() > s.len() + 1 && host.ends_with(&format!(".{s}")))
    }
}

impl FromStr for AllowedHosts {
    type Err = String;

    /// A comma-separated list; blank means none.
    fn from_str(list: &str) -> Result<Self, String> {
        let mut hosts = Self::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let entry = entry.to_ascii_lowercase();
            let (name, wildcard) = match entry.strip_prefix("*.") {
                Some(rest) => (rest.to_owned(), true),
                None => (entry.clone(), false),
            };
            let valid = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'))
                && !name.starts_with('.')
                && !name.ends_with('.');
            if !valid {
                return Err(format!(
                    "{entry:?} must be a host name such as photos.example.com or *.example.com (no scheme, port or path)"
                ));
            }
            if wildcard {
                hosts.suffixes.insert(name);
            } else {
                hosts.exact.insert(name);
            }
        }
        Ok(hosts)
    }
}

/// Why an IP address may not be fetched from, or None when it may.
pub fn forbidden(ip: IpAddr, allow_loopback: bool) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4, allow_loopback),
        IpAddr::V6(v6) => forbidden_v6(v6, allow_loopback),
    }
}

fn forbidden_v4(ip: Ipv4Addr, allow_loopback: bool) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        return (!allow_loopback).then_some("loopback");
    }
    Some(match (a, b, c) {
        (0, _, _) => "unspecified (0.0.0.0/8)",
        (10, _, _) => "private (10.0.0.0/8)",
        (172, 16..=31, _) => "private (172.16.0.0/12)",
        (192, 168, _) => "private (192.168.0.0/16)",
        (169, 254, _) => "link-local (169.254.0.0/16, cloud metadata)",
        (100, 64..=127, _) => "shared address space (100.64.0.0/10)",
        (192, 0, 0) => "IETF protocol assignment (192.0.0.0/24)",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18..=19, _) => "benchmarking (198.18.0.0/15)",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved or broadcast (240.0.0.0/4)",
        _ => return None,
    })
}

fn forbidden_v6(ip: Ipv6Addr, allow_loopback: bool) -> Option<&'static str> {
    if ip.is_loopback() {
        return (!allow_loopback).then_some("loopback (::1)");
    }
    if ip.is_unspecified() {
        return Some("unspecified (::)");
    }
    let s = ip.segments();
    // IPv4 carried inside IPv6 reaches that IPv4 address: judge it as such.
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4, allow_loopback);
    }
    if s[0..6] == [0, 0, 0, 0, 0, 0] {
        // IPv4-compatible (::a.b.c.d), deprecated.
        return forbidden_v4(embedded(s[6], s[7]), allow_loopback).or(Some("IPv4-compatible"));
    }
    if s[0] == 0x64 && s[1] == 0xff9b {
        // NAT64 (64:ff9b::/96 and 64:ff9b:1::/48).
        return forbidden_v4(embedded(s[6], s[7]), allow_loopback);
    }
    if s[0] == 0x2002 {
        // 6to4 carries an IPv4 address in its second and third segments.
        return forbidden_v4(embedded(s[1], s[2]), allow_loopback);
    }
    Some(match s[0] {
        0xfc00..=0xfdff => "unique local (fc00::/7)",
        0xfe80..=0xfebf => "link-local (fe80::/10)",
        0xfec0..=0xfeff => "site-local (fec0::/10)",
        0xff00..=0xffff => "multicast (ff00::/8)",
        0x2001 if s[1] == 0 => "Teredo (2001::/32)",
        0x2001 if s[1] == 0xdb8 => "documentation (2001:db8::/32)",
        0x0100 if s[1..4] == [0, 0, 0] => "discard-only (100::/64)",
        _ => return None,
    })
}

/// The URL parsed, if its syntax, scheme and host may be fetched at all,
/// before any DNS: `http` or `https`, no credentials, a host on `allowed`, and
/// no IP literal of a refused range ([`forbidden`], loopback included). The
/// error is the rule it breaks, for a message.
pub fn check_url(allowed: &AllowedHosts, raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "the scheme {:?} is not http or https",
            url.scheme()
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("a URL with credentials is not fetched".into());
    }
    let host = host_of(&url).ok_or_else(|| "the URL has no host".to_owned())?;
    if !allowed.allows(&host) {
        return Err(format!(
            "the host {host} is not in PHOTO_FETCH_ALLOWED_HOSTS"
        ));
    }
    Ok(url)
}

/// Whether `url` names its host by an IP literal that [`forbidden`] refuses:
/// what can be refused before any lookup.
pub fn forbidden_literal(url: &Url, allow_loopback: bool) -> Option<&'static str> {
    let ip = match url.host()? {
        Host::Domain(_) => return None,
        Host::Ipv4(ip) => IpAddr::V4(ip),
        Host::Ipv6(ip) => IpAddr::V6(ip),
    };
    forbidden(ip, allow_loopback)
}

/// The host of `url` as written (a name, or an IP literal without brackets).
pub fn host_of(url: &Url) -> Option<String> {
    match url.host()? {
        Host::Domain(d) => Some(d.to_owned()),
        Host::Ipv4(ip) => Some(ip.to_string()),
        Host::Ipv6(ip) => Some(ip.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an IP address")
    }

    #[test]
    fn private_loopback_link_local_and_other_inside_addresses_are_refused() {
        for refused in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "2001:db8::1",
        ] {
            assert!(
                forbidden(ip(refused), false).is_some(),
                "{refused} must be refused"
            );
        }
        for allowed in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(forbidden(ip(allowed), false), None, "{allowed}");
        }
    }

    #[test]
    fn the_loopback_switch_opens_loopback_only() {
        for loopback in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(forbidden(ip(loopback), true), None, "{loopback}");
        }
        for still in [
            "169.254.169.254",
            "10.0.0.1",
            "::ffff:169.254.169.254",
            "fe80::1",
        ] {
            assert!(forbidden(ip(still), true).is_some(), "{still}");
        }
    }

    #[test]
    fn allowed_hosts_match_exactly_or_as_subdomains_of_a_wildcard() {
        let hosts: AllowedHosts = " Photos.Example.com, *.cdn.example.org ,"
            .parse()
            .expect("valid");
        assert!(hosts.allows("photos.example.com"));
        assert!(hosts.allows("PHOTOS.example.com."));
        assert!(!hosts.allows("evil-photos.example.com"));
        assert!(!hosts.allows("photos.example.com.evil.net"));
        assert!(hosts.allows("a.b.cdn.example.org"));
        assert!(!hosts.allows("cdn.example.org"));
        assert!(!hosts.allows("xcdn.example.org"));
        assert!("".parse::<AllowedHosts>().expect("blank").is_empty());
        for bad in ["http://example.com", "example.com/photos", "*.", "a b"] {
            assert!(bad.parse::<AllowedHosts>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_url_is_checked_for_scheme_credentials_and_host_before_any_lookup() {
        let allowed: AllowedHosts = "photos.example.com, 127.0.0.1".parse().expect("valid");
        assert!(check_url(&allowed, "https://photos.example.com/a.jpg").is_ok());
        for (bad, why) in [
            ("ftp://photos.example.com/a.jpg", "scheme"),
            ("file:///etc/passwd", "scheme"),
            ("https://user:pw@photos.example.com/a.jpg", "credentials"),
            (
                "https://other.example.com/a.jpg",
                "PHOTO_FETCH_ALLOWED_HOSTS",
            ),
            (
                "http://169.254.169.254/latest/meta-data/",
                "PHOTO_FETCH_ALLOWED_HOSTS",
            ),
            ("not a url", "not a URL"),
        ] {
            let err = check_url(&allowed, bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn an_ip_literal_of_a_refused_range_is_refused_even_when_allowed() {
        let allowed: AllowedHosts = "127.0.0.1, 93.184.216.34".parse().expect("valid");
        let url = check_url(&allowed, "http://127.0.0.1/a.jpg").expect("syntax and host pass");
        assert_eq!(forbidden_literal(&url, false), Some("loopback"));
        assert_eq!(forbidden_literal(&url, true), None);
        let public = check_url(&allowed, "http://93.184.216.34/a.jpg").expect("allowed");
        assert_eq!(forbidden_literal(&public, false), None);
        let name = Url::parse("http://localhost/a.jpg").expect("url");
        assert_eq!(
            forbidden_literal(&name, false),
            None,
            "names are vetted once resolved"
        );
        let mapped = Url::parse("http://[::ffff:a9fe:a9fe]/").expect("url");
        assert!(forbidden_literal(&mapped, true).is_some());
    }
}
