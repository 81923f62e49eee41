//! ngrok's Traffic Policy function library (the "macros" of
//! `traffic-policy/macros/index.mdx`), registered on top of the CEL
//! standard library by [`register`], which [`crate::schema::env`] calls for
//! every phase.
//!
//! # Implemented
//!
//! - IP: `inCidrRange(ip, cidr)`, `inCidrRanges(ip, [cidrs])`,
//!   `ip.isPrivateIp()`. An invalid CIDR is `false` (skipped by
//!   `inCidrRanges`), and so is an invalid IP. CIDRs need a prefix length,
//!   as Go's `net.ParseCIDR`. An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`)
//!   is compared as the IPv4 address it carries, as Go's `net.IPNet` does.
//!   `isPrivateIp` is RFC 1918 for IPv4 (`10/8`, `172.16/12`, `192.168/16`)
//!   and, for IPv6, the unique local addresses `fc00::/7` (RFC 4193), as Go's
//!   `net.IP.IsPrivate`; loopback and link-local addresses are not private.
//! - Base64: `s.decodeBase64() -> bytes`, `s.encodeBase64() -> string` (also
//!   on bytes), `basic_auth.encode(user, pass) -> "Basic " + base64(user:pass)`.
//!   `base64.encode` and `base64.decode` are the CEL standard library's.
//! - JSON: `json.decode(s)`, `json.encode(v)`, `s.decodeJson()`, `s.isJson()`,
//!   `list.encodeJson()`, `map.encodeJson()`. Decoding gives the value the
//!   text holds (maps, lists, or a scalar); integral numbers become `int`.
//!   Encoding writes map keys sorted, as Go's `encoding/json`.
//! - Query strings, as Go's `net/url`: `queryString.decode(s)` and
//!   `s.decodeQueryString()` give `map(string, list(string))` (keys in order of
//!   first appearance; an invalid escape or a `;` is an error),
//!   `s.isQueryString()`, `queryString.encode(m)` and `m.encodeQueryString()`
//!   (keys sorted; values are strings or lists of strings).
//! - URLs, as Go's `net/url`: `url.escape`/`s.escapeUrl()` (`QueryEscape`),
//!   `url.unescape`/`s.unescapeUrl()` (`QueryUnescape`), `url.parse`/
//!   `s.parseUrl()` (`url.Parse`), and `s.isURL()`: whether `url.parse`
//!   succeeds and finds a scheme and a host or an opaque part. The map
//!   `url.parse` gives has these keys: `scheme`, `opaque`, `user` (a map of
//!   `username`, `password`, `password_set`; empty strings and `false` without
//!   user information), `host` (with its port), `hostname`, `port` (a string,
//!   empty when absent), `path` (unescaped), `raw_path` (the escaped path when
//!   it differs from the default escaping, else empty), `omit_host`,
//!   `force_query`, `raw_query`, `query` (the query parsed as
//!   `map(string, list(string))`, malformed pairs skipped), `fragment`
//!   (unescaped) and `raw_fragment`.
//! - Hashes: `hash.{crc32,crc64,md5,sha1,sha256,sha512,xxhash64}(s[, format])`
//!   with `format` `"hex"` (the default, lower case) or `"base64"` (standard,
//!   padded), and the member forms `s.md5()`, `s.crc32("base64")`, ... CRC-32
//!   is IEEE; CRC-64 is Go's `crc64.ECMA` table (CRC-64/XZ); xxHash64 uses
//!   seed 0; checksums are written big-endian.
//! - Random: `rand.double()` in `[0, 1)`, `rand.int()` (0 or 1) and
//!   `rand.int(min, max)` in `[min, max]` (non-negative, `min <= max`). They
//!   are impure, so they never fold at compile time.
//! - Secrets: `secrets.get(vault, name) -> string` reads a [`SecretSource`]
//!   given to [`register_with_secrets`] ([`EnvSecrets`], [`FileSecrets`], or
//!   the caller's own). Under [`register`] it is declared, so policies check,
//!   but fails at run time with "no secret source configured". A missing
//!   secret is an error naming the vault and the secret and where the
//!   source looked (`SecretSource::location`: for [`EnvSecrets`], the
//!   variable to set), never a value.
//!
//! # Declared only: the request and response helpers
//!
//! `getReqHeader(name) -> list(string)`, `hasReqHeader(name) -> bool`,
//! `getQueryParam(name) -> list(string)`, `hasQueryParam(name) -> bool`,
//! `getReqCookie(name) -> ngrok.RequestCookie`, `hasReqCookie(name) -> bool`
//! (in `on_http_request` and `on_http_response`), and `getResHeader`,
//! `hasResHeader`, `getResCookie` (`ngrok.ResponseCookie`), `hasResCookie`
//! (in `on_http_response` only) read the request or response, which a
//! function's arguments do not carry. They are declared here so that `lint`
//! type-checks them, with implementations that fail ("`getReqHeader` needs
//! the request; it runs in the proxy"). The runtime (issue 4) binds them to
//! the request context, reading `req.headers`, `req.url.query_params`,
//! `req.cookies`, `res.headers` and `res.cookies` with [`header_values`],
//! [`query_param_values`] and [`first_cookie`], which implement the lookups:
//! header names are case-insensitive (ngrok/ngrok-docs#805 removed the
//! canonical-form requirement); query parameter and cookie names are not.
//!
//! Not provided: the timestamp getters (the CEL standard library has them)
//! and the aliases of ngrok's pricing page (`b64.*`, `http.*`, `utility.*`).
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose;
use portcullis_cel::eval::check_built_len;
use portcullis_cel::value::{Bin, Key, MapData};
use portcullis_cel::{Env, EvalError, List, Map, Overload, Str, Type, Value};

