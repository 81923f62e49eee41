//! The variable schema: every variable ngrok documents, with its CEL type
//! and the phases where it exists, and the CEL environment of each phase.
//!
//! Names are flat and dotted, as ngrok writes them (`req.url.path`). ngrok
//! has "strings with attributes": `req.url` is a string and `req.url.path`
//! exists too (likewise `req.content_type`, `req.user_agent`,
//! `conn.client_ip`, certificate subjects). Both names are declared; the
//! CEL checker resolves the longest declared name a select chain spells, so
//! `req.url.startsWith('https://')` and `req.url.path == '/'` both check.
//!
//! Values reached through an index rather than a name (the cookies of
//! `req.cookies[k][i]`, the tokens of `actions.ngrok.jwt_validation.tokens[i]`)
//! are records ([`Type::Object`]) with typed fields.
//!
//! Where variables exist (ngrok's docs, `variables/*.mdx` and the action
//! pages):
//!
//! - `req.*` in `on_http_request` and `on_http_response`; `res.*` only in
//!   `on_http_response`;
//! - `conn.*`, `endpoint.*` and `time.now` in every phase;
//! - an action's results, `actions.ngrok.<action>.*`, in the phases where
//!   that action may run;
//! - `vars`, written by `set-vars`, in every phase, as `map(string, dyn)`:
//!   its values are whatever CEL value `set-vars` stored.

use std::sync::{Arc, LazyLock};

use portcullis_cel::types::ObjectType;
use portcullis_cel::{Env, Type};

#[cfg(test)]
mod tests;

/// A policy phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// `on_tcp_connect`: once per connection, on every endpoint protocol.
    TcpConnect,
    /// `on_http_request`: per HTTP request, before the upstream sees it.
    HttpRequest,
    /// `on_http_response`: per HTTP response, after the upstream answers.
    HttpResponse,
    /// `on_event_stream_message`: per server-sent event of a response
    /// (`text/event-stream`), as it streams. Its expressions see what
    /// `on_http_response`'s see.
    EventStreamMessage,
}

impl Phase {
    /// The phase's key in a policy document (`on_tcp_connect`, ...).
    pub fn key(self) -> &'static str {
        match self {
            Phase::TcpConnect => "on_tcp_connect",
            Phase::HttpRequest => "on_http_request",
            Phase::HttpResponse => "on_http_response",
            Phase::EventStreamMessage => "on_event_stream_message",
        }
    }

    /// Every phase with an environment of its own, in the order they run
    /// (`on_event_stream_message` reads `on_http_response`'s: [`env_phase`](Self::env_phase)).
    pub fn all() -> [Phase; 3] {
        [Phase::TcpConnect, Phase::HttpRequest, Phase::HttpResponse]
    }

    /// The phase whose variables and functions this one's expressions see.
    pub fn env_phase(self) -> Phase {
        match self {
            Phase::EventStreamMessage => Phase::HttpResponse,
            p => p,
        }
    }

    /// The phase whose document key is `key`.
    pub fn from_key(key: &str) -> Option<Phase> {
        Phase::all()
            .into_iter()
            .chain([Phase::EventStreamMessage])
            .find(|p| p.key() == key)
    }
}

/// One documented variable.
#[derive(Clone, Debug)]
pub struct Variable {
    /// The flat dotted name (`req.url.path`).
    pub name: &'static str,
    /// Its CEL type.
    pub ty: Type,
    /// The phases where it exists; never empty.
    pub phases: &'static [Phase],
    /// What it holds, in one line.
    pub doc: &'static str,
}

impl Variable {
    /// Whether the variable exists in `phase`.
    pub fn in_phase(&self, phase: Phase) -> bool {
        let phase = phase.env_phase();
        if self.phases.contains(&phase) {
            return true;
        }
        // An action's results stay readable in the phases after its own,
        // as in ngrok (`actions.ngrok.oauth.*` in `on_http_response`).
        let order = |p: Phase| match p {
            Phase::TcpConnect => 0,
            Phase::HttpRequest => 1,
            Phase::HttpResponse | Phase::EventStreamMessage => 2,
        };
        self.name.starts_with("actions.") && self.phases.iter().any(|p| order(*p) < order(phase))
    }
}

/// Every variable, in declaration order.
pub fn variables() -> &'static [Variable] {
    &VARIABLES
}

/// The variable named `name`, in any phase.
pub fn variable(name: &str) -> Option<&'static Variable> {
    VARIABLES.iter().find(|v| v.name == name)
}

/// The CEL environment for expressions in `phase`: the standard library
/// plus every variable that exists in that phase.
pub fn env(phase: Phase) -> Env {
    let phase = phase.env_phase();
    let mut env = Env::standard();
    for v in VARIABLES.iter().filter(|v| v.in_phase(phase)) {
        env.declare_var(v.name, v.ty.clone());
    }
    crate::functions::register(&mut env, phase);
    env
}

const ALL: &[Phase] = &[Phase::TcpConnect, Phase::HttpRequest, Phase::HttpResponse];
const REQ: &[Phase] = &[Phase::HttpRequest];
const RES: &[Phase] = &[Phase::HttpResponse];
const HTTP: &[Phase] = &[Phase::HttpRequest, Phase::HttpResponse];
const TCP_REQ: &[Phase] = &[Phase::TcpConnect, Phase::HttpRequest];

