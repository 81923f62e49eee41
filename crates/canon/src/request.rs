//! A request head made canonical at arrival: one authority, one path, no
//! field a client asked the edge to drop.
//!
//! After [`request`], the request's URI is in origin form with the
//! canonical path (the query as sent), its one `Host` field is the
//! canonical authority, and the fields its `Connection` named are gone, so
//! that neither a rule nor the upstream can see another spelling, and a
//! client cannot name a header the policy adds (`Connection: close,
//! X-Forwarded-For`) and have it removed on the way out.

use std::borrow::Cow;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, StatusCode, Uri, Version};

use crate::authority::{HostError, authority};
use crate::path::{PathError, PathOptions, path};

/// How requests are canonicalized.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// How paths are canonicalized.
    pub path: PathOptions,
    /// What a field whose name has `_` does.
    pub underscores: Underscores,
    /// Keep the fields that ask a server behind to take another path or
    /// method than the request line's (`X-Original-URL`,
    /// `X-HTTP-Method-Override`, …); by default they are removed.
    pub keep_overrides: bool,
}

/// Fields that ask the server behind the edge to take another path or
/// method than the one the policy judged: IIS and Symfony route
/// `X-Original-URL` and `X-Rewrite-URL`, many frameworks honour a method
/// override. From a client they are never legitimate at the edge (they
/// are a front proxy's to set), so they are removed before the policy.
static OVERRIDES: [HeaderName; 5] = [
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
];

fn is_override(name: &HeaderName) -> bool {
    OVERRIDES.iter().any(|o| name == o)
}

/// What a request field whose name has an underscore (`X_Auth_User`)
/// does. CGI, WSGI, Rack, PHP and nginx's own variables read `_` and `-`
/// alike, so `X_Auth_User` can stand in for the `X-Auth-User` a policy
/// adds or checks; nginx ignores such fields by default
/// (`underscores_in_headers off`), Envoy's edge guide rejects them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Underscores {
    /// Remove the field before the policy runs (nginx's default).
    #[default]
    Drop,
    /// Refuse the request (400, Envoy's `REJECT_REQUEST`).
    Reject,
    /// Keep it, for upstreams that need such names.
    Allow,
}

impl Underscores {
    /// The setting named `name`: `drop`, `reject` or `allow`.
    pub fn parse(name: &str) -> Option<Underscores> {
        Some(match name {
            "drop" => Underscores::Drop,
            "reject" => Underscores::Reject,
            "allow" => Underscores::Allow,
            _ => return None,
        })
    }
}

/// What the client sent, where it differed from the canonical form.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Arrival {
    /// The path and query as sent, if the path changed.
    pub raw_target: Option<PathAndQuery>,
    /// The authority as sent, if it changed.
    pub raw_authority: Option<Box<str>>,
    /// The client should be redirected to the canonical path
    /// ([`EscapedSlashes::UnescapeAndRedirect`](crate::EscapedSlashes)).
    pub redirect: bool,
}

/// A request that has no canonical form: answered with [`status`] and
/// [`code`], and never forwarded.
///
/// [`status`]: Refusal::status
/// [`code`]: Refusal::code
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The path.
    Path(PathError),
    /// The authority.
    Host(HostError),
    /// A field whose name has `_` ([`Underscores::Reject`]).
    Underscore,
    /// Both `Content-Length` and `Transfer-Encoding`: two framings, of
    /// which a server behind the edge may pick the other (RFC 9112 §6.3
    /// lets a server refuse; the connection must then close).
    Framing,
}

impl Refusal {
    /// The status to answer with: 400 for every refusal.
    pub fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }

    /// The `portcullis-error-code` to answer with.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Path(PathError::EscapedSlash) => "ERR_PORTCULLIS_ENCODED_SLASH",
            Refusal::Path(_) => "ERR_PORTCULLIS_BAD_PATH",
            Refusal::Host(_) => "ERR_PORTCULLIS_BAD_HOST",
            Refusal::Framing => "ERR_PORTCULLIS_BAD_FRAMING",
            Refusal::Underscore => "ERR_PORTCULLIS_HEADER_UNDERSCORE",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Path(e) => e.fmt(f),
            Refusal::Host(e) => e.fmt(f),
            Refusal::Framing => {
                f.write_str("the request has both Content-Length and Transfer-Encoding")
            }
            Refusal::Underscore => f.write_str("a request field's name has an underscore"),
        }
    }
}

