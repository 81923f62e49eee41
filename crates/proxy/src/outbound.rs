//! The client actions call out with: the proxy's pooled hyper clients.
//!
//! - [`Scope::Internal`] (`http-request`): only the internal upstreams of
//!   the configuration, as ngrok restricts `http-request` to internal
//!   endpoints. `https://authz.internal/check` is sent over plain HTTP to
//!   the upstream named `authz.internal`, with that name as `Host`.
//! - [`Scope::Public`] (identity providers, key sets): any `https://` URL,
//!   verified against the Mozilla root certificates, and `http://` to
//!   loopback only.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HOST, HeaderValue};
use http::{Request, Response, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{HttpConnector, HttpInfo};
use portcullis_actions::body::{self, Body};
use portcullis_actions::client::{FetchError, FetchFuture, Fetched, HttpClient, Scope};

use crate::config::Upstream;

/// The proxy's [`HttpClient`].
#[derive(Clone, Debug)]
pub(crate) struct Outbound {
    pub(crate) client: Client<HttpsConnector<HttpConnector>, Body>,
    pub(crate) public: Client<HttpsConnector<HttpConnector>, Body>,
    pub(crate) internal: Vec<(String, Upstream)>,
}

/// The client for public URLs: HTTPS with the webpki roots, HTTP/1.1 and
/// HTTP/2 by ALPN.
pub(crate) fn public_client(
    connect_timeout: Duration,
) -> Client<HttpsConnector<HttpConnector>, Body> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let https =
        match hyper_rustls::HttpsConnectorBuilder::new().with_provider_and_webpki_roots(provider) {
            Ok(b) => b
                .https_or_http()
                .enable_http1()
                .enable_http2()
                .wrap_connector(http),
            // The ring provider supports the safe defaults; this cannot fail.
            Err(_) => hyper_rustls::HttpsConnectorBuilder::new()
                .with_webpki_roots()
                .https_or_http()
                .enable_http1()
                .wrap_connector(HttpConnector::new()),
        };
    Client::builder(hyper_util::rt::TokioExecutor::new()).build(https)
}

impl HttpClient for Outbound {
    fn fetch(
        &self,
        req: Request<Bytes>,
        scope: Scope,
        limit: usize,
        timeout: Duration,
    ) -> FetchFuture {
        let this = self.clone();
        Box::pin(async move {
            let sent = async {
                let res = match scope {
                    Scope::Internal => this.internal(req).await?,
                    Scope::Public => this.public(req).await?,
                };
                read(res, limit).await
            };
            match tokio::time::timeout(timeout, sent).await {
                Ok(res) => res,
                Err(_) => Err(FetchError::Timeout),
            }
        })
    }
}

impl Outbound {
    async fn internal(&self, req: Request<Bytes>) -> Result<Response<Incoming>, FetchError> {
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
            .scheme(upstream.scheme())
            .authority(upstream.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|e| FetchError::Protocol(e.to_string()))?;
        if let Ok(v) = HeaderValue::from_str(&host) {
            parts.headers.insert(HOST, v);
        }
        let req = Request::from_parts(parts, body::full(bytes));
        self.client.request(req).await.map_err(client_error)
    }

    async fn public(&self, req: Request<Bytes>) -> Result<Response<Incoming>, FetchError> {
        let uri = req.uri();
        let loopback = uri
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .is_some_and(|h| {
                h == "localhost" || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
            });
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if loopback => {}
            _ => return Err(FetchError::NotAllowed(uri.to_string())),
        }
        let req = req.map(body::full);
        self.public.request(req).await.map_err(client_error)
    }
}

fn client_error(e: hyper_util::client::legacy::Error) -> FetchError {
    if e.is_connect() {
        FetchError::Connect(e.to_string())
    } else {
        FetchError::Protocol(e.to_string())
    }
}

async fn read(res: Response<Incoming>, limit: usize) -> Result<Fetched, FetchError> {
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
