//! Forwarded byte streams, relayed untouched and counted:
//! - `-L` local forwarding: a `direct-tcpip` channel opened on the target toward a destination
//!   the connection allows (`ssh.forward_to`);
//! - `-R` remote forwarding (`ssh.remote_forwarding`): connections to a port the target
//!   listens on for the client, opened back toward the client;
//! - agent forwarding (`ssh.agent_forwarding`): the target's requests to the client's agent.

use crate::session::Shared;
use russh::{client, server, Channel, ChannelOpenFailure};
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use sluice_core::{ChannelStart, Outcome, SessionEvent};
use sluice_tunnel::agent::AllowList;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use tracing::info;

/// The connection's `forward_to` destinations, parsed once per session; an empty list (or
/// one that does not parse, which config validation prevents) allows nothing.
pub(crate) fn destinations(forward_to: &[String]) -> AllowList {
    AllowList::parse(forward_to).unwrap_or_default()
}

/// Whether `list` allows `host:port`.
pub(crate) fn allowed(list: &AllowList, host: &str, port: u16) -> bool {
    let ip = host.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    list.allows(host, ip, port)
}

/// The client side of a session, for channels the target opens toward the client.
#[derive(Clone)]
pub(crate) struct Inbound {
    pub shared: Arc<Shared>,
    pub client: server::Handle,
}

/// Opens the client's agent for an agent channel the target opened, and relays them.
pub(crate) async fn agent(
    inbound: Inbound,
    target: Channel<client::Msg>,
    reply: client::ChannelOpenHandle,
) {
    let opened = inbound.client.channel_open_agent().await;
    relay_back(opened, reply, inbound.shared, target, "agent", None).await;
}

/// Asks the target to listen on `address:port` for the client (`-R`), when the connection
/// allows it; `port` 0 becomes the port the target chose. Audited either way.
pub(crate) async fn listen_on_target(
    shared: &Shared,
    target: &client::Handle<crate::upstream::TargetHandler>,
    address: &str,
    port: &mut u32,
) -> bool {
    let wanted = format!("{address}:{port}");
    if !shared.options.remote_forwarding {
        let why =
            format!("remote forwarding ({wanted} on the target) is not allowed on this connection");
        shared.audit("ssh.remote_forward", Outcome::Failure, Some(why));
        return false;
    }
    match target.tcpip_forward(address, *port).await {
        Ok(bound) => {
            if *port == 0 {
                *port = bound;
            }
            info!(
                address,
                port = *port,
                "the target listens for the client (-R)"
            );
            let detail = format!("{address}:{port} on the target");
            shared.audit("ssh.remote_forward", Outcome::Success, Some(detail));
            true
        }
        Err(e) => {
            let why = format!("the target refused to listen on {wanted}: {e}");
            shared.audit("ssh.remote_forward", Outcome::Failure, Some(why));
            false
        }
    }
}

/// Opens on the client a connection that arrived at the port the target listens on for it
/// (`-R`), and relays them.
pub(crate) async fn remote(
    inbound: Inbound,
    target: Channel<client::Msg>,
    reply: client::ChannelOpenHandle,
    listen: (String, u32),
    from: (String, u32),
) {
    let opened = inbound
        .client
        .channel_open_forwarded_tcpip(listen.0.clone(), listen.1, from.0.clone(), from.1)
        .await;
    let detail = format!(
        "{}:{} on the target, from {}:{}",
        listen.0, listen.1, from.0, from.1
    );
    let purpose = "remote-forward";
    relay_back(opened, reply, inbound.shared, target, purpose, Some(detail)).await;
}

/// Answers the target's channel open with the client's: relays them when the client's opened,
/// refuses the target's when not.
async fn relay_back(
    opened: Result<Channel<server::Msg>, russh::Error>,
    reply: client::ChannelOpenHandle,
    shared: Arc<Shared>,
    target: Channel<client::Msg>,
    purpose: &str,
    detail: Option<String>,
) {
    match opened {
        Ok(client) => {
            reply.accept().await;
            run(shared, client, target, purpose, detail).await;
        }
        Err(_) => reply.reject(ChannelOpenFailure::ConnectFailed).await,
    }
}

/// Relays a forwarded stream until both ends closed; records its start (`purpose`: `forward`,
/// `remote-forward`, `agent`) and its byte counts.
pub(crate) async fn run(
    shared: Arc<Shared>,
    client: Channel<server::Msg>,
    target: Channel<client::Msg>,
    purpose: &str,
    detail: Option<String>,
) {
    let _relaying = shared.channel_started();
    let number = u32::from(client.id());
    shared
        .record(&SessionEvent::Channel(Box::new(ChannelStart {
            channel: number,
            purpose: purpose.into(),
            detail,
            query: None,
            pty: None,
        })))
        .await;
    let (client_r, client_w) = client.split();
    let (target_r, target_w) = target.split();
    // When one side closes, the other direction ends too (russh does not always report the
    // peer's close of a channel we closed first).
    let done = tokio::sync::watch::Sender::new(false);
    let (up, down) = tokio::join!(
        pump(client_r, &target_w, &done),
        pump(target_r, &client_w, &done)
    );
    shared
        .record(&SessionEvent::ChannelEnd {
            channel: number,
            bytes_up: up,
            bytes_down: down,
        })
        .await;
}

/// Copies one direction; returns the bytes copied.
async fn pump<S>(
    mut from: ChannelReadHalf,
    to: &ChannelWriteHalf<S>,
    done: &tokio::sync::watch::Sender<bool>,
) -> u64
where
    S: From<(russh::ChannelId, ChannelMsg)> + Send + Sync + 'static,
{
    let mut n = 0u64;
    let mut other_done = done.subscribe();
    loop {
        let msg = tokio::select! {
            m = from.wait() => m,
            () = crate::channel::wait_true(&mut other_done) => None,
        };
        let Some(msg) = msg else { break };
        match msg {
            ChannelMsg::Data { data } => {
                n += data.len() as u64;
                if to.data_bytes(data).await.is_err() {
                    break;
                }
            }
            ChannelMsg::Eof => {
                let _ = to.eof().await;
            }
            ChannelMsg::Close => break,
            _ => {}
        }
    }
    let _ = to.close().await;
    done.send_replace(true);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_is_off_unless_listed() {
        assert!(!allowed(&destinations(&[]), "127.0.0.1", 5432));
        let list = destinations(&["127.0.0.1:5432".to_string(), "db.internal:*".to_string()]);
        assert!(allowed(&list, "127.0.0.1", 5432));
        assert!(!allowed(&list, "127.0.0.1", 22));
        assert!(allowed(&list, "db.internal", 6379));
        assert!(!allowed(&list, "other", 5432));
    }
}
