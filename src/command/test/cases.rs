//! Test files: YAML beside the policy they test (`policy.test.yml` for
//! `policy.yml`), read into [`TestFile`]s. The format is documented in
//! README.md (`portcullis test`).

use std::path::{Path, PathBuf};

use portcullis_policy::yaml::{self, Node};

/// A test file: the policy and its cases.
pub(crate) struct TestFile {
    pub(crate) path: PathBuf,
    pub(crate) policy: PathBuf,
    pub(crate) cases: Vec<Case>,
}

/// One case: a request, the world around it, what must come of it.
pub(crate) struct Case {
    pub(crate) name: String,
    pub(crate) request: Req,
    pub(crate) upstream: Answer,
    /// Answers of the calls the policy makes (`http-request`, a sign-in's
    /// discovery and keys), by URL prefix.
    pub(crate) http_requests: Vec<(String, Answer)>,
    /// The signed-in user's claims, for the policy's sign-in actions.
    pub(crate) identity: Option<serde_json::Value>,
    /// Internal endpoints `forward-internal` may send to, by name
    /// (`api.internal`), and what each answers.
    pub(crate) internal: Vec<(String, Answer)>,
    /// `secrets.get(vault, name)`'s answers: ((vault, name), value).
    pub(crate) secrets: Vec<((String, String), String)>,
    pub(crate) expect: Expect,
}

pub(crate) struct Req {
    /// Sent this many times (a rate limit's window filled); the outcome
    /// is the last one's.
    pub(crate) repeat: usize,
    pub(crate) method: String,
    /// Absolute: `https://app.example.com/path?query`.
    pub(crate) url: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
    pub(crate) client_ip: String,
    /// What `time.now` reads (RFC 3339); the clock's when absent.
    pub(crate) time: Option<String>,
    /// The TLS the client connected with; plain TCP when absent.
    pub(crate) tls: Option<Tls>,
}

/// TLS facts of a case's connection.
#[derive(Clone, Default)]
pub(crate) struct Tls {
    pub(crate) version: String,
    pub(crate) cipher_suite: String,
    pub(crate) sni: Option<String>,
    pub(crate) alpn: Option<String>,
    /// The client's certificate, PEM.
    pub(crate) client_certificate: Option<String>,
}

/// An answer the world gives: the upstream's, or an internal service's.
#[derive(Clone, Debug, Default)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

/// What the request the upstream received must be.
#[derive(Default)]
pub(crate) struct Upstream {
    /// Which got it: `upstream`, or an internal endpoint's name.
    pub(crate) endpoint: Option<String>,
    pub(crate) method: Option<String>,
    pub(crate) path: Option<String>,
    pub(crate) query: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) absent_headers: Vec<String>,
    pub(crate) body: Option<String>,
}

#[derive(Default)]
pub(crate) struct Expect {
    pub(crate) status: Option<u16>,
    pub(crate) headers: Vec<(String, String)>,
    /// Headers whose value contains the text (a redirect's `location`).
    pub(crate) headers_contain: Vec<(String, String)>,
    pub(crate) absent_headers: Vec<String>,
    pub(crate) body: Option<String>,
    pub(crate) body_contains: Vec<String>,
    /// `Some(None)`: never reached; `Some(Some(..))`: reached, so.
    pub(crate) upstream: Option<Option<Upstream>>,
    /// The rules whose actions ran, by name (or `#n`), in order.
    pub(crate) rules: Option<Vec<String>>,
    /// The actions that ran, by type, in order.
    pub(crate) actions: Option<Vec<String>>,
    /// Whether the connection was closed without an answer.
    pub(crate) closed: Option<bool>,
    /// `vars` `set-vars` set, and their last values.
    pub(crate) vars: Vec<(String, serde_json::Value)>,
}

/// A problem with a test file, with where it is.
pub(crate) struct Invalid(pub(crate) String);

fn text(n: &Node) -> Option<String> {
    n.scalar().map(|s| s.value.clone())
}

