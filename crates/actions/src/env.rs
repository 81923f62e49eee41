//! The CEL environments the proxy compiles against, and what each of their
//! variables reads from a [`RequestCtx`](crate::RequestCtx).
//!
//! An environment is the policy crate's, `schema::env(phase)`, the same one
//! `portcullis lint` checks against, with ngrok's request helpers
//! (`getReqHeader`, …) bound to the request. Because the variable
//! declarations are the schema's, in the schema's order, a [`VarId`] maps
//! to a `Field` through one table per phase, built once per process.

use std::sync::{Arc, LazyLock, RwLock};

use portcullis_cel::{Activation, Env, EvalError, Map, Overload, Type, Value, VarId};
use portcullis_policy::functions::{self, EnvSecrets, SecretSource};
use portcullis_policy::schema::{self, Phase};

/// Where a variable's value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    ReqContentEncoding,
    ReqContentLength,
    ReqContentType,
    ReqContentTypeParams,
    ReqContentTypeRaw,
    ReqCookies,
    ReqHeaders,
    ReqHost,
    ReqLocation,
    ReqMethod,
    ReqTrailers,
    ReqTsHeaderReceived,
    ReqUrl,
    UrlAuthority,
    UrlHost,
    UrlPath,
    UrlPort,
    UrlQuery,
    UrlQueryParams,
    UrlRaw,
    UrlRawPath,
    UrlScheme,
    UrlUri,
    UrlUserPassword,
    UserAgent,
    ReqVersion,
    ResContentEncoding,
    ResContentLength,
    ResContentType,
    ResContentTypeParams,
    ResContentTypeRaw,
    ResCookies,
    ResHeaders,
    ResLocation,
    ResStatusCode,
    ResTrailers,
    ConnClientIp,
    ConnClientPort,
    ConnBytesIn,
    ConnBytesOut,
    ConnServerIp,
    ConnServerPort,
    ConnTsStart,
    ConnTlsCipherSuite,
    ConnTlsAlpn,
    ConnTlsSessionResumed,
    ConnTlsSni,
    ConnTlsVersion,
    /// `conn.tls.client.<FIELDS[i]>`: the client certificate of mutual TLS.
    ConnTlsClient(u8),
    /// `conn.tls.server.<FIELDS[i]>`: the certificate the proxy served.
    ConnTlsServer(u8),
    /// A part of the parsed `User-Agent` (`crate::user_agent`), in the
    /// order of `req.user_agent.name`, `.version`, `.os`, `.os_version`,
    /// `.device`, `.is_bot`, `.is_mobile`, `.is_tablet`, `.is_desktop`,
    /// `.url`.
    UserAgentPart(u8),
    /// What the IP intelligence databases say of the client's address
    /// (`false`) or the server's (`true`).
    Intel(bool, Intel),
    /// `actions.ngrok.terminate_tls.version`, `.cipher_suite`, `.sni`
    /// (0, 1, 2): the handshake's facts, when `terminate-tls` made it.
    TerminateTls(u8),
    /// `actions.ngrok.terminate_tls.client.<FIELDS[i]>`.
    TerminateTlsClient(u8),
    /// `actions.ngrok.terminate_tls.server.<FIELDS[i]>`.
    TerminateTlsServer(u8),
    EndpointAddr,
    EndpointHost,
    EndpointId,
    EndpointPort,
    EndpointProtocol,
    EndpointUrl,
    TimeNow,
    Vars,
    /// An action result: the variable's index in the schema.
    Result(u16),
    /// A map of the results under this name (`actions.ngrok.oauth`,
    /// `actions.ngrok.oauth.identity`), built when read.
    ResultObject(&'static str),
    /// A variable this proxy has no source for (IP intelligence, geo,
    /// Kubernetes, client certificates, user-agent parsing): absent, so
    /// reading it is an error and `has()` is false.
    Unavailable,
}