static VARIABLES: LazyLock<Vec<Variable>> = LazyLock::new(build);

/// The table under construction.
struct Table(Vec<Variable>);

impl Table {
    fn add(&mut self, name: &'static str, ty: Type, phases: &'static [Phase], doc: &'static str) {
        self.0.push(Variable {
            name,
            ty,
            phases,
            doc,
        });
    }
}

/// Declares variables in `$phases`: `name => type, doc;` per variable.
macro_rules! declare {
    ($t:expr, $phases:expr, { $($name:expr => $ty:expr, $doc:expr;)* }) => {
        $( $t.add($name, $ty, $phases, $doc); )*
    };
}

fn list(elem: Type) -> Type {
    Type::list(elem)
}

fn strings() -> Type {
    Type::list(Type::String)
}

/// `map(string, list(string))`: headers, trailers, query parameters.
fn multimap() -> Type {
    Type::map(Type::String, strings())
}

fn string_map() -> Type {
    Type::map(Type::String, Type::String)
}

fn dyn_map() -> Type {
    Type::map(Type::String, Type::Dyn)
}

fn object(name: &str, fields: Vec<(&str, Type)>) -> Type {
    Type::Object(Arc::new(ObjectType {
        name: Arc::from(name),
        fields: fields.into_iter().map(|(n, t)| (Arc::from(n), t)).collect(),
    }))
}

/// A cookie of `req.cookies[k][i]`.
fn request_cookie() -> Type {
    object(
        "ngrok.RequestCookie",
        vec![("name", Type::String), ("value", Type::String)],
    )
}

/// A cookie of `res.cookies[k][i]`, with its `Set-Cookie` attributes.
fn response_cookie() -> Type {
    object(
        "ngrok.ResponseCookie",
        vec![
            ("domain", Type::String),
            ("expires", Type::Timestamp),
            ("http_only", Type::Bool),
            ("max_age", Type::Duration),
            ("name", Type::String),
            ("path", Type::String),
            ("same_site", Type::String),
            ("secure", Type::Bool),
            ("unparsed_attributes", string_map()),
            ("value", Type::String),
        ],
    )
}

/// A certificate extension.
fn extension() -> Type {
    object(
        "ngrok.Extension",
        vec![
            ("id", Type::String),
            ("critical", Type::Bool),
            ("value", Type::Bytes),
        ],
    )
}

fn build() -> Vec<Variable> {
    let mut t = Table(Vec::with_capacity(512));
    request(&mut t);
    response(&mut t);
    connection(&mut t);
    endpoint_and_time(&mut t);
    action_results(&mut t);
    declare!(t, ALL, {
        "vars" => dyn_map(), "Variables set by `set-vars` in this phase (any CEL value).";
    });
    t.0
}

fn request(t: &mut Table) {
    declare!(t, HTTP, {
        "req.content_encoding" => strings(), "The encodings in the request's `Content-Encoding` header.";
        "req.content_length" => Type::Int, "The request body's length in bytes; absent without a body or when streamed.";
        "req.content_type" => Type::String, "The media type of the request's `Content-Type` header.";
        "req.content_type.parameters" => string_map(), "The parameters of the request's `Content-Type` header.";
        "req.content_type.raw" => Type::String, "The request's `Content-Type` header as sent.";
        "req.cookies" => Type::map(Type::String, list(request_cookie())), "The request's cookies by name (`.name`, `.value`), in `Cookie` header order.";
        "req.headers" => multimap(), "The request headers: lower-case names to lists of values.";
        "req.host" => Type::String, "The request's `Host` header.";
        "req.location" => Type::String, "The request's `Location` header.";
        "req.method" => Type::String, "The request method.";
        "req.trailers" => multimap(), "The request trailers: lower-case names to lists of values.";
        "req.ts.body_received" => Type::Timestamp, "When ngrok received the request body; absent without a body.";
        "req.ts.header_received" => Type::Timestamp, "When ngrok received the request header.";
        "req.url" => Type::String, "The normalized full URL of the request.";
        "req.url.authority" => Type::String, "The authority part of the request URL.";
        "req.url.host" => Type::String, "The host name of the request URL.";
        "req.url.path" => Type::String, "The request path, with its leading slash.";
        "req.url.port" => Type::Int, "The port of the request URL; absent when the URL names none.";
        "req.url.query" => Type::String, "The query string, without the leading `?`.";
        "req.url.query_params" => multimap(), "The query string parsed: names to lists of values.";
        "req.url.raw" => Type::String, "The full request URL before normalization.";
        "req.url.raw_path" => Type::String, "The request path before normalization, with its leading slash.";
        "req.url.scheme" => Type::String, "The scheme of the request URL.";
        "req.url.uri" => Type::String, "The path and query of the request URL.";
        "req.url.user_password" => Type::String, "The `user:password` part of the request URL.";
        "req.user_agent" => Type::String, "The request's `User-Agent` header.";
        "req.user_agent.name" => Type::String, "The user agent's name, parsed from `User-Agent`.";
        "req.user_agent.version" => Type::String, "The user agent's version, parsed from `User-Agent`.";
        "req.user_agent.os" => Type::String, "The user agent's operating system, parsed from `User-Agent`.";
        "req.user_agent.os_version" => Type::String, "The user agent's operating system version, parsed from `User-Agent`.";
        "req.user_agent.device" => Type::String, "The user agent's device, parsed from `User-Agent`.";
        "req.user_agent.is_mobile" => Type::Bool, "Whether the user agent is a mobile device.";
        "req.user_agent.is_tablet" => Type::Bool, "Whether the user agent is a tablet.";
        "req.user_agent.is_desktop" => Type::Bool, "Whether the user agent is a desktop device.";
        "req.user_agent.is_bot" => Type::Bool, "Whether the user agent is a bot.";
        "req.user_agent.url" => Type::String, "The user agent's URL, parsed from `User-Agent`.";
        "req.version" => Type::String, "The request's HTTP version.";
    });
}

