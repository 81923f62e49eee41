//! Envoy's `ext_authz` over gRPC: `envoy.service.auth.v3.Authorization/
//! Check`, served on the forward-auth listener itself (HTTP/2 cleartext,
//! told from HTTP requests by `content-type: application/grpc`).
//!
//! Every question gets a `CheckResponse`, never a gRPC error: Envoy treats
//! an error as a failure of its auth service, which `failure_mode_allow:
//! true` turns into an allow. A request the `CheckRequest` does not
//! describe (no HTTP attributes, a bad method or path) is a denial with a
//! 400 and its code. An allow is `OK` with the identity headers and the
//! policy's header changes to set (overwriting), the headers to remove
//! (identity headers the policy has no value for among them, so a
//! client's copy never survives), and the session cookies to add to the
//! response.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use envoy_types::ext_authz::v3::CheckResponseExt;
use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse, DeniedHttpResponse,
    HeaderAppendAction, HttpResponse, HttpStatus, OkHttpResponse,
};
use envoy_types::pb::envoy::config::core::v3::address::Address;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use http::header::{self, HeaderMap, HeaderName};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use portcullis_actions::body::{self, Body};
use portcullis_actions::{Conn, respond};
use tower_service::Service;

use super::describe::{BAD_DESCRIPTION, Described};
use super::{Verdict, decide};
use crate::server::{Shared, Site};

/// Whether `req` is a gRPC call.
pub(super) fn is_grpc<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// Serves one gRPC call.
pub(super) async fn serve(
    req: Request<Incoming>,
    conn: Arc<Conn>,
    site: Arc<Site>,
    shared: Arc<Shared>,
    trusted: bool,
) -> Response<Body> {
    let mut server = AuthorizationServer::new(Check {
        conn,
        site,
        shared,
        trusted,
    });
    match server.call(req).await {
        Ok(res) => res.map(|b| body::boxed(b.map_err(|s| Box::new(s) as body::BoxError))),
        Err(never) => match never {},
    }
}

struct Check {
    conn: Arc<Conn>,
    site: Arc<Site>,
    shared: Arc<Shared>,
    /// Whether the caller is a configured gateway.
    trusted: bool,
}

#[tonic::async_trait]
impl Authorization for Check {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        let started = Instant::now();
        if !self.trusted {
            return Ok(tonic::Response::new(denied(super::untrusted()).await));
        }
        let described = match describe(&request.into_inner(), self.conn.client.ip()) {
            Ok(d) => d,
            Err(why) => {
                tracing::info!(target: "portcullis::access", peer = %self.conn.client.ip(), "ext_authz: {why}");
                let res = respond::error(StatusCode::BAD_REQUEST, BAD_DESCRIPTION, &why);
                return Ok(tonic::Response::new(denied(res).await));
            }
        };
        let verdict = decide(described, &self.conn, &self.site, &self.shared, started).await;
        let out = match verdict {
            Verdict::Allow {
                mutations,
                identity,
                cookies,
            } => {
                let mut ok = OkHttpResponse::default();
                for (name, value) in identity {
                    if value.is_empty() {
                        ok.headers_to_remove.push(name.as_str().to_owned());
                    } else {
                        ok.headers.push(option(&name, value.as_bytes(), true));
                    }
                }
                for (name, value) in &mutations.set {
                    ok.headers.push(option(name, value.as_bytes(), true));
                }
                ok.headers_to_remove
                    .extend(mutations.removed.iter().map(|n| n.as_str().to_owned()));
                for c in cookies {
                    ok.response_headers_to_add.push(option(
                        &header::SET_COOKIE,
                        c.as_bytes(),
                        false,
                    ));
                }
                let mut res = CheckResponse::with_status(tonic::Status::ok("allowed"));
                res.set_http_response(HttpResponse::OkResponse(ok));
                res
            }
            Verdict::Answer(res) => denied(res).await,
        };
        Ok(tonic::Response::new(out))
    }
}

