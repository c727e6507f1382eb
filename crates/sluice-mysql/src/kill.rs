//! `KILL` across the gateway. A client learns its connection id from the gateway's greeting
//! (the target's own id is not known yet then), and `mariadb`'s Ctrl-C, `KILL QUERY n` and
//! COM_PROCESS_KILL use that id. The gateway hands out ids from 2^30 up (far from a server's
//! own), maps each live session's id to its target thread, and rewrites a `KILL` of a gateway
//! id into a `KILL` of the target's thread, when both sessions use the same target and belong
//! to the same identity. Other ids pass through untouched: the target judges them.
//!
//! A `KILL` also withdraws a statement the session holds for review (the target has nothing
//! running then): that is what Ctrl-C in `mariadb` does to a held statement.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// First id the gateway hands out.
const FIRST_ID: u32 = 1 << 30;

/// A live session, as `KILL` finds it.
#[derive(Debug, Clone)]
struct Entry {
    target: String,
    thread: u32,
    identity: String,
    withdraw: Arc<Notify>,
}

/// Gateway connection ids of live sessions.
#[derive(Debug)]
pub struct KillMap {
    next: AtomicU32,
    live: Mutex<HashMap<u32, Entry>>,
}

impl Default for KillMap {
    fn default() -> Self {
        KillMap {
            next: AtomicU32::new(FIRST_ID),
            live: Mutex::new(HashMap::new()),
        }
    }
}

/// Why a `KILL` of a gateway id is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum KillRefused {
    /// The session belongs to another identity.
    NotYours,
    /// The session runs on another target.
    OtherTarget,
}

impl KillMap {
    /// A fresh id for a greeting.
    pub fn next_id(&self) -> u32 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Records that gateway id `id` is `thread` on `target`, for `identity`, and that a
    /// `KILL` of it notifies `withdraw`; the entry goes when the returned guard drops.
    pub fn register(
        self: &Arc<Self>,
        id: u32,
        target: String,
        thread: u32,
        identity: &str,
        withdraw: Arc<Notify>,
    ) -> Registered {
        if let Ok(mut m) = self.live.lock() {
            m.insert(
                id,
                Entry {
                    target,
                    thread,
                    identity: identity.to_string(),
                    withdraw,
                },
            );
        }
        Registered {
            map: self.clone(),
            id,
        }
    }

    /// The target thread to kill for a `KILL id` sent by `identity` on `target`: `Ok(None)`
    /// when `id` is not a gateway id (the statement goes through unchanged).
    pub fn resolve(
        &self,
        id: u64,
        identity: &str,
        target: &str,
    ) -> Result<Option<u32>, KillRefused> {
        let Ok(id) = u32::try_from(id) else {
            return Ok(None);
        };
        let Some(e) = self.live.lock().ok().and_then(|m| m.get(&id).cloned()) else {
            return Ok(None);
        };
        if e.identity != identity {
            return Err(KillRefused::NotYours);
        }
        if e.target != target {
            return Err(KillRefused::OtherTarget);
        }
        Ok(Some(e.thread))
    }

    /// Withdraws what session `id` holds for review, if anything (after [`KillMap::resolve`]
    /// allowed the `KILL`).
    pub fn interrupt(&self, id: u64) {
        let Ok(id) = u32::try_from(id) else { return };
        if let Some(w) = self
            .live
            .lock()
            .ok()
            .and_then(|m| m.get(&id).map(|e| e.withdraw.clone()))
        {
            w.notify_waiters();
        }
    }
}

/// Removes a session's id from the map when dropped.
pub struct Registered {
    map: Arc<KillMap>,
    id: u32,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut m) = self.map.live.lock() {
            m.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_owner_on_the_same_target_is_rewritten() {
        let map = Arc::new(KillMap::default());
        let id = map.next_id();
        let t = "127.0.0.1:3306";
        let other = "127.0.0.1:3307";
        let withdraw = Arc::new(Notify::new());
        let reg = map.register(id, t.to_string(), 42, "alice", withdraw.clone());
        assert_eq!(map.resolve(u64::from(id), "alice", t), Ok(Some(42)));
        assert_eq!(
            map.resolve(u64::from(id), "bob", t),
            Err(KillRefused::NotYours)
        );
        assert_eq!(
            map.resolve(u64::from(id), "alice", other),
            Err(KillRefused::OtherTarget)
        );
        assert_eq!(map.resolve(7, "alice", t), Ok(None));
        let woken = withdraw.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        map.interrupt(u64::from(id));
        assert!(
            futures_ready(woken.as_mut()),
            "a KILL withdraws a held statement"
        );
        drop(reg);
        assert_eq!(map.resolve(u64::from(id), "alice", t), Ok(None));
    }

    /// Whether a future is ready on its first poll.
    fn futures_ready<F: std::future::Future>(f: std::pin::Pin<&mut F>) -> bool {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        f.poll(&mut cx).is_ready()
    }
}
