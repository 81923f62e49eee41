//! The documented-examples corpus (`tests/documented/`, its README says
//! the format): every example on the action pages of ngrok's documentation,
//! linted as a user would lint it, then run through the real binary over
//! loopback with the requests its case describes, asserting what the page
//! says the example does.
//!
//! One test walks the whole corpus and reports every failing case at once,
//! with its source, rather than stopping at the first: a case is a claim
//! about ngrok's docs, and the report is the list of claims that do not
//! hold.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use portcullis_policy::yaml::{self, Node};

#[path = "support/proxy.rs"]
mod proxy;

use proxy::{Proxy, temp_dir};

/// A case file's folder.
fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/documented")
}

// ---- reading the case files ----

fn text(n: &Node) -> Option<String> {
    n.scalar().map(|s| s.value.clone())
}

fn field(n: &Node, key: &str) -> Option<String> {
    n.get(key).and_then(text)
}

fn items(n: Option<&Node>) -> Vec<&Node> {
    n.map_or(&[][..], Node::items).iter().collect()
}

fn pairs(n: Option<&Node>) -> Vec<(String, &Node)> {
    n.into_iter()
        .flat_map(Node::entries)
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

fn strings(n: Option<&Node>) -> Vec<String> {
    items(n).into_iter().filter_map(text).collect()
}

fn string_map(n: Option<&Node>) -> Vec<(String, String)> {
    pairs(n)
        .into_iter()
        .filter_map(|(k, v)| Some((k, text(v)?)))
        .collect()
}

/// `false` written for a map field.
fn is_false(n: Option<&Node>) -> bool {
    n.and_then(text).is_some_and(|t| t == "false")
}

struct Case<'a> {
    file: String,
    node: &'a Node,
    example: String,
    source: String,
    policy: String,
}

impl Case<'_> {
    fn name(&self) -> String {
        format!("{} / {} ({})", self.file, self.example, self.source)
    }
}

// ---- a recording upstream ----

/// What an upstream saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What an upstream answers: a case's `upstream_response`, else an echo.
#[derive(Clone, Default)]
struct Answer {
    status: Option<u16>,
    headers: Vec<(String, String)>,
    body: Option<String>,
}

impl Answer {
    fn of(n: Option<&Node>) -> Answer {
        let Some(n) = n else {
            return Answer::default();
        };
        Answer {
            status: field(n, "status").and_then(|s| s.parse().ok()),
            headers: string_map(n.get("headers")),
            body: field(n, "body"),
        }
    }
}

