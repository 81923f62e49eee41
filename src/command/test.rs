//! `portcullis test [PATH...] [--format human|json|junit] [--fail-under PCT]`:
//! runs the test files beside policies (`policy.test.yml` for
//! `policy.yml`): each case a request and the world around it (the
//! upstream's answer, `http-request`'s answers), run through the policy's
//! compiled pipeline with nothing leaving the process, then compared with
//! what it expects (status, headers, body, the request the upstream got,
//! the rules and actions that ran).
//!
//! `--explain` shows each case's decision step by step: every rule reached,
//! each condition's value, each action's effect.
//!
//! Coverage: each rule whose actions never ran in any case, and each
//! condition never evaluated, is listed; `--fail-under PCT` fails a run
//! whose share of rules run and conditions evaluated is lower. Exit status
//! as lint's: 0 all passed, 1 a case failed (or coverage fell short), 2 a
//! test file or its policy could not be read.

mod cases;
mod exchange;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use portcullis_actions::trace::TraceEvent;
use portcullis_runtime::{Options, Pipeline};

use super::{eprint, print};
use cases::{Case, TestFile};
use exchange::Ran;

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// A line per case, the failures explained, then coverage.
    Human,
    /// One JSON document.
    Json,
    /// JUnit XML, for CI systems' test reports.
    Junit,
}

/// Arguments of `portcullis test`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Test files (`*.test.yml`) or folders to search for them.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// How to print the results.
    #[arg(long, value_enum, default_value = "human")]
    format: Format,
    /// Fail (exit 1) when fewer than this percentage of rules ran and
    /// conditions were evaluated.
    #[arg(long, value_name = "PCT")]
    fail_under: Option<f64>,
    /// Explain each case's decision: every rule reached, in order, with
    /// each condition's value and each action's effect.
    #[arg(long)]
    explain: bool,
}

/// One case's result.
struct Outcome {
    name: String,
    failures: Vec<String>,
    trace: Vec<TraceEvent>,
    /// The decision explained (`--explain`).
    explained: Option<String>,
}

