//! `portcullis test` end to end: the binary on test files beside policies,
//! cases that pass and cases that fail, the JUnit XML read back, coverage
//! on a known policy, `--fail-under`, `--explain` on a denied request, and
//! every shipped policy's own test file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn portcullis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the portcullis binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A folder with `files` written into it, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str, files: &[(&str, &str)]) -> Dir {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("test-cli-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        for (file, content) in files {
            std::fs::write(dir.join(file), content).expect("write");
        }
        Dir(dir)
    }

    fn path(&self, file: &str) -> String {
        self.0.join(file).display().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Three rules, two conditions: admins are asked an internal service,
/// everyone gets a header, `/old` is redirected.
const POLICY: &str = r#"
on_http_request:
  - name: admin check
    expressions:
      - "req.url.path.startsWith('/admin')"
    actions:
      - type: http-request
        config:
          url: https://authz.internal/check
  - name: refuse
    expressions:
      - "req.url.path.startsWith('/admin') && actions.ngrok.http_request.res.status_code != 200"
    actions:
      - type: deny
  - actions:
      - type: add-headers
        config:
          headers:
            x-seen-by: portcullis
"#;

const TESTS: &str = r#"
cases:
  - name: a page goes through with the header
    request: {path: /reports?q=1}
    expect:
      status: 200
      upstream: {path: /reports, query: q=1, headers: {x-seen-by: portcullis}}
      rules: ['#3']
  - name: the authorization service says no
    request: {path: /admin/users}
    world:
      http_requests:
        - {url: https://authz.internal/check, status: 403}
    expect:
      status: 403
      upstream: false
      actions: [http-request, deny]
  - name: a wrong expectation fails
    request: {path: /reports}
    expect:
      status: 404
      headers: {x-nope: '1'}
"#;

#[test]
fn cases_pass_and_fail_with_what_differs() {
    let dir = Dir::new(
        "basic",
        &[("policy.yml", POLICY), ("policy.test.yml", TESTS)],
    );
    let out = portcullis(&["test", &dir.path("policy.test.yml")]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}{}", text(&out.stderr));
    assert!(
        said.contains("ok    a page goes through with the header"),
        "{said}"
    );
    assert!(
        said.contains("ok    the authorization service says no"),
        "{said}"
    );
    assert!(said.contains("FAIL  a wrong expectation fails"), "{said}");
    assert!(said.contains("status: want 404, got 200"), "{said}");
    assert!(said.contains("header x-nope: want \"1\", got []"), "{said}");
    assert!(said.contains("2 passed, 1 failed"), "{said}");
}

#[test]
fn junit_output_reads_back_as_the_cases() {
    let dir = Dir::new(
        "junit",
        &[("policy.yml", POLICY), ("policy.test.yml", TESTS)],
    );
    let out = portcullis(&["test", "--format", "junit", &dir.path("policy.test.yml")]);
    let xml = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(
        xml.contains(r#"<testsuites name="portcullis test" tests="3" failures="1">"#),
        "{xml}"
    );
    assert_eq!(xml.matches("<testcase ").count(), 3, "{xml}");
    assert_eq!(xml.matches("<failure ").count(), 1, "{xml}");
    assert!(
        xml.contains(r#"<testcase name="a wrong expectation fails""#)
            && xml.contains("status: want 404, got 200"),
        "{xml}"
    );
}

#[test]
fn coverage_counts_rules_run_and_conditions_evaluated() {
    // Only the first case: rule 1's condition is evaluated (false), rule
    // 2's too (false), rule 3 runs. Rules 1 and 2 never run: 3 of 5.
    let only_first =
        "cases:\n  - name: a page\n    request: {path: /reports}\n    expect: {status: 200}\n";
    let dir = Dir::new(
        "coverage",
        &[("policy.yml", POLICY), ("policy.test.yml", only_first)],
    );
    let out = portcullis(&["test", "--format", "json", &dir.path("policy.test.yml")]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(out.status.code(), Some(0), "{json}");
    assert_eq!(json["coverage_percent"], 60.0, "{json}");
    let cov = &json["files"][0]["coverage"];
    assert_eq!(cov["covered"], 3);
    assert_eq!(cov["of"], 5);
    let never: Vec<&str> = cov["rules_never_run"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|r| r["rule"].as_str())
        .collect();
    assert_eq!(never, ["admin check", "refuse"]);

    let out = portcullis(&["test", "--fail-under", "80", &dir.path("policy.test.yml")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let out = portcullis(&["test", "--fail-under", "50", &dir.path("policy.test.yml")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

#[test]
fn explain_shows_why_a_request_was_refused() {
    let dir = Dir::new(
        "explain",
        &[("policy.yml", POLICY), ("policy.test.yml", TESTS)],
    );
    let out = portcullis(&["test", "--explain", &dir.path("policy.test.yml")]);
    let said = text(&out.stdout);
    let denied = said
        .split("ok    the authorization service says no")
        .nth(1)
        .and_then(|rest| rest.split("FAIL").next())
        .expect("the denied case");
    let want = [
        "| on_http_request rule admin check",
        "|   req.url.path.startsWith('/admin')  =>  true",
        "|   action http-request: done, next",
        "| on_http_request rule refuse",
        "=>  true",
        "|   action deny: answered the request",
    ];
    let mut at = 0;
    for w in want {
        let found = denied[at..]
            .find(w)
            .unwrap_or_else(|| panic!("{w:?} in order in:\n{denied}"));
        at += found + w.len();
    }
}

#[test]
fn a_test_file_that_cannot_be_read_is_a_usage_error() {
    let dir = Dir::new(
        "bad",
        &[
            ("policy.yml", POLICY),
            (
                "policy.test.yml",
                "cases:\n  - name: x\n    expect: {statuss: 200}\n",
            ),
            (
                "broken.yml",
                "on_http_request:\n  - actions: [{type: deni}]\n",
            ),
            ("broken.test.yml", "cases:\n  - expect: {status: 200}\n"),
        ],
    );
    let out = portcullis(&["test", &dir.path("policy.test.yml")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("unknown field `statuss`"),
        "{}",
        text(&out.stderr)
    );
    let out = portcullis(&["test", &dir.path("broken.test.yml")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("the policy does not load")
            && text(&out.stderr).contains("deni"),
        "{}",
        text(&out.stderr)
    );
    let out = portcullis(&["test", "/nonexistent/x.test.yml"]);
    assert_eq!(out.status.code(), Some(2));
}

/// The examples users copy are tested documentation: each has a test file
/// beside it, and they all pass.
#[test]
fn every_shipped_policy_has_passing_tests() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    for entry in std::fs::read_dir(&dir).expect("policies").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".yaml") && !name.contains(".test.") {
            let test = dir.join(name.replace(".yaml", ".test.yml"));
            assert!(test.exists(), "{name} has no test file");
        }
    }
    let out = portcullis(&["test", "policies"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// `vars` that `set-vars` set are expected by value, typed as YAML types
/// them; `--explain` shows them set.
#[test]
fn vars_are_expected_by_value() {
    let policy = "on_http_request:\n  - actions:\n      - type: set-vars\n        config:\n          vars:\n            - tier: \"${req.url.path.startsWith('/pro') ? 'gold' : 'free'}\"\n            - internal: \"${inCidrRange(conn.client_ip, '10.0.0.0/8')}\"\n";
    let tests = "cases:\n  - name: gold from inside\n    request: {path: /pro/x, client_ip: 10.1.2.3}\n    expect:\n      vars: {tier: gold, internal: true}\n  - name: wrong on purpose\n    request: {path: /x}\n    expect:\n      vars: {tier: gold}\n";
    let dir = Dir::new("vars", &[("p.yml", policy), ("p.test.yml", tests)]);
    let out = portcullis(&["test", "--explain", &dir.path("p.test.yml")]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("ok    gold from inside"), "{said}");
    assert!(
        said.contains("vars.tier: want \"gold\", got \"free\""),
        "{said}"
    );
    assert!(said.contains("|     vars.internal = true"), "{said}");
}

/// A case's secrets are its `world.secrets`, never the environment's;
/// `repeat` fills a rate limit's window within one case.
#[test]
fn secrets_come_from_the_case_and_repeats_fill_a_window() {
    let policy = "on_http_request:\n  - actions:\n      - type: rate-limit\n        config:\n          name: two\n          algorithm: sliding_window\n          capacity: 2\n          rate: 60s\n          bucket_key: ['conn.client_ip']\n      - type: add-headers\n        config:\n          headers:\n            x-key: \"${secrets.get('api', 'key')}\"\n";
    let tests = "cases:\n  - name: with the case's secret\n    world: {secrets: {api: {key: s3cret}}}\n    expect:\n      upstream: {headers: {x-key: s3cret}}\n  - name: without, fails closed\n    expect: {status: 500, upstream: false}\n  - name: the third request in a window is limited\n    request: {repeat: 3}\n    world: {secrets: {api: {key: s3cret}}}\n    expect: {status: 429, upstream: false}\n";
    let dir = Dir::new("secrets", &[("p.yml", policy), ("p.test.yml", tests)]);
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["test", &dir.path("p.test.yml")])
        .env("PORTCULLIS_SECRET_API_KEY", "from-the-shell")
        .output()
        .expect("runs");
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}{}", text(&out.stderr));
    assert!(said.contains("3 passed, 0 failed"), "{said}");
}

/// A case gives the TLS its client connected with, and the time: ngrok's
/// enforce-TLS example refuses TLS 1.2, and a maintenance window opens on
/// the case's clock.
#[test]
fn a_case_gives_its_tls_and_its_time() {
    let policy = "on_http_request:\n  - expressions:\n      - conn.tls.version < '1.3'\n    actions:\n      - type: custom-response\n        config:\n          status_code: 401\n          body: 'Unauthorized: TLS version too old'\n  - expressions:\n      - time.now.startsWith('2026-12-25')\n    actions:\n      - type: custom-response\n        config:\n          status_code: 503\n          body: closed for the holiday\n";
    let tests = "cases:\n  - name: TLS 1.2 is refused\n    request: {tls: {version: '1.2', sni: app.example.test}}\n    expect: {status: 401, upstream: false}\n  - name: TLS 1.3 on an ordinary day passes\n    request: {tls: {version: '1.3'}, time: '2026-12-07T10:00:00Z'}\n    expect: {status: 200}\n  - name: on the holiday the maintenance page answers\n    request: {tls: {version: '1.3'}, time: '2026-12-25T10:00:00Z'}\n    expect: {status: 503, body: closed for the holiday}\n  - name: plain TCP has no TLS version, so the rule fails closed\n    expect: {status: 500, upstream: false}\n";
    let dir = Dir::new("tls-time", &[("p.yml", policy), ("p.test.yml", tests)]);
    let out = portcullis(&["test", &dir.path("p.test.yml")]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}{}", text(&out.stderr));
    assert!(said.contains("4 passed, 0 failed"), "{said}");
}