/// Starts an upstream that records every request and answers `answer`.
async fn recording(answer: Answer) -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let addr = listener.local_addr().expect("addr");
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (log, answer) = (log.clone(), answer.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let (log, answer) = (log.clone(), answer.clone());
                    async move { Ok::<_, Infallible>(record(req, &log, &answer).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

async fn record(
    req: Request<Incoming>,
    log: &Mutex<Vec<Seen>>,
    answer: &Answer,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let seen = Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let echo = serde_json::json!({
        "method": seen.method,
        "path": seen.path,
        "query": seen.query,
        "headers": seen.headers.iter().fold(serde_json::Map::new(), |mut m, (k, v)| {
            if let Some(a) = m
                .entry(k.clone())
                .or_insert_with(|| serde_json::json!([]))
                .as_array_mut()
            {
                a.push(v.clone().into());
            }
            m
        }),
        "body": seen.body,
    });
    log.lock().expect("log").push(seen);
    let mut res = Response::builder()
        .status(answer.status.unwrap_or(200))
        .body(Full::new(Bytes::from(
            answer.body.clone().unwrap_or_else(|| format!("{echo:#}\n")),
        )))
        .expect("response");
    if answer.body.is_none() && !answer.headers.iter().any(|(k, _)| k == "content-type") {
        res.headers_mut()
            .insert("content-type", "application/json".parse().expect("value"));
    }
    for (k, v) in &answer.headers {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            res.headers_mut().append(k, v);
        }
    }
    res
}

// ---- a client ----

/// The response to one request, or `None` when the connection closed
/// without one.
struct Got {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

async fn send(addr: SocketAddr, req: &Node) -> Option<Got> {
    let method = field(req, "method").unwrap_or_else(|| "GET".to_owned());
    let path = field(req, "path").unwrap_or_else(|| "/".to_owned());
    // Origin form, as a browser sends it: the `Host` header names the
    // endpoint (a case may set its own, for host-based rules).
    let mut builder = Request::builder().method(method.as_str()).uri(path);
    let headers = string_map(req.get("headers"));
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        builder = builder.header("host", addr.to_string());
    }
    for (k, v) in headers {
        builder = builder.header(k, v);
    }
    let body = field(req, "body").unwrap_or_default();
    let req = builder.body(Full::new(Bytes::from(body))).ok()?;
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .ok()?;
    tokio::spawn(conn);
    let res = tokio::time::timeout(Duration::from_secs(30), sender.send_request(req))
        .await
        .ok()?
        .ok()?;
    let (parts, body) = res.into_parts();
    let body = body.collect().await.ok()?.to_bytes();
    Some(Got {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

// ---- expectations ----

fn check_seen(what: &str, want: &Node, seen: &Seen, errors: &mut Vec<String>) {
    for key in ["method", "path", "query", "body"] {
        if let Some(w) = field(want, key) {
            let got = match key {
                "method" => &seen.method,
                "path" => &seen.path,
                "query" => &seen.query,
                _ => &seen.body,
            };
            if *got != w {
                errors.push(format!("{what} {key}: want {w:?}, got {got:?}"));
            }
        }
    }
    for (k, w) in string_map(want.get("headers")) {
        match seen.header(&k) {
            Some(v) if v == w => {}
            got => errors.push(format!("{what} header {k}: want {w:?}, got {got:?}")),
        }
    }
    for k in strings(want.get("absent_headers")) {
        if let Some(v) = seen.header(&k) {
            errors.push(format!("{what} header {k} should be absent, was {v:?}"));
        }
    }
}

fn check_response(want: &Node, got: &Got, errors: &mut Vec<String>) {
    if let Some(status) = field(want, "status")
        && got.status.as_str() != status
    {
        errors.push(format!(
            "status: want {status}, got {} (body {:?})",
            got.status,
            got.body.chars().take(300).collect::<String>()
        ));
    }
    let header = |k: &str| {
        got.headers
            .get_all(k)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
    };
    for (k, w) in string_map(want.get("headers")) {
        let values = header(&k);
        if !values.contains(&w) {
            errors.push(format!("response header {k}: want {w:?}, got {values:?}"));
        }
    }
    for (k, w) in string_map(want.get("headers_contain")) {
        let values = header(&k);
        if !values.iter().any(|v| v.contains(&w)) {
            errors.push(format!(
                "response header {k}: want one containing {w:?}, got {values:?}"
            ));
        }
    }
    for k in strings(want.get("absent_headers")) {
        let values = header(&k);
        if !values.is_empty() {
            errors.push(format!(
                "response header {k} should be absent, got {values:?}"
            ));
        }
    }
    if let Some(w) = field(want, "body")
        && got.body != w
    {
        errors.push(format!("body: want {w:?}, got {:?}", got.body));
    }
    for w in strings(want.get("body_contains")) {
        if !got.body.contains(&w) {
            errors.push(format!(
                "body should contain {w:?}, got {:?}",
                got.body.chars().take(500).collect::<String>()
            ));
        }
    }
}

/// What a case's upstream (or an internal endpoint) saw of one request:
/// the requests recorded after `before`.
fn check_reached(
    what: &str,
    want: Option<&Node>,
    log: &Mutex<Vec<Seen>>,
    before: usize,
    errors: &mut Vec<String>,
) {
    let Some(want) = want else { return };
    let seen = log.lock().expect("log");
    let new = &seen[before.min(seen.len())..];
    if is_false(Some(want)) {
        if let Some(s) = new.last() {
            errors.push(format!(
                "{what} should not have been reached, saw {} {}",
                s.method, s.path
            ));
        }
        return;
    }
    match new.last() {
        Some(s) => check_seen(what, want, s, errors),
        None => errors.push(format!("{what} was not reached")),
    }
}

// ---- lint ----

/// `portcullis lint` over every case's policy at once (as a user lints a
/// folder): each file's findings as `severity[code]`, in order, and how
/// long the run took.
fn lint_all(cases: &[Case<'_>]) -> (Vec<Vec<String>>, Duration) {
    let dir = temp_dir("documented-lint");
    for (i, case) in cases.iter().enumerate() {
        std::fs::write(dir.join(format!("{i:04}.yml")), &case.policy).expect("write policy");
    }
    let started = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["lint", "--format", "short"])
        .arg(&dir)
        .output()
        .expect("portcullis lint runs");
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut found = vec![Vec::new(); cases.len()];
    for line in stdout.lines() {
        // `DIR/0003.yml:4:9: warning[unused-var]: message`
        let Some(rest) = line.strip_prefix(&format!("{}/", dir.display())) else {
            continue;
        };
        let Some(i) = rest.get(..4).and_then(|n| n.parse::<usize>().ok()) else {
            continue;
        };
        let finding = rest
            .split(": ")
            .nth(1)
            .and_then(|f| f.split(':').next())
            .unwrap_or("")
            .to_owned();
        if let Some(f) = found.get_mut(i) {
            f.push(finding);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    (found, took)
}

// ---- running a case ----

async fn run(case: &Case<'_>) -> Vec<String> {
    let mut errors = Vec::new();
    let (up, up_log) = recording(Answer::of(case.node.get("upstream_response"))).await;
    let internal_answer = Answer::of(case.node.get("internal_response"));
    let mut internal = BTreeMap::new();
    for name in strings(case.node.get("internal")) {
        internal.insert(name, recording(internal_answer.clone()).await);
    }
    let dir = temp_dir("documented");
    let path = dir.join("policy.yml");
    std::fs::write(&path, &case.policy).expect("write policy");
    let mut args: Vec<String> = [
        "http",
        &up.to_string(),
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--log-format",
        "json",
        "--traffic-policy-file",
        &path.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (name, (addr, _)) in &internal {
        args.push("--internal".into());
        args.push(format!("{name}={addr}"));
    }
    for db in strings(case.node.get("ip_intelligence")) {
        args.push("--ip-intelligence".into());
        args.push(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("crates/actions/tests/data/maxmind")
                .join(db)
                .display()
                .to_string(),
        );
    }
    if let Some(policies) = field(case.node, "ip_policies") {
        let file = dir.join("ip-policies.yml");
        std::fs::write(&file, policies).expect("write IP policies");
        args.push("--ip-policies".into());
        args.push(file.display().to_string());
    }
    let env = string_map(case.node.get("env"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let proxy = match Proxy::spawn_with_env(&args, dir, &env) {
        Ok(p) => p,
        Err(log) => return vec![format!("the proxy did not start: {log}")],
    };
    for (i, req) in items(case.node.get("requests")).into_iter().enumerate() {
        let mut errs = Vec::new();
        let repeat: usize = field(req, "repeat")
            .and_then(|r| r.parse().ok())
            .unwrap_or(1);
        let Some(want) = req.get("expect") else {
            errors.push(format!("request {i}: no `expect`"));
            continue;
        };
        let mut got = None;
        let mut before = 0;
        let mut before_internal = BTreeMap::new();
        for _ in 0..repeat {
            before = up_log.lock().expect("log").len();
            for (name, (_, log)) in &internal {
                before_internal.insert(name.clone(), log.lock().expect("log").len());
            }
            got = send(proxy.addr, req).await;
        }
        let closed = field(want, "connection_closed").is_some_and(|c| c == "true");
        match (&got, closed) {
            (None, true) => {}
            (Some(g), true) => errs.push(format!(
                "the connection should have closed, got {}",
                g.status
            )),
            (None, false) => errs.push("the connection closed without a response".into()),
            (Some(g), false) => check_response(want, g, &mut errs),
        }
        check_reached(
            "the upstream",
            want.get("upstream"),
            &up_log,
            before,
            &mut errs,
        );
        let want_internal = want.get("internal");
        for (name, (_, log)) in &internal {
            let w = if is_false(want_internal) {
                want_internal
            } else {
                want_internal.and_then(|w| w.get(name))
            };
            check_reached(
                &format!("internal endpoint {name}"),
                w,
                log,
                before_internal.get(name).copied().unwrap_or(0),
                &mut errs,
            );
        }
        for w in strings(want.get("log_contains")) {
            if !proxy.wait_for_log(&w) {
                errs.push(format!("the log should contain {w:?}"));
            }
        }
        errors.extend(errs.into_iter().map(|e| format!("request {i}: {e}")));
    }
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(
    clippy::print_stderr,
    reason = "the counts and the lint time are the report"
)]
async fn every_documented_example_lints_and_behaves_as_documented() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus())
        .expect("tests/documented")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no case files in tests/documented");
    let sources: Vec<(String, String)> = files
        .iter()
        .map(|p| {
            (
                p.file_name().expect("name").to_string_lossy().into_owned(),
                std::fs::read_to_string(p).expect("read case file"),
            )
        })
        .collect();
    let mut roots = Vec::new();
    for (name, src) in &sources {
        let (root, diags) = yaml::parse(src);
        assert!(diags.is_empty(), "{name}: {diags:?}");
        roots.push((name.clone(), root.expect("a document")));
    }
    let mut cases = Vec::new();
    for (file, root) in &roots {
        for node in items(root.get("cases")) {
            let get = |k: &str| field(node, k).unwrap_or_default();
            assert!(
                !get("source").is_empty() && !get("policy").is_empty(),
                "{file}: a case without `source` or `policy`"
            );
            cases.push(Case {
                file: file.clone(),
                node,
                example: get("example"),
                source: get("source"),
                policy: get("policy"),
            });
        }
    }

    let (found, took) = lint_all(&cases);
    let (mut ran, mut wrong, mut not_run) = (0, 0, 0);
    let mut failures = Vec::new();
    for (case, found) in cases.iter().zip(&found) {
        let listed = strings(case.node.get("lint"));
        if *found != listed {
            failures.push(format!(
                "{}: lint reports {found:?}, the case lists {listed:?}",
                case.name()
            ));
        }
        let errors = found.iter().any(|f| f.starts_with("error"));
        if case.node.get("judged_wrong").is_some() {
            wrong += 1;
            // Wrong in what it claims, yet a valid policy: it runs, and
            // the case says what it really does.
            if errors {
                continue;
            }
            if items(case.node.get("requests")).is_empty() {
                failures.push(format!(
                    "{}: judged wrong but lints clean: say what it does instead",
                    case.name()
                ));
                continue;
            }
        } else if errors {
            failures.push(format!(
                "{}: a valid example has lint errors {found:?}",
                case.name()
            ));
            continue;
        }
        if case.node.get("not_run").is_some() {
            not_run += 1;
            continue;
        }
        if items(case.node.get("requests")).is_empty() {
            failures.push(format!("{}: no requests", case.name()));
            continue;
        }
        if case.node.get("judged_wrong").is_none() {
            ran += 1;
        }
        for e in run(case).await {
            failures.push(format!("{}: {e}", case.name()));
        }
    }
    eprintln!(
        "documented examples: {} cases in {} files; {ran} run end to end as documented, \
         {not_run} linted only (not runnable here), {wrong} judged wrong in ngrok's docs; \
         lint of all {} took {took:?}",
        cases.len(),
        files.len(),
        cases.len(),
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
