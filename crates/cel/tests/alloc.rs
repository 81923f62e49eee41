//! Proves that evaluating typical policy conditions against a request-like
//! [`Activation`] allocates nothing on the heap once warmed up.
//!
//! A counting global allocator tallies allocations made by the current thread
//! while a thread-local switch is on, so the test harness's other threads do
//! not pollute the count. Set `PORTCULLIS_ALLOC_BACKTRACE=1` to print a
//! backtrace for every counted allocation, to find the line that allocates.
#![allow(
    unsafe_code,
    reason = "a #[global_allocator] needs `unsafe impl GlobalAlloc`"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

use portcullis_cel::Program;

// === counting allocator ===

/// Counts the allocations of the threads that opted in.
struct Counting;

thread_local! {
    /// Whether this thread is inside a measured section.
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    /// Allocations (and reallocations) counted on this thread.
    static COUNT: Cell<usize> = const { Cell::new(0) };
    /// Set while printing a backtrace, whose own allocations are not counted.
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

/// Whether to print a backtrace per counted allocation; read once, outside
/// the allocator, because reading the environment allocates.
static BACKTRACE: AtomicBool = AtomicBool::new(false);

fn record() {
    let active = ACTIVE.try_with(Cell::get).unwrap_or(false);
    if !active || IN_HOOK.try_with(Cell::get).unwrap_or(true) {
        return;
    }
    let _ = COUNT.try_with(|c| c.set(c.get() + 1));
    if BACKTRACE.load(Ordering::Relaxed) {
        IN_HOOK.with(|h| h.set(true));
        let trace = std::backtrace::Backtrace::force_capture();
        {
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "counted allocation at:\n{trace}");
        }
        IN_HOOK.with(|h| h.set(false));
    }
}

// SAFETY: every method forwards to `System` unchanged; `record` only touches
// const-initialised thread-locals and never allocates outside `IN_HOOK`.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record();
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns the number of heap allocations this thread made in it.
fn allocations<R>(f: impl FnOnce() -> R) -> (R, usize) {
    BACKTRACE.store(
        std::env::var_os("PORTCULLIS_ALLOC_BACKTRACE").is_some_and(|v| !v.is_empty() && v != "0"),
        Ordering::Relaxed,
    );
    COUNT.with(|c| c.set(0));
    ACTIVE.with(|a| a.set(true));
    let out = f();
    ACTIVE.with(|a| a.set(false));
    (out, COUNT.with(Cell::get))
}

#[path = "support/request.rs"]
mod request;
use request::{Request, RequestActivation, Vars, pairs};

fn request(method: &str, path: &str, headers: &[(&str, &str)], email: &str) -> Request {
    Request {
        method: method.to_owned(),
        path: path.to_owned(),
        headers: pairs(headers),
        query: pairs(&[("page", "2"), ("debug_level", "3")]),
        client_ip: "203.0.113.7".to_owned(),
        email: email.to_owned(),
    }
}

const E1: &str =
    "req.method == 'POST' && req.url.path.startsWith('/api') && 'admin' in req.headers['x-roles']";
const E2: &str = "!(actions.ngrok.oauth.identity.email in ['a@x.com','b@y.com','me@example.com'])";
const E3: &str =
    "conn.client_ip.startsWith('10.') || req.headers['user-agent'][0].matches('curl/.*')";
const E4: &str = "req.query_params.exists(k, k.startsWith('debug'))";

const BROWSER_HEADERS: &[(&str, &str)] = &[
    ("host", "api.example.com"),
    ("user-agent", "Mozilla/5.0 (X11; Linux x86_64)"),
    ("accept", "application/json"),
    ("x-roles", "dev"),
    ("x-roles", "ops"),
];

const ADMIN_HEADERS: &[(&str, &str)] = &[
    ("host", "api.example.com"),
    ("user-agent", "curl/8.4.0"),
    ("accept", "*/*"),
    ("x-roles", "dev"),
    ("x-roles", "admin"),
];

