//! Live sessions: what containment acts on. Each adapter registers its sessions here and
//! watches the stop signal; `kill` and `block` send it.

use sluice_core::EndReason;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Why a live session is being stopped from outside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stop {
    /// Recorded end reason.
    pub reason: EndReason,
    /// Told to the client.
    pub message: String,
}

struct Entry {
    identity: String,
    connection: String,
    stop: watch::Sender<Option<Stop>>,
}

/// The gateway's live sessions, by session id.
#[derive(Clone, Default)]
pub struct LiveSessions {
    map: Arc<Mutex<HashMap<String, Entry>>>,
}

/// A registered session; unregisters on drop.
pub struct Registration {
    id: String,
    map: Arc<Mutex<HashMap<String, Entry>>>,
    /// Turns `Some` when the session must end.
    pub stop: watch::Receiver<Option<Stop>>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut m) = self.map.lock() {
            m.remove(&self.id);
        }
    }
}

impl LiveSessions {
    /// Registers session `id` of `identity` on `connection`.
    pub fn register(&self, id: &str, identity: &str, connection: &str) -> Registration {
        let (tx, rx) = watch::channel(None);
        if let Ok(mut m) = self.map.lock() {
            m.insert(
                id.to_string(),
                Entry {
                    identity: identity.to_string(),
                    connection: connection.to_string(),
                    stop: tx,
                },
            );
        }
        Registration {
            id: id.to_string(),
            map: self.map.clone(),
            stop: rx,
        }
    }

    /// Stops session `id`; `false` when it is not live here.
    pub fn stop(&self, id: &str, stop: Stop) -> bool {
        let Ok(m) = self.map.lock() else { return false };
        match m.get(id) {
            Some(e) => e.stop.send(Some(stop)).is_ok(),
            None => false,
        }
    }

    /// Stops every live session matching `pred(identity, connection)`; returns their ids.
    pub fn stop_where(&self, pred: impl Fn(&str, &str) -> bool, stop: Stop) -> Vec<String> {
        let Ok(m) = self.map.lock() else {
            return Vec::new();
        };
        m.iter()
            .filter(|(_, e)| pred(&e.identity, &e.connection))
            .filter(|(_, e)| e.stop.send(Some(stop.clone())).is_ok())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Whether session `id` is live here.
    pub fn is_live(&self, id: &str) -> bool {
        self.map.lock().is_ok_and(|m| m.contains_key(id))
    }
}