impl Field {
    fn of(name: &str) -> Field {
        use Field::*;
        match name {
            "req.content_encoding" => ReqContentEncoding,
            "req.content_length" => ReqContentLength,
            "req.content_type" => ReqContentType,
            "req.content_type.parameters" => ReqContentTypeParams,
            "req.content_type.raw" => ReqContentTypeRaw,
            "req.cookies" => ReqCookies,
            "req.headers" => ReqHeaders,
            "req.host" => ReqHost,
            "req.location" => ReqLocation,
            "req.method" => ReqMethod,
            "req.trailers" => ReqTrailers,
            "req.ts.header_received" => ReqTsHeaderReceived,
            "req.url" => ReqUrl,
            "req.url.authority" => UrlAuthority,
            "req.url.host" => UrlHost,
            "req.url.path" => UrlPath,
            "req.url.port" => UrlPort,
            "req.url.query" => UrlQuery,
            "req.url.query_params" => UrlQueryParams,
            "req.url.raw" => UrlRaw,
            "req.url.raw_path" => UrlRawPath,
            "req.url.scheme" => UrlScheme,
            "req.url.uri" => UrlUri,
            "req.url.user_password" => UrlUserPassword,
            "req.user_agent" => UserAgent,
            "req.user_agent.name" => UserAgentPart(0),
            "req.user_agent.version" => UserAgentPart(1),
            "req.user_agent.os" => UserAgentPart(2),
            "req.user_agent.os_version" => UserAgentPart(3),
            "req.user_agent.device" => UserAgentPart(4),
            "req.user_agent.is_bot" => UserAgentPart(5),
            "req.user_agent.is_mobile" => UserAgentPart(6),
            "req.user_agent.is_tablet" => UserAgentPart(7),
            "req.user_agent.is_desktop" => UserAgentPart(8),
            "req.user_agent.url" => UserAgentPart(9),
            "req.version" => ReqVersion,
            "res.content_encoding" => ResContentEncoding,
            "res.content_length" => ResContentLength,
            "res.content_type" => ResContentType,
            "res.content_type.parameters" => ResContentTypeParams,
            "res.content_type.raw" => ResContentTypeRaw,
            "res.cookies" => ResCookies,
            "res.headers" => ResHeaders,
            "res.location" => ResLocation,
            "res.status_code" => ResStatusCode,
            "res.trailers" => ResTrailers,
            "conn.client_ip" => ConnClientIp,
            "conn.client_port" => ConnClientPort,
            "conn.bytes_in" => ConnBytesIn,
            "conn.bytes_out" => ConnBytesOut,
            "conn.server_ip" => ConnServerIp,
            "conn.server_port" => ConnServerPort,
            "conn.ts.start" => ConnTsStart,
            "conn.tls.cipher_suite" => ConnTlsCipherSuite,
            "conn.tls.negotiated_alpn" => ConnTlsAlpn,
            "conn.tls.session_resumed" => ConnTlsSessionResumed,
            "conn.tls.sni" => ConnTlsSni,
            "conn.tls.version" => ConnTlsVersion,
            _ if name.starts_with("conn.tls.client.") => {
                certificate_field(name, "conn.tls.client.").map_or(Unavailable, ConnTlsClient)
            }
            _ if name.starts_with("conn.tls.server.") => {
                certificate_field(name, "conn.tls.server.").map_or(Unavailable, ConnTlsServer)
            }
            _ if intel(name).is_some() => intel(name).map_or(Unavailable, |(s, f)| Intel(s, f)),
            "actions.ngrok.terminate_tls.version" => TerminateTls(0),
            "actions.ngrok.terminate_tls.cipher_suite" => TerminateTls(1),
            "actions.ngrok.terminate_tls.sni" => TerminateTls(2),
            _ if name.starts_with("actions.ngrok.terminate_tls.client.") => {
                certificate_field(name, "actions.ngrok.terminate_tls.client.")
                    .map_or(Unavailable, TerminateTlsClient)
            }
            _ if name.starts_with("actions.ngrok.terminate_tls.server.") => {
                certificate_field(name, "actions.ngrok.terminate_tls.server.")
                    .map_or(Unavailable, TerminateTlsServer)
            }
            "endpoint.addr" => EndpointAddr,
            "endpoint.host" => EndpointHost,
            "endpoint.id" => EndpointId,
            "endpoint.port" => EndpointPort,
            "endpoint.protocol" => EndpointProtocol,
            "endpoint.url" => EndpointUrl,
            "time.now" => TimeNow,
            "vars" => Vars,
            _ if name.starts_with("actions.ngrok.") || name.starts_with("actions.portcullis.") => {
                // The sign-in objects above their leaves, which no action
                // sets whole (others, such as `http_request.res`, are set
                // whole by their action and read as results).
                let object = ["oauth", "oidc", "saml"].iter().find_map(|ns| {
                    let rest = name.strip_prefix("actions.ngrok.")?.strip_prefix(ns)?;
                    matches!(rest, "" | ".identity" | ".error")
                        .then(|| schema::variables().iter().find(|v| v.name == name))
                        .flatten()
                });
                match (object, schema_index(name)) {
                    (Some(v), _) => ResultObject(v.name),
                    (None, Some(i)) => Result(i),
                    (None, None) => Unavailable,
                }
            }
            _ => Unavailable,
        }
    }
}

/// The index of variable `name` in the schema.
/// A fact of IP intelligence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Intel {
    City,
    Continent,
    Country,
    CountryCode,
    IsEu,
    Latitude,
    Longitude,
    MetroCode,
    PostalCode,
    Radius,
    Subdivision,
    Timezone,
    RegisteredContinent,
    RegisteredCountry,
    RegisteredCountryCode,
    RegisteredIsEu,
    AsNumber,
    AsOrganization,
    Categories,
    IsTorNode,
    IsOnBlocklist,
}

