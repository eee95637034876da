//! Magnet links: parsing and validation (BEP 9 `xt=urn:btih:`, BEP 52 `urn:btmh:`, `dn`, `tr`,
//! and BEP 9's `x.pe` peer hints).
//!
//! Every way a link can be wrong has its own [`MagnetError`] variant with a message a user can
//! act on; nothing here touches the network.

use std::fmt;

use data_encoding::{BASE32, HEXLOWER_PERMISSIVE};
use url::Url;

/// Longest magnet accepted: real ones are a few hundred bytes; this bounds what we store.
pub const MAX_MAGNET_LEN: usize = 8 * 1024;

/// Why a magnet link was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MagnetError {
    #[error("magnet link is empty")]
    Empty,
    #[error("magnet link is longer than {MAX_MAGNET_LEN} bytes")]
    TooLong,
    #[error("magnet link contains control characters")]
    ControlCharacters,
    #[error("not a magnet link: expected it to start with \"magnet:?\", got scheme {0:?}")]
    NotMagnet(String),
    #[error("magnet link is not a valid URI: {0}")]
    Malformed(String),
    #[error("magnet link has no \"xt\" (exact topic) parameter with a BitTorrent info hash")]
    MissingExactTopic,
    #[error("unsupported exact topic {0:?}: expected urn:btih:<hash> or urn:btmh:<multihash>")]
    UnsupportedTopic(String),
    #[error("btih info hash has {0} characters: expected 40 hex or 32 base32 characters")]
    HashLength(usize),
    #[error("btih info hash {0:?} is not valid hex")]
    BadHex(String),
    #[error("btih info hash {0:?} is not valid base32")]
    BadBase32(String),
    #[error(
        "btmh multihash {0:?} is not a SHA-256 multihash (expected 1220 followed by 64 hex characters)"
    )]
    BadMultihash(String),
    #[error("magnet link has two different btih info hashes")]
    ConflictingHashes,
    #[error("tracker {0:?} is not a valid URL")]
    BadTracker(String),
    #[error("peer hint x.pe={0:?} is not host:port")]
    BadPeer(String),
}

/// A torrent's identity: the v1 (SHA-1) info hash and/or the v2 (SHA-256) one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InfoHash {
    v1: Option<[u8; 20]>,
    v2: Option<[u8; 32]>,
}

impl InfoHash {
    /// The v1 (SHA-1) hash from `urn:btih:`; none for a v2-only link, which the downloader
    /// refuses.
    pub fn v1(&self) -> Option<&[u8; 20]> {
        self.v1.as_ref()
    }

    /// The v2 (SHA-256) hash from `urn:btmh:`; none when the link gives only a btih hash.
    pub fn v2(&self) -> Option<&[u8; 32]> {
        self.v2.as_ref()
    }

    /// The key a node stores a task under: the v1 hash as 40 lowercase hex characters, or
    /// the v2 hash as 64 for a v2-only link.
    pub fn key(&self) -> String {
        match (&self.v1, &self.v2) {
            (Some(v1), _) => data_encoding::HEXLOWER.encode(v1),
            (None, Some(v2)) => data_encoding::HEXLOWER.encode(v2),
            (None, None) => String::new(),
        }
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// A parsed, validated magnet link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Magnet {
    pub info_hash: InfoHash,
    /// `dn`: the display name, if given.
    pub display_name: Option<String>,
    /// `tr`: tracker URLs.
    pub trackers: Vec<String>,
    /// `x.pe`: peers to contact directly (`host:port`), which BitTorrent clients that rely on
    /// DHT/trackers ignore; we honour them.
    pub peers: Vec<String>,
}

impl Magnet {
    /// Parses and validates a magnet link.
    pub fn parse(input: &str) -> Result<Self, MagnetError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(MagnetError::Empty);
        }
        if input.len() > MAX_MAGNET_LEN {
            return Err(MagnetError::TooLong);
        }
        // The URL parser would quietly drop some (a trailing NUL): refuse them all instead of
        // storing and showing a link other than the one parsed.
        if input.chars().any(char::is_control) {
            return Err(MagnetError::ControlCharacters);
        }
        let url = Url::parse(input).map_err(|e| match input.split_once(':') {
            Some((scheme, _)) if !scheme.eq_ignore_ascii_case("magnet") => {
                MagnetError::NotMagnet(scheme.to_owned())
            }
            None => MagnetError::NotMagnet(String::new()),
            _ => MagnetError::Malformed(e.to_string()),
        })?;
        if url.scheme() != "magnet" {
            return Err(MagnetError::NotMagnet(url.scheme().to_owned()));
        }

