//! Facts about the client behind a request that handlers and limits rely on: its
//! address (with the trusted-proxy rule in one place) and its user agent.

use std::convert::Infallible;
use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};

use crate::state::AppState;

/// The client's address as every per-address limit counts it (see [`ClientIp::of`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIp(pub String);

impl ClientIp {
    /// The TCP peer, unless the peer is one of `TESSERA_TRUSTED_PROXIES`, in which
    /// case `X-Forwarded-For` is read from the right and the first address that is
    /// not a trusted proxy is the client. A header from anyone else is ignored: any
    /// client can forge one.
    pub fn of(req: &HttpRequest) -> Self {
        ClientIp(client_ip(req))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromRequest for ClientIp {
    type Error = Infallible;
    type Future = Ready<Result<Self, Infallible>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(ClientIp::of(req)))
    }
}

/// [`ClientIp::of`], as text ("unknown" when the peer is not known).
fn client_ip(req: &HttpRequest) -> String {
    let trusted = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.settings.trusted_proxies.as_slice())
        .unwrap_or_default();
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok());
    client_address(req.peer_addr().map(|a| a.ip()), forwarded, trusted)
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

/// The walk behind [`ClientIp::of`]: from the peer leftwards through trusted hops.
fn client_address<'a>(
    peer: Option<std::net::IpAddr>,
    forwarded_for: impl Iterator<Item = &'a str>,
    trusted: &[crate::config::IpRange],
) -> Option<std::net::IpAddr> {
    let is_trusted = |ip: std::net::IpAddr| trusted.iter().any(|range| range.contains(ip));
    let peer = peer?;
    if !is_trusted(peer) {
        return Some(peer);
    }
    let hops: Vec<&str> = forwarded_for.flat_map(|v| v.split(',')).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        // An entry that is not an address was not written by a proxy we trust:
        // stop at the last hop we could vouch for.
        let Ok(ip) = hop.trim().parse::<std::net::IpAddr>() else {
            break;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    Some(client)
}

/// The `User-Agent` a session records, to tell a person's devices apart.
/// Where a request came from, for the audit events it records, and who acts
/// in it when that is not whoever an event names (`actor`).
pub fn audit_context(
    req: &HttpRequest,
    actor: Option<crate::audit::Actor>,
) -> crate::audit::Context {
    crate::audit::Context {
        ip: Some(ClientIp::of(req).0),
        user_agent: user_agent(req),
        actor,
    }
}

pub fn user_agent(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(peer: &str, forwarded: &[&str], trusted: &[&str]) -> String {
        let trusted: Vec<crate::config::IpRange> =
            trusted.iter().map(|t| t.parse().unwrap()).collect();
        client_address(
            Some(peer.parse().unwrap()),
            forwarded.iter().copied(),
            &trusted,
        )
        .unwrap()
        .to_string()
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        // No trusted proxies: the header is anyone's to forge.
        assert_eq!(
            address("198.51.100.9", &["203.0.113.5"], &[]),
            "198.51.100.9"
        );
        // From a trusted proxy: the rightmost untrusted hop is the client, so a
        // client cannot hide behind addresses it prepends itself.
        assert_eq!(
            address("10.0.0.2", &["6.6.6.6, 203.0.113.5"], &["10.0.0.0/8"]),
            "203.0.113.5"
        );
        assert_eq!(
            address("10.0.0.2", &["203.0.113.5, 10.0.0.7"], &["10.0.0.0/8"]),
            "203.0.113.5"
        );
        // Several headers are one list.
        assert_eq!(
            address("10.0.0.2", &["6.6.6.6", "203.0.113.5"], &["10.0.0.0/8"]),
            "203.0.113.5"
        );
        // A peer that is not trusted does not get its header read.
        assert_eq!(
            address("198.51.100.9", &["203.0.113.5"], &["10.0.0.0/8"]),
            "198.51.100.9"
        );
        // Garbage stops the walk at the last hop vouched for.
        assert_eq!(
            address("10.0.0.2", &["not-an-ip"], &["10.0.0.0/8"]),
            "10.0.0.2"
        );
        // No header from a trusted proxy: the proxy itself.
        assert_eq!(address("10.0.0.2", &[], &["10.0.0.0/8"]), "10.0.0.2");
    }
}
