//! The OWASP Core Rule Set's own regression tests (the go-ftw YAML files
//! of the coreruleset project, vendored with CRS 4.28.0 in
//! `crates/waf/crs/tests`) run against `owasp-crs-request` and
//! `owasp-crs-response` through the real binary, as go-ftw runs them
//! against nginx with ModSecurity: each test's request is written by hand
//! on a TCP connection, the upstream is a stand-in for the CRS project's
//! `albedo` backend (its `/reflect` answers with the status, headers and
//! body a test asks for), and the rules that matched are read from the
//! action results, which the policy copies into response headers.
//!
//! The actions run as the CRS's test setup runs ModSecurity: paranoia
//! level 4, detection only (`enforce: false`), bodies inspected. Settings
//! of that setup a policy cannot give (lower argument-length limits) are
//! not made: the tests that need them fail, and are counted as failures.
//!
//! A test whose request the proxy's HTTP parsing refuses (`400` before
//! any action runs: a malformed request line, a bare CR in a header)
//! passes if it expected the attack to be caught, since the request never
//! reaches the upstream, and fails if it expected the request to pass; the
//! CRS project's overrides for nginx do the same. Tests that only check
//! ModSecurity's log text (`match_regex`) or a client error are skipped and
//! counted as such.
//!
//! Run `scripts/crs-regression` for the table of pass rates per rule file
//! (docs/owasp-crs.md keeps the last one).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use portcullis_policy::yaml::{self, Node, NodeKind};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[path = "support/proxy.rs"]
mod support;

use support::Proxy;

/// The least share of tests that must pass, overall.
const OVERALL: f64 = 0.95;

const POLICY: &str = r#"
on_http_request:
  - actions:
      - type: owasp-crs-request
        config:
          on_error: continue
          process_body: true
          paranoia_level: 4
          enforce: false
on_http_response:
  - actions:
      - type: owasp-crs-response
        config:
          on_error: continue
          process_body: true
          paranoia_level: 4
          enforce: false
      - type: add-headers
        config:
          headers:
            x-crs-request: "ids ${has(actions.ngrok.owasp_crs_request.matched_rules) ? actions.ngrok.owasp_crs_request.matched_rules.map(r, string(r.id)).join(' ') : ''}"
            x-crs-response: "ids ${has(actions.ngrok.owasp_crs_response.matched_rules) ? actions.ngrok.owasp_crs_response.matched_rules.map(r, string(r.id)).join(' ') : ''}"
"#;

fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/waf/crs/tests/regression/tests")
}

/// A stand-in for the CRS project's `albedo` test backend: `/reflect`
/// answers with the JSON body's `status`, `headers` and `body` (or
/// base64 `encodedBody`); anything else is `200` with an empty body.
async fn albedo() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(reflect);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

async fn reflect(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let reflect = req.uri().path() == "/reflect";
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut res = Response::new(Full::new(Bytes::new()));
    if !reflect {
        return Ok(res);
    }
    let Ok(spec) = serde_json::from_slice::<serde_json::Value>(&body) else {
        *res.status_mut() = http::StatusCode::BAD_REQUEST;
        return Ok(res);
    };
    let text = if let Some(b) = spec["encodedBody"].as_str() {
        base64::engine::general_purpose::STANDARD
            .decode(b)
            .unwrap_or_default()
    } else {
        spec["body"].as_str().unwrap_or("").as_bytes().to_vec()
    };
    let mut res = Response::new(Full::new(Bytes::from(text)));
    if let Some(status) = spec["status"]
        .as_u64()
        .and_then(|s| http::StatusCode::from_u16(u16::try_from(s).ok()?).ok())
    {
        *res.status_mut() = status;
    }
    let mut typed = false;
    if let Some(headers) = spec["headers"].as_object() {
        for (name, value) in headers {
            if let (Ok(n), Some(Ok(v))) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                value.as_str().map(http::HeaderValue::from_str),
            ) {
                typed |= n == http::header::CONTENT_TYPE;
                res.headers_mut().append(n, v);
            }
        }
    }
    if !typed {
        // albedo is a Go server: Go sniffs a type for untyped bodies.
        res.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    Ok(res)
}

