//! Bodies on their way through: streamed, never held whole (except small JSON answers that
//! must be masked field by field), a capped copy kept for the recording, text answers masked
//! as they stream, and the exchange recorded when the answer ends, however it ends.

use crate::json;
use crate::session::HttpSession;
use bytes::Bytes;
use http_body_util::combinators::{BoxBody, UnsyncBoxBody};
use hyper::body::{Body, Frame, SizeHint};
use serde_json::Value;
use sluice_core::{HttpExchange, SessionEvent};
use sluice_mask::{MaskCounts, Masker};
use sluice_pipeline::output::StreamMasker;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

/// Errors of bodies the gateway relays.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A request body toward a service.
pub type ReqBody = BoxBody<Bytes, BoxError>;
/// A response body toward a client.
pub type RespBody = UnsyncBoxBody<Bytes, BoxError>;

/// The capped copy of a body.
#[derive(Default)]
pub struct Captured {
    /// The first bytes, up to the cap.
    pub bytes: Vec<u8>,
    /// All bytes seen.
    pub total: u64,
    /// More than the cap was seen.
    pub truncated: bool,
}

impl Captured {
    fn push(&mut self, data: &[u8], cap: usize) {
        self.total += data.len() as u64;
        let room = cap.saturating_sub(self.bytes.len());
        self.bytes.extend_from_slice(&data[..room.min(data.len())]);
        self.truncated |= data.len() > room;
    }
}

/// A shared capped copy.
pub type Capture = Arc<Mutex<Captured>>;

/// A body passed on unchanged while its first `cap` bytes are copied.
pub struct Tee<B> {
    inner: B,
    capture: Capture,
    cap: usize,
}

impl<B> Tee<B> {
    /// Tees `inner` into `capture`.
    pub fn new(inner: B, capture: Capture, cap: usize) -> Tee<B> {
        Tee {
            inner,
            capture,
            cap,
        }
    }
}

impl<B> Body for Tee<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Ok(mut c)) = (frame.data_ref(), this.capture.lock()) {
                    c.push(data, this.cap);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An exchange being relayed; recorded once, when dropped (the answer ended, failed, or the
/// client went away).
pub struct Exchange {
    /// The session.
    pub session: Arc<HttpSession>,
    /// What is known so far.
    pub record: HttpExchange,
    /// The request body's copy.
    pub request: Capture,
    /// The request's content type.
    pub request_type: Option<String>,
    /// The response body's copy.
    pub response: Capture,
    /// The response's content type.
    pub response_type: Option<String>,
    /// Masks the recorded bodies.
    pub masker: Option<Arc<Masker>>,
    /// When the request was forwarded.
    pub started: Instant,
    /// The answer reached its end.
    pub complete: bool,
    /// Removes what must never be recorded from a JSON body before it is masked (Secret
    /// data); a body it cannot read is then not recorded at all.
    pub redact: Option<fn(&mut Value)>,
}

impl Drop for Exchange {
    fn drop(&mut self) {
        let mut counts = MaskCounts::default();
        let masker = self.masker.as_deref();
        // A WebSocket's byte counts are the relay's, set before.
        if let Some(c) = self.request.lock().ok().filter(|_| !self.record.websocket) {
            self.record.request_bytes = c.total;
            self.record.truncated |= c.truncated;
            self.record.request_body = render(
                &c,
                self.request_type.as_deref(),
                masker,
                self.redact,
                &mut counts,
            );
        }
        if let Some(c) = self.response.lock().ok().filter(|_| !self.record.websocket) {
            self.record.response_bytes = c.total;
            self.record.truncated |= c.truncated;
            self.record.response_body = render(
                &c,
                self.response_type.as_deref(),
                masker,
                self.redact,
                &mut counts,
            );
        }
        if !self.complete && self.record.error.is_none() && !self.record.websocket {
            self.record.error = Some("the answer was not relayed to its end".into());
        }
        self.record.duration_us =
            i64::try_from(self.started.elapsed().as_micros()).unwrap_or(i64::MAX);
        let record = std::mem::take(&mut self.record);
        self.session.record(&SessionEvent::Http(Box::new(record)));
        if let Some(m) = masker {
            self.session.add_masked(counts.by_name(m.custom_names()));
        }
    }
}

/// The recorded form of a captured body: JSON masked field by field, other text masked by
/// the detectors, anything else described.
fn render(
    c: &Captured,
    content_type: Option<&str>,
    masker: Option<&Masker>,
    redact: Option<fn(&mut Value)>,
    counts: &mut MaskCounts,
) -> Option<String> {
    if c.bytes.is_empty() {
        return None;
    }
    if let Some(redact) = redact {
        let doc = serde_json::from_slice::<Value>(&c.bytes)
            .ok()
            .filter(|_| !c.truncated);
        let Some(mut doc) = doc else {
            return Some(format!(
                "[{} bytes, not recorded: they may hold secrets]",
                c.total
            ));
        };
        redact(&mut doc);
        if let Some(m) = masker {
            json::mask(&mut doc, m, counts);
        }
        return serde_json::to_string(&doc).ok();
    }
    // Field by field only when something masks: otherwise the text is kept as it came.
    if let (Some(m), true, false) = (masker, is_json(content_type), c.truncated) {
        if let Ok(mut doc) = serde_json::from_slice::<Value>(&c.bytes) {
            json::mask(&mut doc, m, counts);
            return serde_json::to_string(&doc).ok();
        }
    }
    match std::str::from_utf8(&c.bytes) {
        Ok(text) => Some(match masker.and_then(|m| m.mask_str(text, counts)) {
            Some(masked) => masked,
            None => text.to_string(),
        }),
        // A cut inside a character, at the cap: keep the text before it.
        Err(e) if c.truncated && e.error_len().is_none() => {
            let text = String::from_utf8_lossy(&c.bytes[..e.valid_up_to()]).into_owned();
            Some(match masker.and_then(|m| m.mask_str(&text, counts)) {
                Some(masked) => masked,
                None => text,
            })
        }
        Err(_) => Some(format!(
            "[{} bytes of {}]",
            c.total,
            content_type.unwrap_or("binary data")
        )),
    }
}

/// Whether a content type is JSON (`application/json`, `application/problem+json`, …).
pub fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|t| {
        let t = t.split(';').next().unwrap_or("").trim();
        t.eq_ignore_ascii_case("application/json") || t.ends_with("+json")
    })
}

