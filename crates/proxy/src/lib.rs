//! The Portcullis edge proxy: listeners (HTTP/1.1, HTTP/2, TLS), the
//! policy pipeline per request, a pooled upstream client, hot reload,
//! access logs and Prometheus metrics.
//!
//! [`start`] binds and serves a [`Config`]; [`run`] does so until a
//! shutdown signal. This is the only crate that owns hyper's server.

mod admin;
pub mod assertion;
pub mod config;
mod deadline;
mod drain;
pub mod echo;
mod event_stream;
pub mod forward_auth;
mod h1;
pub mod metrics;
mod outbound;
pub mod reload;
mod server;
mod tls;
mod tunnel;
mod upstream;

pub use crate::config::{
    Config, ESCAPED_SLASHES, EndpointConfig, IdentityConfig, Limits, Timeouts, TlsFiles, Upstream,
    UpstreamTls, default_upgrades, trusted_net,
};
pub use crate::forward_auth::ForwardAuth;
#[doc(hidden)]
pub use crate::h1::decode_response;
pub use crate::server::{
    CLIENT_BODY, Running, StartError, UPSTREAM_CONNECT, UPSTREAM_PROTOCOL, UPSTREAM_TIMEOUT,
    oauth_apps, run, start,
};
