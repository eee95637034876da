//! Building a WebRTC answerer peer connection with the node's settings, and turning its
//! callbacks into a channel of events a session task can `select!` on.

use std::sync::Arc;

use magnet_runtime::config::StreamerSettings;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::peer_connection::configuration::setting_engine::SctpMaxMessageSize;
use tokio::sync::mpsc;
use webrtc::data_channel::DataChannel;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceGatheringState, RTCIceServer, RTCPeerConnectionIceEvent, RTCPeerConnectionState,
    SettingEngineBuilder,
};

/// A peer connection as [`build`] makes it, shared by a session's task and the session table
/// that closes it.
pub type Peer = Arc<dyn PeerConnection>;

/// What a peer connection tells its session.
pub enum PeerEvent {
    /// A local ICE candidate (`candidate:…`), to trickle to the browser.
    Candidate(String),
    GatheringDone,
    State(RTCPeerConnectionState),
    Channel(Arc<dyn DataChannel>),
}

struct Handler {
    tx: mpsc::UnboundedSender<PeerEvent>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self.tx.send(PeerEvent::Candidate(init.candidate));
        }
    }
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.tx.send(PeerEvent::GatheringDone);
        }
    }
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.tx.send(PeerEvent::State(state));
    }
    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        // Only hand it over: the driver waits for this callback to return.
        let _ = self.tx.send(PeerEvent::Channel(channel));
    }
}

/// The WebRTC settings both ends of our data channels use: mDNS off (it fails where only
/// loopback exists, and candidates are plain IPs anyway), 256 KiB messages (what Chromium
/// allows), and an SCTP receive window of `receive_window` bytes.
pub fn setting_engine(receive_window: u32) -> webrtc::peer_connection::SettingEngine {
    SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_sctp_max_message_size(SctpMaxMessageSize::Bounded(256 * 1024))
        .with_sctp_max_receive_buffer_size(receive_window)
        .build()
}

/// A new peer connection bound as configured (a port of `udp_ports` if set), with mDNS off,
/// 256 KiB messages and a bounded send buffer; the `turn` servers (credentials of its own)
/// before the configured ICE servers.
pub async fn build(
    settings: &StreamerSettings,
    turn: Vec<magnet_runtime::config::IceServerSettings>,
) -> Result<(Peer, mpsc::UnboundedReceiver<PeerEvent>), webrtc::error::Error> {
    let ports: Vec<u16> = match settings.udp_ports {
        Some([lo, hi]) => (lo..=hi).collect(),
        None => vec![0],
    };
    let mut last_error = None;
    for port in ports {
        let (tx, rx) = mpsc::unbounded_channel();
        let engine = setting_engine(4 * 1024 * 1024);
        let config = RTCConfigurationBuilder::new()
            .with_ice_servers(
                turn.iter()
                    .chain(settings.ice_servers.iter())
                    .map(|s| RTCIceServer {
                        urls: s.urls.clone(),
                        username: s.username.clone(),
                        credential: s.credential.clone(),
                    })
                    .collect(),
            )
            .build();
        let built = PeerConnectionBuilder::new()
            .with_configuration(config)
            .with_setting_engine(engine)
            .with_handler(Arc::new(Handler { tx }))
            .with_runtime(crate::runtime::buffered(crate::runtime::SOCKET_BUFFER))
            .with_udp_addrs(vec![format!("{}:{port}", settings.udp_host)])
            .with_data_channel_send_buffer_limit(settings.send_buffer_kib.max(64) * 1024)
            .build()
            .await;
        match built {
            Ok(pc) => return Ok((Arc::new(pc), rx)),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| webrtc::error::Error::Other("no UDP port available".into())))
}

/// Replaces the bound IP of host candidates with the configured public one (NAT 1:1), in a
/// candidate line or a whole SDP.
pub fn advertise(text: &str, bound: &str, public: Option<&str>) -> String {
    match public {
        Some(ip) if !bound.is_empty() => text.replace(&format!(" {bound} "), &format!(" {ip} ")),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn public_ip_replaces_the_bound_one_in_candidates() {
        let c = "candidate:1 1 udp 2130706431 10.0.0.5 50000 typ host";
        assert_eq!(
            super::advertise(c, "10.0.0.5", Some("203.0.113.7")),
            "candidate:1 1 udp 2130706431 203.0.113.7 50000 typ host"
        );
        assert_eq!(super::advertise(c, "10.0.0.5", None), c);
    }
}
