//! The OWASP Core Rule Set (CRS), run by libmodsecurity3: what the
//! `owasp-crs-request` and `owasp-crs-response` actions check.
//!
//! - **Why libmodsecurity.** The CRS is written in SecLang, ModSecurity's
//!   rule language, and is tested by its maintainers on ModSecurity (and on
//!   Coraza, which ngrok uses). No Rust engine runs SecLang. libmodsecurity3
//!   is maintained, packaged by Debian and Ubuntu, and is what nginx's
//!   connector embeds. ARCHITECTURE.md weighs the choice.
//! - **Loaded at run time.** The library is opened with `dlopen` the first
//!   time a rule set is loaded ([`RuleSet::load`]), so building Portcullis
//!   needs no C toolchain or headers, and a binary without the library
//!   installed still runs every other action: only a policy with a CRS
//!   action fails to load, saying what to install.
//! - **The rules ship inside.** CRS 4.28.0 (`crs/rules`, Apache-2.0) is
//!   embedded in the binary. Loading a rule set writes those files and a
//!   setup file made from [`Config`] to a fresh private directory,
//!   has libmodsecurity parse them, and removes the directory.
//! - **What a transaction reports.** Each rule that logs hands its message
//!   to a sink of the transaction; [`Report`] parses them. The anomaly
//!   scores are logged by two rules of our own placed just before the
//!   CRS's blocking evaluations, so they are exact, not recomputed. The
//!   message and data of a match are as ModSecurity logs them (the data
//!   can hold the client's bytes); the rule id and severity are anchored
//!   to the rule file's path, which holds a random component a client
//!   cannot guess, so a client cannot forge a match.
//!
//! The unsafe code is confined to `ffi`.

use std::collections::hash_map::RandomState;
use std::ffi::CString;
use std::fmt;
use std::hash::BuildHasher as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, Weak};

mod ffi;
mod report;
mod setup;

pub use crate::report::{Match, Report, Severity};

/// The CRS version embedded.
pub const CRS_VERSION: &str = "4.28.0";

/// Which of the CRS's files a rule set holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rules {
    /// The request rules (`REQUEST-*`): for `owasp-crs-request`.
    Request,
    /// The response rules (`RESPONSE-95x`): for `owasp-crs-response`.
    Response,
    /// Every file, as the CRS's own regression tests run them.
    All,
}

/// How a rule set is configured: what distinguishes one loaded set from
/// another.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    /// The files loaded.
    pub rules: Rules,
    /// The paranoia level, 1 to 4: rules of a higher level are not run.
    pub paranoia_level: u8,
    /// The inbound score at which a request is blocked (CRS default 5).
    pub inbound_threshold: u32,
    /// The outbound score at which a response is blocked (CRS default 4).
    pub outbound_threshold: u32,
    /// Whether bodies are parsed and inspected.
    pub bodies: bool,
    /// Rule ids removed after loading.
    pub exclude: Vec<u32>,
    /// Whether a score over its threshold blocks (`SecRuleEngine On`) or
    /// is only reported (`DetectionOnly`).
    pub blocking: bool,
    /// SecLang directives added after the setup and before the CRS (a
    /// test harness's settings).
    pub directives: String,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            rules: Rules::All,
            paranoia_level: 1,
            inbound_threshold: 5,
            outbound_threshold: 4,
            bodies: false,
            exclude: Vec::new(),
            blocking: true,
            directives: String::new(),
        }
    }
}