impl std::error::Error for Refusal {}

/// Makes `req`'s head canonical in place; `https` says whether the
/// connection is TLS (for the default port). On `Err`, the request must be
/// answered with the refusal and not forwarded.
pub fn request<B>(req: &mut Request<B>, https: bool, opts: &Options) -> Result<Arrival, Refusal> {
    let facts = Facts::of(req.headers());
    if facts.content_length && facts.transfer_encoding {
        return Err(Refusal::Framing);
    }
    if facts.underscores && opts.underscores == Underscores::Reject {
        return Err(Refusal::Underscore);
    }
    let mut arrival = Arrival::default();
    let default_port = match req.uri().scheme_str() {
        Some("https") => 443,
        Some(_) => 80,
        None if https => 443,
        None => 80,
    };
    let host =
        canonical_authority(req, &facts, default_port, &mut arrival).map_err(Refusal::Host)?;
    let connection_fields = facts.connection_fields;
    let overrides = facts.overrides;
    if facts.underscores && opts.underscores == Underscores::Drop {
        drop_underscores(req.headers_mut());
    }
    if overrides && !opts.keep_overrides {
        for name in &OVERRIDES {
            req.headers_mut().remove(name);
        }
    }
    if let Some(host) = host {
        let value = HeaderValue::from_str(&host).map_err(|_| Refusal::Host(HostError::Invalid))?;
        req.headers_mut().insert(header::HOST, value);
    }

    let uri = req.uri();
    let absolute = uri.scheme().is_some() || uri.authority().is_some();
    let raw = uri.path();
    let star = raw == "*" && req.method() == Method::OPTIONS;
    let target = if star {
        None
    } else {
        let canonical = path(raw, &opts.path).map_err(Refusal::Path)?;
        arrival.redirect = canonical.redirect;
        match canonical.path {
            Cow::Borrowed(_) if !absolute => None,
            Cow::Borrowed(p) => Some(with_query(p, uri.query())?),
            Cow::Owned(p) => {
                arrival.raw_target = uri.path_and_query().cloned();
                Some(with_query(&p, uri.query())?)
            }
        }
    };
    if let Some(pq) = target {
        *req.uri_mut() = Uri::from(pq);
    } else if absolute {
        // `OPTIONS *` in absolute form has no path to keep.
        *req.uri_mut() = Uri::from_static("*");
    }
    if connection_fields {
        strip_connection_named(req.headers_mut());
    }
    Ok(arrival)
}

/// What one pass over a request's fields finds.
struct Facts<'h> {
    /// The first `Host` field, and how many there are.
    host: Option<&'h HeaderValue>,
    hosts: usize,
    content_length: bool,
    transfer_encoding: bool,
    /// A field that concerns one connection only.
    connection_fields: bool,
    /// A field whose name has `_`.
    underscores: bool,
    /// A path or method override.
    overrides: bool,
}

impl Facts<'_> {
    fn of(headers: &HeaderMap) -> Facts<'_> {
        let mut facts = Facts {
            host: None,
            hosts: 0,
            content_length: false,
            transfer_encoding: false,
            connection_fields: false,
            underscores: false,
            overrides: false,
        };
        for (name, value) in headers {
            if name == header::HOST {
                facts.host = facts.host.or(Some(value));
                facts.hosts += 1;
            } else if name == header::CONTENT_LENGTH {
                facts.content_length = true;
            } else if name == header::TRANSFER_ENCODING {
                facts.transfer_encoding = true;
            } else if is_connection_field(name) {
                facts.connection_fields = true;
            } else {
                // Short names: a plain loop beats memchr's setup.
                let text = name.as_str();
                if text.bytes().any(|b| b == b'_') {
                    facts.underscores = true;
                } else if text.starts_with("x-") && is_override(name) {
                    facts.overrides = true;
                }
            }
        }
        facts
    }
}