fn response(t: &mut Table) {
    declare!(t, RES, {
        "res.content_encoding" => strings(), "The encodings in the response's `Content-Encoding` header.";
        "res.content_length" => Type::Int, "The response body's length in bytes.";
        "res.content_type" => Type::String, "The media type of the response's `Content-Type` header.";
        "res.content_type.parameters" => string_map(), "The parameters of the response's `Content-Type` header.";
        "res.content_type.raw" => Type::String, "The response's `Content-Type` header as sent.";
        "res.cookies" => Type::map(Type::String, list(response_cookie())), "The response's `Set-Cookie` cookies by name, longest path first.";
        "res.headers" => multimap(), "The response headers: lower-case names to lists of values.";
        "res.location" => Type::String, "The response's `Location` header.";
        "res.status_code" => Type::Int, "The response status code.";
        "res.trailers" => multimap(), "The response trailers: lower-case names to lists of values.";
    });
}

/// IP intelligence about `conn.client_ip` or `conn.server_ip`.
macro_rules! ip_intel {
    ($t:expr, $ip:literal) => {
        declare!($t, ALL, {
            concat!($ip, ".categories") => strings(), concat!("Categories that classify `", $ip, "` (e.g. `proxy.anonymous.tor`).");
            concat!($ip, ".as.number") => Type::Int, concat!("The autonomous system number of `", $ip, "`.");
            concat!($ip, ".as.organization") => Type::String, concat!("The autonomous system organization of `", $ip, "`.");
            concat!($ip, ".geo.location.city") => Type::String, concat!("The city (in English) where `", $ip, "` is likely located.");
            concat!($ip, ".geo.location.continent") => Type::String, concat!("The continent (in English) where `", $ip, "` is likely located.");
            concat!($ip, ".geo.location.country") => Type::String, concat!("The country (in English) where `", $ip, "` is likely located.");
            concat!($ip, ".geo.location.country_code") => Type::String, concat!("The ISO two-letter country code where `", $ip, "` is likely located.");
            concat!($ip, ".geo.location.is_eu") => Type::Bool, concat!("Whether `", $ip, "` is likely located in the EU.");
            concat!($ip, ".geo.location.latitude") => Type::String, concat!("The approximate latitude of `", $ip, "` (a string).");
            concat!($ip, ".geo.location.longitude") => Type::String, concat!("The approximate longitude of `", $ip, "` (a string).");
            concat!($ip, ".geo.location.metro_code") => Type::String, concat!("The metro code where `", $ip, "` is likely located.");
            concat!($ip, ".geo.location.postal_code") => Type::String, concat!("The postal code where `", $ip, "` is likely located.");
            concat!($ip, ".geo.location.radius") => Type::String, concat!("The accuracy radius in km of the location of `", $ip, "` (a string).");
            concat!($ip, ".geo.location.subdivision") => Type::String, concat!("The subdivision (in English) where `", $ip, "` is likely located.");
            concat!($ip, ".geo.location.timezone") => Type::String, concat!("The time zone where `", $ip, "` is likely located.");
            concat!($ip, ".geo.registered_location.city") => Type::String, concat!("The city (in English) where `", $ip, "` is registered.");
            concat!($ip, ".geo.registered_location.continent") => Type::String, concat!("The continent (in English) where `", $ip, "` is registered.");
            concat!($ip, ".geo.registered_location.country") => Type::String, concat!("The country (in English) where `", $ip, "` is registered.");
            concat!($ip, ".geo.registered_location.country_code") => Type::String, concat!("The ISO two-letter country code where `", $ip, "` is registered.");
            concat!($ip, ".geo.registered_location.is_eu") => Type::Bool, concat!("Whether `", $ip, "` is registered in the EU.");
            concat!($ip, ".geo.registered_location.metro_code") => Type::String, concat!("The metro code where `", $ip, "` is registered.");
            concat!($ip, ".geo.registered_location.subdivision") => Type::String, concat!("The subdivision (in English) where `", $ip, "` is registered.");
            concat!($ip, ".geo.registered_location.timezone") => Type::String, concat!("The time zone where `", $ip, "` is registered.");
            concat!($ip, ".is_on_blocklist") => Type::Bool, concat!("Whether `", $ip, "` is on a blocklist.");
            concat!($ip, ".is_tor_node") => Type::Bool, concat!("Whether `", $ip, "` is a Tor node.");
        });
    };
}

