//! An axum app behind a Traffic Policy. [`PolicyLayer`] wraps the whole
//! router, so the policy sees each request before routing does (a
//! `url-rewrite` changes which handler runs) and a handler sees only what
//! the policy let through, with the headers the policy added.
//!
//! Run it, then try it from another terminal:
//!
//! ```text
//! cargo run -p portcullis-runtime --example axum
//!
//! curl -i http://127.0.0.1:3000/hello     # 200: "hello from 127.0.0.1", x-powered-by: portcullis
//! curl -i http://127.0.0.1:3000/admin     # 403 from the policy: the handler never runs
//! for i in $(seq 12); do curl -s -o /dev/null -w '%{http_code} ' http://127.0.0.1:3000/; done
//!                                         # 429 (with retry-after) from a client's 11th request
//!                                         # in a minute; denied requests do not count
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, Response};
use axum::routing::get;
use axum::{Router, ServiceExt};
use portcullis_runtime::{Options, Pipeline, PolicyLayer, body};
use tower::ServiceBuilder;

/// Deny `/admin`, limit each client to 10 requests a minute, and tell the
/// handlers who the client is in `x-client-ip`; answers carry a header
/// the response phase adds.
const POLICY: &str = r#"
on_http_request:
  - name: no admin pages
    expressions:
      - req.url.path.startsWith('/admin')
    actions:
      - type: deny
        config:
          status_code: 403
  - name: 10 requests a minute per client IP
    actions:
      - type: rate-limit
        config:
          name: 10 a minute per client IP
          algorithm: sliding_window
          capacity: 10
          rate: 60s
          bucket_key:
            - conn.client_ip
  - name: tell the app who is calling
    actions:
      - type: add-headers
        config:
          headers:
            x-client-ip: ${conn.client_ip}
on_http_response:
  - actions:
      - type: add-headers
        config:
          headers:
            x-powered-by: portcullis
"#;

const ADDR: &str = "127.0.0.1:3000";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pipeline = Pipeline::load(POLICY, &Options::default()).map_err(|diags| {
        diags
            .iter()
            .map(|d| format!("error[{}]: {}", d.code, d.message))
            .collect::<Vec<_>>()
            .join("\n")
    })?;

    let routes = Router::new()
        .route("/", get(hello))
        .route("/hello", get(hello))
        .route(
            "/admin",
            get(|| async { "the policy should have denied this" }),
        );

    // Layers run top to bottom on the way in. `client_addr` must be above
    // `PolicyLayer`, which reads the client's address from the `SocketAddr`
    // extension (`conn.client_ip`); `axum::serve` wants axum's own body, so
    // the policy's responses are converted above it as well.
    let app = ServiceBuilder::new()
        .map_response(|res: Response<body::Body>| res.map(Body::new))
        .map_request(client_addr)
        .layer(PolicyLayer::new(
            Arc::new(pipeline),
            &format!("http://{ADDR}"),
        ))
        .service(routes);

    let listener = tokio::net::TcpListener::bind(ADDR).await?;
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}

/// Echoes the header the policy added.
async fn hello(headers: HeaderMap) -> String {
    let client = headers
        .get("x-client-ip")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("nobody (no policy?)");
    format!("hello from {client}\n")
}

/// Copies the peer address `axum::serve` records as `ConnectInfo` to the
/// plain `SocketAddr` extension `PolicyLayer` reads.
fn client_addr(mut req: Request) -> Request {
    if let Some(ConnectInfo(addr)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        req.extensions_mut().insert(addr);
    }
    req
}
