//! The config schema of every action (spec §3).

use portcullis_cel::Diagnostic;

use super::values::{self, HOUR, MINUTE, SECOND};
use super::{ActionSpec, Cel, Cx, Dur, Extra, Field, Format, Str, Ty, Unique, get, is_null_node};
use crate::code;
use crate::schema::Phase;
use crate::yaml::{Node, NodeKind};

const TCP: Phase = Phase::TcpConnect;
const REQ: Phase = Phase::HttpRequest;
const RES: Phase = Phase::HttpResponse;
const SSE: Phase = Phase::EventStreamMessage;

/// The schema of `kind`, or `None` for an unknown type.
pub(crate) fn spec(kind: &str) -> Option<ActionSpec> {
    let (phases, fields, extra): (&'static [Phase], Option<&'static [Field]>, Option<Extra>) =
        match kind {
            "add-headers" => (&[REQ, RES], Some(ADD_HEADERS), Some(add_headers)),
            "basic-auth" => (&[REQ], Some(BASIC_AUTH), Some(basic_auth)),
            "circuit-breaker" => (&[REQ], Some(CIRCUIT_BREAKER), Some(circuit_breaker)),
            "close-connection" => (&[TCP, REQ], None, None),
            // The action hub also lists `on_http_request`.
            "compress-response" => (&[REQ, RES], Some(COMPRESS_RESPONSE), None),
            "custom-response" => (&[REQ, RES], Some(CUSTOM_RESPONSE), None),
            "deny" => (&[TCP, REQ], Some(DENY), None),
            "forward-internal" => (&[TCP, REQ], Some(FORWARD_INTERNAL), Some(forward_internal)),
            "http-request" => (&[REQ, RES], Some(HTTP_REQUEST), None),
            "jwt-validation" => (&[REQ], Some(JWT_VALIDATION), Some(jwt_validation)),
            "log" => (&[TCP, REQ, RES], Some(LOG), None),
            "oauth" => (&[REQ], Some(OAUTH), Some(oauth)),
            "openid-connect" => (&[REQ], Some(OPENID_CONNECT), None),
            "owasp-crs-request" => (&[REQ], Some(OWASP_CRS), None),
            "owasp-crs-response" => (&[RES], Some(OWASP_CRS), None),
            "rate-limit" => (&[REQ], Some(RATE_LIMIT), None),
            "redirect" => (&[REQ], Some(REDIRECT), Some(headers_of)),
            "remove-headers" => (&[REQ, RES], Some(REMOVE_HEADERS), Some(remove_headers)),
            "request-body-find-replace" => (&[REQ], Some(BODY_FIND_REPLACE), None),
            "response-body-find-replace" => (&[RES], Some(BODY_FIND_REPLACE), None),
            // The action page also lists `on_http_response`.
            "restrict-ips" => (&[TCP, REQ, RES], Some(RESTRICT_IPS), Some(restrict_ips)),
            "saml" => (&[REQ], Some(SAML), Some(saml)),
            "set-vars" => (&[TCP, REQ, RES], Some(SET_VARS), None),
            // Runs in `on_event_stream_message` only, which is not supported.
            "sse-find-replace" => (&[SSE], Some(SSE_FIND_REPLACE), None),
            "terminate-tls" => (&[TCP], Some(TERMINATE_TLS), Some(terminate_tls)),
            "url-rewrite" => (&[REQ], Some(URL_REWRITE), None),
            "verify-webhook" => (&[REQ], Some(VERIFY_WEBHOOK), Some(verify_webhook)),
            _ => return None,
        };
    Some(ActionSpec {
        phases,
        fields,
        extra,
    })
}

// ---- Shared types ----

const BOOL: Ty = Ty::Bool;
const STRING: Ty = Ty::Str(Str::PLAIN);
const TEMPLATE: Ty = Ty::Str(Str::TEMPLATE);
const NONEMPTY: Ty = Ty::Str(Str::PLAIN.nonempty());
const TEMPLATE_NONEMPTY: Ty = Ty::Str(Str::TEMPLATE.nonempty());
const REGEX: Ty = Ty::Str(Str::TEMPLATE.format(Format::Regex));
const STRINGS: Ty = Ty::List {
    item: &NONEMPTY,
    min: 0,
    max: usize::MAX,
    unique: Unique::Exact,
};
const STRING_MAP: Ty = Ty::Map {
    value: &STRING,
    min: 0,
    max: usize::MAX,
};
/// Response headers: at most 10, values interpolated.
const HEADERS_10: Ty = Ty::Map {
    value: &TEMPLATE,
    min: 0,
    max: 10,
};
const HTTP_STATUS: Ty = Ty::Int { min: 100, max: 599 };
const ON_ERROR_HALT: Ty = Ty::Enum {
    values: &["halt", "continue"],
    unsupported: &[],
};
/// A duration of zero or more.
const DURATION: Ty = Ty::Duration(Dur {
    min: 0,
    max: None,
    multiple: 0,
});
const fn duration(min: i128, max: i128) -> Ty {
    Ty::Duration(Dur {
        min,
        max: Some(max),
        multiple: 0,
    })
}

// ---- add-headers / remove-headers ----

const ADD_HEADERS: &[Field] = &[Field::req(
    "headers",
    Ty::Map {
        value: &TEMPLATE,
        min: 1,
        max: 10,
    },
)];

