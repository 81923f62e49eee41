//! What SAML sign-in costs:
//!
//! * `acs/validate`: one signed, Entra-shaped response (the attack
//!   corpus's `ok-assertion-signed.xml`: seven claims, two groups, an
//!   RSA-2048 signature made by xmlsec1) through `portcullis_saml`'s whole
//!   check: parse, shape, exclusive canonicalization, digest, signature,
//!   the verified bytes parsed again, the assertion read. Allocations per
//!   validation are counted once and printed.
//! * `signed_in/saml` against `signed_in/openid-connect`: a request with a
//!   valid session cookie through a policy of the sign-in action and an
//!   allow-list on its email, as the proxy decides it. The sessions are
//!   the same machinery; the SAML one also keeps the NameID (and the
//!   assertion's attributes only for a policy that reads them; not here).
//!
//! Run with `cargo bench --bench sign_in` (add `-- --quick` for a fast
//! pass).

#![allow(
    unsafe_code,
    reason = "a #[global_allocator] that counts needs `unsafe impl GlobalAlloc`"
)]
#![allow(clippy::print_stderr, reason = "the allocation count is printed, once")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_main};
use http::Request;
use portcullis_runtime::body::{self, Body};
use portcullis_runtime::{Conn, Endpoint, Options, Outcome, Pipeline, RequestCtx, block_on};
use portcullis_saml::{Expected, IdpMetadata, Sp};

/// Counts allocations, for the one count printed.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const METADATA: &str = include_str!("../crates/saml/tests/data/metadata.xml");
const RESPONSE: &str = include_str!("../crates/saml/tests/data/ok-assertion-signed.xml");
/// The same assertion, encrypted as Entra's token encryption does
/// (AES-256-CBC, the key wrapped with RSA-OAEP to a 2048-bit key).
const ENCRYPTED: &str = include_str!("../crates/saml/tests/data/ok-encrypted-aes256-cbc.xml");
const SP_KEY: &str = include_str!("../crates/saml/tests/data/sp-key.pem");
const NOW: u64 = 1_796_644_800;

fn bench_acs(c: &mut Criterion) {
    let idp = IdpMetadata::parse(METADATA).unwrap_or_else(|e| panic!("{e}"));
    let key = portcullis_saml::DecryptionKey::from_pem(SP_KEY).unwrap_or_else(|e| panic!("{e}"));
    let sp = Sp {
        entity_id: "https://app.example.test/ngrok/saml",
        acs_url: "https://app.example.test/ngrok/saml/acs",
        idp: &idp,
        decryption_key: Some(&key),
    };
    let expected = Expected {
        request_id: Some("_req0001"),
        allow_idp_initiated: false,
        now: NOW,
    };
    for (name, response) in [
        ("acs/validate", RESPONSE),
        ("acs/validate-encrypted", ENCRYPTED),
    ] {
        let validate = || portcullis_saml::response::validate_xml(response, &sp, &expected);
        validate().unwrap_or_else(|e| panic!("{name}: the response validates: {e}"));
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        let _ = black_box(validate());
        let after = ALLOCATIONS.load(Ordering::Relaxed);
        eprintln!(
            "{name}: {} allocations per validation of a {} byte response",
            after - before,
            response.len()
        );
        c.bench_function(name, |b| b.iter(|| black_box(validate())));
    }
}

const KEY: [u8; 32] = [7; 32];

fn policy(action: &str) -> String {
    format!(
        r#"
on_http_request:
  - actions:
      - type: {action}
  - expressions:
      - "!(actions.ngrok.{ns}.identity.email in ['alice@contoso.test', 'carol@contoso.test'])"
    actions:
      - type: deny
"#,
        ns = if action.contains("saml") {
            "saml"
        } else {
            "oidc"
        },
    )
}

