//! Which addresses a magnet may make the node dial. A magnet's trackers (`tr=`) and peers
//! (`x.pe=`) are chosen by whoever submits it; unchecked, they turn the node into a probe of
//! its own network (HTTP GETs to internal services, TCP connections to any host and port).
//! Loopback, private, link-local, shared (CGNAT) and unique-local addresses are refused
//! unless `torrent.allow_internal_peers` is set (the local stack and tests, which seed on
//! loopback).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use magnet_core::Magnet;

use crate::{Error, Result};

/// The same ranges as [`is_internal`], as a librqbit blocklist (`name:first-last` lines):
/// the session refuses to connect to, or accept, peers there, whoever named them (a
/// tracker's peer list, DHT, PEX), not only the magnet's own hints.
pub const BLOCKLIST: &str = "\
this-network:0.0.0.0-0.255.255.255
private-10:10.0.0.0-10.255.255.255
shared-cgnat:100.64.0.0-100.127.255.255
loopback:127.0.0.0-127.255.255.255
link-local:169.254.0.0-169.254.255.255
private-172:172.16.0.0-172.31.255.255
private-192:192.168.0.0-192.168.255.255
multicast-and-reserved:224.0.0.0-255.255.255.255
unspecified6:::-::1
nat64:64:ff9b::-64:ff9b::ffff:ffff
unique-local:fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff
link-local6:fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff
multicast6:ff00::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff
";

/// How long resolving one name may take at submit time.
const RESOLVE_LIMIT: Duration = Duration::from_secs(3);

/// True for addresses inside a network rather than on the internet.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                // 100.64.0.0/10, carrier-grade NAT (and Kubernetes pod networks use it).
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let segments = v6.segments();
            let first = segments[0];
            // 64:ff9b::/96, NAT64: an IPv4 address behind the gateway.
            let nat64 = segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || nat64
                // fc00::/7 unique local, fe80::/10 link-local.
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Refuses a magnet whose trackers or peers are (or resolve to) internal addresses.
pub async fn check(magnet: &Magnet) -> Result<()> {
    for tracker in &magnet.trackers {
        let Ok(url) = url::Url::parse(tracker) else {
            continue;
        };
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            continue;
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        refuse_internal("tracker", tracker, host, port).await?;
    }
    for peer in &magnet.peers {
        let Some((host, port)) = peer.rsplit_once(':') else {
            continue;
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        refuse_internal("peer", peer, host, port).await?;
    }
    Ok(())
}

async fn refuse_internal(what: &str, given: &str, host: &str, port: u16) -> Result<()> {
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        // A name that does not resolve (in time) is not dialled either; librqbit will say so.
        Err(_) => {
            match tokio::time::timeout(RESOLVE_LIMIT, tokio::net::lookup_host((host, port))).await {
                Ok(Ok(addrs)) => addrs.collect(),
                _ => Vec::new(),
            }
        }
    };
    if let Some(a) = addrs.iter().find(|a| is_internal(a.ip())) {
        return Err(Error::InternalAddress(format!(
            "the magnet's {what} {given} is on an internal address ({}); this node does not dial \
             loopback, private or link-local addresses (torrent.allow_internal_peers)",
            a.ip()
        )));
    }
    Ok(())
}

/// The peers of `addrs` that the node may dial (drops internal ones unless allowed), for
/// hints resolved again when a download starts.
pub fn dialable(addrs: Vec<SocketAddr>, allow_internal: bool) -> Vec<SocketAddr> {
    if allow_internal {
        return addrs;
    }
    addrs
        .into_iter()
        .filter(|a| {
            let internal = is_internal(a.ip());
            if internal {
                tracing::warn!(peer = %a, "peer hint on an internal address dropped");
            }
            !internal
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "224.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(is_internal(ip.parse().expect(ip)), "{ip}");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "2606:4700::1111",
            "100.128.0.1",
            "172.32.0.1",
        ] {
            assert!(!is_internal(ip.parse().expect(ip)), "{ip}");
        }
    }

    #[test]
    fn the_blocklist_covers_the_same_ranges() {
        for line in BLOCKLIST.lines().filter(|l| !l.is_empty()) {
            let (_, range) = if line.matches(':').count() > 2 {
                line.split_once(':').expect("name")
            } else {
                line.rsplit_once(':').expect("name")
            };
            let (first, last) = range.split_once('-').expect("range");
            for ip in [first, last] {
                let ip: IpAddr = ip.parse().expect(line);
                assert!(is_internal(ip), "{line}: {ip}");
            }
        }
    }

    #[tokio::test]
    async fn magnets_naming_internal_hosts_are_refused() {
        let hash = "0123456789abcdef0123456789abcdef01234567";
        for bad in [
            format!("magnet:?xt=urn:btih:{hash}&x.pe=127.0.0.1:6881"),
            format!("magnet:?xt=urn:btih:{hash}&x.pe=[::1]:6881"),
            format!("magnet:?xt=urn:btih:{hash}&x.pe=localhost:6881"),
            format!("magnet:?xt=urn:btih:{hash}&tr=http%3A%2F%2F10.0.0.5%3A8080%2Fannounce"),
            format!("magnet:?xt=urn:btih:{hash}&tr=udp%3A%2F%2F169.254.169.254%3A80"),
        ] {
            let m = Magnet::parse(&bad).expect("parses");
            let err = check(&m).await.expect_err(&bad).to_string();
            assert!(err.contains("torrent.allow_internal_peers"), "{err}");
        }
        let ok = Magnet::parse(&format!("magnet:?xt=urn:btih:{hash}&x.pe=1.2.3.4:6881"))
            .expect("parses");
        check(&ok).await.expect("public peer");
    }
}
