//! The baseline of the load benchmark (`benches/load/run`, configuration
//! "(a)"): a bare hyper reverse proxy with no policy, no metrics and no
//! logging, written only to measure what Portcullis adds on top of hyper.
//!
//! It serves HTTP/1.1 and HTTP/2 (hyper-util's auto server) and forwards
//! each request over HTTP/1.1 to one upstream through hyper-util's pooled
//! legacy `Client`: the method, the path and query, the headers less the
//! hop-by-hop ones, and the body, streamed both ways. An upstream that
//! cannot be reached gets the client a `502`.
//!
//! ```text
//! cargo run --release -p portcullis-proxy --example bare_proxy -- \
//!     --listen 127.0.0.1:18081 --upstream 127.0.0.1:18080 --threads 1
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the proxy answers with: the upstream's body, or its own error page.
type ProxyBody = Either<Incoming, Full<Bytes>>;

const USAGE: &str = "usage: bare_proxy --upstream ADDR [--listen ADDR] [--threads N]";

/// Headers that describe one connection, not the message (RFC 9110
/// section 7.6.1): a proxy must not forward them.
static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The command line.
struct Args {
    /// Where to listen; `127.0.0.1:18081` unless given.
    listen: SocketAddr,
    /// `host:port` of the upstream server.
    upstream: Authority,
    /// Tokio worker threads; 1 unless given.
    threads: usize,
}

/// What every request handler shares.
struct Proxy {
    client: Client<HttpConnector, Incoming>,
    upstream: Authority,
}

fn main() -> Result<(), BoxError> {
    let args = parse_args(std::env::args().skip(1))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()?;
    rt.block_on(serve(args))
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, BoxError> {
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 18081));
    let mut upstream = None;
    let mut threads = 1;
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("`{flag}` needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--listen" => listen = value()?.parse()?,
            "--upstream" => upstream = Some(value()?.parse::<Authority>()?),
            "--threads" => threads = value()?.parse()?,
            "-h" | "--help" => return Err(USAGE.into()),
            _ => return Err(format!("unknown argument `{flag}`\n{USAGE}").into()),
        }
    }
    let upstream = upstream.ok_or_else(|| format!("`--upstream` is required\n{USAGE}"))?;
    if threads == 0 {
        return Err("`--threads` must be at least 1".into());
    }
    Ok(Args {
        listen,
        upstream,
        threads,
    })
}

async fn serve(args: Args) -> Result<(), BoxError> {
    let mut connector = HttpConnector::new();
    // Small requests must not wait for Nagle's algorithm.
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(connector);
    let proxy = Arc::new(Proxy {
        client,
        upstream: args.upstream,
    });

    let mut server = auto::Builder::new(TokioExecutor::new());
    // hyper's header read timeout needs a timer to run on.
    server.http1().timer(TokioTimer::new());
    server.http2().timer(TokioTimer::new());
    let server = Arc::new(server);

    let listener = TcpListener::bind(args.listen).await?;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of file descriptors, or similar: back off instead of spinning.
                report(&format!("bare_proxy: accept: {err}"));
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if let Err(err) = stream.set_nodelay(true) {
            report(&format!("bare_proxy: set_nodelay: {err}"));
        }
        let proxy = Arc::clone(&proxy);
        let server = Arc::clone(&server);
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let proxy = Arc::clone(&proxy);
                async move { Ok::<_, Infallible>(proxy.forward(req).await) }
            });
            // A client closing its connection mid-request (wrk does at the
            // end of a run) is not worth reporting.
            let _ = server.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

// === impl Proxy ===

impl Proxy {
    async fn forward(&self, req: Request<Incoming>) -> Response<ProxyBody> {
        let (mut parts, body) = req.into_parts();
        // HTTP/2 clients send `:authority` instead of `Host`; keep what the
        // client asked for, as HTTP/1.1 clients' `Host` is kept.
        if !parts.headers.contains_key(header::HOST)
            && let Some(host) = parts
                .uri
                .authority()
                .and_then(|it| HeaderValue::from_str(it.as_str()).ok())
        {
            parts.headers.insert(header::HOST, host);
        }
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let uri = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(self.upstream.clone())
            .path_and_query(path)
            .build();
        parts.uri = match uri {
            Ok(uri) => uri,
            Err(_) => return error(StatusCode::BAD_REQUEST, "bad request target\n"),
        };
        // The upstream leg is always HTTP/1.1, whatever the client spoke.
        parts.version = Version::HTTP_11;
        strip_hop_by_hop(&mut parts.headers);

        match self.client.request(Request::from_parts(parts, body)).await {
            Ok(res) => {
                let (mut parts, body) = res.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, Either::Left(body))
            }
            Err(_) => error(StatusCode::BAD_GATEWAY, "upstream unavailable\n"),
        }
    }
}

/// Removes the hop-by-hop headers, and any header the `Connection` header
/// names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

fn error(status: StatusCode, msg: &'static str) -> Response<ProxyBody> {
    let mut res = Response::new(Either::Right(Full::new(Bytes::from_static(msg.as_bytes()))));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    res
}

#[expect(
    clippy::print_stderr,
    reason = "an example binary reports to its terminal"
)]
fn report(msg: &str) {
    eprintln!("{msg}");
}