/// Whether a content type is text the detectors can read as it streams.
pub fn is_text(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|t| {
        let t = t
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        t.starts_with("text/")
            || is_json(Some(&t))
            || t.ends_with("+xml")
            || matches!(
                t.as_str(),
                "application/xml" | "application/javascript" | "application/x-ndjson"
            )
    })
}

/// A JSON answer masked field by field, whole.
pub fn mask_json_body(bytes: &[u8], masker: &Masker, counts: &mut MaskCounts) -> Option<Vec<u8>> {
    let mut doc: Value = serde_json::from_slice(bytes).ok()?;
    json::mask(&mut doc, masker, counts);
    serde_json::to_vec(&doc).ok()
}

/// The answer toward the client: masked as it streams (text answers under a masker that
/// masks clients), copied for the recording, and ended early when the session is stopped.
pub struct ResponseBody<B> {
    inner: B,
    masker: Option<StreamMasker>,
    capture: Capture,
    cap: usize,
    exchange: Option<Exchange>,
    /// Completes when containment stops the session (an idle stream ends too).
    stopped: Option<Pin<Box<dyn Future<Output = Option<sluice_pipeline::Stop>> + Send>>>,
    done: bool,
}

impl<B> ResponseBody<B> {
    /// Relays `inner` for `exchange`, masking with `masker` when given.
    pub fn new(inner: B, masker: Option<Arc<Masker>>, exchange: Exchange, cap: usize) -> Self {
        ResponseBody {
            inner,
            masker: masker.map(StreamMasker::new),
            capture: exchange.response.clone(),
            cap,
            stopped: Some({
                let mut rx = exchange.session.stop_signal();
                Box::pin(async move {
                    rx.wait_for(Option::is_some)
                        .await
                        .ok()
                        .and_then(|s| s.clone())
                })
            }),
            exchange: Some(exchange),
            done: false,
        }
    }

    fn keep(&self, data: &[u8]) {
        if let Ok(mut c) = self.capture.lock() {
            c.push(data, self.cap);
        }
    }

    /// Records the exchange now.
    fn finish(&mut self, complete: bool) {
        if let Some(mut e) = self.exchange.take() {
            e.complete = complete;
            if let (Some(m), Some(mk)) = (&self.masker, &e.masker) {
                e.session.add_masked(m.counts.by_name(mk.custom_names()));
            }
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(fut) = this.stopped.as_mut() {
            if let Poll::Ready(stop) = fut.as_mut().poll(cx) {
                this.stopped = None;
                if let Some(stop) = stop {
                    this.done = true;
                    this.finish(false);
                    return Poll::Ready(Some(Err(stop.message.into())));
                }
            }
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => {
                    let out = match &mut this.masker {
                        Some(m) => Bytes::from(m.push(&data)),
                        None => data,
                    };
                    this.keep(&out);
                    Poll::Ready(Some(Ok(Frame::data(out))))
                }
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                let e: BoxError = e.into();
                if let Some(x) = this.exchange.as_mut() {
                    x.record.error = Some(format!("the service's answer broke off: {e}"));
                }
                this.finish(false);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.done = true;
                let rest = this.masker.as_mut().map(StreamMasker::flush);
                if let Some(rest) = rest.filter(|r| !r.is_empty()) {
                    this.keep(&rest);
                    this.finish(true);
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(rest)))));
                }
                this.finish(true);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

impl<B> Drop for ResponseBody<B> {
    fn drop(&mut self) {
        self.finish(false);
    }
}