/// The fields of an X.509 certificate under `$p` (no `.pem`).
macro_rules! certificate {
    ($t:expr, $phases:expr, $p:literal, $what:literal) => {
        declare!($t, $phases, {
            concat!($p, ".extensions") => list(extension()), concat!("The extensions of ", $what, " (`.id`, `.critical`, `.value`).");
            concat!($p, ".issuer") => Type::String, concat!("The issuer of ", $what, ", as an RFC 2253 distinguished name.");
            concat!($p, ".issuer.common_name") => Type::String, concat!("The common name of the issuer of ", $what, ".");
            concat!($p, ".issuer.country") => strings(), concat!("The countries of the issuer of ", $what, ".");
            concat!($p, ".issuer.locality") => strings(), concat!("The localities of the issuer of ", $what, ".");
            concat!($p, ".issuer.organization") => strings(), concat!("The organizations of the issuer of ", $what, ".");
            concat!($p, ".issuer.organizational_unit") => strings(), concat!("The organizational units of the issuer of ", $what, ".");
            concat!($p, ".issuer.postal_code") => strings(), concat!("The postal codes of the issuer of ", $what, ".");
            concat!($p, ".issuer.province") => strings(), concat!("The provinces or states of the issuer of ", $what, ".");
            concat!($p, ".issuer.street_address") => strings(), concat!("The street addresses of the issuer of ", $what, ".");
            concat!($p, ".san") => Type::String, concat!("The subject alternative names of ", $what, ".");
            concat!($p, ".san.dns_names") => strings(), concat!("The DNS names among the subject alternative names of ", $what, ".");
            concat!($p, ".san.email_addresses") => strings(), concat!("The email addresses among the subject alternative names of ", $what, ".");
            concat!($p, ".san.ip_addresses") => strings(), concat!("The IP addresses among the subject alternative names of ", $what, ".");
            concat!($p, ".san.uris") => strings(), concat!("The URIs among the subject alternative names of ", $what, ".");
            concat!($p, ".serial_number") => Type::String, concat!("The serial number of ", $what, ".");
            concat!($p, ".signature_algorithm") => Type::String, concat!("The signature algorithm of ", $what, ".");
            concat!($p, ".subject") => Type::String, concat!("The subject of ", $what, ", as an RFC 2253 distinguished name.");
            concat!($p, ".subject.common_name") => Type::String, concat!("The common name of the subject of ", $what, ".");
            concat!($p, ".subject.country") => strings(), concat!("The countries of the subject of ", $what, ".");
            concat!($p, ".subject.locality") => strings(), concat!("The localities of the subject of ", $what, ".");
            concat!($p, ".subject.organization") => strings(), concat!("The organizations of the subject of ", $what, ".");
            concat!($p, ".subject.organizational_unit") => strings(), concat!("The organizational units of the subject of ", $what, ".");
            concat!($p, ".subject.postal_code") => strings(), concat!("The postal codes of the subject of ", $what, ".");
            concat!($p, ".subject.province") => strings(), concat!("The provinces or states of the subject of ", $what, ".");
            concat!($p, ".subject.street_address") => strings(), concat!("The street addresses of the subject of ", $what, ".");
            concat!($p, ".validity.not_after") => Type::Timestamp, concat!("When ", $what, " expires.");
            concat!($p, ".validity.not_before") => Type::Timestamp, concat!("When ", $what, " becomes valid.");
        });
    };
}

