//! `on_event_stream_message`: a `text/event-stream` response goes to the
//! client one server-sent event at a time, each through the phase's rules
//! (`sse-find-replace`), as it arrives: nothing is held longer than its
//! own event takes to complete.
//!
//! A task reads the upstream's body, cuts it into events
//! (`portcullis_actions::event_stream`), runs the phase on each with a
//! context made for the stream (the exchange's heads and results), and
//! sends what comes out through a bounded channel that is the client's
//! body: a slow client slows the reading, and a client that leaves stops
//! it. Anything that keeps an event from being handled (a rule fails, an
//! event grows past its limit, the upstream's body breaks) ends the
//! stream there: an event is never sent as it came because its rules
//! could not run. A coded stream (`Content-Encoding`) is refused before
//! its first byte, since its events cannot be read.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::BodyExt as _;
use portcullis_actions::body::{self, Body};
use portcullis_actions::event_stream::{Event, Parser};
use portcullis_actions::{RequestCtx, respond};
use portcullis_runtime::{Outcome, Pipeline};

/// Events in flight between the task and the client.
const CHANNEL: usize = 16;

/// Whether `res` is an event stream.
pub(crate) fn is_event_stream(res: &Response<Body>) -> bool {
    res.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("text/event-stream"))
}

/// `res` with its events going through `pipeline`'s
/// `on_event_stream_message` in `ctx` (made by
/// [`RequestCtx::for_events`]).
pub(crate) fn rewrite(
    res: Response<Body>,
    ctx: RequestCtx,
    pipeline: Arc<Pipeline>,
) -> Response<Body> {
    let coded = res
        .headers()
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.trim().is_empty() && !v.trim().eq_ignore_ascii_case("identity"));
    if coded {
        tracing::warn!(
            code = "ERR_NGROK_3904",
            "an event stream in a content coding cannot be read by on_event_stream_message"
        );
        return respond::error(
            StatusCode::BAD_GATEWAY,
            "ERR_NGROK_3904",
            "the event stream is in a content coding, so its events cannot be rewritten",
        );
    }
    let (mut parts, upstream) = res.into_parts();
    // The events change length as they pass.
    parts.headers.remove(CONTENT_LENGTH);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(CHANNEL);
    tokio::spawn(pump(upstream, ctx, pipeline, tx));
    Response::from_parts(parts, body::boxed(EventBody(rx)))
}

/// The client's body: what the task sends.
struct EventBody(tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl http_body::Body for EventBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|item| item.map(|r| r.map(http_body::Frame::data)))
    }
}

/// Reads the upstream's events, runs the phase on each, sends them on.
async fn pump(
    mut upstream: Body,
    mut ctx: RequestCtx,
    pipeline: Arc<Pipeline>,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let mut parser = Parser::default();
    let fail = |why: &str| {
        tracing::warn!(code = "ERR_NGROK_3904", "event stream ended: {why}");
        Err(std::io::Error::other(why.to_owned()))
    };
    loop {
        let frame = match upstream.frame().await {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                let _ = tx
                    .send(fail(&format!("the upstream's body failed: {e}")))
                    .await;
                return;
            }
            None => break,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        parser.push(&data);
        loop {
            let event = match parser.next_event() {
                Ok(Some(event)) => event,
                Ok(None) => break,
                Err(_) => {
                    let _ = tx
                        .send(fail("an event is larger than the limit (1 MiB)"))
                        .await;
                    return;
                }
            };
            match handle(&mut ctx, &pipeline, event).await {
                Ok(bytes) => {
                    if tx.send(Ok(bytes)).await.is_err() {
                        // The client left.
                        return;
                    }
                }
                Err(why) => {
                    let _ = tx.send(fail(&why)).await;
                    return;
                }
            }
        }
    }
    if let Some(event) = parser.finish() {
        match handle(&mut ctx, &pipeline, event).await {
            Ok(mut bytes) => {
                // It came without its blank line; it leaves without it.
                let cut = bytes.len().saturating_sub(1);
                let _ = tx.send(Ok(bytes.split_to(cut))).await;
            }
            Err(why) => {
                let _ = tx.send(fail(&why)).await;
            }
        }
    }
}

/// One event through the phase.
async fn handle(ctx: &mut RequestCtx, pipeline: &Pipeline, event: Event) -> Result<Bytes, String> {
    ctx.set_event(event);
    match pipeline.on_event(ctx).await {
        Outcome::Continue => {}
        _ => return Err("a rule of on_event_stream_message failed".into()),
    }
    ctx.take_event()
        .map(|e| Bytes::from(e.to_bytes()))
        .ok_or_else(|| "the event was lost".to_owned())
}