const REMOVE_HEADERS: &[Field] = &[Field::req(
    "headers",
    Ty::List {
        item: &NONEMPTY,
        min: 1,
        max: 10,
        unique: Unique::IgnoreCase,
    },
)];

/// Header names of a `headers` map, checked for case-insensitive
/// duplicates (ngrok lower-cases them).
fn header_keys<'n>(cx: &mut Cx, entries: &'n [(Node, Node)]) -> Vec<(&'n Node, String)> {
    let Some((_, NodeKind::Map(headers))) = get(entries, "headers").map(|(k, v)| (k, &v.kind))
    else {
        return Vec::new();
    };
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for (k, _) in headers {
        let Some(s) = k.scalar() else { continue };
        let lower = s.value.to_ascii_lowercase();
        if seen.contains(&lower) {
            cx.duplicate(k.span, &s.value, "headers");
        } else {
            seen.push(lower.clone());
        }
        out.push((k, lower));
    }
    out
}

fn headers_of(cx: &mut Cx, entries: &[(Node, Node)]) {
    header_keys(cx, entries);
}

fn add_headers(cx: &mut Cx, entries: &[(Node, Node)]) {
    for (key, name) in header_keys(cx, entries) {
        if name == "user-agent" || name == "ngrok-skip-browser-warning" {
            cx.push(
                Diagnostic::error(
                    code::INVALID_VALUE,
                    key.span,
                    format!("`add-headers` cannot add `{name}`"),
                )
                .with_help("ngrok does not let a policy set this header (ERR_NGROK_2204)"),
            );
        }
    }
}

fn remove_headers(cx: &mut Cx, entries: &[(Node, Node)]) {
    let Some((_, NodeKind::Seq(items))) = get(entries, "headers").map(|(k, v)| (k, &v.kind)) else {
        return;
    };
    for item in items {
        if item
            .scalar()
            .is_some_and(|s| s.value.eq_ignore_ascii_case("user-agent"))
        {
            cx.push(
                Diagnostic::error(
                    code::INVALID_VALUE,
                    item.span,
                    "`remove-headers` cannot remove `user-agent`",
                )
                .with_help("ngrok does not let a policy touch this header (ERR_NGROK_2204)"),
            );
        }
    }
}

// ---- basic-auth ----

const BASIC_AUTH: &[Field] = &[
    Field::req(
        "credentials",
        Ty::List {
            item: &Ty::Custom(credential, &[TEMPLATE, Ty::Obj(CREDENTIAL_OBJECT)]),
            min: 1,
            max: 10,
            unique: Unique::Exact,
        },
    ),
    Field::opt("realm", Ty::Str(Str::PLAIN.max_len(128))),
    Field::opt("enforce", BOOL),
];

const CREDENTIAL_OBJECT: &[Field] = &[
    Field::req("username", TEMPLATE_NONEMPTY),
    Field::req("password", TEMPLATE_NONEMPTY),
];

/// A credential: `"user:password"`, or the legacy `{username, password}`.
fn credential(cx: &mut Cx, node: &Node, path: &str) {
    if let NodeKind::Map(_) = &node.kind {
        cx.push(
            Diagnostic::warning(
                code::lint::DEPRECATED,
                node.span,
                "a `{username, password}` credential is a legacy form",
            )
            .with_help("write `\"username:password\"`"),
        );
        let within = format!("`{path}`");
        cx.object(node, CREDENTIAL_OBJECT, path, &within, node.span);
        return;
    }
    cx.string(node, &Str::TEMPLATE.nonempty(), path);
    let Some(s) = node.scalar() else { return };
    if s.value.contains("${") || is_null_node(node) || s.value.trim().is_empty() {
        return;
    }
    let Some((user, password)) = s.value.split_once(':') else {
        cx.push(
            Diagnostic::error(
                code::INVALID_VALUE,
                node.span,
                format!("`{path}` must be `username:password`"),
            )
            .with_help("separate the username and the password with `:`"),
        );
        return;
    };
    if user.is_empty() {
        cx.push(Diagnostic::error(
            code::EMPTY,
            node.span,
            format!("the username of `{path}` is empty"),
        ));
    }
    let len = password.chars().count();
    if !(8..=128).contains(&len) {
        cx.push(
            Diagnostic::error(
                code::OUT_OF_RANGE,
                node.span,
                format!("a basic-auth password must be 8 to 128 characters, was {len}"),
            )
            .with_help("ngrok rejects it (ERR_NGROK_2215)"),
        );
    }
}

