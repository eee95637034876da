//! The TURN servers the gateway hands to viewers and a streamer uses for itself: our own TURN
//! service first, with a credential made per user from the shared secret
//! ([`magnet_core::turn`]), then Cloudflare's (what the original used), whose credentials its
//! API mints from a TURN key. Cloudflare's are fetched once per half of their lifetime, by one
//! caller while the others wait; when its API fails, the last credentials still valid are
//! kept and it is asked again after [`RETRY_AFTER`]: an outage costs its servers, never the
//! answer.

use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;
use url::Url;

use crate::config::{CloudflareTurnSettings, IceServerSettings, TurnSettings};

/// How long one call to Cloudflare's API may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// After a failed call, how long before the API is asked again.
pub const RETRY_AFTER: Duration = Duration::from_secs(30);
/// Bounds on the API's answer: its size, its servers and each server's URLs and fields.
const MAX_ANSWER: usize = 64 * 1024;
const MAX_SERVERS: usize = 8;
const MAX_URLS: usize = 16;
const MAX_FIELD: usize = 512;

/// Why Cloudflare's credentials could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CloudflareError {
    #[error("request failed: {0}")]
    Request(#[from] reqwest::Error),
    #[error("answered {0}")]
    Status(reqwest::StatusCode),
    #[error("answer over {MAX_ANSWER} bytes")]
    TooLarge,
    #[error("unreadable answer: {0}")]
    Invalid(String),
}

/// What to hand out: the servers, and how long their credentials last (`None`: none has one).
#[derive(Debug, Clone, Default)]
pub struct IceOffer {
    pub servers: Vec<IceServerSettings>,
    pub ttl_secs: Option<u64>,
}

/// The configured TURN sources.
pub struct TurnServers {
    settings: TurnSettings,
    cloudflare: Option<Cloudflare>,
}

impl TurnServers {
    /// Fails when Cloudflare's API URL is not one to call (see [`api_url`]) or its HTTP client
    /// cannot be built.
    pub fn new(settings: &TurnSettings) -> crate::Result<Self> {
        let cloudflare = match &settings.cloudflare {
            Some(cf) => Some(
                Cloudflare::new(cf, settings.ttl_secs)
                    .map_err(|e| crate::Error::Config(format!("turn.cloudflare: {e}")))?,
            ),
            None => None,
        };
        Ok(Self {
            settings: settings.clone(),
            cloudflare,
        })
    }

    /// Ours (a credential for `user`), then Cloudflare's; the TTL is the shorter of theirs.
    pub async fn for_user(&self, user: &str) -> IceOffer {
        let mut offer = IceOffer::default();
        if let Some(own) = self.settings.server_for(user) {
            offer.servers.push(own);
            offer.ttl_secs = Some(self.settings.ttl_secs);
        }
        if let Some(cf) = &self.cloudflare {
            let (servers, left) = cf.current().await;
            if !servers.is_empty() {
                offer.servers.extend(servers);
                let left = left.as_secs();
                offer.ttl_secs = Some(offer.ttl_secs.map_or(left, |t| t.min(left)));
            }
        }
        offer
    }
}

/// The base URL of Cloudflare's API as configured: https, or http to a loopback host (a
/// stand-in in tests).
pub fn api_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| format!("{s:?}: {e}"))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match url.scheme() {
        "https" if url.host().is_some() => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(format!("{s:?} must be an https URL")),
    }
}

struct Cloudflare {
    http: reqwest::Client,
    endpoint: Url,
    token: String,
    ttl: Duration,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    servers: Vec<IceServerSettings>,
    /// When the credentials held were minted: new ones are fetched after half the TTL, and
    /// these expire after all of it.
    fetched: Option<Instant>,
    /// After a failure: not before then.
    retry: Option<Instant>,
}