fn connection(t: &mut Table) {
    declare!(t, ALL, {
        "conn.bytes_in" => Type::Int, "Bytes received from the client on this connection.";
        "conn.bytes_out" => Type::Int, "Bytes sent to the client on this connection.";
        "conn.client_ip" => Type::String, "The connection's source IP (layer 4; never `X-Forwarded-For`).";
        "conn.client_port" => Type::Int, "The connection's source port.";
        "conn.server_ip" => Type::String, "The IP the connection was established on.";
        "conn.server_port" => Type::Int, "The port the connection was established on.";
        "conn.server_region" => Type::String, "The ngrok point of presence serving the connection.";
        "conn.ts.start" => Type::Timestamp, "When the connection started.";
        "conn.ts.end" => Type::Timestamp, "When the connection ended (appears only in an ngrok example).";
        "conn.geo.city" => Type::String, "The city (in English) where `conn.client_ip` is likely located (older geo names).";
        "conn.geo.country" => Type::String, "The country (in English) where `conn.client_ip` is likely located (older geo names).";
        "conn.geo.country_code" => Type::String, "The ISO two-letter country code of `conn.client_ip` (older geo names).";
        "conn.geo.latitude" => Type::String, "The approximate latitude of `conn.client_ip`, a string (older geo names).";
        "conn.geo.longitude" => Type::String, "The approximate longitude of `conn.client_ip`, a string (older geo names).";
        "conn.geo.radius" => Type::String, "The accuracy radius in km of `conn.geo`, a string (older geo names).";
        "conn.geo.subdivision" => Type::String, "The subdivision (in English) of `conn.client_ip` (older geo names).";
    });
    ip_intel!(t, "conn.client_ip");
    ip_intel!(t, "conn.server_ip");
    declare!(t, ALL, {
        "conn.tls.cipher_suite" => Type::String, "The cipher suite of the TLS handshake (when ngrok terminates TLS).";
        "conn.tls.ja4_fingerprint" => Type::String, "The JA4 fingerprint of the TLS handshake.";
        "conn.tls.negotiated_alpn" => Type::String, "The ALPN protocol agreed in the TLS handshake; empty if none.";
        "conn.tls.session_resumed" => Type::Bool, "Whether the TLS session was resumed (currently always false).";
        "conn.tls.sni" => Type::String, "The host name the client sent in the SNI extension.";
        "conn.tls.version" => Type::String, "The TLS version between the client and the proxy: `1.2` or `1.3`, as ngrok writes it.";
        "conn.tls.client.pem" => Type::String, "The client certificate, PEM-encoded.";
    });
    certificate!(t, ALL, "conn.tls.client", "the client certificate");
    certificate!(t, ALL, "conn.tls.server", "ngrok's server certificate");
    declare!(t, ALL, {
        "conn.k8s.pod.id" => Type::String, "The UID of the originating pod (Kubernetes-bound endpoints).";
        "conn.k8s.pod.metadata.name" => Type::String, "The name of the originating pod.";
        "conn.k8s.pod.metadata.namespace" => Type::String, "The namespace of the originating pod.";
        "conn.k8s.pod.metadata.annotations" => string_map(), "The originating pod's `k8s.ngrok.com/` annotations.";
        "conn.k8s.pod.metadata.error_code" => Type::String, "Set (`ERR_NGROK_28000`/`28001`) when pod identity could not be resolved.";
        "conn.k8s.pod.metadata.error_message" => Type::String, "Why pod identity could not be resolved.";
    });
}

fn endpoint_and_time(t: &mut Table) {
    declare!(t, ALL, {
        "endpoint.addr" => Type::String, "The endpoint's address (`host:port`).";
        "endpoint.host" => Type::String, "The endpoint's host name.";
        "endpoint.id" => Type::String, "The id of the endpoint serving the connection.";
        "endpoint.port" => Type::Int, "The endpoint's port.";
        "endpoint.protocol" => Type::String, "The endpoint's protocol: `http`, `https`, `tcp` or `tls`.";
        "endpoint.url" => Type::String, "The endpoint's URL.";
        "time.now" => Type::String, "The current UTC time as an RFC 3339 string; compare with `timestamp(time.now)`.";
    });
}

/// `error.code` and `error.message` of the action whose results are under `$p`.
macro_rules! action_error {
    ($t:expr, $phases:expr, $p:literal) => {
        declare!($t, $phases, {
            concat!($p, ".error.code") => Type::String, "The ngrok error code (`ERR_NGROK_...`) if the action failed.";
            concat!($p, ".error.message") => Type::String, "The error message if the action failed.";
        });
    };
}

fn action_results(t: &mut Table) {
    oauth_and_oidc(t);

    declare!(t, REQ, {
        "actions.ngrok.jwt_validation.tokens" => list(jwt_token()), "The JWTs the action processed (`.header`, `.payload`, `.verified`, ...).";
    });
    action_error!(t, REQ, "actions.ngrok.jwt_validation");

    declare!(t, ALL, {
        "actions.ngrok.restrict_ips.action" => Type::String, "The decision of `restrict-ips`: `allow` or `deny`.";
        "actions.ngrok.restrict_ips.matched_cidr" => Type::String, "The CIDR that decided `restrict-ips`; empty if none matched.";
    });
    action_error!(t, ALL, "actions.ngrok.restrict_ips");

    declare!(t, REQ, {
        "actions.ngrok.rate_limit.bucket_key" => Type::String, "The bucket `rate-limit` counted the request in.";
        "actions.ngrok.rate_limit.limited" => Type::Bool, "Whether `rate-limit` found the bucket over capacity.";
    });
    action_error!(t, REQ, "actions.ngrok.rate_limit");

    declare!(t, REQ, {
        "actions.ngrok.basic_auth.credentials.presented" => Type::Bool, "Whether the request presented Basic credentials.";
        "actions.ngrok.basic_auth.credentials.username" => Type::String, "The username of the presented Basic credentials.";
        "actions.ngrok.basic_auth.credentials.authorized" => Type::Bool, "Whether the presented Basic credentials were authorized.";
    });
    action_error!(t, REQ, "actions.ngrok.basic_auth");

    declare!(t, REQ, {
        "actions.ngrok.verify_webhook.verified" => Type::Bool, "Whether `verify-webhook` verified the webhook's signature.";
    });
    action_error!(t, REQ, "actions.ngrok.verify_webhook");

    declare!(t, REQ, {
        "actions.ngrok.url_rewrite.matches" => strings(), "The matches of `url-rewrite`'s `from` in the URL.";
        "actions.ngrok.url_rewrite.url" => Type::String, "The URL after `url-rewrite`.";
    });
    action_error!(t, REQ, "actions.ngrok.url_rewrite");

    declare!(t, REQ, {
        "actions.ngrok.redirect.matches" => strings(), "The matches of `redirect`'s `from` in the URL.";
        "actions.ngrok.redirect.url" => Type::String, "The URL `redirect` sent the client to.";
    });
    action_error!(t, REQ, "actions.ngrok.redirect");

    declare!(t, HTTP, {
        "actions.ngrok.add_headers.headers_added" => string_map(), "The headers `add-headers` added.";
    });
    action_error!(t, HTTP, "actions.ngrok.add_headers");

    declare!(t, HTTP, {
        "actions.ngrok.remove_headers.headers_removed" => strings(), "The headers `remove-headers` removed.";
    });
    action_error!(t, HTTP, "actions.ngrok.remove_headers");

    declare!(t, RES, {
        "actions.ngrok.compress.already_compressed" => Type::Bool, "Whether the body was already compressed, so `compress-response` left it.";
        "actions.ngrok.compress.negotiated_algorithm" => Type::String, "The algorithm `compress-response` negotiated and applied.";
    });
    action_error!(t, RES, "actions.ngrok.compress");

    declare!(t, TCP_REQ, {
        "actions.ngrok.forward_internal.url" => Type::String, "The URL `forward-internal` failed to forward to (with `on_error: continue`).";
    });
    action_error!(t, TCP_REQ, "actions.ngrok.forward_internal");

    http_request(t);

    declare!(t, ALL, {
        "actions.ngrok.log.metadata" => dyn_map(), "The metadata `log` logged.";
    });
    action_error!(t, ALL, "actions.ngrok.log");

    owasp(t);

    declare!(t, REQ, {
        "actions.ngrok.request_body_find_replace.replacements" => list(body_replacement()), "The replacements of `request-body-find-replace` that matched.";
    });
    action_error!(t, REQ, "actions.ngrok.request_body_find_replace");
    declare!(t, RES, {
        "actions.ngrok.response_body_find_replace.replacements" => list(body_replacement()), "The replacements of `response-body-find-replace` that matched.";
    });
    action_error!(t, RES, "actions.ngrok.response_body_find_replace");

    terminate_tls(t);
    ai_gateway(t);
}