fn map(n: Option<&Node>) -> Vec<(String, &Node)> {
    n.into_iter()
        .flat_map(Node::entries)
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

fn seq(n: Option<&Node>) -> Vec<&Node> {
    n.map_or(&[][..], Node::items).iter().collect()
}

fn strings(n: Option<&Node>) -> Vec<String> {
    seq(n).into_iter().filter_map(text).collect()
}

fn pairs(n: Option<&Node>) -> Vec<(String, String)> {
    map(n)
        .into_iter()
        .filter_map(|(k, v)| Some((k, text(v)?)))
        .collect()
}

/// Checks that `n` (a map) has only `known` keys.
fn only(n: &Node, known: &[&str], what: &str, src: &str, path: &Path) -> Result<(), Invalid> {
    for (k, _) in map(Some(n)) {
        if !known.contains(&k.as_str()) {
            let line = yaml::line_of(src, n.span.start as usize);
            return Err(Invalid(format!(
                "{}:{line}: unknown field `{k}` in {what} (known: {})",
                path.display(),
                known.join(", ")
            )));
        }
    }
    Ok(())
}

fn answer(n: Option<&Node>, default_status: u16) -> Answer {
    let Some(n) = n else {
        return Answer {
            status: default_status,
            ..Answer::default()
        };
    };
    Answer {
        status: n
            .get("status")
            .and_then(text)
            .and_then(|s| s.parse().ok())
            .unwrap_or(default_status),
        headers: pairs(n.get("headers")),
        body: n.get("body").and_then(text).unwrap_or_default(),
    }
}

/// Reads the test file at `path`.
pub(crate) fn read(path: &Path) -> Result<TestFile, Invalid> {
    let src =
        std::fs::read_to_string(path).map_err(|e| Invalid(format!("{}: {e}", path.display())))?;
    let (root, diags) = yaml::parse(&src);
    if let Some(d) = diags.first() {
        let line = yaml::line_of(&src, d.span.start as usize);
        return Err(Invalid(format!("{}:{line}: {}", path.display(), d.message)));
    }
    let root = root.ok_or_else(|| Invalid(format!("{}: empty", path.display())))?;
    only(&root, &["policy", "cases"], "a test file", &src, path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let policy = match root.get("policy").and_then(text) {
        Some(p) => dir.join(p),
        None => {
            // `x.test.yml` tests `x.yml` (or `x.yaml`).
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let stem = name
                .strip_suffix(".test.yml")
                .or_else(|| name.strip_suffix(".test.yaml"))
                .unwrap_or(name);
            let yml = dir.join(format!("{stem}.yml"));
            if yml.exists() {
                yml
            } else {
                dir.join(format!("{stem}.yaml"))
            }
        }
    };
    let mut cases = Vec::new();
    for (i, c) in seq(root.get("cases")).into_iter().enumerate() {
        only(
            c,
            &["name", "request", "world", "expect"],
            "a case",
            &src,
            path,
        )?;
        let name = c
            .get("name")
            .and_then(text)
            .unwrap_or_else(|| format!("case {}", i + 1));
        let r = c.get("request");
        if let Some(r) = r {
            only(
                r,
                &[
                    "method",
                    "url",
                    "path",
                    "headers",
                    "body",
                    "client_ip",
                    "repeat",
                    "time",
                    "tls",
                ],
                "a request",
                &src,
                path,
            )?;
        }
        let field = |k: &str| r.and_then(|r| r.get(k)).and_then(text);
        let url = match (field("url"), field("path")) {
            (Some(url), _) => url,
            (None, Some(p)) => format!("https://app.example.test{p}"),
            (None, None) => "https://app.example.test/".to_owned(),
        };
        let request = Req {
            repeat: field("repeat")
                .and_then(|r| r.parse().ok())
                .unwrap_or(1usize)
                .clamp(1, 10_000),
            method: field("method").unwrap_or_else(|| "GET".to_owned()),
            url,
            headers: pairs(r.and_then(|r| r.get("headers"))),
            body: field("body").unwrap_or_default(),
            client_ip: field("client_ip").unwrap_or_else(|| "203.0.113.10".to_owned()),
            time: field("time"),
            tls: match r.and_then(|r| r.get("tls")) {
                None => None,
                Some(t) => {
                    only(
                        t,
                        &[
                            "version",
                            "cipher_suite",
                            "sni",
                            "alpn",
                            "client_certificate",
                        ],
                        "the request's tls",
                        &src,
                        path,
                    )?;
                    let f = |k: &str| t.get(k).and_then(text);
                    Some(Tls {
                        version: f("version").unwrap_or_else(|| "1.3".to_owned()),
                        cipher_suite: f("cipher_suite")
                            .unwrap_or_else(|| "TLS_AES_128_GCM_SHA256".to_owned()),
                        sni: f("sni"),
                        alpn: f("alpn"),
                        client_certificate: f("client_certificate"),
                    })
                }
            },
        };
        let world = c.get("world");
        if let Some(w) = world {
            only(
                w,
                &[
                    "upstream",
                    "http_requests",
                    "identity",
                    "internal",
                    "secrets",
                ],
                "a world",
                &src,
                path,
            )?;
        }
        let upstream = answer(world.and_then(|w| w.get("upstream")), 200);
        let http_requests = seq(world.and_then(|w| w.get("http_requests")))
            .into_iter()
            .map(|n| {
                (
                    n.get("url").and_then(text).unwrap_or_default(),
                    answer(Some(n), 200),
                )
            })
            .collect();
        let e = c
            .get("expect")
            .ok_or_else(|| Invalid(format!("{}: case `{name}` has no `expect`", path.display())))?;
        only(
            e,
            &[
                "status",
                "headers",
                "headers_contain",
                "absent_headers",
                "body",
                "body_contains",
                "upstream",
                "rules",
                "actions",
                "closed",
                "vars",
            ],
            "an expectation",
            &src,
            path,
        )?;
        let upstream_expect = e.get("upstream").map(|u| match text(u).as_deref() {
            Some("false") => None,
            _ => Some(Upstream {
                endpoint: u.get("endpoint").and_then(text),
                method: u.get("method").and_then(text),
                path: u.get("path").and_then(text),
                query: u.get("query").and_then(text),
                headers: pairs(u.get("headers")),
                absent_headers: strings(u.get("absent_headers")),
                body: u.get("body").and_then(text),
            }),
        });
        let expect = Expect {
            status: e.get("status").and_then(text).and_then(|s| s.parse().ok()),
            headers: pairs(e.get("headers")),
            headers_contain: pairs(e.get("headers_contain")),
            absent_headers: strings(e.get("absent_headers")),
            body: e.get("body").and_then(text),
            body_contains: strings(e.get("body_contains")),
            upstream: upstream_expect,
            rules: e.get("rules").map(|n| strings(Some(n))),
            actions: e.get("actions").map(|n| strings(Some(n))),
            closed: e.get("closed").and_then(text).map(|t| t == "true"),
            vars: map(e.get("vars"))
                .into_iter()
                .map(|(k, v)| (k, v.to_json()))
                .collect(),
        };
        let identity = world.and_then(|w| w.get("identity")).map(Node::to_json);
        let internal = map(world.and_then(|w| w.get("internal")))
            .into_iter()
            .map(|(name, a)| (name, answer(Some(a), 200)))
            .collect();
        let mut secrets = Vec::new();
        for (vault, names) in map(world.and_then(|w| w.get("secrets"))) {
            for (name, value) in pairs(Some(names)) {
                secrets.push(((vault.clone(), name), value));
            }
        }
        cases.push(Case {
            name,
            request,
            upstream,
            http_requests,
            identity,
            internal,
            secrets,
            expect,
        });
    }
    if cases.is_empty() {
        return Err(Invalid(format!("{}: no `cases`", path.display())));
    }
    Ok(TestFile {
        path: path.to_owned(),
        policy,
        cases,
    })
}
