//! Access control: which clients may use the proxy, and where they may go.
//!
//! Client rules match the peer address against CIDR blocks. Destination
//! rules match host patterns, ports and methods, first match wins, with a
//! default policy. Address rules (loopback, link-local) are checked on the
//! resolved address, so a DNS name that points at 127.0.0.1 is caught too.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::Deserialize;

/// An IP block such as `10.0.0.0/8` or `::1/128`; a bare address is a /32
/// or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_match(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_match(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_match(net: &[u8], ip: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    if net[..full] != ip[..full] {
        return false;
    }
    let rest = prefix % 8;
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    net[full] & mask == ip[full] & mask
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let network: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR block"))?;
        let network = network.to_canonical();
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// A port or an inclusive range of ports, written `80` or `"1025-65535"` in
/// the config file, as squid writes its `Safe_ports`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "PortSpec")]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

/// How the file may write a [`PortRange`].
#[derive(Deserialize)]
#[serde(untagged)]
enum PortSpec {
    Port(u16),
    Text(String),
}

impl TryFrom<PortSpec> for PortRange {
    type Error = String;

    fn try_from(spec: PortSpec) -> Result<PortRange, String> {
        match spec {
            PortSpec::Port(port) => Ok(PortRange::single(port)),
            PortSpec::Text(text) => text.parse(),
        }
    }
}