/// One stage of a test: the request to send and what to expect.
#[derive(Debug, Default)]
struct Stage {
    raw: Vec<u8>,
    expect_ids: Vec<u32>,
    no_expect_ids: Vec<u32>,
    status: Vec<u16>,
    response_contains: Option<String>,
    /// Checks only ModSecurity's log text or a client error: skipped.
    unsupported: bool,
}

#[derive(Debug)]
struct Case {
    file: String,
    rule: u32,
    id: u32,
    stages: Vec<Stage>,
}

/// What the CRS project's overrides for libmodsecurity3 (on nginx) expect
/// instead of a test's own output: `None` ignores the test.
type Overrides = BTreeMap<(u32, u32), Option<Stage>>;

fn overrides() -> Overrides {
    let path = tests_dir().join("../nginx-overrides.yaml");
    let src = std::fs::read_to_string(&path).expect("the overrides file");
    let (Some(doc), diags) = yaml::parse(&src) else {
        panic!("{} does not parse", path.display());
    };
    assert!(diags.is_empty(), "{diags:?}");
    let mut out = Overrides::new();
    for o in items(doc.get("test_overrides")) {
        let rule = numbers(o.get("rule_id"));
        let output = o.get("output").map(|output| {
            let log = output.get("log");
            Stage {
                expect_ids: numbers(log.and_then(|l| l.get("expect_ids"))),
                no_expect_ids: numbers(log.and_then(|l| l.get("no_expect_ids"))),
                status: numbers(output.get("status"))
                    .into_iter()
                    .filter_map(|s| u16::try_from(s).ok())
                    .collect(),
                ..Stage::default()
            }
        });
        for test in numbers(o.get("test_ids")) {
            for &r in &rule {
                out.insert(
                    (r, test),
                    output.as_ref().map(|s| Stage {
                        expect_ids: s.expect_ids.clone(),
                        no_expect_ids: s.no_expect_ids.clone(),
                        status: s.status.clone(),
                        ..Stage::default()
                    }),
                );
            }
        }
    }
    out
}

fn text<'n>(node: &'n Node, key: &str) -> Option<&'n str> {
    node.get(key)?.scalar().map(|s| s.value.as_str())
}

fn items(node: Option<&Node>) -> &[Node] {
    match node.map(|n| &n.kind) {
        Some(NodeKind::Seq(items)) => items,
        _ => &[],
    }
}

fn numbers(node: Option<&Node>) -> Vec<u32> {
    match node.map(|n| &n.kind) {
        Some(NodeKind::Seq(items)) => items
            .iter()
            .filter_map(|i| i.scalar()?.value.trim().parse().ok())
            .collect(),
        Some(NodeKind::Scalar(s)) => s.value.trim().parse().into_iter().collect(),
        _ => Vec::new(),
    }
}