fn basic_auth(cx: &mut Cx, entries: &[(Node, Node)]) {
    if let Some((_, realm)) = get(entries, "realm")
        && let Some(s) = realm.scalar()
        && !s.value.is_ascii()
    {
        cx.push(
            Diagnostic::error(code::INVALID_VALUE, realm.span, "`realm` must be ASCII")
                .with_help("ngrok rejects it (ERR_NGROK_2204)"),
        );
    }
    let Some((_, NodeKind::Seq(items))) = get(entries, "credentials").map(|(k, v)| (k, &v.kind))
    else {
        return;
    };
    let mut users: Vec<&str> = Vec::new();
    for item in items {
        // The legacy `{username, password}` form: Basic's `user:password`
        // cannot tell a username with a colon from a shorter one whose
        // password starts where the colon is (RFC 7617 forbids it).
        if let Some(user) = item.get("username")
            && user.scalar().is_some_and(|u| u.value.contains(':'))
        {
            cx.push(
                Diagnostic::error(
                    code::INVALID_VALUE,
                    user.span,
                    "a username cannot contain `:`",
                )
                .with_help("Basic credentials are `username:password`; the colon ends the username (RFC 7617)"),
            );
            continue;
        }
        let Some(s) = item.scalar() else { continue };
        if s.value.contains("${") {
            continue;
        }
        let Some((user, _)) = s.value.split_once(':') else {
            continue;
        };
        if users.contains(&user) {
            cx.push(
                Diagnostic::error(
                    code::DUPLICATE_VALUE,
                    item.span,
                    format!("the username `{user}` appears twice in `credentials`"),
                )
                .with_help("remove the duplicate (ERR_NGROK_2231)"),
            );
        } else {
            users.push(user);
        }
    }
}

// ---- circuit-breaker ----

const CIRCUIT_BREAKER: &[Field] = &[
    Field::opt("error_threshold", Ty::Float { min: 0.0, max: 1.0 }),
    Field::opt(
        "volume_threshold",
        Ty::Int {
            min: 1,
            max: 2_000_000_000,
        },
    ),
    Field::opt("window_duration", duration(SECOND, 2 * MINUTE)),
    Field::opt("tripped_duration", duration(SECOND, 2 * MINUTE)),
    Field::opt("num_buckets", Ty::Int { min: 1, max: 100 }),
    Field::opt("enforce", BOOL),
];

fn circuit_breaker(cx: &mut Cx, entries: &[(Node, Node)]) {
    if let Some((_, v)) = get(entries, "num_buckets")
        && let Some(s) = v.scalar().filter(|s| s.style == crate::yaml::Style::Plain)
        && s.value
            .trim()
            .parse::<i64>()
            .is_ok_and(|n| n != 10 && (1..=100).contains(&n))
    {
        cx.push(
            Diagnostic::error(
                code::OUT_OF_RANGE,
                v.span,
                format!("`num_buckets` must be 10, was {}", s.value),
            )
            .with_help("ngrok fixes it at 10; remove it (ERR_NGROK_2215)"),
        );
    }
}

// ---- compress-response ----

const COMPRESS_RESPONSE: &[Field] = &[Field::opt(
    "algorithms",
    Ty::List {
        item: &Ty::Enum {
            values: &["gzip", "deflate", "br", "compress"],
            unsupported: &[],
        },
        min: 1,
        max: 4,
        unique: Unique::Exact,
    },
)];

// ---- custom-response / deny / redirect / url-rewrite ----

const CUSTOM_RESPONSE: &[Field] = &[
    Field::opt("status_code", HTTP_STATUS),
    Field::opt("body", TEMPLATE),
    Field::opt("headers", HEADERS_10),
    Field::deprecated("content", "body", TEMPLATE),
    Field::removed("content_type", "set `headers: {content-type: ...}`"),
];

const DENY: &[Field] = &[Field::opt("status_code", HTTP_STATUS)];

const REDIRECT: &[Field] = &[
    Field::opt("from", REGEX),
    Field::req("to", TEMPLATE_NONEMPTY),
    Field::opt("status_code", Ty::Int { min: 300, max: 399 }),
    Field::opt("headers", HEADERS_10),
];

const URL_REWRITE: &[Field] = &[
    Field::opt("from", REGEX),
    Field::req("to", TEMPLATE_NONEMPTY),
];

// ---- forward-internal ----

const FORWARD_INTERNAL: &[Field] = &[
    Field::req("url", Ty::Str(Str::TEMPLATE.nonempty().format(Format::Url))),
    Field::opt("on_error", ON_ERROR_HALT),
    // Older ngrok examples write `binding: internal`; internal is the only
    // binding `forward-internal` reaches.
    Field::opt(
        "binding",
        Ty::Enum {
            values: &["internal"],
            unsupported: &[],
        },
    ),
];

fn forward_internal(cx: &mut Cx, entries: &[(Node, Node)]) {
    if let Some((key, _)) = get(entries, "binding") {
        cx.push(
            Diagnostic::warning(
                code::lint::DEPRECATED,
                key.span,
                "`binding: internal` is what `forward-internal` always does; the field is ignored",
            )
            .with_help("remove it"),
        );
    }
    let Some((_, url)) = get(entries, "url") else {
        return;
    };
    let Some(s) = url.scalar() else { return };
    if s.value.contains("${") {
        return;
    }
    if let Ok(host) = super::values::check_url(&s.value)
        && !host.ends_with(".internal")
    {
        cx.push(
            Diagnostic::error(
                code::INVALID_VALUE,
                url.span,
                format!("`url` must name an internal endpoint, was `{}`", s.value),
            )
            .with_help(
                "internal endpoints have hosts ending in `.internal`, as in `https://api.internal`",
            ),
        );
    }
}

// ---- http-request ----

const QUERY_PARAM: &[Field] = &[
    Field::req("key", Ty::Str(Str::PLAIN.nonempty().max_len(128))),
    Field::opt("value", Ty::Str(Str::TEMPLATE.max_len(8192))),
];