/// The request a `CheckRequest` describes. Its source address is the
/// client's as Envoy saw it (the caller is a trusted gateway).
fn describe(check: &CheckRequest, gateway: IpAddr) -> Result<Described, String> {
    let attrs = check
        .attributes
        .as_ref()
        .ok_or("the CheckRequest has no attributes")?;
    let http = attrs
        .request
        .as_ref()
        .and_then(|r| r.http.as_ref())
        .ok_or("the CheckRequest has no HTTP request attributes")?;
    let method = Method::from_bytes(http.method.as_bytes())
        .map_err(|_| format!("`{}` is not an HTTP method", http.method))?;
    if !http.path.starts_with('/') {
        return Err(format!("the path `{}` is not in origin form", http.path));
    }
    let https = match http.scheme.as_str() {
        "https" => true,
        "http" | "" => false,
        other => return Err(format!("the scheme `{other}` is not http or https")),
    };
    let client = attrs
        .source
        .as_ref()
        .and_then(|p| p.address.as_ref())
        .and_then(|a| match &a.address {
            Some(Address::SocketAddress(s)) => s.address.parse().ok(),
            _ => None,
        })
        .unwrap_or(gateway);
    let mut headers = HeaderMap::new();
    let mut add = |key: &str, value: &[u8]| -> Result<(), String> {
        if key.starts_with(':') {
            return Ok(());
        }
        let name = HeaderName::from_bytes(key.as_bytes())
            .map_err(|_| format!("`{key}` is not a header name"))?;
        if name == header::HOST || name == header::CONTENT_LENGTH {
            return Ok(());
        }
        let value = http::HeaderValue::from_bytes(value)
            .map_err(|_| format!("the value of `{key}` is not a header value"))?;
        headers.append(name, value);
        Ok(())
    };
    match &http.header_map {
        Some(map) if http.headers.is_empty() => {
            for h in &map.headers {
                let value = if h.raw_value.is_empty() {
                    h.value.as_bytes()
                } else {
                    &h.raw_value
                };
                add(&h.key, value)?;
            }
        }
        _ => {
            for (k, v) in &http.headers {
                add(k, v.as_bytes())?;
            }
        }
    }
    let host = if http.host.is_empty() {
        return Err("the CheckRequest names no host".into());
    } else {
        http::HeaderValue::from_str(&http.host)
            .map_err(|_| format!("the host `{}` is not a header value", http.host))?
    };
    headers.insert(header::HOST, host);
    let mut request = Request::builder()
        .method(method)
        .uri(http.path.as_str())
        .body(())
        .map_err(|_| format!("the path `{}` is not a request target", http.path))?;
    *request.headers_mut() = headers;
    Ok(Described {
        request,
        https,
        client,
    })
}

/// A policy answer as a denial. Envoy sends it to the client whatever its
/// status, 2xx included.
async fn denied(res: Response<Body>) -> CheckResponse {
    let (parts, body) = res.into_parts();
    let body = super::answer::read_body(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let mut denied = DeniedHttpResponse {
        status: Some(HttpStatus {
            code: i32::from(parts.status.as_u16()),
        }),
        body: String::from_utf8_lossy(&body).into_owned(),
        ..DeniedHttpResponse::default()
    };
    for (name, value) in &parts.headers {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        denied.headers.push(option(name, value.as_bytes(), false));
    }
    let status = if parts.status == StatusCode::UNAUTHORIZED || parts.status.is_redirection() {
        tonic::Status::unauthenticated("sign in")
    } else {
        tonic::Status::permission_denied("denied by the traffic policy")
    };
    let mut out = CheckResponse::with_status(status);
    out.set_http_response(HttpResponse::DeniedResponse(denied));
    out
}

fn option(name: &HeaderName, value: &[u8], overwrite: bool) -> HeaderValueOption {
    #[expect(deprecated, reason = "`append` is deprecated but must be spelled out")]
    HeaderValueOption {
        header: Some(HeaderValue {
            key: name.as_str().to_owned(),
            value: String::from_utf8_lossy(value).into_owned(),
            raw_value: Vec::new(),
        }),
        append: None,
        append_action: if overwrite {
            HeaderAppendAction::OverwriteIfExistsOrAdd
        } else {
            HeaderAppendAction::AppendIfExistsOrAdd
        }
        .into(),
        keep_empty_value: false,
    }
}
