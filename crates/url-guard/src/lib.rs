#![doc = include_str!("../README.md")]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use url::{Host, Url};

/// Hosts that may be fetched from: exact names (`photos.example.com`) or all
/// subdomains of one (`*.example.com`), case-insensitive, each on the ports 80
/// and 443 unless the entry names its own (`cdn.example.com:8443`,
/// `[2001:db8::1]:8080`): an allowed host's other services (its Redis, its SSH)
/// are never reachable through a photo URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    exact: BTreeMap<String, BTreeSet<u16>>,
    suffixes: BTreeMap<String, BTreeSet<u16>>,
}

/// The ports of an entry that names none.
pub const DEFAULT_PORTS: [u16; 2] = [80, 443];

impl AllowedHosts {
    /// Whether no host is allowed (fetching by URL is off).
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.suffixes.is_empty()
    }

    /// Whether `host` (a name or an IP literal, IPv6 without brackets) is on the
    /// list, on any of its ports.
    pub fn allows(&self, host: &str) -> bool {
        self.ports_of(host).next().is_some()
    }

    /// Whether `host` may be fetched from on `port`.
    pub fn allows_port(&self, host: &str, port: u16) -> bool {
        self.ports_of(host).any(|ports| ports.contains(&port))
    }

    /// The port sets of every entry that matches `host`.
    fn ports_of<'a>(&'a self, host: &str) -> impl Iterator<Item = &'a BTreeSet<u16>> + 'a {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let exact = self.exact.get(&host);
        let suffixes = self.suffixes.iter().filter_map(move |(s, ports)| {
            (host.len() > s.len() + 1 && host.ends_with(&format!(".{s}"))).then_some(ports)
        });
        exact.into_iter().chain(suffixes)
    }
}

impl FromStr for AllowedHosts {
    type Err = String;

    /// A comma-separated list; blank means none. An entry is `name`,
    /// `*.name`, `name:port`, an IP literal (IPv6 bare, or bracketed with a
    /// port: `[::1]:8080`). Entries for the same host add up their ports.
    fn from_str(list: &str) -> Result<Self, String> {
        let mut hosts = Self::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let entry = entry.to_ascii_lowercase();
            let rule = || {
                format!(
                    "{entry:?} must be a host name such as photos.example.com, *.example.com or cdn.example.com:8443 (no scheme or path)"
                )
            };
            let (host, port) = split_port(&entry).ok_or_else(rule)?;
            let (name, wildcard) = match host.strip_prefix("*.") {
                Some(rest) => (rest, true),
                None => (host, false),
            };
            let valid = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'))
                && !name.starts_with('.')
                && !name.ends_with('.');
            if !valid {
                return Err(rule());
            }
            let ports = match port {
                Some(port) => vec![port],
                None => DEFAULT_PORTS.to_vec(),
            };
            let set = if wildcard {
                &mut hosts.suffixes
            } else {
                &mut hosts.exact
            };
            set.entry(name.to_owned()).or_default().extend(ports);
        }
        Ok(hosts)
    }
}