const HTTP_REQUEST: &[Field] = &[
    Field::req("url", Ty::Str(Str::TEMPLATE.nonempty().format(Format::Url))),
    Field::opt(
        "method",
        Ty::Enum {
            values: &["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            unsupported: &[],
        },
    ),
    Field::opt(
        "query_params",
        Ty::List {
            item: &Ty::Obj(QUERY_PARAM),
            min: 0,
            max: 32,
            unique: Unique::No,
        },
    ),
    Field::opt("headers", HEADERS_10),
    Field::opt("body", TEMPLATE),
    // ⚠ the docs say both 0–5 and 0–100; the wider range.
    Field::opt("max_redirects", Ty::Int { min: 0, max: 100 }),
    Field::opt("timeout", duration(SECOND, 30 * SECOND)),
    Field::opt(
        "retry_condition",
        Ty::Str(Str {
            cel: Cel::Bare,
            ..Str::PLAIN
        }),
    ),
    Field::opt(
        "on_error",
        Ty::Enum {
            values: &["continue", "halt"],
            unsupported: &[],
        },
    ),
];

// ---- jwt-validation ----

const ALLOW_ITEM: &[Field] = &[Field::req("value", TEMPLATE_NONEMPTY)];
const ALLOW_LIST: &[Field] = &[Field::req(
    "allow_list",
    Ty::List {
        item: &Ty::Obj(ALLOW_ITEM),
        min: 1,
        max: usize::MAX,
        unique: Unique::No,
    },
)];

const TOKEN: &[Field] = &[
    Field::req(
        "type",
        Ty::Enum {
            values: &[
                "id_token",
                "access_token",
                "at+jwt",
                "it+jwt",
                "plain",
                "jwt",
            ],
            unsupported: &[],
        },
    ),
    Field::req(
        "method",
        Ty::Enum {
            values: &["header", "body"],
            unsupported: &[],
        },
    ),
    Field::req("name", TEMPLATE_NONEMPTY),
    Field::opt("prefix", TEMPLATE),
];

const JWT_HTTP: &[Field] = &[Field::req(
    "tokens",
    Ty::List {
        item: &Ty::Obj(TOKEN),
        min: 1,
        max: usize::MAX,
        unique: Unique::No,
    },
)];

const JWS_ALGORITHMS: &[&str] = &[
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256",
    "PS384", "PS512", "EdDSA",
];

const KEY_SOURCES: &[Field] = &[Field::opt(
    "additional_jkus",
    Ty::List {
        item: &Ty::Str(Str::TEMPLATE.nonempty().format(Format::Url)),
        min: 0,
        max: 100,
        unique: Unique::Exact,
    },
)];

const KEY_IDENTIFICATION: &[Field] = &[Field::opt("token_claims", STRINGS)];

const KEYS: &[Field] = &[
    Field::req("sources", Ty::Obj(KEY_SOURCES)),
    Field::opt(
        "identification",
        Ty::List {
            item: &Ty::Obj(KEY_IDENTIFICATION),
            min: 0,
            max: usize::MAX,
            unique: Unique::No,
        },
    ),
];

/// `jws.keys`: documented as a list, written as an object in every
/// example; both are accepted.
fn jws_keys(cx: &mut Cx, node: &Node, path: &str) {
    let within = format!("`{path}`");
    match &node.kind {
        NodeKind::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                let sub = format!("{path}[{i}]");
                cx.object(item, KEYS, &sub, &within, item.span);
            }
        }
        _ => {
            cx.object(node, KEYS, path, &within, node.span);
        }
    }
}

const JWS: &[Field] = &[
    Field::req(
        "allowed_algorithms",
        Ty::List {
            item: &Ty::Custom(jws_algorithm, &[]),
            min: 1,
            max: usize::MAX,
            unique: Unique::Exact,
        },
    ),
    Field::req(
        "keys",
        Ty::Custom(
            jws_keys,
            &[
                Ty::List {
                    item: &Ty::Obj(KEYS),
                    min: 0,
                    max: usize::MAX,
                    unique: Unique::No,
                },
                Ty::Obj(KEYS),
            ],
        ),
    ),
];

fn jws_algorithm(cx: &mut Cx, node: &Node, path: &str) {
    if node
        .scalar()
        .is_some_and(|s| s.value.eq_ignore_ascii_case("none"))
    {
        cx.push(
            Diagnostic::error(
                code::INVALID_VALUE,
                node.span,
                "`none` is not an allowed JWS algorithm",
            )
            .with_help("unsigned tokens are never accepted (ERR_NGROK_2204)"),
        );
        return;
    }
    cx.value(
        node,
        &Ty::Enum {
            values: JWS_ALGORITHMS,
            unsupported: &[],
        },
        path,
        node.span,
    );
}

const JWT_VALIDATION: &[Field] = &[
    Field::req("issuer", Ty::Obj(ALLOW_LIST)),
    Field::opt("audience", Ty::Obj(ALLOW_LIST)),
    Field::req("http", Ty::Obj(JWT_HTTP)),
    Field::req("jws", Ty::Obj(JWS)),
];