/// Why a rule set could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// libmodsecurity3 is not installed (or not loadable).
    Library(String),
    /// The rules did not load (an excluded id is no matter; a bad
    /// directive is).
    Rules(String),
    /// The rule files could not be written to a temporary directory.
    Io(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Library(e) => write!(
                f,
                "libmodsecurity3 could not be loaded ({e}); install it \
                 (Debian and Ubuntu: `apt install libmodsecurity3`)"
            ),
            Error::Rules(e) => write!(f, "the Core Rule Set did not load: {e}"),
            Error::Io(e) => write!(f, "the Core Rule Set could not be written out: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// The library and the one `ModSecurity` object of the process.
struct Engine {
    lib: ffi::Library,
    ms: ffi::ModSec,
}

fn engine() -> Result<&'static Engine, Error> {
    static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let lib = ffi::Library::open()?;
            let ms = lib.modsec(concat!("portcullis ", env!("CARGO_PKG_VERSION")));
            Ok(Engine { lib, ms })
        })
        .as_ref()
        .map_err(|e| Error::Library(e.clone()))
}

/// libmodsecurity's name and version, or why it cannot be loaded.
pub fn library_version() -> Result<String, Error> {
    let e = engine()?;
    Ok(e.lib.version(&e.ms))
}

/// A loaded, immutable rule set, shared by the transactions that use it.
pub struct RuleSet {
    engine: &'static Engine,
    rules: ffi::Rules,
    config: Config,
    /// The directory the files were loaded from: rule messages name it.
    root: String,
}

impl fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleSet")
            .field("config", &self.config)
            .finish()
    }
}

impl Drop for RuleSet {
    fn drop(&mut self) {
        self.engine.lib.free_rules(&self.rules);
    }
}

impl RuleSet {
    /// The rule set for `config`: the one already loaded if any policy
    /// still holds it, else a new one (loading the CRS takes a fraction
    /// of a second).
    pub fn load(config: &Config) -> Result<Arc<RuleSet>, Error> {
        static LOADED: Mutex<Vec<(Config, Weak<RuleSet>)>> = Mutex::new(Vec::new());
        let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
        loaded.retain(|(_, w)| w.strong_count() > 0);
        if let Some(set) = loaded
            .iter()
            .find(|(c, _)| c == config)
            .and_then(|(_, w)| w.upgrade())
        {
            return Ok(set);
        }
        let set = Arc::new(RuleSet::load_new(config)?);
        loaded.push((config.clone(), Arc::downgrade(&set)));
        Ok(set)
    }

    fn load_new(config: &Config) -> Result<RuleSet, Error> {
        let engine = engine()?;
        let dir = Scratch::create()?;
        let main = setup::write(&dir.0, config).map_err(|e| Error::Io(e.to_string()))?;
        let path = CString::new(main.as_os_str().as_encoded_bytes())
            .map_err(|_| Error::Io("a path with a NUL".into()))?;
        let rules = engine.lib.load(&path).map_err(Error::Rules)?;
        Ok(RuleSet {
            engine,
            rules,
            config: config.clone(),
            root: dir.0.display().to_string(),
        })
    }

    /// How the set is configured.
    pub fn config(&self) -> &Config {
        &self.config
    }
}

/// A private directory the rule files are written to, removed when
/// dropped (libmodsecurity has read them all by then).
struct Scratch(PathBuf);

impl Scratch {
    fn create() -> Result<Scratch, Error> {
        let nonce = RandomState::new().hash_one(std::process::id());
        let dir = std::env::temp_dir().join(format!("portcullis-crs-{nonce:016x}"));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&dir)
            .map_err(|e| Error::Io(format!("{}: {e}", dir.display())))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One exchange checked against a rule set: the request's parts, then the
/// response's, in order, then [`Transaction::finish`].
///
/// Each step returns the status of the disruptive action the rules took
/// (`Some(403)` when the anomaly score reached its threshold); after one,
/// the later steps do nothing.
pub struct Transaction {
    set: Arc<RuleSet>,
    tx: ffi::Tx,
    /// Boxed so its address stays put: libmodsecurity holds a pointer.
    sink: Box<ffi::Sink>,
    blocked: Option<u16>,
}

impl fmt::Debug for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("blocked", &self.blocked)
            .finish_non_exhaustive()
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        self.set.engine.lib.free_transaction(&mut self.tx);
    }
}

