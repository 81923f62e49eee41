//! `portcullis lint` end to end: the real binary on files and folders, each
//! output format, and the exit status CI scripts rely on.

use std::path::Path;
use std::process::{Command, Output};

fn lint(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("lint")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .expect("the portcullis binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const ERR: &str = "crates/policy/tests/data/err";

#[test]
fn clean_policies_exit_0() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let mut runnable = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("policies").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.contains(".test.") {
            continue;
        }
        runnable.push(format!("policies/{name}"));
    }
    // Checked against a deployment with IP intelligence, which some of
    // them read (without it, each read is a `deployment-data` warning).
    let config = std::env::temp_dir().join(format!(
        "portcullis-lint-shipped-{}.yml",
        std::process::id()
    ));
    std::fs::write(
        &config,
        "endpoints:\n  - listen: 127.0.0.1:0\n    upstream: 3000\nip_intelligence: [City.mmdb]\nip_categories:\n  blocklist.local: blocked.txt\n",
    )
    .expect("write");
    let config_arg = config.display().to_string();
    let mut args: Vec<&str> = vec!["--config", &config_arg];
    args.extend(runnable.iter().map(String::as_str));
    let out = lint(&args);
    let _ = std::fs::remove_file(&config);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("0 errors, 0 warnings in"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn every_problem_in_every_file_is_reported_in_short_form() {
    let out = lint(&["--format", "short", ERR]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    let files = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(ERR))
        .expect("corpus")
        .count();
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(ERR))
        .expect("corpus")
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(stdout.contains(&name), "{name} missing from:\n{stdout}");
    }
    assert!(stdout.lines().count() >= files);
    assert!(
        stdout.contains("0001_unknown_action_type.yaml:3:15: error[E0107]: unknown action type `deni` (help: did you mean `deny`?)"),
        "{stdout}"
    );
}

