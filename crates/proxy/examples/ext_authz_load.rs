//! The load generator of `benches/load/ext_authz`: Envoy's `ext_authz`
//! gRPC `Check` calls, as Envoy makes them for each request, against a
//! forward-auth listener, for a fixed time; prints calls per second and
//! latency percentiles.
//!
//! ```text
//! cargo run --release -p portcullis-proxy --example ext_authz_load -- \
//!     --target 127.0.0.1:4180 --seconds 10 --connections 4 --concurrency 64
//! ```
//!
//! Each call describes `GET /api/items` from 127.0.0.1 with `x-api-key` and
//! a `user-agent`, the request `benches/load/run` sends; a call that does
//! not come back `OK` is counted as denied.

#![allow(
    clippy::print_stdout,
    reason = "a command-line tool: its output is the point"
)]

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::address::Address;
use envoy_types::pb::envoy::config::core::v3::{Address as Addr, SocketAddress};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use tonic::transport::{Channel, Endpoint};

const USAGE: &str =
    "usage: ext_authz_load --target HOST:PORT [--seconds N] [--connections N] [--concurrency N]";

struct Args {
    target: String,
    seconds: u64,
    connections: usize,
    concurrency: usize,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        target: String::new(),
        seconds: 10,
        connections: 4,
        concurrency: 64,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(USAGE)?;
        let number = || value.parse::<u64>().map_err(|_| format!("{flag}: {value}"));
        match flag.as_str() {
            "--target" => a.target = value.clone(),
            "--seconds" => a.seconds = number()?,
            "--connections" => {
                a.connections = usize::try_from(number()?).map_err(|e| e.to_string())?
            }
            "--concurrency" => {
                a.concurrency = usize::try_from(number()?).map_err(|e| e.to_string())?
            }
            _ => return Err(USAGE.into()),
        }
    }
    if a.target.is_empty() || a.connections == 0 || a.concurrency == 0 {
        return Err(USAGE.into());
    }
    Ok(a)
}

fn check() -> CheckRequest {
    let headers = [
        (":authority", "bench.example"),
        (":method", "GET"),
        (":path", "/api/items"),
        ("x-api-key", "bench-key"),
        ("user-agent", "portcullis-load-bench/1.0 (ext_authz)"),
    ];
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                address: Some(Addr {
                    address: Some(Address::SocketAddress(SocketAddress {
                        address: "127.0.0.1".into(),
                        ..SocketAddress::default()
                    })),
                }),
                ..Peer::default()
            }),
            request: Some(Request {
                http: Some(HttpRequest {
                    method: "GET".into(),
                    path: "/api/items".into(),
                    host: "bench.example".into(),
                    scheme: "http".into(),
                    protocol: "HTTP/1.1".into(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                    ..HttpRequest::default()
                }),
                ..Request::default()
            }),
            ..AttributeContext::default()
        }),
    }
}

/// One caller: Check calls back to back until `until`; its latencies in
/// microseconds, and how many were denied or failed.
async fn caller(channel: Channel, until: Instant) -> (Vec<u32>, u64, u64) {
    let mut client = AuthorizationClient::new(channel);
    let req = check();
    let (mut lat, mut denied, mut failed) = (Vec::new(), 0, 0);
    while Instant::now() < until {
        let t = Instant::now();
        match client.check(req.clone()).await {
            Ok(res) => {
                if res.into_inner().status.map_or(-1, |s| s.code) != 0 {
                    denied += 1;
                }
            }
            Err(_) => failed += 1,
        }
        lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
    }
    (lat, denied, failed)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = args()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut channels = Vec::new();
        for _ in 0..a.connections {
            let ch = Endpoint::from_shared(format!("http://{}", a.target))?
                .connect()
                .await?;
            channels.push(ch);
        }
        // A warm-up second, then the measured run.
        for (warm, seconds) in [(true, 1), (false, a.seconds)] {
            let start = Instant::now();
            let until = start + Duration::from_secs(seconds);
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..a.concurrency {
                let ch = channels[i % channels.len()].clone();
                tasks.spawn(caller(ch, until));
            }
            let (mut lat, mut denied, mut failed) = (Vec::new(), 0, 0);
            while let Some(r) = tasks.join_next().await {
                let (l, d, f) = r?;
                lat.extend(l);
                denied += d;
                failed += f;
            }
            if warm {
                continue;
            }
            let secs = start.elapsed().as_secs_f64();
            lat.sort_unstable();
            let pct = |p: f64| {
                let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len().max(1)) - 1;
                f64::from(lat.get(i).copied().unwrap_or(0)) / 1000.0
            };
            println!(
                "calls={} calls_per_sec={:.0} p50_ms={:.2} p99_ms={:.2} denied={denied} failed={failed}",
                lat.len(),
                lat.len() as f64 / secs,
                pct(0.50),
                pct(0.99)
            );
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