fn jwt_validation(cx: &mut Cx, entries: &[(Node, Node)]) {
    let Some((_, http)) = get(entries, "http") else {
        return;
    };
    let NodeKind::Map(http) = &http.kind else {
        return;
    };
    let Some((_, NodeKind::Seq(tokens))) = get(http, "tokens").map(|(k, v)| (k, &v.kind)) else {
        return;
    };
    let mut seen: Vec<(String, String)> = Vec::new();
    for token in tokens {
        let NodeKind::Map(fields) = &token.kind else {
            continue;
        };
        let text = |name: &str| {
            get(fields, name)
                .and_then(|(_, v)| v.scalar())
                .map(|s| s.value.to_ascii_lowercase())
        };
        let (Some(method), Some(name)) = (text("method"), text("name")) else {
            continue;
        };
        let pair = (method, name);
        if seen.contains(&pair) {
            cx.push(
                Diagnostic::error(
                    code::DUPLICATE_VALUE,
                    token.span,
                    format!(
                        "`http.tokens` has two tokens in the {} `{}`",
                        pair.0, pair.1
                    ),
                )
                .with_help("each (method, name) pair must be unique (ERR_NGROK_2231)"),
            );
        } else {
            seen.push(pair);
        }
    }
}

// ---- log / set-vars ----

const LOG: &[Field] = &[Field::req(
    "metadata",
    Ty::Map {
        value: &Ty::Any,
        min: 0,
        max: usize::MAX,
    },
)];

const SET_VARS: &[Field] = &[Field::req(
    "vars",
    Ty::List {
        // Each value, however deep, may interpolate.
        item: &Ty::Custom(
            set_var,
            &[Ty::Map {
                value: &Ty::Any,
                min: 0,
                max: usize::MAX,
            }],
        ),
        min: 1,
        max: usize::MAX,
        unique: Unique::No,
    },
)];

/// A `set-vars` entry: a map of exactly one variable.
fn set_var(cx: &mut Cx, node: &Node, path: &str) {
    match &node.kind {
        NodeKind::Map(entries) if entries.len() == 1 => {
            if let Some((k, _)) = entries.first()
                && k.scalar().is_none_or(|s| s.value.trim().is_empty())
            {
                cx.push(
                    Diagnostic::error(code::EMPTY, k.span, "a variable needs a name")
                        .with_help("ngrok rejects it (ERR_NGROK_2223)"),
                );
            }
        }
        NodeKind::Map(entries) => {
            let msg = if entries.is_empty() {
                format!("`{path}` sets no variable")
            } else {
                format!(
                    "`{path}` sets {} variables; each entry sets one",
                    entries.len()
                )
            };
            cx.push(
                Diagnostic::error(code::INVALID_VALUE, node.span, msg)
                    .with_help("write one `- name: value` entry per variable"),
            );
        }
        _ => cx.push(
            Diagnostic::error(
                code::WRONG_TYPE,
                node.span,
                format!(
                    "`{path}` must be a map of one variable, not {}",
                    node.describe()
                ),
            )
            .with_help("write `- name: value`"),
        ),
    }
}

// ---- oauth / openid-connect ----

const SESSION_FIELDS_HELP: &str = "set both (an app registered with the provider), or neither to use the deployment's app for the provider (`oauth_apps` in the config) (ERR_NGROK_2234)";

const OAUTH: &[Field] = &[
    Field::req(
        "provider",
        Ty::Enum {
            values: &[
                "microsoft",
                "google",
                "github",
                "gitlab",
                "facebook",
                "amazon",
                "linkedin",
                "twitch",
            ],
            unsupported: &[],
        },
    ),
    Field::opt("auth_id", NONEMPTY),
    // Both, or neither: then the deployment's app for the provider
    // (ngrok's managed app), see `oauth`.
    Field::opt("client_id", TEMPLATE_NONEMPTY),
    Field::opt("client_secret", TEMPLATE_NONEMPTY),
    Field::opt("scopes", STRINGS),
    Field::opt("authz_url_params", STRING_MAP),
    Field::opt("max_session_duration", DURATION),
    Field::opt("idle_session_timeout", DURATION),
    Field::deprecated("idle_session_duration", "idle_session_timeout", DURATION),
    Field::opt("userinfo_refresh_interval", DURATION),
    Field::opt("allow_cors_preflight", BOOL),
    Field::opt("auth_cookie_domain", NONEMPTY),
    // Portcullis extensions: where the provider sends users back, and the
    // provider's host (Microsoft's national clouds and tenant, a
    // self-managed GitLab, loopback in tests).
    Field::opt("callback_path", NONEMPTY),
    Field::opt("authority_host", BASE_URL),
    Field::opt("tenant", NONEMPTY),
    Field::opt("graph_url", BASE_URL),
    Field::opt("api_url", BASE_URL),
    Field::opt("allowed_tenants", TENANTS),
];