/// The IP intelligence fact `name` reads, and whether of the server's
/// address: `conn.geo.*` (ngrok's older names), `conn.client_ip.*` and
/// `conn.server_ip.*`. The facts no database here gives (a registered
/// location's city) are not among them.
fn intel(name: &str) -> Option<(bool, Intel)> {
    use Intel::*;
    let location = |f: &str| {
        Some(match f {
            "city" => City,
            "continent" => Continent,
            "country" => Country,
            "country_code" => CountryCode,
            "is_eu" => IsEu,
            "latitude" => Latitude,
            "longitude" => Longitude,
            "metro_code" => MetroCode,
            "postal_code" => PostalCode,
            "radius" => Radius,
            "subdivision" => Subdivision,
            "timezone" => Timezone,
            _ => return None,
        })
    };
    if let Some(f) = name.strip_prefix("conn.geo.") {
        return location(f).map(|f| (false, f));
    }
    let (server, rest) = if let Some(rest) = name.strip_prefix("conn.client_ip.") {
        (false, rest)
    } else {
        (true, name.strip_prefix("conn.server_ip.")?)
    };
    let fact = match rest {
        "as.number" => AsNumber,
        "as.organization" => AsOrganization,
        "categories" => Categories,
        "is_tor_node" => IsTorNode,
        "is_on_blocklist" => IsOnBlocklist,
        "geo.registered_location.continent" => RegisteredContinent,
        "geo.registered_location.country" => RegisteredCountry,
        "geo.registered_location.country_code" => RegisteredCountryCode,
        "geo.registered_location.is_eu" => RegisteredIsEu,
        _ => location(rest.strip_prefix("geo.location.")?)?,
    };
    Some((server, fact))
}

/// The index in [`crate::certificate::FIELDS`] of the certificate field
/// `name` names under `prefix`.
fn certificate_field(name: &str, prefix: &str) -> Option<u8> {
    let field = name.strip_prefix(prefix)?;
    crate::certificate::FIELDS
        .iter()
        .position(|f| *f == field)
        .and_then(|i| u8::try_from(i).ok())
}

pub(crate) fn schema_index(name: &str) -> Option<u16> {
    schema::variables()
        .iter()
        .position(|v| v.name == name)
        .and_then(|i| u16::try_from(i).ok())
}

struct Phases {
    envs: [Env; 3],
    fields: [Vec<Field>; 3],
}

fn slot(phase: Phase) -> usize {
    match phase.env_phase() {
        Phase::TcpConnect => 0,
        Phase::HttpRequest => 1,
        Phase::HttpResponse | Phase::EventStreamMessage => 2,
    }
}

static PHASES: LazyLock<Phases> = LazyLock::new(|| {
    let envs = Phase::all().map(build);
    let fields = [0, 1, 2].map(|i| {
        envs.get(i)
            .map(|env| env.vars().iter().map(|v| Field::of(&v.name)).collect())
            .unwrap_or_default()
    });
    Phases { envs, fields }
});

/// The environment expressions in `phase` compile against.
pub fn env(phase: Phase) -> &'static Env {
    // INVARIANT: `envs` has one entry per phase, in `slot` order.
    match &PHASES.envs {
        [tcp, req, res] => match phase.env_phase() {
            Phase::TcpConnect => tcp,
            Phase::HttpRequest => req,
            Phase::HttpResponse | Phase::EventStreamMessage => res,
        },
    }
}

/// What `var` of `phase` reads.
pub(crate) fn field(phase: Phase, var: VarId) -> Option<Field> {
    PHASES.fields.get(slot(phase))?.get(var.index()).copied()
}

/// A replacement for the environment's secrets, when one is set.
static REPLACED: RwLock<Option<Arc<dyn SecretSource>>> = RwLock::new(None);

/// The secrets `secrets.get` reads: the environment's
/// (`PORTCULLIS_SECRET_*`), unless they were replaced for the process.
struct Secrets;

impl Secrets {
    fn with<T>(f: impl FnOnce(&dyn SecretSource) -> T) -> T {
        match REPLACED.read().as_deref() {
            Ok(Some(s)) => f(&**s),
            _ => f(&EnvSecrets),
        }
    }
}

impl SecretSource for Secrets {
    fn get(&self, vault: &str, name: &str) -> Option<String> {
        Secrets::with(|s| s.get(vault, name))
    }

    fn location(&self, vault: &str, name: &str) -> Option<String> {
        Secrets::with(|s| s.location(vault, name))
    }
}