use crate::schema::Phase;

#[cfg(test)]
mod tests;

// === registration ===

/// Where `secrets.get(vault, name)` reads secrets from.
pub trait SecretSource: Send + Sync {
    /// The secret `name` in `vault`, if there is one.
    fn get(&self, vault: &str, name: &str) -> Option<String>;

    /// Where this source looks for the secret `name` of `vault`, said to
    /// whoever must put it there ("the environment variable `X`"), for the
    /// error when it is missing. It must not reveal a secret.
    fn location(&self, vault: &str, name: &str) -> Option<String> {
        let _ = (vault, name);
        None
    }
}

/// Secrets from environment variables: `secrets.get('my-vault', 'api key')`
/// reads `PORTCULLIS_SECRET_MY_VAULT_API_KEY` (upper-cased, every character
/// that is not an ASCII letter or digit replaced by `_`).
#[derive(Clone, Copy, Debug, Default)]
pub struct EnvSecrets;

impl EnvSecrets {
    /// The variable that holds the secret `name` of `vault`.
    pub fn var_name(vault: &str, name: &str) -> String {
        let mut out = String::from("PORTCULLIS_SECRET_");
        for (i, part) in [vault, name].into_iter().enumerate() {
            if i > 0 {
                out.push('_');
            }
            out.extend(part.chars().map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            }));
        }
        out
    }
}

impl SecretSource for EnvSecrets {
    fn get(&self, vault: &str, name: &str) -> Option<String> {
        std::env::var(EnvSecrets::var_name(vault, name)).ok()
    }

    fn location(&self, vault: &str, name: &str) -> Option<String> {
        Some(format!(
            "the environment variable `{}`",
            EnvSecrets::var_name(vault, name)
        ))
    }
}

/// Secrets from files: the secret `name` of `vault` is the file
/// `<dir>/<vault>/<name>`, its trailing newline (`\n` or `\r\n`) trimmed.
/// Names that would leave the directory (empty, `.`, `..`, or containing a
/// path separator) find nothing.
#[derive(Clone, Debug)]
pub struct FileSecrets {
    /// The directory holding one directory per vault.
    pub dir: PathBuf,
}

impl SecretSource for FileSecrets {
    fn get(&self, vault: &str, name: &str) -> Option<String> {
        let safe =
            |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\', '\0']);
        if !safe(vault) || !safe(name) {
            return None;
        }
        let mut text = std::fs::read_to_string(self.dir.join(vault).join(name)).ok()?;
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        Some(text)
    }

    /// The file relative to the directory: the error reaches the client,
    /// which has no use for the machine's paths.
    fn location(&self, vault: &str, name: &str) -> Option<String> {
        Some(format!(
            "the file `{vault}/{name}` in the secrets directory"
        ))
    }
}

/// Registers ngrok's functions for `phase`; `secrets.get` is declared but
/// fails at run time (see [`register_with_secrets`]).
pub fn register(env: &mut Env, phase: Phase) {
    register_all(env, phase, None);
}

/// Registers ngrok's functions for `phase`, with `secrets.get` reading `secrets`.
pub fn register_with_secrets(env: &mut Env, phase: Phase, secrets: Arc<dyn SecretSource>) {
    register_all(env, phase, Some(secrets));
}

fn register_all(env: &mut Env, phase: Phase, secrets: Option<Arc<dyn SecretSource>>) {
    request_helpers(env, phase);
    ip(env);
    encoding(env);
    json(env);
    query_string(env);
    url(env);
    hashes(env);
    random(env);
    secrets_get(env, secrets);
}

const S: Type = Type::String;
const B: Type = Type::Bool;

fn strings() -> Type {
    Type::list(Type::String)
}

fn multimap() -> Type {
    Type::map(Type::String, strings())
}

fn any_list() -> Type {
    Type::list(Type::param("A"))
}

fn any_map() -> Type {
    Type::map(Type::param("A"), Type::param("B"))
}

/// The element type of the schema's cookie map `var` (`req.cookies`).
fn cookie_type(var: &str) -> Type {
    match crate::schema::variable(var).map(|v| &v.ty) {
        Some(Type::Map(_, list)) => match &**list {
            Type::List(cookie) => (**cookie).clone(),
            _ => Type::Dyn,
        },
        _ => Type::Dyn,
    }
}

/// Declares a request or response helper whose implementation fails until
/// the runtime binds it.
fn declare_helper(env: &mut Env, name: &'static str, id: &str, result: Type, needs: &'static str) {
    env.add_function(
        name,
        Overload::global(id, vec![S], result)
            .closure(move |_| {
                Err(EvalError::new(format!(
                    "`{name}` needs the {needs}; it runs in the proxy"
                )))
            })
            .impure(),
    );
}