        let mut v1 = None;
        let mut v2 = None;
        let mut display_name = None;
        let mut trackers = Vec::new();
        let mut peers = Vec::new();
        let mut unsupported = None;
        for (key, value) in url.query_pairs() {
            // BEP 9 allows numbered keys (xt.1, tr.2) for several values.
            let base = key
                .split_once('.')
                .filter(|(_, n)| n.bytes().all(|b| b.is_ascii_digit()))
                .map_or(&*key, |(b, _)| b);
            match base {
                "xt" => {
                    let lower = value.to_ascii_lowercase();
                    if lower.starts_with("urn:btih:") {
                        // Slice the original value so that messages keep the user's spelling.
                        let parsed = parse_btih(&value["urn:btih:".len()..])?;
                        if v1.is_some_and(|old| old != parsed) {
                            return Err(MagnetError::ConflictingHashes);
                        }
                        v1 = Some(parsed);
                    } else if let Some(mh) = lower.strip_prefix("urn:btmh:") {
                        v2 = Some(parse_btmh(mh)?);
                    } else {
                        unsupported.get_or_insert_with(|| value.into_owned());
                    }
                }
                "dn" => display_name = Some(value.into_owned()).filter(|s| !s.is_empty()),
                "tr" => {
                    let tracker = Url::parse(&value)
                        .map_err(|_| MagnetError::BadTracker(value.to_string()))?;
                    if !matches!(tracker.scheme(), "http" | "https" | "udp" | "ws" | "wss") {
                        return Err(MagnetError::BadTracker(value.into_owned()));
                    }
                    trackers.push(value.into_owned());
                }
                "x.pe" => peers.push(validate_peer(&value)?),
                _ if key == "x.pe" => peers.push(validate_peer(&value)?),
                _ => {}
            }
        }
        if v1.is_none() && v2.is_none() {
            return Err(match unsupported {
                Some(xt) => MagnetError::UnsupportedTopic(xt),
                None => MagnetError::MissingExactTopic,
            });
        }
        Ok(Self {
            info_hash: InfoHash { v1, v2 },
            display_name,
            trackers,
            peers,
        })
    }

    /// The link in canonical form (hex btih, then btmh, dn, tr, x.pe), as handed to a
    /// BitTorrent client.
    pub fn to_uri(&self) -> String {
        let mut s = String::from("magnet:?");
        let mut params: Vec<(&str, String)> = Vec::new();
        if let Some(v1) = &self.info_hash.v1 {
            params.push((
                "xt",
                format!("urn:btih:{}", data_encoding::HEXLOWER.encode(v1)),
            ));
        }
        if let Some(v2) = &self.info_hash.v2 {
            params.push((
                "xt",
                format!("urn:btmh:1220{}", data_encoding::HEXLOWER.encode(v2)),
            ));
        }
        if let Some(dn) = &self.display_name {
            params.push(("dn", dn.clone()));
        }
        params.extend(self.trackers.iter().map(|t| ("tr", t.clone())));
        params.extend(self.peers.iter().map(|p| ("x.pe", p.clone())));
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        // Keep the urn's colons readable, as every client writes them.
        s.push_str(&query.replace("%3A", ":"));
        s
    }
}

fn parse_btih(hash: &str) -> Result<[u8; 20], MagnetError> {
    let mut out = [0u8; 20];
    match hash.len() {
        40 => {
            let decoded = HEXLOWER_PERMISSIVE
                .decode(hash.as_bytes())
                .map_err(|_| MagnetError::BadHex(hash.to_owned()))?;
            out.copy_from_slice(&decoded);
        }
        32 => {
            let decoded = BASE32
                .decode(hash.to_ascii_uppercase().as_bytes())
                .map_err(|_| MagnetError::BadBase32(hash.to_owned()))?;
            out.copy_from_slice(&decoded);
        }
        n => return Err(MagnetError::HashLength(n)),
    }
    Ok(out)
}

fn parse_btmh(mh: &str) -> Result<[u8; 32], MagnetError> {
    let bad = || MagnetError::BadMultihash(mh.to_owned());
    let digest = mh
        .strip_prefix("1220")
        .filter(|d| d.len() == 64)
        .ok_or_else(bad)?;
    let decoded = HEXLOWER_PERMISSIVE
        .decode(digest.as_bytes())
        .map_err(|_| bad())?;
    let mut out = [0u8; 32];
    out.copy_from_slice(&decoded);
    Ok(out)
}