/// One test file's results and its policy's coverage.
struct FileReport {
    path: PathBuf,
    policy: PathBuf,
    outcomes: Vec<Outcome>,
    /// Rules never run: (phase, rule name).
    rules_missed: Vec<(String, String)>,
    /// Conditions never evaluated: (phase, rule name, condition).
    conditions_missed: Vec<(String, String, String)>,
    covered: usize,
    coverable: usize,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let mut files = Vec::new();
    for path in &args.paths {
        if !path.exists() {
            eprint(&format!("error: {} does not exist", path.display()));
            return Ok(ExitCode::from(2));
        }
        collect(path, &mut files);
    }
    if files.is_empty() {
        eprint("error: no test files (`*.test.yml`, `*.test.yaml`) in the paths given");
        return Ok(ExitCode::from(2));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut reports = Vec::new();
    for path in files {
        let file = match cases::read(&path) {
            Ok(f) => f,
            Err(cases::Invalid(e)) => {
                eprint(&format!("error: {e}"));
                return Ok(ExitCode::from(2));
            }
        };
        match runtime.block_on(run_file(&file, args.explain)) {
            Ok(report) => reports.push(report),
            Err(e) => {
                eprint(&format!("error: {e}"));
                return Ok(ExitCode::from(2));
            }
        }
    }
    let failed = reports
        .iter()
        .flat_map(|r| &r.outcomes)
        .filter(|o| !o.failures.is_empty())
        .count();
    let total: usize = reports.iter().map(|r| r.outcomes.len()).sum();
    let (covered, coverable) = reports
        .iter()
        .fold((0, 0), |(c, t), r| (c + r.covered, t + r.coverable));
    let pct = if coverable == 0 {
        100.0
    } else {
        covered as f64 * 100.0 / coverable as f64
    };
    match args.format {
        Format::Human => print(&human(&reports, failed, total, pct)),
        Format::Json => print(&json(&reports, failed, total, pct)),
        Format::Junit => print(&junit(&reports, failed, total)),
    }
    let short = args.fail_under.is_some_and(|min| pct < min);
    if short && args.format != Format::Human {
        eprint(&format!(
            "coverage {pct:.1}% is under {:.1}%",
            args.fail_under.unwrap_or(0.0)
        ));
    }
    Ok(if failed > 0 || short {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The test files under `path`.
fn collect(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_file() {
        out.push(path.to_owned());
        return;
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() {
            collect(&p, out);
        } else if name.ends_with(".test.yml") || name.ends_with(".test.yaml") {
            out.push(p);
        }
    }
}

async fn run_file(file: &TestFile, explain: bool) -> Result<FileReport, String> {
    let src = std::fs::read_to_string(&file.policy).map_err(|e| {
        format!(
            "{}: the policy {}: {e}",
            file.path.display(),
            file.policy.display()
        )
    })?;
    // Keys of the run's own: the sessions of `world.identity` are sealed
    // with them.
    let keys = vec![portcullis_actions::session::random_key()];
    // The internal endpoints of a case: those `forward-internal` may send
    // to, and the hosts its `http-request` answers are for.
    let load = |case: Option<&Case>| {
        let world = case.map_or(&[][..], |c| &c.http_requests[..]);
        let mut internal: Vec<String> = world
            .iter()
            .filter_map(|(u, _)| u.parse::<http::Uri>().ok())
            .filter_map(|u| u.host().map(str::to_owned))
            .collect();
        internal.extend(
            case.into_iter()
                .flat_map(|c| c.internal.iter().map(|(n, _)| n.clone())),
        );
        Pipeline::load(
            &src,
            &Options {
                internal,
                client: Some(Arc::new(exchange::World(world.to_vec()))),
                session_keys: keys.clone(),
                ..Options::default()
            },
        )
        .map_err(|errors| {
            let mut text = format!("{}: the policy does not load:", file.policy.display());
            for d in errors {
                let line = portcullis_policy::yaml::line_of(&src, d.span.start as usize);
                let _ = write!(text, "\n  line {line}: error[{}]: {}", d.code, d.message);
            }
            text
        })
    };
    // The policy as written, for coverage and explanations.
    let pipeline = Arc::new(load(None)?);
    let mut outcomes = Vec::new();
    for case in &file.cases {
        // Each case its own pipeline: its own world, and no state (rate
        // limits, breakers) from the cases before it.
        let case_pipeline = Arc::new(load(Some(case))?);
        portcullis_actions::env::replace_secrets(Some(Arc::new(CaseSecrets(case.secrets.clone()))));
        let (failures, trace) = match exchange::run(&case_pipeline, case).await {
            Ok(ran) => (compare(case, &ran, &pipeline), ran.trace),
            Err(e) => (vec![e], Vec::new()),
        };
        outcomes.push(Outcome {
            name: case.name.clone(),
            failures,
            explained: explain.then(|| explanation(&trace, &pipeline)),
            trace,
        });
    }
    portcullis_actions::env::replace_secrets(None);
    Ok(coverage(file, &pipeline, outcomes))
}

/// A case's secrets: what `world.secrets` says, and nothing from the
/// environment of whoever runs the tests.
struct CaseSecrets(Vec<((String, String), String)>);

impl portcullis_policy::functions::SecretSource for CaseSecrets {
    fn get(&self, vault: &str, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|((v, n), _)| v == vault && n == name)
            .map(|(_, value)| value.clone())
    }

    fn location(&self, vault: &str, name: &str) -> Option<String> {
        Some(format!("the case's `world.secrets.{vault}.{name}`"))
    }
}

/// The decision, step by step: each rule reached, each condition's value,
/// each action's effect.
fn explanation(trace: &[TraceEvent], pipeline: &Pipeline) -> String {
    let rules: Vec<_> = pipeline.rules().collect();
    let mut out = String::new();
    let mut current = None;
    for e in trace {
        match e {
            TraceEvent::Rule { phase, index } => {
                current = rules
                    .iter()
                    .find(|r| r.phase == *phase && r.index == *index);
                let name = current.map_or("?", |r| r.name);
                let _ = writeln!(out, "{phase} rule {name}");
                if current.is_some_and(|r| r.expressions.is_empty()) {
                    let _ = writeln!(out, "  (no conditions: runs)");
                }
            }
            TraceEvent::Condition { index, value } => {
                let text = current
                    .and_then(|r| r.expressions.get(*index))
                    .map_or("?", String::as_str);
                let value = match value {
                    Ok(b) => b.to_string(),
                    Err(e) => format!("error: {e}"),
                };
                let _ = writeln!(out, "  {text}  =>  {value}");
            }
            TraceEvent::Var { name, value } => {
                let _ = writeln!(out, "    vars.{name} = {value}");
            }
            TraceEvent::Action { kind, step } => {
                let step = match step {
                    Ok("next") => "done, next".to_owned(),
                    Ok("respond") => "answered the request".to_owned(),
                    Ok("forward") => "forwarded it".to_owned(),
                    Ok("close") => "closed the connection".to_owned(),
                    Ok(other) => (*other).to_owned(),
                    Err(e) => format!("failed: {e}"),
                };
                let _ = writeln!(out, "  action {kind}: {step}");
            }
        }
    }
    out
}

/// The names of the rules whose actions ran, and the actions, in order.
fn ran(trace: &[TraceEvent], pipeline: &Pipeline) -> (Vec<String>, Vec<String>) {
    let rules: Vec<_> = pipeline.rules().collect();
    let mut current: Option<String> = None;
    let (mut names, mut actions) = (Vec::new(), Vec::new());
    for e in trace {
        match e {
            TraceEvent::Rule { phase, index } => {
                current = rules
                    .iter()
                    .find(|r| r.phase == *phase && r.index == *index)
                    .map(|r| r.name.to_owned());
            }
            TraceEvent::Action { kind, .. } => {
                if let Some(name) = current.take() {
                    names.push(name);
                }
                actions.push((*kind).to_owned());
            }
            TraceEvent::Condition { .. } | TraceEvent::Var { .. } => {}
        }
    }
    (names, actions)
}

fn compare(case: &Case, ran_: &Ran, pipeline: &Pipeline) -> Vec<String> {
    let e = &case.expect;
    let mut out = Vec::new();
    match (e.closed, ran_.status == 0) {
        (Some(true), false) => out.push(format!(
            "closed: want the connection closed, got {}",
            ran_.status
        )),
        (Some(false), true) => out.push("closed: the connection was closed".to_owned()),
        _ => {}
    }
    if let Some(status) = e.status {
        if ran_.status == 0 {
            out.push(format!("status: want {status}, the connection was closed"));
        } else if ran_.status != status {
            out.push(format!(
                "status: want {status}, got {} (body {:?})",
                ran_.status,
                ran_.body.chars().take(200).collect::<String>()
            ));
        }
    }
    let header = |k: &str| -> Vec<&str> {
        ran_.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
            .collect()
    };
    for (k, w) in &e.headers {
        let got = header(k);
        if !got.contains(&w.as_str()) {
            out.push(format!("header {k}: want {w:?}, got {got:?}"));
        }
    }
    for (k, w) in &e.headers_contain {
        let got = header(k);
        if !got.iter().any(|v| v.contains(w.as_str())) {
            out.push(format!(
                "header {k}: want one containing {w:?}, got {got:?}"
            ));
        }
    }
    for k in &e.absent_headers {
        let got = header(k);
        if !got.is_empty() {
            out.push(format!("header {k}: want none, got {got:?}"));
        }
    }
    if let Some(w) = &e.body
        && ran_.body != *w
    {
        out.push(format!("body: want {w:?}, got {:?}", ran_.body));
    }
    for w in &e.body_contains {
        if !ran_.body.contains(w.as_str()) {
            out.push(format!(
                "body: want it to contain {w:?}, got {:?}",
                ran_.body
            ));
        }
    }
    match (&e.upstream, &ran_.upstream) {
        (None, _) => {}
        (Some(None), None) => {}
        (Some(None), Some(s)) => out.push(format!(
            "upstream: want it never reached, it got {} {}",
            s.method, s.path
        )),
        (Some(Some(_)), None) => out.push("upstream: want it reached, it was not".to_owned()),
        (Some(Some(w)), Some(s)) => {
            let pairs = [
                ("endpoint", &w.endpoint, &s.endpoint),
                ("method", &w.method, &s.method),
                ("path", &w.path, &s.path),
                ("query", &w.query, &s.query),
                ("body", &w.body, &s.body),
            ];
            for (what, want, got) in pairs {
                if let Some(want) = want
                    && want != got
                {
                    out.push(format!("upstream {what}: want {want:?}, got {got:?}"));
                }
            }
            // Exactly that value, alone: a client's own copy of a header
            // the policy sets must not reach the upstream beside it.
            for (k, want) in &w.headers {
                let got: Vec<&str> = s
                    .headers
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(k))
                    .map(|(_, v)| v.as_str())
                    .collect();
                if got != [want.as_str()] {
                    out.push(format!(
                        "upstream header {k}: want only {want:?}, got {got:?}"
                    ));
                }
            }
            for k in &w.absent_headers {
                if s.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(k)) {
                    out.push(format!("upstream header {k}: want none, it was sent"));
                }
            }
        }
    }
    for (name, want) in &e.vars {
        let got = ran_.trace.iter().rev().find_map(|ev| match ev {
            TraceEvent::Var { name: n, value } if n == name => Some(value),
            _ => None,
        });
        if got != Some(want) {
            out.push(format!(
                "vars.{name}: want {want}, got {}",
                got.map_or("nothing (never set)".to_owned(), |v| v.to_string())
            ));
        }
    }
    let (rules, actions) = ran(&ran_.trace, pipeline);
    if let Some(w) = &e.rules
        && *w != rules
    {
        out.push(format!("rules run: want {w:?}, got {rules:?}"));
    }
    if let Some(w) = &e.actions
        && *w != actions
    {
        out.push(format!("actions run: want {w:?}, got {actions:?}"));
    }
    out
}

fn coverage(file: &TestFile, pipeline: &Pipeline, outcomes: Vec<Outcome>) -> FileReport {
    // (phase, rule) → whether its actions ran; (phase, rule, cond) →
    // whether it was evaluated.
    let mut rules_run: BTreeMap<(&str, usize), bool> = BTreeMap::new();
    let mut conds: BTreeMap<(&str, usize, usize), bool> = BTreeMap::new();
    for o in &outcomes {
        let mut at: Option<(&str, usize)> = None;
        for e in &o.trace {
            match e {
                TraceEvent::Rule { phase, index } => at = Some((phase, *index)),
                TraceEvent::Condition { index, .. } => {
                    if let Some((p, r)) = at {
                        conds.insert((p, r, *index), true);
                    }
                }
                TraceEvent::Action { .. } => {
                    if let Some(key) = at {
                        rules_run.insert(key, true);
                    }
                }
                TraceEvent::Var { .. } => {}
            }
        }
    }
    let (mut rules_missed, mut conditions_missed) = (Vec::new(), Vec::new());
    let (mut covered, mut coverable) = (0, 0);
    for r in pipeline.rules() {
        coverable += 1;
        if rules_run.contains_key(&(r.phase, r.index)) {
            covered += 1;
        } else {
            rules_missed.push((r.phase.to_owned(), r.name.to_owned()));
        }
        for (i, text) in r.expressions.iter().enumerate() {
            coverable += 1;
            if conds.contains_key(&(r.phase, r.index, i)) {
                covered += 1;
            } else {
                conditions_missed.push((r.phase.to_owned(), r.name.to_owned(), text.clone()));
            }
        }
    }
    FileReport {
        path: file.path.clone(),
        policy: file.policy.clone(),
        outcomes,
        rules_missed,
        conditions_missed,
        covered,
        coverable,
    }
}

fn human(reports: &[FileReport], failed: usize, total: usize, pct: f64) -> String {
    let mut s = String::new();
    for r in reports {
        let _ = writeln!(s, "{} ({})", r.path.display(), r.policy.display());
        for o in &r.outcomes {
            if o.failures.is_empty() {
                let _ = writeln!(s, "  ok    {}", o.name);
            } else {
                let _ = writeln!(s, "  FAIL  {}", o.name);
                for f in &o.failures {
                    let _ = writeln!(s, "          {f}");
                }
            }
            if let Some(e) = &o.explained {
                for line in e.lines() {
                    let _ = writeln!(s, "        | {line}");
                }
            }
        }
        for (phase, rule) in &r.rules_missed {
            let _ = writeln!(s, "  never run: {phase} rule {rule}");
        }
        for (phase, rule, cond) in &r.conditions_missed {
            let _ = writeln!(s, "  never evaluated: {phase} rule {rule}: {cond}");
        }
    }
    let _ = write!(
        s,
        "{} passed, {failed} failed; coverage {pct:.1}% of rules and conditions",
        total - failed
    );
    s
}

fn json(reports: &[FileReport], failed: usize, total: usize, pct: f64) -> String {
    let files: Vec<serde_json::Value> = reports
        .iter()
        .map(|r| {
            serde_json::json!({
                "file": r.path.display().to_string(),
                "policy": r.policy.display().to_string(),
                "cases": r.outcomes.iter().map(|o| serde_json::json!({
                    "name": o.name,
                    "passed": o.failures.is_empty(),
                    "failures": o.failures,
                    "explanation": o.explained,
                })).collect::<Vec<_>>(),
                "coverage": {
                    "covered": r.covered,
                    "of": r.coverable,
                    "rules_never_run": r.rules_missed.iter().map(|(p, n)| serde_json::json!({"phase": p, "rule": n})).collect::<Vec<_>>(),
                    "conditions_never_evaluated": r.conditions_missed.iter().map(|(p, n, c)| serde_json::json!({"phase": p, "rule": n, "condition": c})).collect::<Vec<_>>(),
                },
            })
        })
        .collect();
    serde_json::json!({
        "passed": total - failed,
        "failed": failed,
        "coverage_percent": (pct * 10.0).round() / 10.0,
        "files": files,
    })
    .to_string()
}

fn junit(reports: &[FileReport], failed: usize, total: usize) -> String {
    let esc = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"portcullis test\" tests=\"{total}\" failures=\"{failed}\">\n"
    );
    for r in reports {
        let failures = r.outcomes.iter().filter(|o| !o.failures.is_empty()).count();
        let _ = writeln!(
            s,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\">",
            esc(&r.path.display().to_string()),
            r.outcomes.len()
        );
        for o in &r.outcomes {
            let _ = write!(
                s,
                "    <testcase name=\"{}\" classname=\"{}\"",
                esc(&o.name),
                esc(&r.policy.display().to_string())
            );
            if o.failures.is_empty() {
                s.push_str("/>\n");
            } else {
                let _ = writeln!(
                    s,
                    ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                    esc(&o.failures[0]),
                    esc(&o.failures.join("\n"))
                );
            }
        }
        s.push_str("  </testsuite>\n");
    }
    s.push_str("</testsuites>");
    s
}