/// The request go-ftw writes for `input`: headers sorted by name; with
/// `autocomplete_headers` (the default), a form `Content-Type` for a body
/// without one, its keys and values percent-encoded if they were not,
/// `Connection: close` and `Content-Length`; LF turned into CRLF in a
/// multipart body.
fn request(input: &Node) -> Vec<u8> {
    if let Some(encoded) = text(input, "encoded_request") {
        let encoded: String = encoded.split_whitespace().collect();
        return base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("encoded_request is base64");
    }
    let method = text(input, "method").unwrap_or("GET");
    let uri = text(input, "uri").unwrap_or("/");
    let version = text(input, "version").unwrap_or("HTTP/1.1");
    let mut data = repeat(text(input, "data").unwrap_or(""));
    let autocomplete = text(input, "autocomplete_headers") != Some("false");
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    if let Some(NodeKind::Map(entries)) = input.get("headers").map(|h| &h.kind) {
        for (k, v) in entries {
            if let (Some(k), Some(v)) = (k.scalar(), v.scalar()) {
                headers.insert(k.value.clone(), v.value.clone());
            }
        }
    }
    let has =
        |h: &BTreeMap<String, String>, name: &str| h.keys().any(|k| k.eq_ignore_ascii_case(name));
    if !data.is_empty() && autocomplete {
        if !has(&headers, "content-type") {
            headers.insert(
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            );
        }
        let form = headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("content-type") && v == "application/x-www-form-urlencoded"
        });
        if form && !data.contains(['%', '+']) {
            data = data
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, v)) => format!("{}={}", query_escape(k), query_escape(v)),
                    None => query_escape(pair),
                })
                .collect::<Vec<_>>()
                .join("&");
        }
    }
    let multipart = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("content-type") && v.starts_with("multipart/form-data;")
    });
    if multipart {
        data = data.replace('\n', "\r\n");
    }
    if autocomplete {
        if !has(&headers, "connection") {
            headers.insert("Connection".into(), "close".into());
        }
        let body_method = method.starts_with("POST")
            || method.contains("PUT")
            || method.contains("PATCH")
            || method.ends_with("DELETE");
        if (!data.is_empty() || body_method) && !has(&headers, "content-length") {
            headers.insert("Content-Length".into(), data.len().to_string());
        }
    }
    let mut raw = format!("{method} {uri} {version}\r\n");
    for (k, v) in &headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    raw.push_str(&data);
    raw.into_bytes()
}