/// `host[:port]`, `[v6]` or `[v6]:port`, or a bare IPv6 literal (two colons or
/// more, so no port); None when the port is not a number from 1 to 65535.
fn split_port(entry: &str) -> Option<(&str, Option<u16>)> {
    let port = |p: &str| p.parse::<u16>().ok().filter(|&p| p != 0);
    if let Some(rest) = entry.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(port(after.strip_prefix(':')?)?))),
        };
    }
    match entry.matches(':').count() {
        0 => Some((entry, None)),
        1 => {
            let (host, p) = entry.split_once(':')?;
            Some((host, Some(port(p)?)))
        }
        _ => Some((entry, None)),
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
    if s[0..6] == [0, 0, 0, 0, 0xffff, 0] {
        // IPv4-translated (::ffff:0:a.b.c.d, RFC 2765).
        return forbidden_v4(embedded(s[6], s[7]), allow_loopback);
    }
    if s[0] == 0x64 && s[1] == 0xff9b {
        if s[2..6] == [0, 0, 0, 0] {
            // The well-known NAT64 prefix 64:ff9b::/96 (RFC 6052) reaches its last 32 bits.
            return forbidden_v4(embedded(s[6], s[7]), allow_loopback);
        }
        // 64:ff9b:1::/48 (RFC 8215) is for local use, laid out by each network:
        // where the IPv4 address sits cannot be known, and it reaches inside.
        return Some(if s[2] == 1 {
            "local-use NAT64 (64:ff9b:1::/48)"
        } else {
            "unassigned NAT64 space (64:ff9b::/32 outside 64:ff9b::/96)"
        });
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
/// before any DNS: `http` or `https`, no credentials, a host and port on
/// `allowed`, and no IP literal of a refused range ([`forbidden`], loopback included). The
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
    let port = url
        .port_or_known_default()
        .ok_or_else(|| "the URL has no port".to_owned())?;
    if !allowed.allows_port(&host, port) {
        return Err(format!(
            "the port {port} of {host} is not allowed: PHOTO_FETCH_ALLOWED_HOSTS allows 80 and 443 unless an entry names another (host:port)"
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

/// Test support for the crates that wrap [`check_url`] (feature `testing`).
#[cfg(any(test, feature = "testing"))]
pub mod testing {
    /// URLs [`check_url`](super::check_url) refuses when `photos.example.com`
    /// is allowed, each with a word its reason contains.
    pub const REFUSED_URLS: [(&str, &str); 6] = [
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
    ];
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
    fn ipv4_translated_and_local_use_nat64_addresses_are_judged_by_the_ipv4_they_reach() {
        // IPv4-translated (::ffff:0:a.b.c.d, RFC 2765) reaches a.b.c.d.
        for refused in [
            "::ffff:0:7f00:1",
            "::ffff:0:a9fe:a9fe",
            "::ffff:0:a00:1",
            // The local-use NAT64 prefix (RFC 8215) is laid out by each network
            // (any length from /48 to /96): no global meaning, so it is refused.
            "64:ff9b:1::a9fe:a9fe",
            "64:ff9b:1:a9fe:a9:fe00::",
            "64:ff9b:1:0808:0008:0800::",
            // Inside 64:ff9b::/32 but outside the well-known /96: unassigned.
            "64:ff9b:0:1::808:808",
        ] {
            assert!(
                forbidden(ip(refused), false).is_some(),
                "{refused} must be refused"
            );
        }
        assert_eq!(forbidden(ip("::ffff:0:808:808"), false), None);
        assert_eq!(forbidden(ip("64:ff9b::808:808"), false), None);
        assert!(forbidden(ip("64:ff9b::a9fe:a9fe"), false).is_some());
    }

    #[test]
    fn an_allowed_host_is_fetched_on_80_and_443_only_unless_its_entry_names_a_port() {
        let allowed: AllowedHosts = "photos.example.com, cdn.example.com:8443, *.img.example.org:8080, [::1]:9000, 127.0.0.1:7000"
            .parse()
            .expect("valid");
        for ok in [
            "http://photos.example.com/a.jpg",
            "https://photos.example.com/a.jpg",
            "http://photos.example.com:80/a.jpg",
            "https://cdn.example.com:8443/a.jpg",
            "http://a.img.example.org:8080/a.jpg",
            "http://[::1]:9000/a.jpg",
            "http://127.0.0.1:7000/a.jpg",
        ] {
            assert!(check_url(&allowed, ok).is_ok(), "{ok}");
        }
        for (refused, port) in [
            ("http://photos.example.com:6379/a.jpg", "6379"),
            ("https://photos.example.com:22/", "22"),
            ("https://cdn.example.com/a.jpg", "443"),
            ("http://a.img.example.org/a.jpg", "80"),
            ("http://[::1]/a.jpg", "80"),
            ("http://127.0.0.1:7001/a.jpg", "7001"),
        ] {
            let err = check_url(&allowed, refused).expect_err(refused);
            assert!(
                err.contains(port) && err.contains("port"),
                "{refused}: {err}"
            );
        }
        for bad in [
            "example.com:0",
            "example.com:99999",
            "example.com:",
            "[::1",
            "[::1]x",
        ] {
            assert!(bad.parse::<AllowedHosts>().is_err(), "{bad}");
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
        for (bad, why) in testing::REFUSED_URLS {
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
