//! Live sessions: what containment acts on. Each adapter registers its sessions here and
//! watches the stop signal; `kill` and `block` send it.
//!
//! Blocks are also kept here, under the same lock as the sessions: a session that passed
//! authentication just before its identity was blocked, and registers just after, is stopped
//! as it registers.

use sluice_core::EndReason;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
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

/// What a live session has recorded so far.
#[derive(Debug, Default)]
pub struct Activity {
    started_us: i64,
    events: AtomicU64,
    bytes: AtomicU64,
}

impl Activity {
    /// A session that started at `started_us`.
    pub fn new(started_us: i64) -> Activity {
        Activity {
            started_us,
            ..Activity::default()
        }
    }

    /// One more event of `bytes` recorded.
    pub fn add(&self, bytes: usize) {
        self.events.fetch_add(1, Ordering::Relaxed);
        self.bytes
            .fetch_add(u64::try_from(bytes).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

/// A live session, as listed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct LiveSession {
    /// Session id.
    pub id: String,
    /// Identity name.
    pub identity: String,
    /// Connection name.
    pub connection: String,
    /// Protocol (`postgres`, `ssh`, …), when known.
    pub protocol: String,
    /// Start, µs since the epoch.
    pub started_us: i64,
    /// Events recorded so far.
    pub events: u64,
    /// Bytes recorded so far (statements, results, terminal and transfer data, as stored).
    pub recorded_bytes: u64,
}

struct Entry {
    identity: String,
    connection: String,
    protocol: &'static str,
    activity: Option<Arc<Activity>>,
    stop: watch::Sender<Option<Stop>>,
    /// The session's events as they are recorded, for watchers.
    events: Option<tokio::sync::broadcast::Sender<Arc<crate::recorder::LiveEvent>>>,
}

#[derive(Default)]
struct State {
    sessions: HashMap<String, Entry>,
    /// Identities blocked while this gateway runs (earlier blocks refuse at login).
    blocked: HashSet<String>,
}

/// The gateway's live sessions, by session id.
#[derive(Clone, Default)]
pub struct LiveSessions {
    map: Arc<Mutex<State>>,
}

/// The stop a blocked identity's sessions get.
fn blocked_stop() -> Stop {
    Stop {
        reason: EndReason::IdentityBlocked,
        message: "terminating connection: this identity was blocked by an administrator".into(),
    }
}

/// A registered session; unregisters on drop.
pub struct Registration {
    id: String,
    map: Arc<Mutex<State>>,
    /// Turns `Some` when the session must end.
    pub stop: watch::Receiver<Option<Stop>>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut m) = self.map.lock() {
            m.sessions.remove(&self.id);
        }
    }
}

impl crate::Pipeline {
    /// Registers the session `recorder` records as live (kill, block, access expiry).
    pub fn register_live(&self, recorder: &crate::Recorder) -> Registration {
        let authorized = recorder.authorized();
        let registration = self.live().register(
            &recorder.id().0,
            &authorized.identity.name,
            &authorized.connection.name.0,
        );
        if let Ok(mut m) = self.live().map.lock() {
            if let Some(e) = m.sessions.get_mut(&recorder.id().0) {
                e.events = Some(recorder.live_events());
                e.activity = Some(recorder.activity());
                e.protocol = authorized.connection.protocol.as_str();
            }
        }
        registration
    }
}

impl LiveSessions {
    /// How many sessions are live.
    pub fn count(&self) -> usize {
        match self.map.lock() {
            Ok(m) => m.sessions.len(),
            Err(p) => p.into_inner().sessions.len(),
        }
    }

    /// The live sessions, oldest first.
    pub fn list(&self) -> Vec<LiveSession> {
        let Ok(m) = self.map.lock() else {
            return Vec::new();
        };
        let mut v: Vec<LiveSession> = m
            .sessions
            .iter()
            .map(|(id, e)| {
                let a = e.activity.as_deref();
                LiveSession {
                    id: id.clone(),
                    identity: e.identity.clone(),
                    connection: e.connection.clone(),
                    protocol: e.protocol.to_string(),
                    started_us: a.map_or(0, |a| a.started_us),
                    events: a.map_or(0, |a| a.events.load(Ordering::Relaxed)),
                    recorded_bytes: a.map_or(0, |a| a.bytes.load(Ordering::Relaxed)),
                }
            })
            .collect();
        v.sort_by(|a, b| (a.started_us, &a.id).cmp(&(b.started_us, &b.id)));
        v
    }

    /// Registers session `id` of `identity` on `connection`.
    pub fn register(&self, id: &str, identity: &str, connection: &str) -> Registration {
        let (tx, rx) = watch::channel(None);
        if let Ok(mut m) = self.map.lock() {
            if m.blocked.contains(identity) {
                let _ = tx.send(Some(blocked_stop()));
            }
            m.sessions.insert(
                id.to_string(),
                Entry {
                    identity: identity.to_string(),
                    connection: connection.to_string(),
                    protocol: "",
                    activity: None,
                    stop: tx,
                    events: None,
                },
            );
        }
        Registration {
            id: id.to_string(),
            map: self.map.clone(),
            stop: rx,
        }
    }

    /// Follows live session `id`: its identity, and its events from now on (the stream ends
    /// with the session). `None` when it is not live here.
    pub fn watch(
        &self,
        id: &str,
    ) -> Option<(
        String,
        tokio::sync::broadcast::Receiver<Arc<crate::recorder::LiveEvent>>,
    )> {
        let m = self.map.lock().ok()?;
        let e = m.sessions.get(id)?;
        Some((e.identity.clone(), e.events.as_ref()?.subscribe()))
    }

    /// Stops session `id`; `false` when it is not live here.
    pub fn stop(&self, id: &str, stop: Stop) -> bool {
        let Ok(m) = self.map.lock() else { return false };
        match m.sessions.get(id) {
            Some(e) => e.stop.send(Some(stop)).is_ok(),
            None => false,
        }
    }

    /// Stops every live session matching `pred(identity, connection)`; returns their ids.
    pub fn stop_where(&self, pred: impl Fn(&str, &str) -> bool, stop: Stop) -> Vec<String> {
        let Ok(m) = self.map.lock() else {
            return Vec::new();
        };
        m.sessions
            .iter()
            .filter(|(_, e)| pred(&e.identity, &e.connection))
            .filter(|(_, e)| e.stop.send(Some(stop.clone())).is_ok())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Blocks `identity`: ends its live sessions and stops any that registers from now on;
    /// returns the ids ended.
    pub fn block(&self, identity: &str) -> Vec<String> {
        let Ok(mut m) = self.map.lock() else {
            return Vec::new();
        };
        m.blocked.insert(identity.to_string());
        m.sessions
            .iter()
            .filter(|(_, e)| e.identity == identity)
            .filter(|(_, e)| e.stop.send(Some(blocked_stop())).is_ok())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Lifts the block of `identity`.
    pub fn unblock(&self, identity: &str) {
        if let Ok(mut m) = self.map.lock() {
            m.blocked.remove(identity);
        }
    }
}

#[cfg(test)]
mod tests;