/// `data` with go-ftw's one template expanded: `{{ "x" | repeat N }}`.
fn repeat(data: &str) -> String {
    let mut out = String::new();
    let mut rest = data;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else {
            break;
        };
        let inner = &rest[start + 2..start + len];
        let expanded = inner.split_once("| repeat").and_then(|(what, n)| {
            let what = what.trim().trim_matches('"');
            Some(what.repeat(n.trim().parse().ok()?))
        });
        out.push_str(&rest[..start]);
        match expanded {
            Some(e) => out.push_str(&e),
            None => out.push_str(&rest[start..start + len + 2]),
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn load(path: &Path) -> Vec<Case> {
    let src = std::fs::read_to_string(path).expect("read test file");
    let (doc, diags) = yaml::parse(&src);
    assert!(diags.is_empty(), "{}: {diags:?}", path.display());
    // A file of comments only (one keeps the CRS's linter quiet).
    let Some(doc) = doc else {
        return Vec::new();
    };
    let file = path
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let rule = numbers(doc.get("rule_id")).first().copied().unwrap_or(0);
    let mut cases = Vec::new();
    for test in items(doc.get("tests")) {
        let id = numbers(test.get("test_id")).first().copied().unwrap_or(0);
        let mut stages = Vec::new();
        for stage in items(test.get("stages")) {
            // Older files nest the stage under `stage:`.
            let stage = stage.get("stage").unwrap_or(stage);
            let (Some(input), Some(output)) = (stage.get("input"), stage.get("output")) else {
                continue;
            };
            let log = output.get("log");
            let mut s = Stage {
                raw: request(input),
                expect_ids: numbers(log.and_then(|l| l.get("expect_ids"))),
                no_expect_ids: numbers(log.and_then(|l| l.get("no_expect_ids"))),
                status: numbers(output.get("status"))
                    .into_iter()
                    .filter_map(|s| u16::try_from(s).ok())
                    .collect(),
                response_contains: text(output, "response_contains").map(str::to_owned),
                unsupported: false,
            };
            s.unsupported = text(output, "expect_error") == Some("true")
                || (s.expect_ids.is_empty()
                    && s.no_expect_ids.is_empty()
                    && s.status.is_empty()
                    && s.response_contains.is_none());
            stages.push(s);
        }
        cases.push(Case {
            file: file.clone(),
            rule,
            id,
            stages,
        });
    }
    cases
}

/// What the proxy answered.
#[derive(Debug, Default)]
struct Answer {
    status: u16,
    ids: Vec<u32>,
    /// The policy's headers were there: the actions ran.
    checked: bool,
    body: String,
}

async fn send(proxy: SocketAddr, raw: &[u8]) -> Answer {
    let Ok(Ok(mut stream)) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(proxy),
    )
    .await
    else {
        return Answer::default();
    };
    let _ = stream.write_all(raw).await;
    let mut buf = Vec::new();
    let read = async {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            // One response is enough: stop at its end when it says how
            // long it is (a test may have left the connection open).
            if response_complete(&buf) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    parse_answer(&buf)
}

fn response_complete(buf: &[u8]) -> bool {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    head.lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .is_some_and(|n| buf.len() >= end + 4 + n)
}

fn parse_answer(buf: &[u8]) -> Answer {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Answer::default();
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut answer = Answer {
        status,
        body: String::from_utf8_lossy(&buf[end + 4..]).into_owned(),
        ..Answer::default()
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("x-crs-request") || name.eq_ignore_ascii_case("x-crs-response")
        {
            answer.checked = true;
            answer.ids.extend(
                value
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|id| id.parse::<u32>().ok()),
            );
        }
    }
    answer
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Pass,
    /// Refused by the proxy's HTTP parsing, as the test wanted the attack
    /// stopped.
    Refused,
    Fail(String),
    Skip,
}

fn judge(stage: &Stage, answer: &Answer) -> Verdict {
    if stage.unsupported {
        return Verdict::Skip;
    }
    if !answer.checked {
        // The actions never ran: the proxy refused the request itself.
        let refused = (400..500).contains(&answer.status);
        return if refused && !stage.expect_ids.is_empty() {
            Verdict::Refused
        } else if !stage.status.is_empty() && stage.status.contains(&answer.status) {
            Verdict::Pass
        } else {
            Verdict::Fail(format!(
                "the proxy answered {} before the WAF ran",
                answer.status
            ))
        };
    }
    let missing: Vec<u32> = stage
        .expect_ids
        .iter()
        .copied()
        .filter(|id| !answer.ids.contains(id))
        .collect();
    let unexpected: Vec<u32> = stage
        .no_expect_ids
        .iter()
        .copied()
        .filter(|id| answer.ids.contains(id))
        .collect();
    let status_ok = stage.status.is_empty() || stage.status.contains(&answer.status);
    let contains_ok = stage
        .response_contains
        .as_ref()
        .is_none_or(|c| answer.body.contains(c.as_str()));
    if missing.is_empty() && unexpected.is_empty() && status_ok && contains_ok {
        Verdict::Pass
    } else {
        Verdict::Fail(format!(
            "missing {missing:?}, unexpected {unexpected:?}, status {} (wanted {:?}), matched {:?}",
            answer.status, stage.status, answer.ids
        ))
    }
}

#[derive(Default)]
struct Tally {
    pass: usize,
    refused: usize,
    fail: usize,
    skip: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(clippy::print_stderr, reason = "the table of pass rates is the report")]
async fn the_crs_regression_suite_passes() {
    if let Err(e) = portcullis_waf::library_version() {
        panic!("the CRS regression suite needs libmodsecurity3: {e}");
    }
    let mut cases = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(tests_dir())
        .expect("the vendored CRS tests")
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("a rule's tests")
            .filter_map(|e| Some(e.ok()?.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        files.sort();
        for f in files {
            cases.extend(load(&f));
        }
    }
    assert!(cases.len() > 4000, "only {} tests were read", cases.len());

    let upstream = albedo().await;
    let proxy = Proxy::http(POLICY, upstream);
    let addr: SocketAddr = proxy
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("the proxy's address");

    // Eight at a time: each test's stages in order.
    let cases = Arc::new(cases);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (cases, next) = (Arc::clone(&cases), Arc::clone(&next));
        workers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(case) = cases.get(i) else { break };
                let mut answers = Vec::new();
                for stage in &case.stages {
                    answers.push(send(addr, &stage.raw).await);
                }
                out.push((i, answers));
            }
            out
        }));
    }
    let mut answers = Vec::new();
    for w in workers {
        answers.extend(w.await.expect("a worker"));
    }
    answers.sort_by_key(|(i, _)| *i);

    let overrides = overrides();
    let (written, written_failures) = tally(&cases, &answers, None);
    let (overridden, _) = tally(&cases, &answers, Some(&overrides));
    let mut table = String::from(
        "| rule file | passed | refused by HTTP parsing | failed | skipped | pass rate | with the libmodsecurity3 overrides |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for (file, t) in &written {
        let o = &overridden[file];
        table.push_str(&format!(
            "| {file} | {} | {} | {} | {} | {:.1}% | {:.1}% |\n",
            t.pass,
            t.refused,
            t.fail,
            t.skip,
            t.rate() * 100.0,
            o.rate() * 100.0,
        ));
    }
    let sum = |m: &BTreeMap<String, Tally>| {
        m.values().fold(Tally::default(), |a, t| Tally {
            pass: a.pass + t.pass,
            refused: a.refused + t.refused,
            fail: a.fail + t.fail,
            skip: a.skip + t.skip,
        })
    };
    let (all, all_o) = (sum(&written), sum(&overridden));
    table.push_str(&format!(
        "| **all** | {} | {} | {} | {} | {:.1}% | {:.1}% |\n",
        all.pass,
        all.refused,
        all.fail,
        all.skip,
        all.rate() * 100.0,
        all_o.rate() * 100.0,
    ));
    eprintln!(
        "{table}\nfailures (as written):\n{}",
        written_failures.join("\n")
    );
    assert!(
        all.rate() >= OVERALL,
        "{:.1}% of the CRS regression tests pass, below {:.0}%",
        all.rate() * 100.0,
        OVERALL * 100.0
    );
}

