//! Linting a large policy: a 1,000-rule document (every phase, every scalar
//! style, a mix of actions) through `portcullis_policy::check`, as
//! `portcullis lint` runs it (issue 3's target: at most 50 ms), and through
//! the language server's diagnostics on an edit (issue 19's: within 50 ms).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

/// A document of `n` rules in the request phase, in the shapes users write.
fn document(n: usize) -> String {
    let mut doc = String::from("on_http_request:\n");
    for i in 0..n {
        match i % 4 {
            0 => doc.push_str(&format!(
                "  - name: rule {i}\n    expressions:\n      - req.url.path.startsWith('/api/{i}')\n      - \"'admin' in req.headers['x-roles']\"\n    actions:\n      - type: deny\n        config:\n          status_code: 403\n"
            )),
            1 => doc.push_str(&format!(
                "  - expressions:\n      - |\n        conn.client_ip.startsWith('10.') ||\n          req.headers['user-agent'][0].matches('bot-{i}.*')\n    actions:\n      - type: custom-response\n        config:\n          status_code: 429\n          body: slow down\n"
            )),
            2 => doc.push_str(&format!(
                "  - expressions: [\"req.method == 'POST' && req.url.query_params.exists(k, k.startsWith('debug{i}'))\"]\n    actions:\n      - type: add-headers\n        config:\n          headers:\n            x-rule: \"{i}\"\n"
            )),
            _ => doc.push_str(&format!(
                "  - expressions:\n      - \"!(actions.ngrok.oauth.identity.email in ['a{i}@x.com', 'b@y.com'])\"\n    actions:\n      - type: redirect\n        config:\n          to: https://example.com/{i}\n"
            )),
        }
    }
    doc
}

fn lint(c: &mut Criterion) {
    let doc = document(1000);
    let (_, diags) = portcullis_policy::check(&doc);
    // Measure a clean document: a diagnostic here would mean the bench
    // measures an error path.
    assert!(diags.is_empty(), "{diags:#?}");
    let mut group = c.benchmark_group("lint");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    group.bench_function("1000-rules", |b| {
        b.iter(|| portcullis_policy::check(black_box(&doc)))
    });
    // What `portcullis lsp` sends first on each edit: lint's checks as
    // the protocol's diagnostics (issue 19's target: within 50 ms), then
    // what the proxy's compile adds.
    group.bench_function("lsp-diagnostics-1000-rules", |b| {
        b.iter(|| portcullis_lsp::diagnostics(black_box(&doc)))
    });
    group.bench_function("lsp-compile-diagnostics-1000-rules", |b| {
        b.iter(|| portcullis_lsp::compile_diagnostics(black_box(&doc)))
    });
    group.finish();
}

/// Criterion's entry points, written out: `criterion_group!` makes an
/// undocumented public function.
fn benches() {
    let mut c = Criterion::default().configure_from_args();
    lint(&mut c);
}

criterion_main!(benches);

// Keep the import used the way criterion's macros expect.
#[allow(
    unused_imports,
    reason = "criterion_group is not used; benches() is written out"
)]
use criterion_group as _;