fn oauth_and_oidc(t: &mut Table) {
    declare!(t, REQ, {
        "actions.ngrok.oauth.identity.id" => Type::String, "The ngrok Identity id of the `oauth` user.";
        "actions.ngrok.oauth.identity.email" => Type::String, "The email address of the `oauth` user.";
        "actions.ngrok.oauth.identity.name" => Type::String, "The name of the `oauth` user.";
        "actions.ngrok.oauth.identity.provider_user_id" => Type::String, "The identity provider's id of the `oauth` user.";
        "actions.ngrok.oauth.identity.current_provider_session_id" => Type::String, "The identity provider's id of the `oauth` user's session.";
        "actions.ngrok.oauth.access_token" => Type::String, "The OAuth access token (custom applications only).";
        "actions.ngrok.oauth.refresh_token" => Type::String, "The OAuth refresh token (custom applications only).";
        "actions.ngrok.oauth.expires_at" => Type::String, "When the `oauth` session expires, as a timestamp string.";
        "actions.ngrok.oauth.session_timed_out" => Type::Bool, "Whether the `oauth` session hit its idle timeout.";
        "actions.ngrok.oauth.session_max_duration_reached" => Type::Bool, "Whether the `oauth` session reached its maximum duration.";
        "actions.ngrok.oauth.userinfo_refreshed" => Type::Bool, "Whether `oauth` refreshed the user info on this request.";
    });
    action_error!(t, REQ, "actions.ngrok.oauth");

    // Portcullis extensions: what Microsoft Entra ID (and other OpenID
    // providers) say of the user beyond ngrok's identity fields.
    for (ns, action) in [
        ("oauth", "oauth"),
        ("oidc", "openid-connect"),
        ("saml", "saml"),
    ] {
        let name = |field: &str| -> &'static str {
            Box::leak(format!("actions.portcullis.{ns}.{field}").into_boxed_str())
        };
        let doc = |what: &str| -> &'static str {
            Box::leak(
                format!("{what} of the `{action}` user (a Portcullis extension).").into_boxed_str(),
            )
        };
        t.add(
            name("tid"),
            Type::String,
            REQ,
            doc("The Entra tenant id (`tid`)"),
        );
        t.add(
            name("oid"),
            Type::String,
            REQ,
            doc("The Entra object id (`oid`)"),
        );
        t.add(
            name("groups"),
            list(Type::String),
            REQ,
            doc("The group ids, overage resolved through Microsoft Graph,"),
        );
        t.add(
            name("roles"),
            list(Type::String),
            REQ,
            doc("The app roles (`roles`)"),
        );
        t.add(name("email_verified"), Type::Bool, REQ, doc("Whether the provider verified the email (`xms_edov` for Entra, `email_verified` otherwise)"));
    }

    declare!(t, REQ, {
        "actions.ngrok.saml.identity.id" => Type::String, "The identity of the `saml` user: Entra's tenant and object ids, else the NameID (a Portcullis extension, as ngrok documents no SAML variables).";
        "actions.ngrok.saml.identity.email" => Type::String, "The email address of the `saml` user (Entra's `emailaddress` claim, `user.mail`).";
        "actions.ngrok.saml.identity.name" => Type::String, "The display name of the `saml` user.";
        "actions.ngrok.saml.identity.provider_user_id" => Type::String, "The IdP's id of the `saml` user (Entra's object id, else the NameID).";
        "actions.ngrok.saml.identity.current_session_id" => Type::String, "The IdP's `SessionIndex` of the `saml` user's session.";
        "actions.ngrok.saml.name_id" => Type::String, "The assertion's `NameID`.";
        "actions.ngrok.saml.attributes" => multimap(), "The assertion's attributes by name (Entra's claim URIs), each a list of values.";
        "actions.ngrok.saml.expires_at" => Type::String, "When the `saml` session expires, as a timestamp string.";
        "actions.ngrok.saml.session_timed_out" => Type::Bool, "Whether the `saml` session hit its idle timeout.";
        "actions.ngrok.saml.session_max_duration_reached" => Type::Bool, "Whether the `saml` session reached its maximum duration.";
    });
    action_error!(t, REQ, "actions.ngrok.saml");

    // The objects ngrok documents above the leaves (`has()` and `!= null`
    // on them are how its examples ask whether a sign-in ran): maps of the
    // results set under them, declared `dyn` as ngrok declares them, for a
    // map's type would refuse the comparison with `null` its examples make.
    for (ns, action) in [
        ("oauth", "oauth"),
        ("oidc", "openid-connect"),
        ("saml", "saml"),
    ] {
        for (suffix, what) in [
            ("", "Every result"),
            (".identity", "The identity results"),
            (".error", "The error"),
        ] {
            t.add(
                Box::leak(format!("actions.ngrok.{ns}{suffix}").into_boxed_str()),
                Type::Dyn,
                REQ,
                Box::leak(
                    format!("{what} of `{action}`, as a map (absent until the action set one).")
                        .into_boxed_str(),
                ),
            );
        }
    }

    declare!(t, REQ, {
        "actions.ngrok.oidc.identity.id" => Type::String, "The ngrok Identity id of the `openid-connect` user.";
        "actions.ngrok.oidc.identity.email" => Type::String, "The email address of the `openid-connect` user.";
        "actions.ngrok.oidc.identity.name" => Type::String, "The name of the `openid-connect` user.";
        "actions.ngrok.oidc.identity.provider_user_id" => Type::String, "The identity provider's id of the `openid-connect` user.";
        "actions.ngrok.oidc.identity.current_session_id" => Type::String, "The id of the `openid-connect` user's current session.";
        "actions.ngrok.oidc.identity_token" => Type::String, "The OpenID Connect ID token.";
        "actions.ngrok.oidc.access_token" => Type::String, "The OpenID Connect access token.";
        "actions.ngrok.oidc.refresh_token" => Type::String, "The OpenID Connect refresh token.";
        "actions.ngrok.oidc.expires_at" => Type::String, "When the `openid-connect` session expires, as a timestamp string.";
        "actions.ngrok.oidc.session_timed_out" => Type::Bool, "Whether the `openid-connect` session hit its idle timeout.";
        "actions.ngrok.oidc.session_max_duration_reached" => Type::Bool, "Whether the `openid-connect` session reached its maximum duration.";
        "actions.ngrok.oidc.userinfo_refreshed" => Type::Bool, "Whether `openid-connect` refreshed the user info on this request.";
        "actions.ngrok.oidc.user_info_refreshed" => Type::Bool, "`userinfo_refreshed` as one ngrok page spells it.";
    });
    action_error!(t, REQ, "actions.ngrok.oidc");
}