const OPENID_CONNECT: &[Field] = &[
    Field::req(
        "issuer_url",
        Ty::Str(Str::PLAIN.nonempty().max_len(255).format(Format::Url)),
    ),
    Field::opt("auth_id", NONEMPTY),
    Field::req("client_id", TEMPLATE_NONEMPTY),
    // Without a secret, a public client: the code is redeemed with PKCE
    // alone (RFC 7636), as single-page and native apps register.
    Field::opt("client_secret", TEMPLATE_NONEMPTY),
    Field::opt("scopes", STRINGS),
    Field::opt("authz_url_params", STRING_MAP),
    Field::opt("max_session_duration", DURATION),
    Field::opt("idle_session_timeout", DURATION),
    // ngrok's openid-connect page spells it this way; its oauth page says
    // `idle_session_timeout`: both are current here.
    Field::opt("idle_session_duration", DURATION),
    Field::opt("userinfo_refresh_interval", DURATION),
    Field::opt("allow_cors_preflight", BOOL),
    Field::opt("auth_cookie_domain", NONEMPTY),
    // Portcullis extensions: where the provider sends users back, and
    // Microsoft Graph, for Entra's groups overage.
    Field::opt("callback_path", NONEMPTY),
    Field::opt("graph_url", BASE_URL),
    Field::opt("allowed_tenants", TENANTS),
];

/// `oauth` without `client_id` and `client_secret` is ngrok's managed
/// app: here, the deployment's app for the provider. One without the
/// other is an error.
fn oauth(cx: &mut Cx, entries: &[(Node, Node)]) {
    match (get(entries, "client_id"), get(entries, "client_secret")) {
        (Some((key, _)), None) | (None, Some((key, _))) => cx.push(
            Diagnostic::error(
                code::MISSING,
                key.span,
                "`client_id` and `client_secret` go together",
            )
            .with_help(SESSION_FIELDS_HELP),
        ),
        (None, None) => {
            let provider = get(entries, "provider")
                .and_then(|(_, v)| v.scalar().map(|s| s.value.clone()))
                .unwrap_or_default();
            let anchor = get(entries, "provider").map_or_else(
                || {
                    entries
                        .first()
                        .map_or(portcullis_cel::Span::new(0, 0), |(k, _)| k.span)
                },
                |(k, _)| k.span,
            );
            let upper = provider.to_ascii_uppercase();
            cx.push(
                Diagnostic::warning(
                    code::lint::DEPLOYMENT_CREDENTIALS,
                    anchor,
                    format!("`oauth` without `client_id` and `client_secret` signs in with the deployment's `{provider}` app (ngrok's managed app)"),
                )
                .with_help(format!(
                    "define it under `oauth_apps.{provider}` in the config, or in PORTCULLIS_OAUTH_{upper}_CLIENT_ID and PORTCULLIS_OAUTH_{upper}_CLIENT_SECRET; the proxy does not start without it"
                )),
            );
        }
        _ => {}
    }
}

/// `saml`: ngrok's published schema (`idp_metadata` or
/// `idp_metadata_url`, `force_authn`, `allow_idp_initiated`,
/// `authorized_groups`, `entity_id`, `assertion_consumer_service_url`),
/// its legacy module's `nameid_format`, and the session settings of the
/// other sign-in actions.
const SAML: &[Field] = &[
    Field::opt("idp_metadata", NONEMPTY),
    Field::opt(
        "idp_metadata_url",
        Ty::Str(Str::PLAIN.nonempty().format(Format::Url)),
    ),
    Field::opt("force_authn", BOOL),
    Field::opt("allow_idp_initiated", BOOL),
    Field::opt("authorized_groups", STRINGS),
    Field::opt("entity_id", NONEMPTY),
    Field::opt(
        "assertion_consumer_service_url",
        Ty::Str(Str::PLAIN.nonempty().format(Format::Url)),
    ),
    Field::opt(
        "nameid_format",
        Ty::Enum {
            values: &[
                "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
                "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
                "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
                "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
            ],
            unsupported: &[],
        },
    ),
    Field::opt("auth_id", NONEMPTY),
    Field::opt("max_session_duration", DURATION),
    Field::opt("idle_session_timeout", DURATION),
    Field::opt("allow_cors_preflight", BOOL),
    Field::opt("auth_cookie_domain", NONEMPTY),
    // Portcullis extensions: AuthnRequests signed for Entra's "Require
    // verification certificates" (the key best from `secrets.get`).
    Field::opt("request_signing_key", TEMPLATE_NONEMPTY),
    Field::opt("request_signing_certificate", NONEMPTY),
    // Entra's token encryption: the SP's key assertions are encrypted to.
    Field::opt("decryption_key", TEMPLATE_NONEMPTY),
    Field::opt("decryption_certificate", NONEMPTY),
    // Entra's groups overage, read from Microsoft Graph as an application
    // (client credentials): an assertion carries no token to ask with.
    Field::opt("graph_client_id", TEMPLATE_NONEMPTY),
    Field::opt("graph_client_secret", TEMPLATE_NONEMPTY),
    Field::opt("authority_host", BASE_URL),
    Field::opt("graph_url", BASE_URL),
];

