//! `-L` local forwarding: a `direct-tcpip` channel opened on the target toward a destination
//! the connection allows (`ssh.forward_to`), its bytes relayed untouched and counted.

use crate::session::Shared;
use russh::{client, server, Channel};
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use sluice_core::{ChannelStart, SessionEvent};
use sluice_tunnel::agent::AllowList;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

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

/// Relays a forwarded connection until both ends closed; records its start and its byte
/// counts.
pub(crate) async fn run(
    shared: Arc<Shared>,
    client: Channel<server::Msg>,
    target: Channel<client::Msg>,
    destination: String,
) {
    let _relaying = shared.channel_started();
    let number = u32::from(client.id());
    shared
        .record(&SessionEvent::Channel(Box::new(ChannelStart {
            channel: number,
            purpose: "forward".into(),
            detail: Some(destination),
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