/// Evaluates `program` once to warm up (lazy statics, regex caches), then
/// counts the allocations of 100 more evaluations, each with an activation
/// built afresh as a proxy would per request.
fn eval_counting(program: &Program, vars: &Vars, req: &Request) -> (bool, usize) {
    let first = program.eval_bool(&RequestActivation::new(vars, req));
    let (results, n) = allocations(|| {
        let mut all = [const { Ok(false) }; 100];
        for slot in &mut all {
            *slot = program.eval_bool(&RequestActivation::new(vars, req));
        }
        all
    });
    let first = first.unwrap_or_else(|e| panic!("evaluation failed: {e}"));
    assert!(
        results.iter().all(|r| *r == Ok(first)),
        "results vary between evaluations: {results:?}"
    );
    (first, n)
}

#[test]
fn e1_allocates_nothing_and_decides_as_expected() {
    let vars = Vars::new();
    let program = vars.compile(E1);
    let cases = [
        (
            request("POST", "/api/users", ADMIN_HEADERS, "me@example.com"),
            true,
        ),
        // Every clause but the roles matches: the whole chain runs.
        (
            request("POST", "/api/users", BROWSER_HEADERS, "me@example.com"),
            false,
        ),
        // Short-circuits on the method.
        (
            request("GET", "/api/users", ADMIN_HEADERS, "me@example.com"),
            false,
        ),
        (
            request("POST", "/static/app.js", ADMIN_HEADERS, "me@example.com"),
            false,
        ),
    ];
    for (req, want) in &cases {
        let (got, n) = eval_counting(&program, &vars, req);
        assert_eq!(got, *want, "E1 for {} {}", req.method, req.path);
        assert_eq!(n, 0, "E1 allocated {n} times in 100 evaluations");
    }
}

#[test]
fn e2_allocates_nothing_and_decides_as_expected() {
    let vars = Vars::new();
    let program = vars.compile(E2);
    let cases = [
        ("me@example.com", false),
        ("a@x.com", false),
        ("mallory@evil.test", true),
        ("", true),
    ];
    for (email, want) in cases {
        let req = request("GET", "/", BROWSER_HEADERS, email);
        let (got, n) = eval_counting(&program, &vars, &req);
        assert_eq!(got, want, "E2 for {email:?}");
        assert_eq!(n, 0, "E2 allocated {n} times in 100 evaluations");
    }
}

#[test]
fn e3_allocates_nothing_and_decides_as_expected() {
    let vars = Vars::new();
    let program = vars.compile(E3);
    let mut internal = request("GET", "/", BROWSER_HEADERS, "");
    internal.client_ip = "10.1.2.3".to_owned();
    let cases = [
        (request("GET", "/", ADMIN_HEADERS, ""), true),
        (request("GET", "/", BROWSER_HEADERS, ""), false),
        (internal, true),
    ];
    for (req, want) in &cases {
        let (got, n) = eval_counting(&program, &vars, req);
        assert_eq!(got, *want, "E3 for {} / {:?}", req.client_ip, req.headers);
        assert_eq!(n, 0, "E3 allocated {n} times in 100 evaluations");
    }
}

/// Comprehensions read their range in place (lists by index, a caller's
/// multi-map by key), so E4 allocates nothing either.
#[test]
fn e4_decides_as_expected() {
    let vars = Vars::new();
    let program = vars.compile(E4);
    let mut plain = request("GET", "/", BROWSER_HEADERS, "");
    plain.query = pairs(&[("page", "2"), ("sort", "asc")]);
    for (req, want) in [
        (request("GET", "/", BROWSER_HEADERS, ""), true),
        (plain, false),
    ] {
        let (got, n) = eval_counting(&program, &vars, &req);
        assert_eq!(got, want, "E4 for {:?}", req.query);
        assert_eq!(n, 0, "E4 allocated {n} times in 100 evaluations");
    }
}

/// The counter sees allocations, so the zeros above mean something.
#[test]
fn counter_sees_allocations() {
    let (b, n) = allocations(|| std::hint::black_box(Box::new(7u64)));
    assert_eq!(*b, 7);
    assert_eq!(n, 1);
    let vars = Vars::new();
    let (_, n) = allocations(|| vars.compile(E1));
    assert!(n > 0, "compiling must allocate");
}
