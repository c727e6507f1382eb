//! CancelRequest routing. Clients get a gateway-issued (pid, secret) in BackendKeyData; a
//! CancelRequest carrying it is forwarded to the target with the target's real key.

use crate::codec::encode;
use bytes::BytesMut;
use ring::rand::{SecureRandom, SystemRandom};
use sluice_pipeline::{Pipeline, Route};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

/// How long to wait for the target to acknowledge a cancel by closing.
const CANCEL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Where a cancel for one session goes.
#[derive(Clone, Debug)]
struct CancelTarget {
    route: Route,
    pid: i32,
    secret: i32,
    /// Wakes the session's relay when it holds a statement for review (a cancel withdraws it).
    withdraw: Arc<Notify>,
}

/// Gateway key → target key, for every live session. Cheap to clone.
#[derive(Clone, Default)]
pub struct CancelMap {
    inner: Arc<Mutex<HashMap<(i32, i32), CancelTarget>>>,
}

/// A registered session key; unregisters on drop.
pub struct CancelKey {
    map: CancelMap,
    /// Process id the client sees.
    pub pid: i32,
    /// Secret the client sees.
    pub secret: i32,
    /// Notified when the client cancels (a statement held for review is withdrawn).
    pub withdraw: Arc<Notify>,
}

impl Drop for CancelKey {
    fn drop(&mut self) {
        if let Ok(mut m) = self.map.inner.lock() {
            m.remove(&(self.pid, self.secret));
        }
    }
}

fn random_i32(rng: &SystemRandom) -> i32 {
    let mut b = [0u8; 4];
    // An OS without randomness yields a zero key; cancels still route, only less secret.
    let _ = rng.fill(&mut b);
    i32::from_be_bytes(b)
}

impl CancelMap {
    /// Registers a session whose target is at `route` with key (`pid`, `secret`).
    pub fn register(&self, route: Route, pid: i32, secret: i32) -> CancelKey {
        let rng = SystemRandom::new();
        let withdraw = Arc::new(Notify::new());
        let target = CancelTarget {
            route,
            pid,
            secret,
            withdraw: withdraw.clone(),
        };
        let mut guard = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        loop {
            let key = (random_i32(&rng) & 0x7fff_ffff, random_i32(&rng));
            if let std::collections::hash_map::Entry::Vacant(e) = guard.entry(key) {
                e.insert(target);
                return CancelKey {
                    map: self.clone(),
                    pid: key.0,
                    secret: key.1,
                    withdraw,
                };
            }
        }
    }

    /// Forwards a cancel for the gateway key (`pid`, `secret`). False when the key is unknown.
    pub async fn forward(
        &self,
        pipeline: &Pipeline,
        pid: i32,
        secret: i32,
    ) -> std::io::Result<bool> {
        let target = match self.inner.lock() {
            Ok(m) => m.get(&(pid, secret)).cloned(),
            Err(p) => p.into_inner().get(&(pid, secret)).cloned(),
        };
        let Some(t) = target else {
            return Ok(false);
        };
        // Only a relay waiting on a review listens; otherwise this is a no-op.
        t.withdraw.notify_waiters();
        send(pipeline, &t.route, t.pid, t.secret).await?;
        Ok(true)
    }
}

/// Sends a CancelRequest for backend (`pid`, `secret`) to the target at `route`.
pub async fn send(
    pipeline: &Pipeline,
    route: &Route,
    pid: i32,
    secret: i32,
) -> std::io::Result<()> {
    let mut stream = pipeline.dial(route).await.map_err(std::io::Error::other)?;
    let mut buf = BytesMut::with_capacity(16);
    encode::cancel_request(&mut buf, pid, secret);
    stream.write_all(&buf).await?;
    // The server closes once it has acted on the request; wait for that, as libpq does.
    let mut byte = [0u8; 1];
    let _ = tokio::time::timeout(CANCEL_WAIT, stream.read(&mut byte)).await;
    Ok(())
}
