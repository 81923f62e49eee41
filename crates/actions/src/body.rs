//! The body type requests and responses carry through the pipeline: any
//! body, boxed once, so that the upstream's stream, an action's buffered
//! bytes and a compressed stream are one type.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};

/// An error while reading or producing a body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A request or response body.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// A body with nothing in it.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Boxes any body.
pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}