fn request_helpers(env: &mut Env, phase: Phase) {
    if matches!(phase, Phase::HttpRequest | Phase::HttpResponse) {
        let req = "request";
        declare_helper(env, "getReqHeader", "ngrok_get_req_header", strings(), req);
        declare_helper(env, "hasReqHeader", "ngrok_has_req_header", B, req);
        declare_helper(
            env,
            "getQueryParam",
            "ngrok_get_query_param",
            strings(),
            req,
        );
        declare_helper(env, "hasQueryParam", "ngrok_has_query_param", B, req);
        let cookie = cookie_type("req.cookies");
        declare_helper(env, "getReqCookie", "ngrok_get_req_cookie", cookie, req);
        declare_helper(env, "hasReqCookie", "ngrok_has_req_cookie", B, req);
    }
    if phase == Phase::HttpResponse {
        let res = "response";
        declare_helper(env, "getResHeader", "ngrok_get_res_header", strings(), res);
        declare_helper(env, "hasResHeader", "ngrok_has_res_header", B, res);
        let cookie = cookie_type("res.cookies");
        declare_helper(env, "getResCookie", "ngrok_get_res_cookie", cookie, res);
        declare_helper(env, "hasResCookie", "ngrok_has_res_cookie", B, res);
    }
}

// === request helpers, for the runtime ===

/// A URL's query string as its parameters, in order of first appearance,
/// as Go's `URL.Query` reads it: bad pairs are skipped. This is
/// `req.url.query_params`.
pub fn query_params(query: &str) -> Vec<(String, Vec<String>)> {
    parse_query(query, true).unwrap_or_default()
}

/// The values of header `name` in a header map (`req.headers`,
/// `res.headers`), compared case-insensitively; an empty list when absent.
/// This is `getReqHeader`/`getResHeader`; `hasReqHeader` is whether the
/// list is non-empty.
pub fn header_values<'a>(headers: &Map<'a>, name: &str) -> Value<'a> {
    if let Some(v) = headers.get(&Value::str(name)) {
        return v;
    }
    if let Map::Multi(m) = headers {
        let found = (0..m.key_count())
            .filter_map(|i| m.key_at(i))
            .find(|k| k.eq_ignore_ascii_case(name));
        return match found {
            Some(k) => Value::List(List::Multi(*m, Str::Borrowed(k))),
            None => Value::list(Vec::new()),
        };
    }
    headers
        .entries()
        .into_iter()
        .find(|(k, _)| k.as_str().is_some_and(|k| k.eq_ignore_ascii_case(name)))
        .map(|(_, v)| v)
        .unwrap_or_else(|| Value::list(Vec::new()))
}

/// The values of query parameter `name` (case-sensitive) in
/// `req.url.query_params`; an empty list when absent. This is
/// `getQueryParam`; `hasQueryParam` is whether the list is non-empty.
pub fn query_param_values<'a>(params: &Map<'a>, name: &str) -> Value<'a> {
    params
        .get(&Value::str(name))
        .unwrap_or_else(|| Value::list(Vec::new()))
}

/// The first cookie named `name` (case-sensitive) in a cookie map
/// (`req.cookies`, or `res.cookies`, whose lists are longest path first),
/// or `None`. This is `getReqCookie`/`getResCookie`; `hasReqCookie` is
/// whether it is `Some`.
pub fn first_cookie<'a>(cookies: &Map<'a>, name: &str) -> Option<Value<'a>> {
    match cookies.get(&Value::str(name))? {
        Value::List(l) => l.get(0),
        _ => None,
    }
}

// === helpers ===

/// The string argument `v` of `func`.
fn string_arg<'v>(v: &'v Value<'_>, func: &str) -> Result<&'v str, EvalError> {
    v.as_str().ok_or_else(|| {
        EvalError::new(format!(
            "`{func}` expects a string, found `{}`",
            v.kind().name()
        ))
    })
}

/// The `i`th argument.
fn arg<'v, 'a>(args: &'v [Value<'a>], i: usize, func: &str) -> Result<&'v Value<'a>, EvalError> {
    args.get(i)
        .ok_or_else(|| EvalError::new(format!("`{func}` is missing an argument")))
}

/// A string result, within the size limit.
fn built_string<'a>(s: String) -> Result<Value<'a>, EvalError> {
    check_built_len(s.len())?;
    Ok(Value::string(s))
}

/// A map with string keys.
fn string_map<'a>(entries: Vec<(String, Value<'a>)>) -> Result<Value<'a>, EvalError> {
    let entries = entries
        .into_iter()
        .map(|(k, v)| (Key::String(Str::Shared(Arc::from(k))), v))
        .collect();
    Ok(Value::Map(Map::Values(Arc::new(MapData::from_entries(
        entries,
    )?))))
}

// === IP ===

fn ip(env: &mut Env) {
    env.add_function(
        "inCidrRange",
        Overload::global("ngrok_in_cidr_range_string_string", vec![S, S], B).binary(in_cidr_range),
    );
    env.add_function(
        "inCidrRanges",
        Overload::global("ngrok_in_cidr_ranges_string_list", vec![S, strings()], B)
            .binary(in_cidr_ranges),
    );
    env.add_function(
        "isPrivateIp",
        Overload::member("ngrok_string_is_private_ip", vec![S], B).unary(is_private_ip),
    );
}

/// An IPv4-mapped IPv6 address as the IPv4 address it carries.
/// An address as the IP functions compare it: IPv4-mapped IPv6 addresses
/// (`::ffff:10.0.0.1`) as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// A CIDR (`10.0.0.0/8`, `2001:db8::/32`): its network address and prefix length.
pub fn parse_cidr(cidr: &str) -> Option<(IpAddr, u32)> {
    let (addr, len) = cidr.trim().split_once('/')?;
    if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let len: u32 = len.parse().ok()?;
    let addr: IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((addr, len))
}