/// Replaces the secrets `secrets.get` reads, for the whole process
/// (`None`: the environment's again). For `portcullis test`, whose cases
/// bring their own secrets and must not read the shell's.
pub fn replace_secrets(source: Option<Arc<dyn SecretSource>>) {
    if let Ok(mut replaced) = REPLACED.write() {
        *replaced = source;
    }
}

fn build(phase: Phase) -> Env {
    let mut env = schema::env(phase);
    functions::register_with_secrets(&mut env, phase, Arc::new(Secrets));
    if matches!(phase, Phase::HttpRequest | Phase::HttpResponse) {
        bind_request_helpers(&mut env, "req", "Req", "request");
    }
    if phase == Phase::HttpResponse {
        bind_request_helpers(&mut env, "res", "Res", "response");
    }
    env
}

/// Binds `get{Req,Res}Header`, `has…Header`, `get…Cookie`, `has…Cookie`
/// (and, for the request, `getQueryParam`/`hasQueryParam`) to the
/// variables they read. The declarations (and their overload ids) are the
/// policy crate's; only the implementations are replaced.
fn bind_request_helpers(env: &mut Env, prefix: &str, name: &str, what: &'static str) {
    let var = |env: &Env, n: &str| env.var(&format!("{prefix}.{n}")).map(|(id, _)| id);
    let (Some(headers), Some(cookies)) = (var(env, "headers"), var(env, "cookies")) else {
        return;
    };
    let strings = Type::list(Type::String);
    let lower = prefix;
    let cookie_ty = match env.var(&format!("{prefix}.cookies")).map(|(_, d)| &d.ty) {
        Some(Type::Map(_, list)) => match &**list {
            Type::List(c) => (**c).clone(),
            _ => Type::Dyn,
        },
        _ => Type::Dyn,
    };
    env.add_function(
        &format!("get{name}Header"),
        Overload::global(
            &format!("ngrok_get_{lower}_header"),
            vec![Type::String],
            strings.clone(),
        )
        .host(move |act, args| {
            let (m, n) = map_and_name(act, headers, args, what)?;
            Ok(functions::header_values(&m, n))
        }),
    );
    env.add_function(
        &format!("has{name}Header"),
        Overload::global(
            &format!("ngrok_has_{lower}_header"),
            vec![Type::String],
            Type::Bool,
        )
        .host(move |act, args| {
            let (m, n) = map_and_name(act, headers, args, what)?;
            let found = match functions::header_values(&m, n) {
                Value::List(l) => !l.is_empty(),
                _ => false,
            };
            Ok(Value::Bool(found))
        }),
    );
    env.add_function(
        &format!("get{name}Cookie"),
        Overload::global(
            &format!("ngrok_get_{lower}_cookie"),
            vec![Type::String],
            cookie_ty,
        )
        .host(move |act, args| {
            let (m, n) = map_and_name(act, cookies, args, what)?;
            functions::first_cookie(&m, n)
                .ok_or_else(|| EvalError::new(format!("no cookie named `{n}`")))
        }),
    );
    env.add_function(
        &format!("has{name}Cookie"),
        Overload::global(
            &format!("ngrok_has_{lower}_cookie"),
            vec![Type::String],
            Type::Bool,
        )
        .host(move |act, args| {
            let (m, n) = map_and_name(act, cookies, args, what)?;
            Ok(Value::Bool(functions::first_cookie(&m, n).is_some()))
        }),
    );
    if prefix == "req" {
        let Some(params) = var(env, "url.query_params") else {
            return;
        };
        env.add_function(
            "getQueryParam",
            Overload::global("ngrok_get_query_param", vec![Type::String], strings).host(
                move |act, args| {
                    let (m, n) = map_and_name(act, params, args, what)?;
                    Ok(functions::query_param_values(&m, n))
                },
            ),
        );
        env.add_function(
            "hasQueryParam",
            Overload::global("ngrok_has_query_param", vec![Type::String], Type::Bool).host(
                move |act, args| {
                    let (m, n) = map_and_name(act, params, args, what)?;
                    let found = match functions::query_param_values(&m, n) {
                        Value::List(l) => !l.is_empty(),
                        _ => false,
                    };
                    Ok(Value::Bool(found))
                },
            ),
        );
    }
}

/// The map variable `var` and the name argument of a helper call.
fn map_and_name<'a, 'v>(
    act: &'a dyn Activation,
    var: VarId,
    args: &'v [Value<'a>],
    what: &str,
) -> Result<(Map<'a>, &'v str), EvalError> {
    let name = args
        .first()
        .and_then(Value::as_str)
        .ok_or_else(|| EvalError::new("expected a string argument"))?;
    match act.resolve(var) {
        Some(Value::Map(m)) => Ok((m, name)),
        _ => Err(EvalError::new(format!("no {what} in this phase"))),
    }
}
