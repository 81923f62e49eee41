//! The HTTP client actions call out with (`http-request`, and sign-in's
//! token and key fetches): a trait here, implemented by the proxy over its
//! one pooled hyper client, so that the tree carries one HTTP stack and
//! actions know nothing of connections.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};

/// A response, read whole.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
    /// The address the request went to.
    pub remote: Option<SocketAddr>,
}

/// Why a call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchError {
    /// The URL names no upstream this proxy may call.
    NotAllowed(String),
    /// No connection could be made.
    Connect(String),
    /// No complete answer within the timeout.
    Timeout,
    /// The body was larger than the limit.
    TooLarge,
    /// The peer broke HTTP.
    Protocol(String),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::NotAllowed(url) => {
                write!(f, "`{url}` is not an upstream this proxy may call")
            }
            FetchError::Connect(e) => write!(f, "cannot connect: {e}"),
            FetchError::Timeout => f.write_str("no answer in time"),
            FetchError::TooLarge => f.write_str("the response body is too large"),
            FetchError::Protocol(e) => write!(f, "invalid response: {e}"),
        }
    }
}

impl std::error::Error for FetchError {}

/// The future of a call.
pub type FetchFuture = Pin<Box<dyn Future<Output = Result<Fetched, FetchError>> + Send>>;

/// Which hosts a call may reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Only the internal upstreams of the configuration (`http-request`,
    /// as ngrok restricts it to internal endpoints).
    Internal,
    /// Identity providers and key sets: any `https://` URL, and `http://`
    /// on loopback only, so that keys are never fetched in the clear from
    /// another machine.
    Public,
}

/// Sends requests out. `req`'s URI is absolute; the implementation decides
/// which hosts may be called, by `scope`.
pub trait HttpClient: Send + Sync + fmt::Debug {
    /// Sends `req`, reading at most `limit` bytes of the response body,
    /// within `timeout` in all.
    fn fetch(
        &self,
        req: Request<Bytes>,
        scope: Scope,
        limit: usize,
        timeout: Duration,
    ) -> FetchFuture;
}