/// Whether `ip` is in `cidr`; `None` when the CIDR is invalid. IPv4-mapped
/// IPv6 addresses compare as IPv4. This is `inCidrRange`, and what
/// `restrict-ips` matches with.
pub fn cidr_contains(ip: IpAddr, cidr: &str) -> Option<bool> {
    let (net, len) = parse_cidr(cidr)?;
    Some(net_contains(ip, net, len))
}

/// Whether `ip` is in the network `net/len` of a parsed CIDR
/// ([`parse_cidr`]): what [`cidr_contains`] does after parsing, for callers
/// that parse once and match many times (`restrict-ips`).
pub fn net_contains(ip: IpAddr, net: IpAddr, len: u32) -> bool {
    let ip = canonical(ip);
    // A mapped network with a prefix that covers the mapping compares as IPv4.
    let (net, len) = match net {
        IpAddr::V6(v6) if len >= 96 => match v6.to_ipv4_mapped() {
            Some(v4) => (IpAddr::V4(v4), len - 96),
            None => (net, len),
        },
        _ => (net, len),
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn in_cidr_range<'a>(ip: Value<'a>, cidr: Value<'a>) -> Result<Value<'a>, EvalError> {
    let ip = string_arg(&ip, "inCidrRange")?;
    let cidr = string_arg(&cidr, "inCidrRange")?;
    let Ok(ip) = ip.trim().parse::<IpAddr>() else {
        return Ok(Value::Bool(false));
    };
    Ok(Value::Bool(cidr_contains(ip, cidr).unwrap_or(false)))
}

fn in_cidr_ranges<'a>(ip: Value<'a>, cidrs: Value<'a>) -> Result<Value<'a>, EvalError> {
    let ip = string_arg(&ip, "inCidrRanges")?;
    let Value::List(cidrs) = cidrs else {
        return Err(EvalError::new(format!(
            "`inCidrRanges` expects a list of CIDRs, found `{}`",
            cidrs.kind().name()
        )));
    };
    let Ok(ip) = ip.trim().parse::<IpAddr>() else {
        return Ok(Value::Bool(false));
    };
    Ok(Value::Bool(cidrs.iter().any(|c| {
        c.as_str()
            .is_some_and(|c| cidr_contains(ip, c).unwrap_or(false))
    })))
}

/// RFC 1918 for IPv4, `fc00::/7` for IPv6 (Go's `net.IP.IsPrivate`).
fn is_private(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.is_private(),
        IpAddr::V6(v6) => v6.segments().first().is_some_and(|s| s & 0xfe00 == 0xfc00),
    }
}

fn is_private_ip(ip: Value<'_>) -> Result<Value<'_>, EvalError> {
    let ip = string_arg(&ip, "isPrivateIp")?;
    Ok(Value::Bool(
        ip.trim().parse::<IpAddr>().is_ok_and(is_private),
    ))
}

// === base64 and basic auth ===

fn encoding(env: &mut Env) {
    env.add_function(
        "decodeBase64",
        Overload::member("ngrok_string_decode_base64", vec![S], Type::Bytes).unary(decode_base64),
    );
    env.add_function(
        "encodeBase64",
        Overload::member("ngrok_string_encode_base64", vec![S], S).unary(encode_base64),
    );
    env.add_function(
        "encodeBase64",
        Overload::member("ngrok_bytes_encode_base64", vec![Type::Bytes], S).unary(encode_base64),
    );
    env.add_function(
        "basic_auth.encode",
        Overload::global("ngrok_basic_auth_encode_string_string", vec![S, S], S)
            .binary(basic_auth_encode),
    );
}

/// `s.decodeBase64()`: as the standard library's `base64.decode`, padded or not.
fn decode_base64(v: Value<'_>) -> Result<Value<'_>, EvalError> {
    let s = string_arg(&v, "decodeBase64")?;
    let decoded = portcullis_cel::stdlib::decode_base64(s)?;
    Ok(Value::Bytes(Bin::Shared(Arc::from(decoded))))
}

/// `s.encodeBase64()` of a string's UTF-8 bytes, or of bytes.
fn encode_base64(v: Value<'_>) -> Result<Value<'_>, EvalError> {
    let data: &[u8] = match &v {
        Value::String(s) => s.as_bytes(),
        Value::Bytes(b) => b,
        other => {
            return Err(EvalError::new(format!(
                "`encodeBase64` expects a string or bytes, found `{}`",
                other.kind().name()
            )));
        }
    };
    built_string(general_purpose::STANDARD.encode(data))
}

fn basic_auth_encode<'a>(user: Value<'a>, pass: Value<'a>) -> Result<Value<'a>, EvalError> {
    let user = string_arg(&user, "basic_auth.encode")?;
    let pass = string_arg(&pass, "basic_auth.encode")?;
    let creds = format!("{user}:{pass}");
    built_string(format!("Basic {}", general_purpose::STANDARD.encode(creds)))
}

// === JSON ===

fn json(env: &mut Env) {
    env.add_function(
        "json.decode",
        Overload::global("ngrok_json_decode_string", vec![S], Type::Dyn).unary(json_decode),
    );
    env.add_function(
        "json.encode",
        Overload::global("ngrok_json_encode_dyn", vec![Type::Dyn], S).unary(json_encode),
    );
    env.add_function(
        "decodeJson",
        Overload::member("ngrok_string_decode_json", vec![S], Type::Dyn).unary(json_decode),
    );
    env.add_function(
        "isJson",
        Overload::member("ngrok_string_is_json", vec![S], B).unary(is_json),
    );
    env.add_function(
        "encodeJson",
        Overload::member("ngrok_list_encode_json", vec![any_list()], S).unary(json_encode),
    );
    env.add_function(
        "encodeJson",
        Overload::member("ngrok_map_encode_json", vec![any_map()], S).unary(json_encode),
    );
}

fn json_decode(v: Value<'_>) -> Result<Value<'_>, EvalError> {
    let s = string_arg(&v, "json.decode")?;
    let json: serde_json::Value =
        serde_json::from_str(s).map_err(|e| EvalError::new(format!("invalid JSON: {e}")))?;
    Ok(portcullis_cel::json::from_json(&json))
}

fn json_encode(v: Value<'_>) -> Result<Value<'_>, EvalError> {
    let json = portcullis_cel::json::to_json(&v)?;
    let text = serde_json::to_string(&json)
        .map_err(|e| EvalError::new(format!("cannot encode as JSON: {e}")))?;
    built_string(text)
}

fn is_json(v: Value<'_>) -> Result<Value<'_>, EvalError> {
    let s = string_arg(&v, "isJson")?;
    Ok(Value::Bool(
        serde_json::from_str::<serde_json::Value>(s).is_ok(),
    ))
}

// === query strings ===

fn query_string(env: &mut Env) {
    env.add_function(
        "queryString.decode",
        Overload::global("ngrok_query_string_decode_string", vec![S], multimap())
            .unary(query_decode),
    );
    env.add_function(
        "decodeQueryString",
        Overload::member("ngrok_string_decode_query_string", vec![S], multimap())
            .unary(query_decode),
    );
    env.add_function(
        "isQueryString",
        Overload::member("ngrok_string_is_query_string", vec![S], B).unary(is_query_string),
    );
    env.add_function(
        "queryString.encode",
        Overload::global("ngrok_query_string_encode_map", vec![any_map()], S).unary(query_encode),
    );
    env.add_function(
        "encodeQueryString",
        Overload::member("ngrok_map_encode_query_string", vec![any_map()], S).unary(query_encode),
    );
}

/// A query string's pairs, in order, as Go's `url.ParseQuery`: pairs split
/// on `&`, empty ones skipped, a `;` or an invalid escape an error. With
/// `lenient`, bad pairs are skipped instead (Go's `URL.Query`).
fn parse_query(s: &str, lenient: bool) -> Result<Vec<(String, Vec<String>)>, EvalError> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for pair in s.split('&').filter(|p| !p.is_empty()) {
        let parsed = if pair.contains(';') {
            Err(EvalError::new("invalid semicolon separator in query"))
        } else {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            query_unescape(k).and_then(|k| Ok((k, query_unescape(v)?)))
        };
        let (k, v) = match parsed {
            Ok(kv) => kv,
            Err(_) if lenient => continue,
            Err(e) => return Err(e),
        };
        match out.iter_mut().find(|(key, _)| *key == k) {
            Some((_, values)) => values.push(v),
            None => out.push((k, vec![v])),
        }
    }
    Ok(out)
}

/// Pairs as a `map(string, list(string))`.
fn query_map<'a>(pairs: Vec<(String, Vec<String>)>) -> Result<Value<'a>, EvalError> {
    string_map(
        pairs
            .into_iter()
            .map(|(k, vs)| (k, Value::list(vs.into_iter().map(Value::string).collect())))
            .collect(),
    )
}

fn query_decode(v: Value<'_>) -> Result<Value<'_>, EvalError> {
    let s = string_arg(&v, "queryString.decode")?;
    query_map(parse_query(s, false)?)
}

fn is_query_string(v: Value<'_>) -> Result<Value<'_>, EvalError> {
    let s = string_arg(&v, "isQueryString")?;
    Ok(Value::Bool(parse_query(s, false).is_ok()))
}

/// Go's `url.Values.Encode`: keys sorted, each value `key=value`, escaped.
fn query_encode(v: Value<'_>) -> Result<Value<'_>, EvalError> {
    let Value::Map(m) = &v else {
        return Err(EvalError::new(format!(
            "`queryString.encode` expects a map, found `{}`",
            v.kind().name()
        )));
    };
    let mut pairs: Vec<(String, Vec<String>)> = Vec::with_capacity(m.len());
    for (k, val) in m.entries() {
        let Some(k) = k.as_str() else {
            return Err(EvalError::new(format!(
                "`queryString.encode` expects string keys, found `{}`",
                k.kind().name()
            )));
        };
        let values = match &val {
            Value::String(s) => vec![s.to_string()],
            Value::List(l) => l
                .iter()
                .map(|item| query_value(&item))
                .collect::<Result<Vec<_>, _>>()?,
            other => vec![query_value(other)?],
        };
        pairs.push((k.to_string(), values));
    }
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::new();
    for (k, values) in &pairs {
        let key = query_escape(k);
        for value in values {
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(&key);
            out.push('=');
            out.push_str(&query_escape(value));
            check_built_len(out.len())?;
        }
    }
    built_string(out)
}

/// A query value: a string, or a number or bool written as CEL's `string()` would.
fn query_value(v: &Value<'_>) -> Result<String, EvalError> {
    match v {
        Value::String(s) => Ok(s.to_string()),
        Value::Int(_) | Value::Uint(_) | Value::Double(_) | Value::Bool(_) => {
            Ok(v.display().trim_end_matches('u').to_string())
        }
        other => Err(EvalError::new(format!(
            "`queryString.encode` expects string values or lists of strings, found `{}`",
            other.kind().name()
        ))),
    }
}

// === URLs ===

fn url(env: &mut Env) {
    let url_map = || Type::map(S, Type::Dyn);
    env.add_function(
        "url.escape",
        Overload::global("ngrok_url_escape_string", vec![S], S).unary(url_escape),
    );
    env.add_function(
        "escapeUrl",
        Overload::member("ngrok_string_escape_url", vec![S], S).unary(url_escape),
    );
    env.add_function(
        "url.unescape",
        Overload::global("ngrok_url_unescape_string", vec![S], S).unary(url_unescape),
    );
    env.add_function(
        "unescapeUrl",
        Overload::member("ngrok_string_unescape_url", vec![S], S).unary(url_unescape),
    );
    env.add_function(
        "url.parse",
        Overload::global("ngrok_url_parse_string", vec![S], url_map()).unary(url_parse),
    );
    env.add_function(
        "parseUrl",
        Overload::member("ngrok_string_parse_url", vec![S], url_map()).unary(url_parse),
    );
    env.add_function(
        "isURL",
        Overload::member("ngrok_string_is_url", vec![S], B).unary(is_url),
    );
}

/// What is being escaped, as Go's `net/url` encoding modes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    QueryComponent,
    Path,
    Fragment,
}

/// Whether Go's `shouldEscape` escapes byte `c` in `mode`.
fn should_escape(c: u8, mode: Mode) -> bool {
    if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~') {
        return false;
    }
    match c {
        b'$' | b'&' | b'+' | b',' | b'/' | b':' | b';' | b'=' | b'?' | b'@' => match mode {
            Mode::Path => c == b'?',
            Mode::QueryComponent => true,
            Mode::Fragment => false,
        },
        b'!' | b'(' | b')' | b'*' if mode == Mode::Fragment => false,
        _ => true,
    }
}

/// Go's `escape`: `%XX` in upper case; spaces are `+` in query components.
fn escape(s: &str, mode: Mode) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b == b' ' && mode == Mode::QueryComponent {
            out.push('+');
        } else if should_escape(b, mode) {
            out.push('%');
            out.push(char::from(
                HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0'),
            ));
            out.push(char::from(
                HEX.get(usize::from(b & 15)).copied().unwrap_or(b'0'),
            ));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

fn query_escape(s: &str) -> String {
    escape(s, Mode::QueryComponent)
}

fn hex_digit(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Go's `unescape`: `%XX` decoded (an invalid escape is an error); `+` is a
/// space when `plus` (query components).
fn unescape(s: &str, plus: bool) -> Result<String, EvalError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_digit);
                let lo = bytes.get(i + 2).copied().and_then(hex_digit);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    let bad: String = s.get(i..).unwrap_or("").chars().take(3).collect();
                    return Err(EvalError::new(format!("invalid URL escape `{bad}`")));
                };
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| EvalError::new("unescaped URL text is not valid UTF-8"))
}

fn query_unescape(s: &str) -> Result<String, EvalError> {
    unescape(s, true)
}

fn url_escape(v: Value<'_>) -> Result<Value<'_>, EvalError> {
    built_string(query_escape(string_arg(&v, "url.escape")?))
}

fn url_unescape(v: Value<'_>) -> Result<Value<'_>, EvalError> {
    Ok(Value::string(query_unescape(string_arg(
        &v,
        "url.unescape",
    )?)?))
}

/// A URL's parts, as Go's `url.URL`.
#[derive(Default, Debug, PartialEq)]
struct Url {
    scheme: String,
    opaque: String,
    user: Option<(String, Option<String>)>,
    host: String,
    path: String,
    raw_path: String,
    omit_host: bool,
    force_query: bool,
    raw_query: String,
    fragment: String,
    raw_fragment: String,
}

fn url_error(raw: &str, why: &str) -> EvalError {
    EvalError::new(format!("cannot parse URL `{raw}`: {why}"))
}

/// Go's `url.Parse`.
fn parse_url(raw: &str) -> Result<Url, EvalError> {
    let (rest, frag) = match raw.split_once('#') {
        Some((u, f)) => (u, Some(f)),
        None => (raw, None),
    };
    let mut url = parse_url_body(raw, rest)?;
    if let Some(frag) = frag {
        url.fragment = unescape(frag, false).map_err(|e| url_error(raw, e.message()))?;
        if escape(&url.fragment, Mode::Fragment) != frag {
            url.raw_fragment = frag.to_string();
        }
    }
    Ok(url)
}

/// The scheme of `s` and the rest, as Go's `getScheme`.
fn split_scheme<'s>(raw: &str, s: &'s str) -> Result<(&'s str, &'s str), EvalError> {
    for (i, c) in s.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i == 0 => return Err(url_error(raw, "missing protocol scheme")),
            ':' => return Ok((s.get(..i).unwrap_or(""), s.get(i + 1..).unwrap_or(""))),
            _ => return Ok(("", s)),
        }
    }
    Ok(("", s))
}

fn parse_url_body(raw: &str, s: &str) -> Result<Url, EvalError> {
    if s.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(url_error(raw, "invalid control character in URL"));
    }
    let mut url = Url::default();
    if s == "*" {
        url.path = "*".to_string();
        return Ok(url);
    }
    let (scheme, mut rest) = split_scheme(raw, s)?;
    url.scheme = scheme.to_ascii_lowercase();
    if rest.ends_with('?') && rest.matches('?').count() == 1 {
        url.force_query = true;
        rest = rest.get(..rest.len() - 1).unwrap_or("");
    } else if let Some((r, q)) = rest.split_once('?') {
        url.raw_query = q.to_string();
        rest = r;
    }
    if !rest.starts_with('/') {
        if !url.scheme.is_empty() {
            url.opaque = rest.to_string();
            return Ok(url);
        }
        if rest.split('/').next().unwrap_or("").contains(':') {
            return Err(url_error(
                raw,
                "first path segment in URL cannot contain colon",
            ));
        }
    }
    if (!url.scheme.is_empty() || !rest.starts_with("///")) && rest.starts_with("//") {
        let after = rest.get(2..).unwrap_or("");
        let (authority, path) = match after.find('/') {
            Some(i) => (after.get(..i).unwrap_or(""), after.get(i..).unwrap_or("")),
            None => (after, ""),
        };
        parse_authority(raw, authority, &mut url)?;
        rest = path;
    } else if !url.scheme.is_empty() && rest.starts_with('/') {
        url.omit_host = true;
    }
    url.path = unescape(rest, false).map_err(|e| url_error(raw, e.message()))?;
    if escape(&url.path, Mode::Path) != rest {
        url.raw_path = rest.to_string();
    }
    Ok(url)
}

fn parse_authority(raw: &str, authority: &str, url: &mut Url) -> Result<(), EvalError> {
    let (userinfo, host) = match authority.rfind('@') {
        Some(i) => (
            Some(authority.get(..i).unwrap_or("")),
            authority.get(i + 1..).unwrap_or(""),
        ),
        None => (None, authority),
    };
    url.host = parse_host(raw, host)?;
    if let Some(userinfo) = userinfo {
        let unesc = |s: &str| unescape(s, false).map_err(|e| url_error(raw, e.message()));
        url.user = Some(match userinfo.split_once(':') {
            Some((u, p)) => (unesc(u)?, Some(unesc(p)?)),
            None => (unesc(userinfo)?, None),
        });
    }
    Ok(())
}

/// Whether `port` is empty or `:` and digits (Go's `validOptionalPort`).
fn valid_port(port: &str) -> bool {
    port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

fn parse_host(raw: &str, host: &str) -> Result<String, EvalError> {
    if host.starts_with('[') {
        let Some(end) = host.rfind(']') else {
            return Err(url_error(raw, "missing ']' in host"));
        };
        if !valid_port(host.get(end + 1..).unwrap_or("")) {
            return Err(url_error(raw, "invalid port after host"));
        }
    } else if let Some(i) = host.rfind(':')
        && !valid_port(host.get(i..).unwrap_or(""))
    {
        return Err(url_error(raw, "invalid port after host"));
    }
    unescape(host, false).map_err(|e| url_error(raw, e.message()))
}

/// The host without its port or IPv6 brackets, and the port (Go's
/// `URL.Hostname` and `URL.Port`).
fn split_host_port(host: &str) -> (&str, &str) {
    let (h, port) = match host.rfind(':') {
        Some(i) if host.get(i..).is_some_and(valid_port) && !host.ends_with(']') => {
            (host.get(..i).unwrap_or(""), host.get(i + 1..).unwrap_or(""))
        }
        _ => (host, ""),
    };
    let h = h
        .strip_prefix('[')
        .map(|h| h.strip_suffix(']').unwrap_or(h))
        .unwrap_or(h);
    (h, port)
}

fn url_parse(v: Value<'_>) -> Result<Value<'_>, EvalError> {
    let raw = string_arg(&v, "url.parse")?;
    let u = parse_url(raw)?;
    let (hostname, port) = split_host_port(&u.host);
    let (username, password, password_set) = match &u.user {
        Some((name, Some(pass))) => (name.clone(), pass.clone(), true),
        Some((name, None)) => (name.clone(), String::new(), false),
        None => (String::new(), String::new(), false),
    };
    let user = string_map(vec![
        ("username".to_string(), Value::string(username)),
        ("password".to_string(), Value::string(password)),
        ("password_set".to_string(), Value::Bool(password_set)),
    ])?;
    let query = query_map(parse_query(&u.raw_query, true)?)?;
    string_map(vec![
        ("scheme".to_string(), Value::string(u.scheme.as_str())),
        ("opaque".to_string(), Value::string(u.opaque.as_str())),
        ("user".to_string(), user),
        ("host".to_string(), Value::string(u.host.as_str())),
        ("hostname".to_string(), Value::string(hostname)),
        ("port".to_string(), Value::string(port)),
        ("path".to_string(), Value::string(u.path.as_str())),
        ("raw_path".to_string(), Value::string(u.raw_path.as_str())),
        ("omit_host".to_string(), Value::Bool(u.omit_host)),
        ("force_query".to_string(), Value::Bool(u.force_query)),
        ("raw_query".to_string(), Value::string(u.raw_query.as_str())),
        ("query".to_string(), query),
        ("fragment".to_string(), Value::string(u.fragment.as_str())),
        (
            "raw_fragment".to_string(),
            Value::string(u.raw_fragment.as_str()),
        ),
    ])
}

fn is_url(v: Value<'_>) -> Result<Value<'_>, EvalError> {
    let raw = string_arg(&v, "isURL")?;
    Ok(Value::Bool(parse_url(raw).is_ok_and(|u| {
        !u.scheme.is_empty() && (!u.host.is_empty() || !u.opaque.is_empty())
    })))
}

// === hashes ===

/// A hash function of the `hash` namespace.
#[derive(Clone, Copy, Debug)]
enum Algo {
    Crc32,
    Crc64,
    Md5,
    Sha1,
    Sha256,
    Sha512,
    Xxhash64,
}

impl Algo {
    const ALL: [Algo; 7] = [
        Algo::Crc32,
        Algo::Crc64,
        Algo::Md5,
        Algo::Sha1,
        Algo::Sha256,
        Algo::Sha512,
        Algo::Xxhash64,
    ];

    fn name(self) -> &'static str {
        match self {
            Algo::Crc32 => "crc32",
            Algo::Crc64 => "crc64",
            Algo::Md5 => "md5",
            Algo::Sha1 => "sha1",
            Algo::Sha256 => "sha256",
            Algo::Sha512 => "sha512",
            Algo::Xxhash64 => "xxhash64",
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        use sha2::Digest as _;
        match self {
            Algo::Crc32 => crc32fast::hash(data).to_be_bytes().to_vec(),
            Algo::Crc64 => crc::Crc::<u64>::new(&crc::CRC_64_XZ)
                .checksum(data)
                .to_be_bytes()
                .to_vec(),
            Algo::Md5 => md5::Md5::digest(data).to_vec(),
            Algo::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Algo::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Algo::Sha512 => sha2::Sha512::digest(data).to_vec(),
            Algo::Xxhash64 => xxhash_rust::xxh64::xxh64(data, 0).to_be_bytes().to_vec(),
        }
    }
}

fn hashes(env: &mut Env) {
    for algo in Algo::ALL {
        let name = algo.name();
        let imp = hash_impl(algo);
        env.add_function(
            &format!("hash.{name}"),
            Overload::global(&format!("ngrok_hash_{name}_string"), vec![S], S).closure(imp),
        );
        env.add_function(
            &format!("hash.{name}"),
            Overload::global(&format!("ngrok_hash_{name}_string_string"), vec![S, S], S)
                .closure(imp),
        );
        env.add_function(
            name,
            Overload::member(&format!("ngrok_string_{name}"), vec![S], S).closure(imp),
        );
        env.add_function(
            name,
            Overload::member(&format!("ngrok_string_{name}_string"), vec![S, S], S).closure(imp),
        );
    }
}

/// The implementation of `hash.<algo>` and its member form.
fn hash_impl(
    algo: Algo,
) -> impl for<'a> Fn(&[Value<'a>]) -> Result<Value<'a>, EvalError> + Send + Sync + Copy + 'static {
    move |args| hash(algo, args)
}

fn hash<'a>(algo: Algo, args: &[Value<'a>]) -> Result<Value<'a>, EvalError> {
    let func = format!("hash.{}", algo.name());
    let data = string_arg(arg(args, 0, &func)?, &func)?;
    let format = match args.get(1) {
        Some(f) => string_arg(f, &func)?,
        None => "hex",
    };
    let digest = algo.digest(data.as_bytes());
    match format {
        "hex" => {
            let mut out = String::with_capacity(digest.len() * 2);
            for b in digest {
                let _ = write!(out, "{b:02x}");
            }
            Ok(Value::string(out))
        }
        "base64" => Ok(Value::string(general_purpose::STANDARD.encode(digest))),
        other => Err(EvalError::new(format!(
            "`{func}`: unknown format `{other}`; use `hex` or `base64`"
        ))),
    }
}

// === random ===

fn random(env: &mut Env) {
    env.add_function(
        "rand.double",
        Overload::global("ngrok_rand_double", Vec::new(), Type::Double)
            .variadic(|_| Ok(Value::Double(fastrand::f64())))
            .impure(),
    );
    env.add_function(
        "rand.int",
        Overload::global("ngrok_rand_int", Vec::new(), Type::Int)
            .variadic(|_| Ok(Value::Int(fastrand::i64(0..=1))))
            .impure(),
    );
    env.add_function(
        "rand.int",
        Overload::global(
            "ngrok_rand_int_int_int",
            vec![Type::Int, Type::Int],
            Type::Int,
        )
        .binary(rand_int)
        .impure(),
    );
}

fn rand_int<'a>(min: Value<'a>, max: Value<'a>) -> Result<Value<'a>, EvalError> {
    let (Value::Int(min), Value::Int(max)) = (&min, &max) else {
        return Err(EvalError::new("`rand.int` expects two ints"));
    };
    if *min < 0 || max < min {
        return Err(EvalError::new(format!(
            "`rand.int({min}, {max})`: the bounds must be non-negative, the first at most the second"
        )));
    }
    Ok(Value::Int(fastrand::i64(*min..=*max)))
}

// === secrets ===

fn secrets_get(env: &mut Env, source: Option<Arc<dyn SecretSource>>) {
    let overload = Overload::global("ngrok_secrets_get_string_string", vec![S, S], S).impure();
    let overload = match source {
        Some(source) => overload.closure(move |args| {
            let vault = string_arg(arg(args, 0, "secrets.get")?, "secrets.get")?;
            let name = string_arg(arg(args, 1, "secrets.get")?, "secrets.get")?;
            match source.get(vault, name) {
                Some(secret) => Ok(Value::string(secret)),
                None => Err(EvalError::new(match source.location(vault, name) {
                    Some(place) => {
                        format!("no secret `{name}` in vault `{vault}`: set {place}")
                    }
                    None => format!("no secret `{name}` in vault `{vault}`"),
                })),
            }
        }),
        None => {
            overload.variadic(|_| Err(EvalError::new("`secrets.get`: no secret source configured")))
        }
    };
    env.add_function("secrets.get", overload);
}
