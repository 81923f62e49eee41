//! The upstream of the load benchmark (`benches/load/run`): a minimal
//! HTTP/1.1 server that answers every request `200 OK` with the body `ok\n`.
//!
//! It does as little as a server can, so that what the benchmark measures is
//! the proxy in front of it, not the upstream.
//!
//! ```text
//! cargo run --release -p portcullis-proxy --example bench_upstream -- \
//!     --listen 127.0.0.1:18080 --threads 1
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const USAGE: &str = "usage: bench_upstream [--listen ADDR] [--threads N]";

/// The command line.
struct Args {
    /// Where to listen; `127.0.0.1:18080` unless given.
    listen: SocketAddr,
    /// Tokio worker threads; 1 unless given.
    threads: usize,
}

fn main() -> Result<(), BoxError> {
    let args = parse_args(std::env::args().skip(1))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()?;
    rt.block_on(serve(args.listen))
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, BoxError> {
    let mut args = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 18080)),
        threads: 1,
    };
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("`{flag}` needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--listen" => args.listen = value()?.parse()?,
            "--threads" => args.threads = value()?.parse()?,
            "-h" | "--help" => return Err(USAGE.into()),
            _ => return Err(format!("unknown argument `{flag}`\n{USAGE}").into()),
        }
    }
    if args.threads == 0 {
        return Err("`--threads` must be at least 1".into());
    }
    Ok(args)
}

async fn serve(addr: SocketAddr) -> Result<(), BoxError> {
    let listener = TcpListener::bind(addr).await?;
    let mut http = http1::Builder::new();
    // hyper's header read timeout needs a timer to run on.
    http.timer(TokioTimer::new());
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of file descriptors, or similar: back off instead of spinning.
                report(&format!("bench_upstream: accept: {err}"));
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Small responses must not wait for Nagle's algorithm.
        if let Err(err) = stream.set_nodelay(true) {
            report(&format!("bench_upstream: set_nodelay: {err}"));
        }
        let conn = http.serve_connection(TokioIo::new(stream), service_fn(answer));
        tokio::spawn(async move {
            // A client closing its connection mid-request (wrk does at the end
            // of a run) is not worth reporting.
            let _ = conn.await;
        });
    }
}

async fn answer(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut res = Response::new(Full::new(Bytes::from_static(b"ok\n")));
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(res)
}

#[expect(
    clippy::print_stderr,
    reason = "an example binary reports to its terminal"
)]
fn report(msg: &str) {
    eprintln!("{msg}");
}