/// One of `idp_metadata` and `idp_metadata_url` (ERR_NGROK_1681, 1691).
fn saml(cx: &mut Cx, entries: &[(Node, Node)]) {
    let anchor = entries
        .first()
        .map_or(portcullis_cel::Span::new(0, 0), |(k, _)| k.span);
    match (get(entries, "idp_metadata"), get(entries, "idp_metadata_url")) {
        (Some(_), Some((key, _))) => cx.push(
            Diagnostic::error(
                code::CONFLICT,
                key.span,
                "`saml` takes `idp_metadata` or `idp_metadata_url`, not both",
            )
            .with_help("ngrok rejects both (ERR_NGROK_1681)"),
        ),
        (None, None) => cx.push(
            Diagnostic::error(
                code::MISSING,
                anchor,
                "`saml` needs `idp_metadata` (the IdP's metadata XML) or `idp_metadata_url`",
            )
            .with_help("Entra: the app's Federation Metadata XML, or its App Federation Metadata Url (ERR_NGROK_1691)"),
        ),
        _ => {}
    }
    match (get(entries, "graph_client_id"), get(entries, "graph_client_secret")) {
        (Some((key, _)), None) | (None, Some((key, _))) => cx.push(
            Diagnostic::error(
                code::MISSING,
                key.span,
                "`graph_client_id` and `graph_client_secret` go together",
            )
            .with_help("an app registration in the IdP's tenant with Graph's GroupMember.Read.All application permission"),
        ),
        _ => {}
    }
}

/// Where sign-in sends the user's tokens or the client secret.
const BASE_URL: Ty = Ty::Str(Str::PLAIN.nonempty().format(Format::BaseUrl));

/// Entra tenant ids, compared with the token's `tid` (a GUID) in any case.
const TENANTS: Ty = Ty::List {
    item: &Ty::Custom(tenant_id, &[]),
    min: 0,
    max: usize::MAX,
    unique: Unique::IgnoreCase,
};

/// The personal Microsoft accounts' tenant, which `consumers` stands for.
const CONSUMERS: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// An `allowed_tenants` entry: a tenant id. The token's `tid` is always a
/// GUID, so a domain or an authority alias (`common`, `consumers`) would
/// match no one and refuse every user; each gets its own help.
fn tenant_id(cx: &mut Cx, node: &Node, path: &str) {
    let before = cx.diags.len();
    cx.value(node, &NONEMPTY, path, node.span);
    if cx.diags.len() > before {
        return;
    }
    let Some(s) = node.scalar() else { return };
    let value = s.value.trim();
    if values::is_guid(value) {
        return;
    }
    let lower = value.to_ascii_lowercase();
    let help = match lower.as_str() {
        "consumers" => {
            format!(
                "personal Microsoft accounts sign in with the tenant id `{CONSUMERS}`: write that"
            )
        }
        "common" | "organizations" => format!(
            "`{lower}` is an authority, not a tenant: to let any tenant in, leave `allowed_tenants` out"
        ),
        _ if values::is_domain(&lower) => {
            "tokens name their tenant by id (`tid`), never by domain: \
             write the tenant id (a GUID) shown on the tenant's overview in the Entra admin center"
                .to_string()
        }
        _ => {
            "write the tenant id, a GUID such as `72f988bf-86f1-41af-91ab-2d7cd011db47`".to_string()
        }
    };
    cx.push(
        Diagnostic::error(
            code::INVALID_VALUE,
            node.span,
            format!("`{path}` must be a tenant id (a GUID), was `{value}`"),
        )
        .with_help(help),
    );
}

// ---- owasp-crs ----

const OWASP_CRS: &[Field] = &[
    Field::opt("on_error", ON_ERROR_HALT),
    Field::opt("process_body", BOOL),
    Field::opt(
        "exclude_rule_ids",
        Ty::List {
            item: &Ty::Int {
                min: 900_000,
                max: 999_999,
            },
            min: 0,
            max: usize::MAX,
            unique: Unique::Exact,
        },
    ),
    // Portcullis extensions: ngrok fixes paranoia level 1 and the CRS's
    // default thresholds, and always blocks.
    Field::opt("paranoia_level", Ty::Int { min: 1, max: 4 }),
    Field::opt(
        "anomaly_threshold",
        Ty::Int {
            min: 1,
            max: 10_000,
        },
    ),
    Field::opt("enforce", BOOL),
];

// ---- rate-limit ----

const RATE_LIMIT: &[Field] = &[
    Field::req("name", Ty::Str(Str::PLAIN.nonempty().max_len(1023))),
    Field::opt("enforce", BOOL),
    Field::req(
        "algorithm",
        Ty::Enum {
            values: &["sliding_window"],
            unsupported: &[],
        },
    ),
    Field::req(
        "capacity",
        Ty::Int {
            min: 1,
            max: 2_000_000_000,
        },
    ),
    Field::req(
        "rate",
        Ty::Duration(Dur {
            min: MINUTE,
            max: Some(24 * HOUR),
            multiple: 10 * SECOND,
        }),
    ),
    Field::req(
        "bucket_key",
        Ty::List {
            item: &Ty::Str(Str {
                cel: Cel::Bare,
                ..Str::PLAIN.nonempty()
            }),
            min: 0,
            max: 10,
            unique: Unique::Exact,
        },
    ),
];

// ---- find/replace ----

const REPLACEMENT: &[Field] = &[
    Field::req(
        "from",
        Ty::Str(Str::TEMPLATE.nonempty().format(Format::Regex)),
    ),
    Field::opt("to", TEMPLATE),
];

const BODY_FIND_REPLACE: &[Field] = &[Field::req(
    "replacements",
    Ty::List {
        item: &Ty::Obj(REPLACEMENT),
        min: 1,
        max: usize::MAX,
        unique: Unique::No,
    },
)];