impl Tally {
    fn rate(&self) -> f64 {
        let run = self.pass + self.refused + self.fail;
        if run == 0 {
            1.0
        } else {
            (self.pass + self.refused) as f64 / run as f64
        }
    }
}

/// The verdicts per rule file, and the failures, with or without the
/// overrides.
fn tally(
    cases: &[Case],
    answers: &[(usize, Vec<Answer>)],
    overrides: Option<&Overrides>,
) -> (BTreeMap<String, Tally>, Vec<String>) {
    let mut by_file: BTreeMap<String, Tally> = BTreeMap::new();
    let mut failures = Vec::new();
    for (i, answers) in answers {
        let case = &cases[*i];
        let t = by_file.entry(case.file.clone()).or_default();
        let replaced = overrides.and_then(|o| o.get(&(case.rule, case.id)));
        let mut verdict = Verdict::Skip;
        for (stage, answer) in case.stages.iter().zip(answers) {
            let v = match replaced {
                Some(None) => Verdict::Skip,
                Some(Some(instead)) => judge(
                    &Stage {
                        raw: Vec::new(),
                        expect_ids: instead.expect_ids.clone(),
                        no_expect_ids: instead.no_expect_ids.clone(),
                        status: instead.status.clone(),
                        response_contains: None,
                        unsupported: false,
                    },
                    answer,
                ),
                None => judge(stage, answer),
            };
            verdict = match (verdict, v) {
                (Verdict::Fail(e), _) | (_, Verdict::Fail(e)) => Verdict::Fail(e),
                (Verdict::Refused, _) | (_, Verdict::Refused) => Verdict::Refused,
                (Verdict::Pass, _) | (_, Verdict::Pass) => Verdict::Pass,
                _ => Verdict::Skip,
            };
        }
        match verdict {
            Verdict::Pass => t.pass += 1,
            Verdict::Refused => t.refused += 1,
            Verdict::Skip => t.skip += 1,
            Verdict::Fail(why) => {
                t.fail += 1;
                failures.push(format!("{} {}-{}: {why}", case.file, case.rule, case.id));
            }
        }
    }
    failures.sort();
    (by_file, failures)
}
