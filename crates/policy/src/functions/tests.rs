//! Tests of ngrok's function library.

use std::sync::Arc;

use portcullis_cel::value::{Key, MapData, MultiMap};
use portcullis_cel::{CompileOptions, Env, Map, Str, Type, Value};

use super::*;
use crate::schema::{self, Phase};

/// Compiles `src` in `env` and evaluates it, keeping compile and run errors apart.
fn eval_in(env: &Env, src: &str) -> Result<Value<'static>, String> {
    let program = env.compile(src).map_err(|d| {
        format!(
            "compile: {}",
            d.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    program
        .eval(&())
        .map(|v| v.to_static())
        .map_err(|e| e.message().to_string())
}

fn eval(src: &str) -> Result<Value<'static>, String> {
    eval_in(&schema::env(Phase::HttpRequest), src)
}

#[track_caller]
fn check_true(src: &str) {
    let got = eval(src);
    assert!(matches!(got, Ok(Value::Bool(true))), "{src}: got {got:?}");
}

#[track_caller]
fn check_string(src: &str, want: &str) {
    let got = eval(src);
    assert!(
        matches!(&got, Ok(Value::String(s)) if &**s == want),
        "{src}: got {got:?}, want {want:?}"
    );
}

#[track_caller]
fn check_error(src: &str, want: &str) {
    let got = eval(src);
    assert!(
        matches!(&got, Err(e) if e.contains(want)),
        "{src}: got {got:?}, want an error containing {want:?}"
    );
}

/// The type `src` checks to in `phase`, or the diagnostics.
fn type_of(phase: Phase, src: &str) -> Result<Type, String> {
    let (checked, diags) = schema::env(phase).check(src, &CompileOptions::default());
    match checked {
        Some(c) if diags.iter().all(|d| !d.is_error()) => Ok(c.ty),
        _ => Err(diags
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")),
    }
}

// === IP ===

#[test]
fn cidr_ipv4() {
    check_true("inCidrRange('10.1.2.3', '10.0.0.0/8')");
    check_true("!inCidrRange('11.1.2.3', '10.0.0.0/8')");
    check_true("inCidrRange('1.2.3.4', '0.0.0.0/0')");
    check_true("inCidrRange('192.168.1.7', '192.168.1.7/32')");
    check_true("!inCidrRange('192.168.1.8', '192.168.1.7/32')");
    check_true("inCidrRange('::ffff:10.1.2.3', '10.0.0.0/8')");
    check_true("!inCidrRange('10.1.2.3', '::/0')");
}

#[test]
fn cidr_ipv6() {
    check_true("inCidrRange('2001:db8::1', '2001:db8::/32')");
    check_true("!inCidrRange('2001:db9::1', '2001:db8::/32')");
    check_true("inCidrRange('::1', '::1/128')");
    check_true("inCidrRange('10.1.2.3', '::ffff:10.0.0.0/104')");
}

#[test]
fn cidr_invalid_is_false() {
    check_true("!inCidrRange('10.1.2.3', 'nope')");
    check_true("!inCidrRange('10.1.2.3', '10.0.0.0/33')");
    check_true("!inCidrRange('10.1.2.3', '10.0.0.0')");
    check_true("!inCidrRange('10.1.2.3', '10.0.0.0/')");
    check_true("!inCidrRange('not an ip', '10.0.0.0/8')");
    check_true("inCidrRanges('192.168.1.1', ['bad', '192.168.0.0/16'])");
    check_true("!inCidrRanges('8.8.8.8', ['bad', '10.0.0.0/8'])");
    check_true("!inCidrRanges('8.8.8.8', [])");
}

#[test]
fn private_ips() {
    for ip in [
        "10.0.0.1",
        "172.16.5.4",
        "172.31.255.255",
        "192.168.0.1",
        "fd00::1",
    ] {
        check_true(&format!("'{ip}'.isPrivateIp()"));
    }
    for ip in [
        "172.32.0.1",
        "8.8.8.8",
        "127.0.0.1",
        "169.254.1.1",
        "::1",
        "garbage",
    ] {
        check_true(&format!("!'{ip}'.isPrivateIp()"));
    }
}

// === hashes ===

#[test]
fn hash_vectors() {
    let vectors = [
        (
            "sha256",
            "abc",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        ("md5", "abc", "900150983cd24fb0d6963f7d28e17f72"),
        ("sha1", "abc", "a9993e364706816aba3e25717850c26c9cd0d89d"),
        (
            "sha512",
            "abc",
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        ),
        ("crc32", "123456789", "cbf43926"),
        ("crc64", "123456789", "995dc9bbdf1939fa"),
        ("xxhash64", "", "ef46db3751d8e999"),
        ("xxhash64", "abc", "44bc2cf5ad770999"),
    ];
    for (algo, input, want) in vectors {
        check_string(&format!("hash.{algo}('{input}')"), want);
        check_string(&format!("hash.{algo}('{input}', 'hex')"), want);
        check_string(&format!("'{input}'.{algo}()"), want);
    }
}

#[test]
fn hash_base64_and_bad_format() {
    check_string(
        "hash.sha256('abc', 'base64')",
        "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=",
    );
    check_string("'123456789'.crc32('base64')", "y/Q5Jg==");
    check_error("hash.md5('abc', 'octal')", "unknown format `octal`");
}

// === base64 ===

#[test]
fn base64_member_forms() {
    check_true("'aGVsbG8='.decodeBase64() == b'hello'");
    check_true("'aGVsbG8'.decodeBase64() == b'hello'");
    check_string("'hello'.encodeBase64()", "aGVsbG8=");
    check_string("b'hello'.encodeBase64()", "aGVsbG8=");
    check_error("'!!'.decodeBase64()", "illegal base64 data");
    check_true("base64.decode('aGVsbG8=') == b'hello'");
}

#[test]
fn basic_auth() {
    check_string("basic_auth.encode('user', 'pass')", "Basic dXNlcjpwYXNz");
}

// === JSON ===

#[test]
fn json_round_trips() {
    check_true(r#"json.decode('{"a": [1, 2, "x"], "b": null}').a[2] == 'x'"#);
    check_true(r#"json.decode('{"a": [1, 2, "x"], "b": null}').b == null"#);
    check_string(
        "json.encode({'b': 1, 'a': [true, 'x']})",
        r#"{"a":[true,"x"],"b":1}"#,
    );
    check_true("'[1, 2]'.decodeJson() == [1, 2]");
    check_true("json.decode(json.encode({'k': ['v', 1.5]})) == {'k': ['v', 1.5]}");
    check_string("[1, 'a'].encodeJson()", r#"[1,"a"]"#);
    check_string("{'x': {'y': false}}.encodeJson()", r#"{"x":{"y":false}}"#);
    check_true(r#"'{"a": 1}'.isJson()"#);
    check_true("!'{'.isJson()");
    check_error("json.decode('{')", "invalid JSON");
}

// === query strings ===

#[test]
fn query_string_decode() {
    check_true("queryString.decode('a=1&b=2&a=3') == {'a': ['1', '3'], 'b': ['2']}");
    check_true(
        "'q=hello+world&e=%26%3D&k'.decodeQueryString() == {'q': ['hello world'], 'e': ['&='], 'k': ['']}",
    );
    check_true("queryString.decode('') == {}");
    check_true("'a=1&b=2'.isQueryString()");
    check_true("!'a=%zz'.isQueryString()");
    check_true("!'x=1;y=2'.isQueryString()");
    check_error("queryString.decode('a=%zz')", "invalid URL escape `%zz`");
}

#[test]
fn query_string_encode() {
    check_string(
        "queryString.encode({'b': 'x y', 'a': ['1', '2']})",
        "a=1&a=2&b=x+y",
    );
    check_string("{'q': 'a&b=c'}.encodeQueryString()", "q=a%26b%3Dc");
    check_string("{'n': [1, 2u, true]}.encodeQueryString()", "n=1&n=2&n=true");
    check_true(
        "queryString.decode(queryString.encode({'k': ['a b', 'é']})) == {'k': ['a b', 'é']}",
    );
    check_error(
        "queryString.encode({'k': {'nested': 1}})",
        "expects string values",
    );
}

// === URLs ===

#[test]
fn url_escaping() {
    check_string("url.escape('a b&c/d')", "a+b%26c%2Fd");
    check_string("'a+b%26c'.unescapeUrl()", "a b&c");
    check_string("url.unescape('%C3%A9')", "é");
    check_string("'é~'.escapeUrl()", "%C3%A9~");
    check_error("'%zz'.unescapeUrl()", "invalid URL escape");
}

#[test]
fn url_parse_fields() {
    let u = "url.parse('https://user:pa%20ss@Example.com:8443/a%20b/c?x=1&y=2&x=3#frag')";
    check_string(&format!("{u}.scheme"), "https");
    check_string(&format!("{u}.user.username"), "user");
    check_string(&format!("{u}.user.password"), "pa ss");
    check_true(&format!("{u}.user.password_set"));
    check_string(&format!("{u}.host"), "Example.com:8443");
    check_string(&format!("{u}.hostname"), "Example.com");
    check_string(&format!("{u}.port"), "8443");
    check_string(&format!("{u}.path"), "/a b/c");
    check_string(&format!("{u}.raw_path"), "");
    check_string(&format!("{u}.raw_query"), "x=1&y=2&x=3");
    check_true(&format!("{u}.query == {{'x': ['1', '3'], 'y': ['2']}}"));
    check_string(&format!("{u}.fragment"), "frag");
    check_string(&format!("{u}.opaque"), "");

    check_string("'HTTP://h/a%2Fb'.parseUrl().scheme", "http");
    check_string("'http://h/a%2Fb'.parseUrl().path", "/a/b");
    check_string("'http://h/a%2Fb'.parseUrl().raw_path", "/a%2Fb");
    check_string(
        "'mailto:joe@example.com'.parseUrl().opaque",
        "joe@example.com",
    );
    check_string("'http://[::1]:80/'.parseUrl().hostname", "::1");
    check_string("'http://[::1]/'.parseUrl().port", "");
    check_string("'/just/a/path?q'.parseUrl().path", "/just/a/path");
    check_true("'http://h/?'.parseUrl().force_query");
    check_true("!url.parse('http://h/').user.password_set");
    check_error("url.parse('http://h:port/')", "invalid port");
    check_error("url.parse(':nope')", "missing protocol scheme");
    check_error("url.parse('a:b/c').nope", "no such key");
}

#[test]
fn is_url() {
    check_true("'https://example.com'.isURL()");
    check_true("'mailto:joe@example.com'.isURL()");
    check_true("!'not a url'.isURL()");
    check_true("!'/relative/path'.isURL()");
    check_true("!'http://h:port/'.isURL()");
}

// === random ===

#[test]
fn random_in_range() {
    let env = schema::env(Phase::HttpRequest);
    let program = env.compile("rand.int(1, 3)").expect("compiles");
    assert!(program.constant().is_none(), "rand.int must not fold");
    for _ in 0..50 {
        let got = program.eval(&());
        assert!(
            matches!(got, Ok(Value::Int(1..=3))),
            "rand.int(1, 3): {got:?}"
        );
    }
    for _ in 0..20 {
        check_true("rand.int() in [0, 1]");
        check_true("rand.double() >= 0.0 && rand.double() < 1.0");
    }
    check_error("rand.int(3, 1)", "bounds");
    check_error("rand.int(-1, 1)", "bounds");
}

// === secrets ===

struct TestSecrets;

impl SecretSource for TestSecrets {
    fn get(&self, vault: &str, name: &str) -> Option<String> {
        (vault == "vault" && name == "token").then(|| "s3cret".to_string())
    }
}

#[test]
fn secrets_from_a_source() {
    let mut env = schema::env(Phase::HttpRequest);
    register_with_secrets(&mut env, Phase::HttpRequest, Arc::new(TestSecrets));
    let got = eval_in(&env, "secrets.get('vault', 'token')");
    assert!(
        matches!(&got, Ok(Value::String(s)) if &**s == "s3cret"),
        "{got:?}"
    );
    let got = eval_in(&env, "secrets.get('vault', 'other')");
    assert!(
        matches!(&got, Err(e) if e.contains("`other`") && e.contains("`vault`") && !e.contains("s3cret")),
        "{got:?}"
    );
}

#[test]
fn a_missing_environment_secret_names_the_variable_to_set() {
    let mut env = schema::env(Phase::HttpRequest);
    register_with_secrets(&mut env, Phase::HttpRequest, Arc::new(EnvSecrets));
    let got = eval_in(&env, "secrets.get('entra-prod', 'client secret.v2')");
    assert_eq!(
        got.err().as_deref(),
        Some(
            "no secret `client secret.v2` in vault `entra-prod`: \
             set the environment variable `PORTCULLIS_SECRET_ENTRA_PROD_CLIENT_SECRET_V2`"
        ),
    );
    let got = eval_in(&env, "secrets.get('vault', 'other')");
    assert!(
        matches!(&got, Err(e) if e.ends_with("`PORTCULLIS_SECRET_VAULT_OTHER`")),
        "{got:?}"
    );
}

#[test]
fn secrets_without_a_source() {
    check_error(
        "secrets.get('vault', 'token') == 'x'",
        "no secret source configured",
    );
}

#[test]
fn env_secret_names() {
    assert_eq!(
        EnvSecrets::var_name("my-vault", "api key"),
        "PORTCULLIS_SECRET_MY_VAULT_API_KEY"
    );
    assert_eq!(EnvSecrets.get("no such vault", "\u{1}"), None);
}

#[test]
fn file_secrets() {
    let dir = std::env::temp_dir().join(format!(
        "portcullis-secrets-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(dir.join("vault")).expect("temp dir");
    std::fs::write(dir.join("vault").join("token"), "s3cret\n").expect("write secret");
    std::fs::write(dir.join("vault").join("crlf"), "v\r\n").expect("write secret");
    let source = FileSecrets { dir: dir.clone() };
    assert_eq!(source.get("vault", "token").as_deref(), Some("s3cret"));
    assert_eq!(source.get("vault", "crlf").as_deref(), Some("v"));
    assert_eq!(source.get("vault", "missing"), None);
    assert_eq!(source.get("..", "token"), None);
    assert_eq!(source.get("vault", "../vault/token"), None);
    let _ = std::fs::remove_dir_all(&dir);
}

// === request and response helpers ===

#[test]
fn request_helpers_check() {
    assert_eq!(
        type_of(Phase::HttpRequest, "getReqHeader('X-Api-Key')"),
        Ok(Type::list(Type::String))
    );
    assert_eq!(
        type_of(
            Phase::HttpRequest,
            "hasReqHeader('x') && hasQueryParam('q')"
        ),
        Ok(Type::Bool)
    );
    assert_eq!(
        type_of(Phase::HttpRequest, "getQueryParam('q')"),
        Ok(Type::list(Type::String))
    );
    assert_eq!(
        type_of(Phase::HttpRequest, "getReqCookie('session').value"),
        Ok(Type::String)
    );
    assert!(type_of(Phase::HttpRequest, "getReqCookie('session').nope").is_err());
    assert_eq!(
        type_of(Phase::HttpResponse, "getResCookie('s').max_age"),
        Ok(Type::Duration)
    );
    assert_eq!(
        type_of(Phase::HttpResponse, "getResHeader('x')"),
        Ok(Type::list(Type::String))
    );
    assert!(type_of(Phase::HttpRequest, "getResHeader('x')").is_err());
    assert!(type_of(Phase::HttpRequest, "hasResCookie('x')").is_err());
    assert!(type_of(Phase::TcpConnect, "getReqHeader('x')").is_err());
    assert!(type_of(Phase::HttpRequest, "getReqHeader(1)").is_err());
}

#[test]
fn request_helpers_fail_outside_the_proxy() {
    check_error(
        "hasReqHeader('x')",
        "`hasReqHeader` needs the request; it runs in the proxy",
    );
    let got = eval_in(&schema::env(Phase::HttpResponse), "hasResHeader('x')");
    assert!(
        matches!(&got, Err(e) if e.contains("needs the response")),
        "{got:?}"
    );
}

/// Headers as the proxy would expose them.
struct Headers(Vec<(String, Vec<String>)>);

impl MultiMap for Headers {
    fn key_count(&self) -> usize {
        self.0.len()
    }
    fn key_at(&self, index: usize) -> Option<&str> {
        self.0.get(index).map(|(k, _)| k.as_str())
    }
    fn count(&self, key: &str) -> usize {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map_or(0, |(_, v)| v.len())
    }
    fn value(&self, key: &str, index: usize) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.get(index))
            .map(String::as_str)
    }
}

fn map_of<'a>(entries: Vec<(&'a str, Value<'a>)>) -> Map<'a> {
    let entries = entries
        .into_iter()
        .map(|(k, v)| (Key::String(Str::Borrowed(k)), v))
        .collect();
    Map::Values(Arc::new(
        MapData::from_entries(entries).expect("distinct keys"),
    ))
}

#[test]
fn header_lookup_is_case_insensitive() {
    let headers = Headers(vec![
        (
            "x-api-key".to_string(),
            vec!["k1".to_string(), "k2".to_string()],
        ),
        ("accept".to_string(), vec!["*/*".to_string()]),
    ]);
    let multi = Map::Multi(&headers);
    let got = header_values(&multi, "X-Api-Key");
    assert!(got.equals(&Value::list(vec![Value::str("k1"), Value::str("k2")])));
    assert!(header_values(&multi, "accept").equals(&Value::list(vec![Value::str("*/*")])));
    assert!(header_values(&multi, "missing").equals(&Value::list(Vec::new())));

    let values = map_of(vec![(
        "content-type",
        Value::list(vec![Value::str("text/html")]),
    )]);
    assert!(
        header_values(&values, "Content-Type").equals(&Value::list(vec![Value::str("text/html")]))
    );
}

#[test]
fn query_params_and_cookies() {
    let params = map_of(vec![("q", Value::list(vec![Value::str("x")]))]);
    assert!(query_param_values(&params, "q").equals(&Value::list(vec![Value::str("x")])));
    assert!(query_param_values(&params, "Q").equals(&Value::list(Vec::new())));

    let cookie = |v: &'static str| {
        Value::Map(map_of(vec![
            ("name", Value::str("session")),
            ("value", Value::str(v)),
        ]))
    };
    let cookies = map_of(vec![(
        "session",
        Value::list(vec![cookie("a"), cookie("b")]),
    )]);
    let first = first_cookie(&cookies, "session").expect("a cookie");
    assert!(first.equals(&cookie("a")));
    assert!(first_cookie(&cookies, "Session").is_none());
}
