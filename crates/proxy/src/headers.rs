//! Header rewriting between client and origin: hop-by-hop stripping
//! (RFC 9110 §7.6.1), `Via`, `Forwarded` and `X-Forwarded-For`.

use std::net::IpAddr;

use http::Version;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

/// The headers that describe one hop, never the message, so a proxy never
/// forwards them. Transfer-Encoding is among them: hyper re-frames the body.
/// Typed names, so that removing them parses nothing on every message.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Which client-address headers the proxy adds to forwarded requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeaders {
    /// Neither: origins do not learn the client's address.
    #[default]
    None,
    /// RFC 7239 `Forwarded: for=...`.
    Forwarded,
    /// The de-facto `X-Forwarded-For`.
    XForwardedFor,
    Both,
}

/// Whether the message asks for a protocol upgrade: an `Upgrade` header that
/// `Connection` names.
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_tokens(headers).any(|t| t == "upgrade")
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = String> + '_ {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
}

/// Whether the request carries `Expect: 100-continue` (RFC 9110 §10.1.1).
pub fn expects_continue(headers: &HeaderMap) -> bool {
    headers.get_all(header::EXPECT).iter().any(|v| {
        v.as_bytes()
            .trim_ascii()
            .eq_ignore_ascii_case(b"100-continue")
    })
}

/// Removes every hop-by-hop header: the fixed list and whatever `Connection`
/// names. With `keep_upgrade`, `Upgrade` survives and `Connection: upgrade`
/// is set again, so the next hop sees the upgrade request or acceptance.
///
/// A message that carried `Transfer-Encoding` was read by it, so any
/// `Content-Length` beside it is stale and goes too (RFC 9112 §6.3): kept,
/// it would frame the re-framed body and cut it.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        headers.remove(header::CONTENT_LENGTH);
    }
    // Most messages name nothing in Connection: then there is no list of
    // names to build.
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<String> = connection_tokens(headers).collect();
        for name in named {
            if keep_upgrade && name == "upgrade" {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
                headers.remove(name);
            }
        }
    }
    for name in &HOP_BY_HOP {
        if keep_upgrade && name == header::UPGRADE {
            continue;
        }
        headers.remove(name);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Appends this proxy to `Via`, as `1.1 <name>`.
pub fn add_via(headers: &mut HeaderMap, version: Version, name: &str) {
    let protocol = match version {
        Version::HTTP_10 => "1.0",
        Version::HTTP_09 => "0.9",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    };
    if let Ok(value) = HeaderValue::from_str(&format!("{protocol} {name}")) {
        headers.append(header::VIA, value);
    }
}

/// Whether `Via` already names this proxy: the request has looped.
pub fn has_looped(headers: &HeaderMap, name: &str) -> bool {
    headers
        .get_all(header::VIA)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|hop| hop.split_whitespace().nth(1) == Some(name))
}

/// Adds the client's address in the headers the config asks for.
pub fn add_forwarded(headers: &mut HeaderMap, mode: ForwardedHeaders, client: IpAddr) {
    let client = client.to_canonical();
    if matches!(mode, ForwardedHeaders::Forwarded | ForwardedHeaders::Both) {
        let node = match client {
            IpAddr::V4(v4) => format!("for={v4}"),
            IpAddr::V6(v6) => format!("for=\"[{v6}]\""),
        };
        if let Ok(value) = HeaderValue::from_str(&node) {
            headers.append(header::FORWARDED, value);
        }
    }
    if matches!(
        mode,
        ForwardedHeaders::XForwardedFor | ForwardedHeaders::Both
    ) {
        let name = HeaderName::from_static("x-forwarded-for");
        let joined = match headers.get(&name).and_then(|v| v.to_str().ok()) {
            Some(previous) => format!("{previous}, {client}"),
            None => client.to_string(),
        };
        if let Ok(value) = HeaderValue::from_str(&joined) {
            headers.insert(name, value);
        }
    }
}

/// Reads `Max-Forwards` (RFC 9110 §7.6.2). An unreadable value counts as
/// absent, as the RFC has no rule for it and forwarding is the safe choice.
pub fn max_forwards(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::MAX_FORWARDS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        map
    }

    #[test]
    fn hop_by_hop_headers_and_those_named_by_connection_are_removed() {
        let mut map = headers(&[
            ("connection", "keep-alive, X-Secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("proxy-authorization", "Basic eA=="),
            ("te", "trailers"),
            ("trailer", "x-sum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut map, false);
        assert_eq!(map.len(), 1, "{map:?}");
        assert!(map.contains_key("accept"));
    }

    #[test]
    fn content_length_goes_with_transfer_encoding_and_stays_without_it() {
        let mut both = headers(&[("content-length", "3"), ("transfer-encoding", "chunked")]);
        strip_hop_by_hop(&mut both, false);
        assert!(both.is_empty(), "{both:?}");
        let mut length = headers(&[("content-length", "3")]);
        strip_hop_by_hop(&mut length, false);
        assert_eq!(length.get("content-length").expect("kept"), "3");
    }

    #[test]
    fn an_upgrade_keeps_upgrade_and_a_fresh_connection_header() {
        let mut map = headers(&[
            ("connection", "Upgrade, x-drop"),
            ("upgrade", "websocket"),
            ("x-drop", "1"),
        ]);
        assert!(wants_upgrade(&map));
        strip_hop_by_hop(&mut map, true);
        assert_eq!(map.get("upgrade").expect("upgrade"), "websocket");
        assert_eq!(map.get("connection").expect("connection"), "upgrade");
        assert!(!map.contains_key("x-drop"));
    }

    #[test]
    fn via_is_appended_and_loops_are_seen() {
        let mut map = headers(&[("via", "1.0 other")]);
        assert!(!has_looped(&map, "backroom-proxy"));
        add_via(&mut map, Version::HTTP_11, "backroom-proxy");
        let all: Vec<_> = map.get_all("via").iter().collect();
        assert_eq!(all, ["1.0 other", "1.1 backroom-proxy"]);
        assert!(has_looped(&map, "backroom-proxy"));
    }

    #[test]
    fn forwarded_headers_follow_the_mode() {
        let mut map = headers(&[("x-forwarded-for", "10.0.0.1")]);
        add_forwarded(&mut map, ForwardedHeaders::Both, "::1".parse().expect("ip"));
        assert_eq!(map.get("forwarded").expect("forwarded"), "for=\"[::1]\"");
        assert_eq!(map.get("x-forwarded-for").expect("xff"), "10.0.0.1, ::1");
        let mut none = HeaderMap::new();
        add_forwarded(
            &mut none,
            ForwardedHeaders::None,
            "10.0.0.2".parse().expect("ip"),
        );
        assert!(none.is_empty());
    }

    #[test]
    fn max_forwards_parses_or_counts_as_absent() {
        assert_eq!(max_forwards(&headers(&[("max-forwards", "3")])), Some(3));
        assert_eq!(max_forwards(&headers(&[("max-forwards", "x")])), None);
        assert_eq!(max_forwards(&HeaderMap::new()), None);
    }
}