const SSE_REPLACEMENT: &[Field] = &[
    Field::opt(
        "field",
        Ty::Enum {
            values: &["data", "retry"],
            unsupported: &[],
        },
    ),
    Field::req(
        "from",
        Ty::Str(Str::TEMPLATE.nonempty().format(Format::Regex)),
    ),
    Field::opt("to", TEMPLATE),
];

const SSE_FIND_REPLACE: &[Field] = &[Field::req(
    "replacements",
    Ty::List {
        item: &Ty::Obj(SSE_REPLACEMENT),
        min: 1,
        max: usize::MAX,
        unique: Unique::No,
    },
)];

// ---- restrict-ips ----

const CIDRS: Ty = Ty::List {
    item: &Ty::Str(Str::TEMPLATE.nonempty().format(Format::Cidr)),
    min: 0,
    max: usize::MAX,
    unique: Unique::Exact,
};

const RESTRICT_IPS: &[Field] = &[
    Field::opt("enforce", BOOL),
    Field::opt("allow", CIDRS),
    Field::opt("deny", CIDRS),
    Field::opt("ip_policies", STRINGS),
];

fn restrict_ips(cx: &mut Cx, entries: &[(Node, Node)]) {
    if let Some((_, policies)) = get(entries, "ip_policies")
        && let NodeKind::Seq(items) = &policies.kind
    {
        for item in items {
            if let Some(s) = item.scalar()
                && !s.value.starts_with("ipp_")
            {
                cx.push(
                    Diagnostic::error(
                        code::INVALID_VALUE,
                        item.span,
                        format!("`{}` is not an IP Policy id", s.value),
                    )
                    .with_help("IP Policy ids start with `ipp_` (ERR_NGROK_2216)"),
                );
            }
        }
    }
    let has = |name| get(entries, name).is_some();
    if !has("allow") && !has("deny") && !has("ip_policies") {
        let anchor = entries
            .first()
            .map_or(portcullis_cel::Span::new(0, 0), |(k, _)| k.span);
        cx.push(
            Diagnostic::error(
                code::MISSING,
                anchor,
                "`restrict-ips` needs `allow`, `deny` or `ip_policies`",
            )
            .with_help("ngrok rejects it (ERR_NGROK_2234)"),
        );
    }
}

// ---- terminate-tls ----

const TLS_VERSION: Ty = Ty::Enum {
    values: &["1.2", "1.3"],
    unsupported: &[],
};

const TERMINATE_TLS: &[Field] = &[
    Field::opt("min_version", TLS_VERSION),
    Field::opt("max_version", TLS_VERSION),
    Field::opt("server_private_key", TEMPLATE_NONEMPTY),
    Field::opt("server_certificate", TEMPLATE_NONEMPTY),
    Field::opt(
        "mutual_tls_certificate_authorities",
        Ty::List {
            item: &TEMPLATE_NONEMPTY,
            min: 0,
            max: usize::MAX,
            unique: Unique::Exact,
        },
    ),
    Field::opt(
        "mutual_tls_verification_strategy",
        Ty::Enum {
            values: &["require-and-verify", "require-any", "request"],
            unsupported: &[],
        },
    ),
    // A Portcullis extension: the protocols ALPN offers.
    Field::opt("alpn_protocols", STRINGS),
];

fn terminate_tls(cx: &mut Cx, entries: &[(Node, Node)]) {
    for (have, need) in [
        ("server_private_key", "server_certificate"),
        ("server_certificate", "server_private_key"),
    ] {
        if let Some((key, _)) = get(entries, have)
            && get(entries, need).is_none()
        {
            cx.push(
                Diagnostic::error(
                    code::CONFLICT,
                    key.span,
                    format!("`{need}` is required when `{have}` is specified"),
                )
                .with_help("set both or neither (ERR_NGROK_2240)"),
            );
        }
    }
    let version = |name| {
        get(entries, name)
            .and_then(|(_, v)| v.scalar().map(|s| (v, s.value.clone())))
            .filter(|(_, s)| s == "1.2" || s == "1.3")
    };
    if let (Some((_, min)), Some((max_node, max))) =
        (version("min_version"), version("max_version"))
        && min > max
    {
        cx.push(
            Diagnostic::error(
                code::CONFLICT,
                max_node.span,
                format!("`max_version` {max} is below `min_version` {min}"),
            )
            .with_help("ngrok rejects it (ERR_NGROK_2204)"),
        );
    }
}

// ---- verify-webhook ----

const VERIFY_WEBHOOK: &[Field] = &[
    Field::req("provider", NONEMPTY),
    Field::opt("secret", TEMPLATE_NONEMPTY),
    Field::opt("enforce", BOOL),
];

fn verify_webhook(cx: &mut Cx, entries: &[(Node, Node)]) {
    let Some((pkey, provider)) = get(entries, "provider") else {
        return;
    };
    let is_sns = provider.scalar().is_some_and(|s| s.value == "sns");
    if !is_sns && get(entries, "secret").is_none() {
        cx.push(
            Diagnostic::error(
                code::MISSING,
                pkey.span,
                "missing required field `secret` in the `verify-webhook` config",
            )
            .with_help("every provider but `sns` needs the signing secret (ERR_NGROK_2240)"),
        );
    }
}