/// A token of `actions.ngrok.jwt_validation.tokens[i]`.
fn jwt_token() -> Type {
    object(
        "ngrok.JwtToken",
        vec![
            ("header", dyn_map()),
            ("payload", dyn_map()),
            ("signature", Type::String),
            ("location", Type::String),
            ("location_property", Type::String),
            ("verified", Type::Bool),
        ],
    )
}

/// A match of `actions.ngrok.*_body_find_replace.replacements[i]`.
fn body_replacement() -> Type {
    object(
        "ngrok.BodyReplacement",
        vec![
            ("replacement_index", Type::Int),
            ("matched_content", Type::String),
        ],
    )
}

fn http_request(t: &mut Table) {
    // The header maps' value shape is not documented ("object"), nor is
    // `time_ms`'s type settled (documented as string, named as a number).
    let req = object(
        "ngrok.HttpRequestRequest",
        vec![
            ("method", Type::String),
            ("header", dyn_map()),
            ("url", Type::String),
            ("body", Type::String),
        ],
    );
    let res = object(
        "ngrok.HttpRequestResponse",
        vec![
            ("resolved_ip", Type::String),
            ("header", dyn_map()),
            ("status_code", Type::Int),
            ("time_ms", Type::Dyn),
            ("body", Type::String),
        ],
    );
    let attempt = object(
        "ngrok.HttpRequestAttempt",
        vec![
            ("resolved_ip", Type::String),
            ("response_header", dyn_map()),
            ("response_status_code", Type::Int),
            ("response_time_ms", Type::Dyn),
        ],
    );
    declare!(t, HTTP, {
        "actions.ngrok.http_request.req" => req, "The request `http-request` sent (`.method`, `.header`, `.url`, `.body`).";
        "actions.ngrok.http_request.res" => res, "The last response `http-request` received, with its `.body`.";
        "actions.ngrok.http_request.attempts" => list(attempt), "Every attempt of `http-request`, with its response's status and headers.";
    });
    action_error!(t, HTTP, "actions.ngrok.http_request");
}