impl PortRange {
    pub const fn single(port: u16) -> PortRange {
        PortRange {
            first: port,
            last: port,
        }
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

impl FromStr for PortRange {
    type Err = String;

    fn from_str(s: &str) -> Result<PortRange, String> {
        let bad = || format!("{s:?} is not a port or a range of ports such as \"1025-65535\"");
        let (first, last) = s.split_once('-').unwrap_or((s, s));
        let first: u16 = first.trim().parse().map_err(|_| bad())?;
        let last: u16 = last.trim().parse().map_err(|_| bad())?;
        if first > last {
            return Err(bad());
        }
        Ok(PortRange { first, last })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// The ports plain HTTP may reach unless `safe_ports` says otherwise:
/// squid's `Safe_ports`, so that the proxy never speaks HTTP to a mail or
/// other service port below 1025.
pub const DEFAULT_SAFE_PORTS: [PortRange; 10] = [
    PortRange::single(21),
    PortRange::single(70),
    PortRange::single(80),
    PortRange::single(210),
    PortRange::single(280),
    PortRange::single(443),
    PortRange::single(488),
    PortRange::single(591),
    PortRange::single(777),
    PortRange {
        first: 1025,
        last: 65535,
    },
];

/// A destination host pattern: an exact host, `*.suffix` (the suffix and
/// any name below it), or `*` for every host. Compared case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Any,
    Exact(String),
    Suffix(String),
}

impl HostPattern {
    pub fn parse(s: &str) -> Result<HostPattern, String> {
        let s = s.trim().trim_end_matches('.').to_ascii_lowercase();
        if s.is_empty() {
            return Err("an empty host pattern matches nothing; use \"*\" for every host".into());
        }
        if s == "*" {
            return Ok(HostPattern::Any);
        }
        if let Some(suffix) = s.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err(format!(
                    "host pattern {s:?}: only a leading \"*.\" is allowed"
                ));
            }
            return Ok(HostPattern::Suffix(suffix.to_owned()));
        }
        if s.contains('*') {
            return Err(format!(
                "host pattern {s:?}: only a leading \"*.\" is allowed"
            ));
        }
        Ok(HostPattern::Exact(s))
    }

    /// `host` must already be lowercase, without a trailing dot or brackets.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Exact(exact) => host == exact,
            HostPattern::Suffix(suffix) => {
                host == suffix
                    || (host.len() > suffix.len()
                        && host.ends_with(suffix.as_str())
                        && host.as_bytes()[host.len() - suffix.len() - 1] == b'.')
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Deny,
}

/// One destination rule, as written in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Named in the 403 body and the log, so people know which rule hit.
    pub name: Option<String>,
    pub action: Action,
    /// Host patterns; none means every host.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Ports; none means every port.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Methods, such as `CONNECT` or `POST`; none means every method.
    #[serde(default)]
    pub methods: Vec<String>,
}

/// The `[acl]` section of the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclConfig {
    /// When not empty, only clients in these blocks may use the proxy.
    #[serde(default)]
    pub client_allow: Vec<String>,
    /// Clients in these blocks are refused, even when allowed above.
    #[serde(default)]
    pub client_deny: Vec<String>,
    /// What happens to a destination that no rule matches.
    #[serde(default = "allow")]
    pub default: Action,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

fn allow() -> Action {
    Action::Allow
}

impl Default for AclConfig {
    fn default() -> AclConfig {
        AclConfig {
            client_allow: Vec::new(),
            client_deny: Vec::new(),
            default: Action::Allow,
            rules: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    action: Action,
    hosts: Vec<HostPattern>,
    ports: Vec<u16>,
    methods: Vec<String>,
}

impl Rule {
    fn matches(&self, host: &str, port: u16, method: &str) -> bool {
        (self.hosts.is_empty() || self.hosts.iter().any(|h| h.matches(host)))
            && (self.ports.is_empty() || self.ports.contains(&port))
            && (self.methods.is_empty() || self.methods.iter().any(|m| m == method))
    }
}

/// Why a request was refused; the text goes into the 403 body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied(pub String);

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The compiled ACL.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    client_allow: Vec<Cidr>,
    client_deny: Vec<Cidr>,
    default_deny: bool,
    rules: Vec<Rule>,
}

impl Acl {
    /// Checks every pattern and block, so a typo fails the start or the reload.
    pub fn new(config: &AclConfig) -> Result<Acl, String> {
        let cidrs = |list: &[String]| -> Result<Vec<Cidr>, String> {
            list.iter().map(|s| s.parse()).collect()
        };
        let rules = config
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let hosts = r
                    .hosts
                    .iter()
                    .map(|h| HostPattern::parse(h))
                    .collect::<Result<_, _>>()?;
                let methods = r
                    .methods
                    .iter()
                    .map(|m| {
                        let upper = m.trim().to_ascii_uppercase();
                        http::Method::from_bytes(upper.as_bytes())
                            .map(|_| upper)
                            .map_err(|_| format!("rule {}: {m:?} is not a method", i + 1))
                    })
                    .collect::<Result<_, _>>()?;
                Ok(Rule {
                    name: r.name.clone().unwrap_or_else(|| format!("#{}", i + 1)),
                    action: r.action,
                    hosts,
                    ports: r.ports.clone(),
                    methods,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Acl {
            client_allow: cidrs(&config.client_allow)?,
            client_deny: cidrs(&config.client_deny)?,
            default_deny: config.default == Action::Deny,
            rules,
        })
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    pub fn client_counts(&self) -> (usize, usize) {
        (self.client_allow.len(), self.client_deny.len())
    }

    pub fn check_client(&self, ip: IpAddr) -> Result<(), Denied> {
        if let Some(block) = self.client_deny.iter().find(|c| c.contains(ip)) {
            return Err(Denied(format!(
                "client {ip} is refused by client_deny {block}"
            )));
        }
        if !self.client_allow.is_empty() && !self.client_allow.iter().any(|c| c.contains(ip)) {
            return Err(Denied(format!("client {ip} is not in client_allow")));
        }
        Ok(())
    }

    /// `host` must be lowercase, without brackets or a trailing dot.
    pub fn check_destination(&self, host: &str, port: u16, method: &str) -> Result<(), Denied> {
        match self.rules.iter().find(|r| r.matches(host, port, method)) {
            Some(rule) if rule.action == Action::Deny => Err(Denied(format!(
                "{method} {host}:{port} is denied by rule {:?}",
                rule.name
            ))),
            Some(_) => Ok(()),
            None if self.default_deny => Err(Denied(format!(
                "{method} {host}:{port} matches no rule and the default policy is deny"
            ))),
            None => Ok(()),
        }
    }
}

/// Whether the proxy may connect to `ip` at all. Loopback is refused unless
/// allowed; link-local (the cloud metadata address among them), unspecified
/// and multicast addresses are always refused.
pub fn check_address(ip: IpAddr, allow_loopback: bool) -> Result<(), Denied> {
    let ip = ip.to_canonical();
    let why = match ip {
        _ if ip.is_loopback() => (!allow_loopback).then_some("loopback"),
        _ if ip.is_unspecified() => Some("unspecified"),
        _ if ip.is_multicast() => Some("multicast"),
        IpAddr::V4(v4) if v4.is_link_local() || v4.is_broadcast() => Some("link-local"),
        IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80 => Some("link-local"),
        _ => None,
    };
    match why {
        Some(kind) => Err(Denied(format!(
            "the destination address {ip} is {kind}, which this proxy does not reach"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges_parse_from_numbers_and_text() {
        #[derive(Deserialize)]
        struct File {
            ports: Vec<PortRange>,
        }
        let file: File = toml::from_str(r#"ports = [80, "1025-65535", " 8080 "]"#).expect("parses");
        assert_eq!(
            file.ports,
            [
                PortRange::single(80),
                PortRange {
                    first: 1025,
                    last: 65535
                },
                PortRange::single(8080)
            ]
        );
        assert!(file.ports[1].contains(3128) && !file.ports[1].contains(25));
        assert_eq!(file.ports[1].to_string(), "1025-65535");
        for bad in [
            r#"ports = ["90-80"]"#,
            r#"ports = ["http"]"#,
            "ports = [70000]",
        ] {
            assert!(toml::from_str::<File>(bad).is_err(), "{bad}");
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn cidr_blocks_match_by_prefix() {
        let block: Cidr = "10.1.0.0/16".parse().expect("cidr");
        assert!(block.contains(ip("10.1.200.3")));
        assert!(!block.contains(ip("10.2.0.1")));
        assert!(!block.contains(ip("::1")));
        let odd: Cidr = "192.168.0.128/25".parse().expect("cidr");
        assert!(odd.contains(ip("192.168.0.200")));
        assert!(!odd.contains(ip("192.168.0.100")));
        let v6: Cidr = "fd00::/8".parse().expect("cidr");
        assert!(v6.contains(ip("fd12::1")));
        let all: Cidr = "0.0.0.0/0".parse().expect("cidr");
        assert!(all.contains(ip("8.8.8.8")));
        let mapped: Cidr = "127.0.0.1".parse().expect("cidr");
        assert!(mapped.contains(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn bad_cidrs_are_refused() {
        for bad in ["10.0.0.0/33", "::/129", "nonsense", "10.0.0.0/x", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn host_patterns_match_exact_and_suffix_names() {
        let suffix = HostPattern::parse("*.Example.com").expect("pattern");
        assert!(suffix.matches("example.com"));
        assert!(suffix.matches("a.b.example.com"));
        assert!(!suffix.matches("badexample.com"));
        let exact = HostPattern::parse("example.com.").expect("pattern");
        assert!(exact.matches("example.com"));
        assert!(!exact.matches("www.example.com"));
        assert!(HostPattern::parse("a.*.com").is_err());
        assert!(HostPattern::parse("").is_err());
    }

    #[test]
    fn first_matching_rule_wins_and_is_named() {
        let config: AclConfig = toml::from_str(
            r#"
            default = "deny"
            [[rules]]
            name = "no-post-to-ads"
            action = "deny"
            hosts = ["*.ads.test"]
            methods = ["post"]
            [[rules]]
            action = "allow"
            hosts = ["*.ads.test", "ok.test"]
            ports = [80, 443]
            "#,
        )
        .expect("config");
        let acl = Acl::new(&config).expect("acl");
        let denied = acl
            .check_destination("x.ads.test", 80, "POST")
            .expect_err("denied");
        assert!(denied.0.contains("no-post-to-ads"), "{denied}");
        assert!(acl.check_destination("x.ads.test", 80, "GET").is_ok());
        assert!(acl.check_destination("ok.test", 443, "CONNECT").is_ok());
        let default = acl
            .check_destination("ok.test", 8080, "GET")
            .expect_err("default deny");
        assert!(default.0.contains("default policy"), "{default}");
    }

    #[test]
    fn clients_are_checked_against_deny_then_allow() {
        let config = AclConfig {
            client_allow: vec!["10.0.0.0/8".into()],
            client_deny: vec!["10.9.0.0/16".into()],
            ..AclConfig::default()
        };
        let acl = Acl::new(&config).expect("acl");
        assert!(acl.check_client(ip("10.1.1.1")).is_ok());
        assert!(acl.check_client(ip("10.9.1.1")).is_err());
        assert!(acl.check_client(ip("192.168.1.1")).is_err());
    }

    #[test]
    fn loopback_and_link_local_addresses_are_refused() {
        assert!(check_address(ip("127.0.0.1"), false).is_err());
        assert!(check_address(ip("127.0.0.1"), true).is_ok());
        assert!(check_address(ip("::1"), false).is_err());
        assert!(check_address(ip("::ffff:127.0.0.1"), false).is_err());
        assert!(check_address(ip("169.254.169.254"), true).is_err());
        assert!(check_address(ip("fe80::1"), true).is_err());
        assert!(check_address(ip("0.0.0.0"), true).is_err());
        assert!(check_address(ip("93.184.216.34"), false).is_ok());
    }

    #[test]
    fn a_bad_rule_fails_the_whole_acl() {
        let config: AclConfig = toml::from_str(
            r#"
            [[rules]]
            action = "deny"
            methods = ["NOT A METHOD"]
            "#,
        )
        .expect("config");
        assert!(Acl::new(&config).is_err());
    }
}