fn drop_underscores(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().as_bytes().contains(&b'_'))
        .cloned()
        .collect();
    for name in named {
        headers.remove(name);
    }
}

fn with_query(path: &str, query: Option<&str>) -> Result<PathAndQuery, Refusal> {
    let text = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    PathAndQuery::try_from(text).map_err(|_| Refusal::Path(PathError::BadEscape))
}

/// The one authority of `req`, canonical: an absolute-form target's
/// (RFC 9112 §3.2.2: it wins over `Host`), HTTP/2's `:authority` (which a
/// `Host` field must agree with, RFC 9113 §8.3.1), or the one `Host`.
/// `None` for an HTTP/1.0 request without one.
fn canonical_authority<B>(
    req: &Request<B>,
    facts: &Facts,
    default_port: u16,
    arrival: &mut Arrival,
) -> Result<Option<String>, HostError> {
    if facts.hosts > 1 {
        return Err(HostError::Duplicate);
    }
    let field = facts
        .host
        .map(|v| v.to_str().map_err(|_| HostError::Invalid))
        .transpose()?;
    let (raw, canonical) = match (req.uri().authority(), field) {
        (Some(target), field) => {
            let canonical = authority(target.as_str(), default_port)?;
            if req.version() == Version::HTTP_2
                && let Some(field) = field
                && authority(field, default_port)? != canonical
            {
                return Err(HostError::Mismatch);
            }
            if canonical != target.as_str() {
                arrival.raw_authority = Some(target.as_str().into());
            }
            // The target's authority becomes the one `Host`.
            return match field {
                Some(field) if field == canonical => Ok(None),
                _ => Ok(Some(canonical.into_owned())),
            };
        }
        (None, Some(field)) => (field, authority(field, default_port)?),
        (None, None) if req.version() <= Version::HTTP_10 => return Ok(None),
        (None, None) => return Err(HostError::Missing),
    };
    // From the `Host` field: written back only if it changed.
    match canonical {
        Cow::Borrowed(_) => Ok(None),
        Cow::Owned(canonical) => {
            arrival.raw_authority = Some(raw.into());
            Ok(Some(canonical))
        }
    }
}

/// Removes the fields `Connection` names, then `Connection` and the other
/// fields that concern one connection only (RFC 9110 §7.6.1), before the
/// policy runs: a field the policy adds later can then never be one a
/// client named. `Host` and the body's framing fields are never removed
/// here (the framing ones are the forwarding's to replace); `Upgrade`
/// stays for rules to read and is dropped when the request is forwarded.
pub fn strip_connection_named(headers: &mut HeaderMap) {
    strip(headers, true);
}

/// Removes every field that concerns one connection only, and those
/// `Connection` names (never `Host`): what a message loses on its way
/// through the edge, a request to the upstream or a response to the
/// client.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    strip(headers, false);
}

/// `arrival`: a request as it arrives, whose framing and `Upgrade` the
/// edge still needs.
fn strip(headers: &mut HeaderMap, arrival: bool) {
    let hop =
        |name: &HeaderName| is_connection_field(name) || (!arrival && is_framing_or_upgrade(name));
    // Most messages carry none: one pass over the names decides.
    if !headers.keys().any(hop) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .filter(|n| n != header::HOST && !(arrival && is_framing_or_upgrade(n)))
        .collect();
    for name in named {
        headers.remove(name);
    }
    let fields: Vec<HeaderName> = headers.keys().filter(|k| hop(k)).cloned().collect();
    for name in fields {
        headers.remove(name);
    }
}

/// Fields that concern one connection, removed whether `Connection`
/// names them or not (RFC 9110 §7.6.1, RFC 9112 §9.6).
fn is_connection_field(name: &HeaderName) -> bool {
    static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
    static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
    name == header::CONNECTION
        || name == header::TE
        || name == header::TRAILER
        || name == header::PROXY_AUTHORIZATION
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
}

/// The body's framing, which the edge reads and re-frames itself, and
/// `Upgrade`, which it honours or drops itself.
fn is_framing_or_upgrade(name: &HeaderName) -> bool {
    name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING || name == header::UPGRADE
}

#[cfg(test)]
mod tests;