/// A sealed session cookie for `claims`, as sign-in makes it.
fn session_cookie(claims: serde_json::Value) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let session = serde_json::json!({ "c": claims, "iat": now, "last": now });
    let sealed = portcullis_actions::session::Keys::new(&[KEY])
        .seal("portcullis_session_bench", session.to_string().as_bytes())
        .unwrap_or_else(|| panic!("seal"));
    format!("portcullis_session_bench={sealed}")
}

fn request(cookie: &str) -> Request<Body> {
    Request::get("https://app.example.com/reports?q=3")
        .header("host", "app.example.com")
        .header("user-agent", "Mozilla/5.0")
        .header("accept", "text/html")
        .header("cookie", cookie)
        .body(body::empty())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn bench_signed_in(c: &mut Criterion) {
    let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let oid = "a11ce000-0000-4000-8000-000000000001";
    let base = serde_json::json!({
        "sub": "alice", "tid": tenant, "oid": oid, "email": "alice@contoso.test",
        "xms_edov": true, "name": "Alice", "groups": ["g-admins", "g-staff"], "roles": ["Admin"],
    });
    // What each sign-in keeps of the same Entra user: the OpenID session
    // has the ID token's `preferred_username` and `sid`; the SAML one the
    // UPN claim, the `SessionIndex` and the NameID.
    let mut saml_claims = base.clone();
    saml_claims["nameid"] = "alice@contoso.test".into();
    saml_claims["preferred_username"] = "alice@contoso.test".into();
    saml_claims["sid"] = "_b07b2a1e0f3c4d5e6f708192a3b4c5d6".into();
    let mut oidc_claims = base;
    oidc_claims["preferred_username"] = "alice@contoso.test".into();
    oidc_claims["sid"] = "0038b2a1-0f3c-4d5e-6f70-8192a3b4c5d6".into();

    let metadata = serde_json::to_string(METADATA).unwrap_or_default();
    let cases = [
        (
            "signed_in/saml",
            policy(&format!(
                "saml\n        config:\n          auth_id: bench\n          idp_metadata: {metadata}"
            )),
            session_cookie(saml_claims),
        ),
        (
            "signed_in/openid-connect",
            policy(
                "openid-connect\n        config:\n          auth_id: bench\n          issuer_url: https://login.example.com/v2.0\n          client_id: c\n          client_secret: s",
            ),
            session_cookie(oidc_claims),
        ),
    ];
    let conn = Arc::new(Conn::new(
        "10.1.2.3:50000".parse().unwrap_or_else(|e| panic!("{e}")),
        "10.0.0.1:443".parse().unwrap_or_else(|e| panic!("{e}")),
        None,
    ));
    let endpoint = Arc::new(Endpoint::new("https://app.example.com"));
    let options = Options {
        session_keys: vec![KEY],
        ..Options::default()
    };
    let mut group = c.benchmark_group("signed_in");
    for (name, policy, cookie) in &cases {
        let pipeline =
            Pipeline::load(policy, &options).unwrap_or_else(|d| panic!("{name}: {d:#?}"));
        let mut ctx = RequestCtx::new(request(cookie), conn.clone(), endpoint.clone());
        let outcome = block_on(pipeline.on_request(&mut ctx));
        assert_eq!(
            outcome,
            Outcome::Continue,
            "{name}: the session admits alice"
        );
        assert!(
            ctx.identity().is_some(),
            "{name}: the identity is published"
        );
        group.bench_function(name.trim_start_matches("signed_in/"), |b| {
            b.iter_batched(
                || request(cookie),
                |req| {
                    let mut ctx = RequestCtx::new(black_box(req), conn.clone(), endpoint.clone());
                    block_on(pipeline.on_request(&mut ctx))
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

/// What `criterion_group!` would generate, without its undocumented `pub fn`.
fn benches() {
    let mut criterion = config().configure_from_args();
    bench_acs(&mut criterion);
    bench_signed_in(&mut criterion);
}

criterion_main!(benches);
