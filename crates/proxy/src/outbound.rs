//! The client actions call out with (`http-request`): the proxy's pooled
//! hyper client, restricted to the internal upstreams of the
//! configuration, as ngrok restricts `http-request` to internal endpoints.
//! `https://authz.internal/check` is sent to the upstream named
//! `authz.internal`, with that name as `Host`.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HOST, HeaderValue};
use http::{Request, Uri};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{HttpConnector, HttpInfo};
use portcullis_actions::body::{self, Body};
use portcullis_actions::client::{FetchError, FetchFuture, Fetched, HttpClient};

use crate::config::Upstream;

/// The proxy's [`HttpClient`].
#[derive(Clone, Debug)]
pub(crate) struct Outbound {
    pub(crate) client: Client<HttpConnector, Body>,
    pub(crate) internal: Vec<(String, Upstream)>,
}

impl HttpClient for Outbound {
    fn fetch(&self, req: Request<Bytes>, limit: usize, timeout: Duration) -> FetchFuture {
        let this = self.clone();
        Box::pin(async move {
            match tokio::time::timeout(timeout, this.send(req, limit)).await {
                Ok(res) => res,
                Err(_) => Err(FetchError::Timeout),
            }
        })
    }
}

impl Outbound {
    async fn send(&self, req: Request<Bytes>, limit: usize) -> Result<Fetched, FetchError> {
        let (mut parts, bytes) = req.into_parts();
        let host = parts.uri.host().unwrap_or("").to_owned();
        let Some((_, upstream)) = self.internal.iter().find(|(name, _)| *name == host) else {
            return Err(FetchError::NotAllowed(parts.uri.to_string()));
        };
        let pq = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        parts.uri = Uri::builder()
            .scheme("http")
            .authority(upstream.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|e| FetchError::Protocol(e.to_string()))?;
        if let Ok(v) = HeaderValue::from_str(&host) {
            parts.headers.insert(HOST, v);
        }
        let req = Request::from_parts(parts, body::full(bytes));
        let res = self.client.request(req).await.map_err(|e| {
            if e.is_connect() {
                FetchError::Connect(e.to_string())
            } else {
                FetchError::Protocol(e.to_string())
            }
        })?;
        let remote = res
            .extensions()
            .get::<HttpInfo>()
            .map(HttpInfo::remote_addr);
        let (parts, incoming) = res.into_parts();
        let body = http_body_util::Limited::new(incoming, limit)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    FetchError::TooLarge
                } else {
                    FetchError::Protocol(e.to_string())
                }
            })?
            .to_bytes();
        Ok(Fetched {
            status: parts.status,
            headers: parts.headers,
            body,
            remote,
        })
    }
}