fn owasp(t: &mut Table) {
    let rule = || {
        object(
            "ngrok.OwaspMatchedRule",
            vec![
                ("id", Type::Int),
                ("message", Type::String),
                ("severity", Type::String),
                ("data", Type::String),
            ],
        )
    };
    declare!(t, REQ, {
        "actions.ngrok.owasp_crs_request.decision" => Type::String, "The decision of `owasp-crs-request`: `allow`, or `deny` when the score reached the threshold.";
        "actions.ngrok.owasp_crs_request.anomaly_score" => Type::Int, "The request's total anomaly score.";
        "actions.ngrok.owasp_crs_request.anomaly_score_threshold" => Type::Int, "The anomaly score at which the request is blocked (5, or `anomaly_threshold`).";
        "actions.ngrok.owasp_crs_request.matched_rules" => list(rule()), "The CRS rules the request matched, each once, in order.";
    });
    action_error!(t, REQ, "actions.ngrok.owasp_crs_request");
    declare!(t, RES, {
        "actions.ngrok.owasp_crs_response.decision" => Type::String, "The decision of `owasp-crs-response`: `allow`, or `deny` when the score reached the threshold.";
        "actions.ngrok.owasp_crs_response.anomaly_score" => Type::Int, "The response's total anomaly score.";
        "actions.ngrok.owasp_crs_response.anomaly_score_threshold" => Type::Int, "The anomaly score at which the response is blocked (4, or `anomaly_threshold`).";
        "actions.ngrok.owasp_crs_response.matched_rules" => list(rule()), "The CRS rules the response matched, each once, in order.";
    });
    action_error!(t, RES, "actions.ngrok.owasp_crs_response");
}

fn terminate_tls(t: &mut Table) {
    declare!(t, ALL, {
        "actions.ngrok.terminate_tls.version" => Type::String, "The TLS version `terminate-tls` negotiated.";
        "actions.ngrok.terminate_tls.cipher_suite" => Type::String, "The cipher suite `terminate-tls` negotiated.";
        "actions.ngrok.terminate_tls.sni" => Type::String, "The host name the client sent in the SNI extension.";
        "actions.ngrok.terminate_tls.warnings" => strings(), "Warnings from parsing the certificate authority ids.";
        "actions.ngrok.terminate_tls.error_code" => Type::String, "The error code if `terminate-tls` failed (as its page spells it).";
        "actions.ngrok.terminate_tls.error_message" => Type::String, "The error message if `terminate-tls` failed (as its page spells it).";
    });
    certificate!(
        t,
        ALL,
        "actions.ngrok.terminate_tls.client",
        "the client certificate"
    );
    certificate!(
        t,
        ALL,
        "actions.ngrok.terminate_tls.server",
        "ngrok's server certificate"
    );
    action_error!(t, ALL, "actions.ngrok.terminate_tls");
}

fn ai_gateway(t: &mut Table) {
    let client = object(
        "ngrok.AiGatewayClient",
        vec![
            ("method", Type::String),
            ("path", Type::String),
            ("request_headers", dyn_map()),
            ("user_agent", Type::String),
            ("model", Type::String),
            ("models", strings()),
            ("api_key_hash", Type::String),
            ("rejected_models", list(dyn_map())),
        ],
    );
    declare!(t, REQ, {
        "actions.ngrok.ai_gateway.status" => Type::String, "The outcome of `ai-gateway`: `success` or `error`.";
        "actions.ngrok.ai_gateway.client" => client, "The client's request as `ai-gateway` saw it (`.model`, `.models`, ...).";
        "actions.ngrok.ai_gateway.input_ngrok_tokens" => Type::Int, "Input tokens counted by ngrok.";
        "actions.ngrok.ai_gateway.output_ngrok_tokens" => Type::Int, "Output tokens counted by ngrok.";
        "actions.ngrok.ai_gateway.gateway_latency_ms" => Type::Int, "Milliseconds `ai-gateway` added, upstream time excluded.";
        "actions.ngrok.ai_gateway.model_selection" => list(dyn_map()), "How `ai-gateway` selected the models to try.";
        "actions.ngrok.ai_gateway.models_tried" => list(dyn_map()), "The models `ai-gateway` tried, in order, with their requests.";
        "actions.ngrok.ai_gateway.success.model_index" => Type::Int, "The index in `models_tried` of the model that succeeded.";
        "actions.ngrok.ai_gateway.success.request_index" => Type::Int, "The index in `requests_made` of the request that succeeded.";
        "actions.ngrok.ai_gateway.success.model" => Type::String, "The model that handled the request.";
        "actions.ngrok.ai_gateway.success.provider" => Type::String, "The provider of the model that handled the request.";
        "actions.ngrok.ai_gateway.success.author" => Type::String, "The author of the model that handled the request; may be empty.";
    });
    action_error!(t, REQ, "actions.ngrok.ai_gateway");
}