/// Checks `host:port` / `[v6]:port` with a port in 1..=65535 and a plausible host.
fn validate_peer(peer: &str) -> Result<String, MagnetError> {
    let bad = || MagnetError::BadPeer(peer.to_owned());
    if let Ok(addr) = peer.parse::<std::net::SocketAddr>() {
        return if addr.port() == 0 {
            Err(bad())
        } else {
            Ok(addr.to_string())
        };
    }
    let (host, port) = peer.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if port == 0 || !host_ok {
        return Err(bad());
    }
    Ok(format!("{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "c9e15763f722f23e98a29decdfae341b98d53056";

    #[test]
    fn parses_a_full_link() {
        let m = Magnet::parse(&format!(
            "magnet:?xt=urn:btih:{}&dn=Big+Buck%20Bunny&tr=udp%3A%2F%2Ftracker.example%3A1337&x.pe=127.0.0.1:6881&x.pe=[::1]:51413",
            HEX.to_uppercase()
        ))
        .expect("valid");
        assert_eq!(m.info_hash.key(), HEX);
        assert_eq!(m.display_name.as_deref(), Some("Big Buck Bunny"));
        assert_eq!(m.trackers, vec!["udp://tracker.example:1337"]);
        assert_eq!(m.peers, vec!["127.0.0.1:6881", "[::1]:51413"]);
    }

    #[test]
    fn base32_equals_hex() {
        let b32 = BASE32.encode(&HEXLOWER_PERMISSIVE.decode(HEX.as_bytes()).expect("hex"));
        let m =
            Magnet::parse(&format!("magnet:?xt=urn:btih:{}", b32.to_lowercase())).expect("valid");
        assert_eq!(m.info_hash.key(), HEX);
    }

    #[test]
    fn btmh_alone_is_a_v2_hash() {
        let digest = "ab".repeat(32);
        let m = Magnet::parse(&format!("magnet:?xt=urn:btmh:1220{digest}")).expect("valid");
        assert!(m.info_hash.v1().is_none());
        assert_eq!(m.info_hash.key(), digest);
    }

    #[test]
    fn canonical_uri_round_trips() {
        let m = Magnet::parse(&format!(
            "magnet:?xt=urn:btih:{HEX}&dn=a%26b&x.pe=127.0.0.1:1"
        ))
        .expect("valid");
        let uri = m.to_uri();
        assert!(
            uri.starts_with(&format!("magnet:?xt=urn:btih:{HEX}&dn=a%26b")),
            "{uri}"
        );
        assert_eq!(Magnet::parse(&uri), Ok(m));
    }

    #[test]
    fn bad_links_each_have_their_own_error() {
        let cases: &[(&str, MagnetError)] = &[
            ("", MagnetError::Empty),
            ("   ", MagnetError::Empty),
            (
                "http://example.com/file.torrent",
                MagnetError::NotMagnet("http".into()),
            ),
            (
                "c9e15763f722f23e98a29decdfae341b98d53056",
                MagnetError::NotMagnet(String::new()),
            ),
            ("magnet:?dn=no+hash", MagnetError::MissingExactTopic),
            (
                "magnet:?xt=urn:btih:c9e15763f722f23e98a29decdfae341b98d53056\u{0}",
                MagnetError::ControlCharacters,
            ),
            ("magnet:?xt=urn:btih:c9e157", MagnetError::HashLength(6)),
            (
                "magnet:?xt=urn:btih:c9e15763f722f23e98a29decdfae341b98d5305z",
                MagnetError::BadHex("c9e15763f722f23e98a29decdfae341b98d5305z".into()),
            ),
            (
                "magnet:?xt=urn:btih:1111111111111111111111111111111!",
                MagnetError::BadBase32("1111111111111111111111111111111!".into()),
            ),
            (
                "magnet:?xt=urn:sha1:abc",
                MagnetError::UnsupportedTopic("urn:sha1:abc".into()),
            ),
            (
                "magnet:?xt=urn:btmh:1220abcd",
                MagnetError::BadMultihash("1220abcd".into()),
            ),
            (
                &format!("magnet:?xt=urn:btih:{HEX}&x.pe=nope"),
                MagnetError::BadPeer("nope".into()),
            ),
            (
                &format!("magnet:?xt=urn:btih:{HEX}&x.pe=1.2.3.4:0"),
                MagnetError::BadPeer("1.2.3.4:0".into()),
            ),
            (
                &format!("magnet:?xt=urn:btih:{HEX}&tr=file:///etc/passwd"),
                MagnetError::BadTracker("file:///etc/passwd".into()),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(Magnet::parse(input).as_ref(), Err(want), "{input:?}");
        }
        let messages: std::collections::HashSet<String> = cases
            .iter()
            .map(|(_, e)| {
                e.to_string()
                    .split(':')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        assert!(messages.len() >= 10, "messages must differ: {messages:?}");
        assert_eq!(
            Magnet::parse(&"a".repeat(MAX_MAGNET_LEN + 1)),
            Err(MagnetError::TooLong)
        );
    }
}