impl Cloudflare {
    fn new(settings: &CloudflareTurnSettings, ttl_secs: u64) -> Result<Self, CloudflareError> {
        let mut endpoint = api_url(&settings.api_url).map_err(CloudflareError::Invalid)?;
        endpoint
            .path_segments_mut()
            .map_err(|()| CloudflareError::Invalid("the API URL cannot have a path".into()))?
            .pop_if_empty()
            .extend([
                "turn",
                "keys",
                &settings.key_id,
                "credentials",
                "generate-ice-servers",
            ]);
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            endpoint,
            token: settings.api_token.clone().unwrap_or_default(),
            ttl: Duration::from_secs(ttl_secs.max(1)),
            cache: Mutex::new(Cache::default()),
        })
    }

    /// The servers whose credentials are still valid, and how long they stay so.
    async fn current(&self) -> (Vec<IceServerSettings>, Duration) {
        let mut cache = self.cache.lock().await;
        let now = Instant::now();
        let due = cache.fetched.is_none_or(|t| now >= t + self.ttl / 2)
            && cache.retry.is_none_or(|t| now >= t);
        if due {
            match self.fetch().await {
                Ok(servers) => {
                    *cache = Cache {
                        servers,
                        fetched: Some(Instant::now()),
                        retry: None,
                    };
                }
                Err(e) => {
                    tracing::warn!(error = %e, endpoint = %self.endpoint, "Cloudflare TURN credentials: none new; asking again in {} s", RETRY_AFTER.as_secs());
                    cache.retry = Some(Instant::now() + RETRY_AFTER);
                }
            }
        }
        let now = Instant::now();
        match cache.fetched.map(|t| t + self.ttl) {
            Some(expires) if expires > now => (cache.servers.clone(), expires - now),
            _ => (Vec::new(), Duration::ZERO),
        }
    }

    async fn fetch(&self) -> Result<Vec<IceServerSettings>, CloudflareError> {
        let mut r = self
            .http
            .post(self.endpoint.clone())
            .bearer_auth(&self.token)
            .json(&serde_json::json!({ "ttl": self.ttl.as_secs() }))
            .send()
            .await?;
        if !r.status().is_success() {
            return Err(CloudflareError::Status(r.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = r.chunk().await? {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(CloudflareError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        parse_answer(&body)
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            Self::One(t) => vec![t],
            Self::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
struct Answer {
    #[serde(rename = "iceServers")]
    ice_servers: OneOrMany<Server>,
}

#[derive(Deserialize)]
struct Server {
    urls: OneOrMany<String>,
    #[serde(default)]
    username: String,
    #[serde(default)]
    credential: String,
}

/// The API's answer: `{"iceServers": [{urls, username?, credential?}…]}` (or one server, as
/// its older `credentials/generate` answers), within bounds; only STUN and TURN URLs.
fn parse_answer(body: &[u8]) -> Result<Vec<IceServerSettings>, CloudflareError> {
    let answer: Answer =
        serde_json::from_slice(body).map_err(|e| CloudflareError::Invalid(e.to_string()))?;
    let servers = answer.ice_servers.into_vec();
    if servers.is_empty() || servers.len() > MAX_SERVERS {
        return Err(CloudflareError::Invalid(format!(
            "{} servers (1 to {MAX_SERVERS} expected)",
            servers.len()
        )));
    }
    servers
        .into_iter()
        .map(|s| {
            let urls = s.urls.into_vec();
            let bad_url = urls.iter().find(|u| {
                u.len() > MAX_FIELD
                    || !["stun:", "turn:", "turns:"]
                        .iter()
                        .any(|scheme| u.starts_with(scheme))
            });
            if let Some(u) = bad_url {
                return Err(CloudflareError::Invalid(format!(
                    "not a STUN or TURN URL: {u:.80}"
                )));
            }
            if urls.is_empty() || urls.len() > MAX_URLS {
                return Err(CloudflareError::Invalid(format!(
                    "a server with {} URLs",
                    urls.len()
                )));
            }
            if s.username.len() > MAX_FIELD || s.credential.len() > MAX_FIELD {
                return Err(CloudflareError::Invalid(
                    "a credential over 512 bytes".into(),
                ));
            }
            Ok(IceServerSettings {
                urls,
                username: s.username,
                credential: s.credential,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_answers_of_the_api() {
        let newer = br#"{"iceServers":[{"urls":["stun:stun.cloudflare.com:3478"]},
            {"urls":["turn:turn.cloudflare.com:3478?transport=udp"],"username":"u","credential":"c"}]}"#;
        let servers = parse_answer(newer).expect("newer answer");
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[1].username, "u");
        let older = br#"{"iceServers":{"urls":["turn:turn.cloudflare.com:3478"],"username":"u","credential":"c"}}"#;
        assert_eq!(
            parse_answer(older).expect("older answer")[0].credential,
            "c"
        );
    }

    #[test]
    fn refuses_answers_out_of_bounds() {
        for bad in [
            &br#"{"iceServers":[]}"#[..],
            br#"{"iceServers":[{"urls":["http://evil"]}]}"#,
            br#"{"iceServers":[{"urls":[]}]}"#,
            br#"{"errors":[{"code":10000}]}"#,
            b"not json",
        ] {
            assert!(
                parse_answer(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let many = format!(
            r#"{{"iceServers":[{}]}}"#,
            [r#"{"urls":"stun:a"}"#; MAX_SERVERS + 1].join(",")
        );
        assert!(parse_answer(many.as_bytes()).is_err());
    }

    #[test]
    fn api_urls_are_https_or_loopback() {
        assert!(api_url(CloudflareTurnSettings::API_URL).is_ok());
        assert!(api_url("http://127.0.0.1:8080/v1").is_ok());
        assert!(api_url("http://example.org/v1").is_err());
        assert!(api_url("ftp://127.0.0.1/").is_err());
        assert!(api_url("nonsense").is_err());
    }

    #[test]
    fn the_endpoint_names_the_key() {
        let cf = Cloudflare::new(
            &CloudflareTurnSettings {
                key_id: "abc123".into(),
                api_token: Some("t".into()),
                api_token_file: None,
                api_url: "https://rtc.live.cloudflare.com/v1/".into(),
            },
            60,
        )
        .expect("client");
        assert_eq!(
            cf.endpoint.as_str(),
            "https://rtc.live.cloudflare.com/v1/turn/keys/abc123/credentials/generate-ice-servers"
        );
    }
}