/// `s` as a C string, cut at a NUL (HTTP puts none in the places this is
/// used for: addresses, methods, versions, request targets).
fn c(s: &str) -> CString {
    let end = s.find('\0').unwrap_or(s.len());
    CString::new(&s[..end]).unwrap_or_default()
}

impl Transaction {
    /// A transaction for a connection from `client` to `server`.
    pub fn new(set: &Arc<RuleSet>, client: SocketAddr, server: SocketAddr) -> Transaction {
        let engine = set.engine;
        let mut sink = Box::new(ffi::Sink::default());
        let nonce = RandomState::new().hash_one(client);
        let id = c(&format!("{nonce:016x}"));
        let mut tx =
            engine
                .lib
                .transaction(&engine.ms, &set.rules, &id, &mut *sink as *mut ffi::Sink);
        engine.lib.connection(
            &mut tx,
            &c(&client.ip().to_string()),
            client.port(),
            &c(&server.ip().to_string()),
            server.port(),
        );
        Transaction {
            set: Arc::clone(set),
            tx,
            sink,
            blocked: None,
        }
    }

    fn lib(&self) -> &'static ffi::Library {
        &self.set.engine.lib
    }

    fn check(&mut self) -> Option<u16> {
        if self.blocked.is_none() {
            self.blocked = self.lib().intervention(&mut self.tx);
        }
        self.blocked
    }

    /// The status of the disruptive action the rules took so far.
    pub fn blocked(&self) -> Option<u16> {
        self.blocked
    }

    /// The request line and headers (phase 1). `version` is `1.1`, `2`...
    pub fn request<'h>(
        &mut self,
        method: &str,
        target: &str,
        version: &str,
        headers: impl IntoIterator<Item = (&'h [u8], &'h [u8])>,
    ) -> Option<u16> {
        if self.blocked.is_some() {
            return self.blocked;
        }
        let lib = self.lib();
        lib.uri(&mut self.tx, &c(target), &c(method), &c(version));
        for (name, value) in headers {
            lib.request_header(&mut self.tx, name, value);
        }
        lib.request_headers_done(&mut self.tx);
        self.check()
    }

    /// The request body, or as much of it as is to be inspected, and the
    /// end of the request (phase 2: most rules run here, the query
    /// string's too, so this is called even without a body). The body is
    /// ignored unless the rule set inspects bodies.
    pub fn request_body(&mut self, body: &[u8]) -> Option<u16> {
        if self.blocked.is_some() {
            return self.blocked;
        }
        let lib = self.lib();
        if self.set.config.bodies && !body.is_empty() {
            lib.request_body(&mut self.tx, body);
        }
        lib.request_body_done(&mut self.tx);
        self.check()
    }

    /// The response status line and headers (phase 3).
    pub fn response<'h>(
        &mut self,
        status: u16,
        version: &str,
        headers: impl IntoIterator<Item = (&'h [u8], &'h [u8])>,
    ) -> Option<u16> {
        if self.blocked.is_some() {
            return self.blocked;
        }
        let lib = self.lib();
        for (name, value) in headers {
            lib.response_header(&mut self.tx, name, value);
        }
        lib.response_headers_done(&mut self.tx, status, &c(&format!("HTTP {version}")));
        self.check()
    }

    /// The response body, or as much of it as is to be inspected (phase
    /// 4); ignored unless the rule set inspects bodies.
    pub fn response_body(&mut self, body: &[u8]) -> Option<u16> {
        if self.blocked.is_some() {
            return self.blocked;
        }
        let lib = self.lib();
        if self.set.config.bodies && !body.is_empty() {
            lib.response_body(&mut self.tx, body);
        }
        lib.response_body_done(&mut self.tx);
        self.check()
    }

    /// Ends the transaction (phase 5) and reports what matched.
    pub fn finish(mut self) -> Report {
        let lib = self.lib();
        lib.logging(&mut self.tx);
        let lines = std::mem::take(&mut self.sink.lines);
        Report::parse(
            &lines,
            &self.set.root,
            self.set.config.paranoia_level,
            self.blocked,
        )
    }
}