#[test]
fn human_output_underlines_the_expression_inside_a_block_scalar() {
    let out = lint(&[&format!("{ERR}/0005_cel_in_scalars.yaml")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("E0011"), "{stderr}");
    assert!(
        stderr.contains("help: did you mean `startsWith`?"),
        "{stderr}"
    );
    assert!(
        stderr.contains("3 errors, 0 warnings in 1 file"),
        "{stderr}"
    );
}

#[test]
fn json_is_one_document_with_positions() {
    let out = lint(&[
        "--format",
        "json",
        &format!("{ERR}/0006_int_compared_with_string.yaml"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(doc["errors"], 1);
    let d = &doc["diagnostics"][0];
    assert_eq!(d["code"], "E0012");
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(3), Some(9))
    );
    assert_eq!(d["message"], "no matching overload for `int < string`");
}

#[test]
fn warnings_fail_only_when_denied() {
    let file = format!("{ERR}/0012_header_case.yaml");
    assert_eq!(lint(&[&file]).status.code(), Some(0));
    assert_eq!(lint(&["--deny-warnings", &file]).status.code(), Some(1));
}

#[test]
fn a_file_that_is_not_text_is_a_diagnostic() {
    let path =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("binary-{}.yaml", std::process::id()));
    std::fs::write(&path, b"on_http_request:\n  - name: \xff\xfe\n").expect("scratch file");
    let out = lint(&["--format", "short", path.to_str().expect("utf-8 path")]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains(":2:11: error[E0100]: the file is not UTF-8 text"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_missing_path_is_a_usage_error() {
    let out = lint(&["no/such/policy.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("does not exist"));
    assert_eq!(lint(&[]).status.code(), Some(2));
}

/// The three output formats, byte for byte, against files under
/// `tests/snapshots/`. After a deliberate change, regenerate them with
/// `UPDATE_SNAPSHOTS=1 cargo test --test lint_cli` and read the diff.
#[test]
fn output_formats_match_their_snapshots() {
    let cases: [(&str, Vec<String>); 3] = [
        (
            "lint_err_short.txt",
            vec!["--format".into(), "short".into(), ERR.into()],
        ),
        (
            "lint_cel_in_scalars_human.txt",
            vec![format!("{ERR}/0005_cel_in_scalars.yaml")],
        ),
        (
            "lint_int_vs_string.json",
            vec![
                "--format".into(),
                "json".into(),
                format!("{ERR}/0006_int_compared_with_string.yaml"),
            ],
        ),
    ];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    for (file, args) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = lint(&args);
        // Human output goes to stderr, the others to stdout.
        let got = if out.stdout.is_empty() {
            text(&out.stderr)
        } else {
            text(&out.stdout)
        };
        let path = dir.join(file);
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(&path, &got).expect("snapshot written");
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            got, want,
            "{file} differs; regenerate with UPDATE_SNAPSHOTS=1 if the change is deliberate"
        );
    }
}

#[test]
fn a_policy_is_checked_for_the_gateway_it_runs_behind() {
    // The load benchmark's ten rules: a rewrite and a header removal that
    // nginx cannot apply for its auth service; the same file is clean
    // without `--gateway`.
    let out = lint(&[
        "--format",
        "short",
        "--gateway",
        "nginx",
        "benches/load/ten_rules.yml",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let errors: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("error[E0150]"))
        .collect();
    assert_eq!(errors.len(), 2, "{stdout}");
    assert!(
        errors.iter().any(|l| l.contains("`url-rewrite`")),
        "{stdout}"
    );
    assert!(
        errors.iter().any(|l| l.contains("`remove-headers`")),
        "{stdout}"
    );
    // Envoy removes headers on its auth service's word.
    let envoy = lint(&[
        "--format",
        "short",
        "--gateway",
        "envoy",
        "benches/load/ten_rules.yml",
    ]);
    let stdout = text(&envoy.stdout);
    assert!(!stdout.contains("remove-headers"), "{stdout}");
    assert!(stdout.contains("`url-rewrite`"), "{stdout}");
    // The forward-auth variant loads behind nginx, with warnings naming
    // the headers nginx must copy.
    let fa = lint(&[
        "--gateway",
        "nginx",
        "benches/load/ten_rules_forward_auth.yml",
    ]);
    assert_eq!(fa.status.code(), Some(0), "{}", text(&fa.stderr));
    assert!(text(&fa.stderr).contains("forward-auth-headers"));
    // An unknown gateway is a usage error.
    let bad = lint(&["--gateway", "haproxy", "benches/load/ten_rules.yml"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// An action this build does not run is said even beside other errors
/// (fixing those would not make the policy run), and ngrok's `ai-gateway`
/// is one of them, not an unknown type.
#[test]
fn unsupported_actions_are_reported_beside_other_errors() {
    let dir = std::env::temp_dir().join(format!("portcullis-lint-e0141-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("policy.yml");
    std::fs::write(
        &path,
        "on_http_request:\n  - actions:\n      - type: ai-gateway\n        config: {}\n      - type: deni\n",
    )
    .expect("write");
    let out = lint(&["--format", "short", path.to_str().expect("utf-8")]);
    let stdout = text(&out.stdout);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(":3:15: error[E0141]: action `ai-gateway`"),
        "{stdout}"
    );
    assert!(
        stdout.contains(":5:15: error[E0107]: unknown action type `deni`"),
        "{stdout}"
    );
}

const MANIFEST: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
---
apiVersion: ngrok.k8s.ngrok.com/v1alpha1
kind: NgrokTrafficPolicy
metadata:
  name: shared
spec:
  policy:
    on_http_request:
      - expressions:
          - req.url.path.startsWith(1)
        actions:
          - type: deny
---
apiVersion: ngrok.k8s.ngrok.com/v1alpha1
kind: AgentEndpoint
metadata:
  name: api
spec:
  url: https://api.example.com
  trafficPolicy:
    inline:
      on_http_request:
        - actions:
            - type: deni
---
apiVersion: ngrok.k8s.ngrok.com/v1alpha1
kind: CloudEndpoint
metadata:
  name: front
spec:
  url: https://www.example.com
  trafficPolicyName: elsewhere
---
apiVersion: ngrok.k8s.ngrok.com/v1alpha1
kind: AgentEndpoint
metadata:
  name: uses-shared
spec:
  url: https://x.example.com
  trafficPolicy:
    targetRef:
      name: shared
";

/// The ngrok operator's resources are policy input: every policy of a
/// multi-document manifest is checked, each finding on its line of the
/// manifest; a reference to a policy the file does not hold is a warning,
/// one it holds is not.
#[test]
fn kubernetes_manifests_are_checked_policy_by_policy() {
    let dir = std::env::temp_dir().join(format!("portcullis-lint-k8s-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("manifest.yaml");
    std::fs::write(&path, MANIFEST).expect("write");
    let out = lint(&["--format", "short", path.to_str().expect("utf-8")]);
    let stdout = text(&out.stdout);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let findings: Vec<&str> = stdout
        .lines()
        .map(|l| l.split_once("manifest.yaml:").map_or(l, |(_, rest)| rest))
        .collect();
    assert_eq!(
        findings,
        [
            "14:13: error[E0012]: no matching overload for `string.startsWith(int)` (help: expected string.startsWith(string) -> bool)",
            "28:21: error[E0107]: unknown action type `deni` (help: did you mean `deny`?)",
            "36:22: warning[manifest-reference]: `CloudEndpoint/front` uses the NgrokTrafficPolicy `elsewhere`, which is not in this file (help: that policy is checked where it is; lint its file too)",
        ],
        "{stdout}"
    );
}

/// What a policy leaves to the deployment is a warning saying where it
/// will come from; checked against a deployment (`--config`), what that
/// deployment lacks is an error, as the proxy would refuse to start, and
/// what it has is no finding at all.
#[test]
fn the_deployment_config_turns_where_from_into_there_or_not() {
    let dir = std::env::temp_dir().join(format!("portcullis-lint-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let policy = dir.join("policy.yml");
    std::fs::write(
        &policy,
        "on_http_request:\n  - actions:\n      - type: oauth\n        config:\n          provider: google\n  - expressions: [\"conn.client_ip.is_on_blocklist\"]\n    actions: [{type: deny}]\n",
    )
    .expect("write");
    let policy = policy.to_str().expect("utf-8");
    let out = lint(&["--format", "short", policy]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("warning[deployment-credentials]"), "{said}");
    assert!(
        said.contains(
            "warning[deployment-data]: `conn.client_ip.is_on_blocklist` comes from the deployment"
        ),
        "{said}"
    );

    let bare = dir.join("bare.yml");
    std::fs::write(
        &bare,
        "endpoints:\n  - listen: 127.0.0.1:0\n    upstream: 3000\n",
    )
    .expect("write");
    let out = lint(&[
        "--format",
        "short",
        "--config",
        bare.to_str().expect("utf-8"),
        policy,
    ]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("error[") && said.contains("this deployment has no `google` app"),
        "{said}"
    );
    assert!(!said.contains("deployment-credentials"), "{said}");
    assert!(said.contains("warning[deployment-data]"), "{said}");

    let full = dir.join("full.yml");
    std::fs::write(
        &full,
        "endpoints:\n  - listen: 127.0.0.1:0\n    upstream: 3000\noauth_apps:\n  google:\n    client_id: app\n    client_secret: s3cret\nip_categories:\n  blocklist.local: blocked.txt\n",
    )
    .expect("write");
    let out = lint(&[
        "--format",
        "short",
        "--config",
        full.to_str().expect("utf-8"),
        policy,
    ]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(!said.contains("[deployment-"), "{said}");

    let out = lint(&["--config", "/nonexistent/portcullis.yml", policy]);
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}
