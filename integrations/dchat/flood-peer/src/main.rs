//! A hostile dchat peer for integrations/dchat/run: it joins a relay's test-mesh topic through
//! dchat's own network stack and publishes COUNT channel messages, each naming a different
//! channel, as any peer can. The relay must keep its metrics bounded.
//!
//! usage: flood-peer RELAY_MULTIADDR COUNT

use std::time::Duration;

use dchat_core::types::UserId;
use dchat_network::{DchatMessage, NetworkConfig, NetworkEvent, NetworkManager};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let relay = args.next().ok_or("usage: flood-peer RELAY_MULTIADDR COUNT")?;
    let count: usize = args.next().ok_or("COUNT missing")?.parse()?;
    let config = NetworkConfig {
        listen_addrs: vec!["/ip4/127.0.0.1/tcp/0".parse()?],
        ..NetworkConfig::default()
    };
    let mut net = NetworkManager::new(config).await?;
    net.start().await?;
    net.subscribe_to_channel("test-mesh")?;
    net.dial(relay.parse()?)?;
    // Connected, then a few gossipsub heartbeats for the mesh to take us in.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, net.next_event()).await {
            Ok(Some(NetworkEvent::PeerConnected(_))) => break,
            Ok(_) => {}
            Err(_) => return Err("no connection to the relay within 30 s".into()),
        }
    }
    let settle = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::timeout_at(settle, net.next_event()).await.is_ok() {}
    let sender = UserId::new();
    let mut sent = 0;
    let mut attempts = 0;
    while sent < count && attempts < count * 4 {
        attempts += 1;
        let message = DchatMessage::ChannelMessage {
            sender: sender.clone(),
            channel_id: format!("flood-{sent}"),
            encrypted_payload: format!("flood {sent}").into_bytes(),
        };
        match net.publish_to_channel("test-mesh", &message) {
            Ok(()) => sent += 1,
            Err(_) => {
                // Not in the mesh yet, or the queue is full: let the swarm work, then retry.
                let _ = tokio::time::timeout(Duration::from_millis(200), net.next_event()).await;
            }
        }
        if sent % 25 == 0 {
            // Paced, so that gossipsub's per-peer send queue does not overflow and drop them.
            let pause = tokio::time::Instant::now() + Duration::from_millis(100);
            while tokio::time::timeout_at(pause, net.next_event()).await.is_ok() {}
        }
    }
    // Let the swarm send what it queued.
    let drain = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::timeout_at(drain, net.next_event()).await.is_ok() {}
    println!("published {sent} of {count}");
    Ok(())
}
