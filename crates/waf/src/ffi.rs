//! libmodsecurity3's C API, opened at run time with `dlopen`.
//!
//! The only unsafe code of the project lives here. Each function of the
//! library is looked up once, when [`Library::open`] runs; every call is
//! wrapped in a safe method whose arguments are Rust types (lengths go
//! with every byte string, so a NUL in a header is data, not the end).
//! The pointers handed out ([`ModSec`], [`Rules`], [`Tx`]) are owned by the
//! safe types of the crate, which free them exactly once.
//!
//! What libmodsecurity promises about threads, and what we rely on: one
//! `ModSecurity` object and one loaded rule set are shared by every
//! transaction (nginx's connector does so across its workers' requests);
//! a transaction is used by one thread at a time.

#![allow(unsafe_code, reason = "the FFI boundary to libmodsecurity3")]

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::ptr;

/// The names tried, in order: the ABI's soname first.
const NAMES: &[&str] = &["libmodsecurity.so.3", "libmodsecurity.so"];

type LogCb = extern "C" fn(*mut c_void, *const c_void);

/// `ModSecurityIntervention` (`modsecurity/intervention.h`).
#[repr(C)]
struct Intervention {
    status: c_int,
    pause: c_int,
    url: *mut c_char,
    log: *mut c_char,
    disruptive: c_int,
}

unsafe extern "C" {
    /// The C library's `free`, for the strings libmodsecurity allocates
    /// and hands over.
    fn free(p: *mut c_void);
}

/// The functions of the library.
pub(crate) struct Library {
    init: unsafe extern "C" fn() -> *mut c_void,
    set_connector_info: unsafe extern "C" fn(*mut c_void, *const c_char),
    set_log_cb: unsafe extern "C" fn(*mut c_void, LogCb),
    who_am_i: unsafe extern "C" fn(*mut c_void) -> *const c_char,
    create_rules_set: unsafe extern "C" fn() -> *mut c_void,
    rules_add_file: unsafe extern "C" fn(*mut c_void, *const c_char, *mut *const c_char) -> c_int,
    rules_cleanup: unsafe extern "C" fn(*mut c_void) -> c_int,
    new_transaction_with_id:
        unsafe extern "C" fn(*mut c_void, *mut c_void, *mut c_char, *mut c_void) -> *mut c_void,
    process_connection:
        unsafe extern "C" fn(*mut c_void, *const c_char, c_int, *const c_char, c_int) -> c_int,
    process_uri:
        unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char, *const c_char) -> c_int,
    add_n_request_header:
        unsafe extern "C" fn(*mut c_void, *const u8, usize, *const u8, usize) -> c_int,
    process_request_headers: unsafe extern "C" fn(*mut c_void) -> c_int,
    append_request_body: unsafe extern "C" fn(*mut c_void, *const u8, usize) -> c_int,
    process_request_body: unsafe extern "C" fn(*mut c_void) -> c_int,
    add_n_response_header:
        unsafe extern "C" fn(*mut c_void, *const u8, usize, *const u8, usize) -> c_int,
    process_response_headers: unsafe extern "C" fn(*mut c_void, c_int, *const c_char) -> c_int,
    append_response_body: unsafe extern "C" fn(*mut c_void, *const u8, usize) -> c_int,
    process_response_body: unsafe extern "C" fn(*mut c_void) -> c_int,
    process_logging: unsafe extern "C" fn(*mut c_void) -> c_int,
    intervention: unsafe extern "C" fn(*mut c_void, *mut Intervention) -> c_int,
    transaction_cleanup: unsafe extern "C" fn(*mut c_void),
    /// Kept open for as long as the functions above are called: the
    /// library is loaded once per process and never closed.
    _lib: libloading::Library,
}

/// A `ModSecurity` object: one per process.
pub(crate) struct ModSec(*mut c_void);
/// A loaded `RulesSet`.
pub(crate) struct Rules(*mut c_void);
/// A `Transaction`.
pub(crate) struct Tx(*mut c_void);

// SAFETY: the ModSecurity object is configured once (connector, log
// callback) before it is shared, and only read afterwards; a loaded rule
// set is read-only while transactions use it (libmodsecurity's design: a
// web server shares both across its requests). A transaction moves
// between threads but is used by one at a time (`&mut`).
unsafe impl Send for ModSec {}
unsafe impl Sync for ModSec {}
unsafe impl Send for Rules {}
unsafe impl Sync for Rules {}
unsafe impl Send for Tx {}

/// Looks up `name` in `lib` as a function of type `T`.
///
/// # Safety
/// `T` must be the function's C signature.
unsafe fn symbol<T: Copy>(lib: &libloading::Library, name: &str) -> Result<T, String> {
    // SAFETY: the caller vouches for the type.
    unsafe { lib.get::<T>(name.as_bytes()) }
        .map(|s| *s)
        .map_err(|e| format!("libmodsecurity has no `{name}`: {e}"))
}

impl Library {
    /// Opens libmodsecurity3 and looks up its functions.
    pub(crate) fn open() -> Result<Library, String> {
        let mut errors = Vec::new();
        for name in NAMES {
            // SAFETY: loading libmodsecurity runs its initialisers, which
            // only set up its own state.
            match unsafe { libloading::Library::new(*name) } {
                Ok(lib) => return Library::bind(lib),
                Err(e) => errors.push(e.to_string()),
            }
        }
        Err(errors.join("; "))
    }

    fn bind(lib: libloading::Library) -> Result<Library, String> {
        // SAFETY: each type is the C signature in libmodsecurity 3.0's
        // headers (modsecurity.h, rules_set.h, transaction.h).
        unsafe {
            Ok(Library {
                init: symbol(&lib, "msc_init")?,
                set_connector_info: symbol(&lib, "msc_set_connector_info")?,
                set_log_cb: symbol(&lib, "msc_set_log_cb")?,
                who_am_i: symbol(&lib, "msc_who_am_i")?,
                create_rules_set: symbol(&lib, "msc_create_rules_set")?,
                rules_add_file: symbol(&lib, "msc_rules_add_file")?,
                rules_cleanup: symbol(&lib, "msc_rules_cleanup")?,
                new_transaction_with_id: symbol(&lib, "msc_new_transaction_with_id")?,
                process_connection: symbol(&lib, "msc_process_connection")?,
                process_uri: symbol(&lib, "msc_process_uri")?,
                add_n_request_header: symbol(&lib, "msc_add_n_request_header")?,
                process_request_headers: symbol(&lib, "msc_process_request_headers")?,
                append_request_body: symbol(&lib, "msc_append_request_body")?,
                process_request_body: symbol(&lib, "msc_process_request_body")?,
                add_n_response_header: symbol(&lib, "msc_add_n_response_header")?,
                process_response_headers: symbol(&lib, "msc_process_response_headers")?,
                append_response_body: symbol(&lib, "msc_append_response_body")?,
                process_response_body: symbol(&lib, "msc_process_response_body")?,
                process_logging: symbol(&lib, "msc_process_logging")?,
                intervention: symbol(&lib, "msc_intervention")?,
                transaction_cleanup: symbol(&lib, "msc_transaction_cleanup")?,
                _lib: lib,
            })
        }
    }

    /// A new `ModSecurity` object whose rule messages go to [`log_cb`].
    pub(crate) fn modsec(&self, connector: &str) -> ModSec {
        let connector = CString::new(connector).unwrap_or_default();
        // SAFETY: msc_init allocates a new object; the setters copy the
        // string and keep the function pointer, which lives forever.
        unsafe {
            let ms = (self.init)();
            (self.set_connector_info)(ms, connector.as_ptr());
            (self.set_log_cb)(ms, log_cb);
            ModSec(ms)
        }
    }

    /// The library's name and version (`ModSecurity v3.0.9 (Linux)`).
    pub(crate) fn version(&self, ms: &ModSec) -> String {
        // SAFETY: a static string owned by the object.
        unsafe {
            let p = (self.who_am_i)(ms.0);
            if p.is_null() {
                return String::new();
            }
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }

    /// Loads the rules of the file at `path` (and what it includes) into
    /// a new rule set.
    pub(crate) fn load(&self, path: &CStr) -> Result<Rules, String> {
        // SAFETY: the error string, when set, is malloc'ed for the caller.
        unsafe {
            let rules = Rules((self.create_rules_set)());
            let mut error: *const c_char = ptr::null();
            let n = (self.rules_add_file)(rules.0, path.as_ptr(), &mut error);
            if n < 0 {
                let message = if error.is_null() {
                    "the rules did not load".to_string()
                } else {
                    let m = CStr::from_ptr(error).to_string_lossy().into_owned();
                    free(error as *mut c_void);
                    m
                };
                (self.rules_cleanup)(rules.0);
                return Err(message);
            }
            Ok(rules)
        }
    }

    /// Frees a rule set no transaction uses any more.
    pub(crate) fn free_rules(&self, rules: &Rules) {
        // SAFETY: called once, from the owner's Drop.
        unsafe {
            (self.rules_cleanup)(rules.0);
        }
    }

    /// A new transaction on `rules`, whose rule messages are handed to
    /// `sink` (which must outlive it).
    pub(crate) fn transaction(&self, ms: &ModSec, rules: &Rules, id: &CStr, sink: *mut Sink) -> Tx {
        // SAFETY: the id is copied; `sink` is only dereferenced by
        // `log_cb`, during calls on this transaction, while its owner
        // keeps it alive.
        unsafe {
            Tx((self.new_transaction_with_id)(
                ms.0,
                rules.0,
                id.as_ptr() as *mut c_char,
                sink as *mut c_void,
            ))
        }
    }

    pub(crate) fn connection(
        &self,
        tx: &mut Tx,
        client: &CStr,
        cport: u16,
        server: &CStr,
        sport: u16,
    ) {
        // SAFETY: the strings are copied.
        unsafe {
            (self.process_connection)(
                tx.0,
                client.as_ptr(),
                c_int::from(cport),
                server.as_ptr(),
                c_int::from(sport),
            );
        }
    }

    pub(crate) fn uri(&self, tx: &mut Tx, uri: &CStr, method: &CStr, version: &CStr) {
        // SAFETY: the strings are copied.
        unsafe {
            (self.process_uri)(tx.0, uri.as_ptr(), method.as_ptr(), version.as_ptr());
        }
    }

    pub(crate) fn request_header(&self, tx: &mut Tx, name: &[u8], value: &[u8]) {
        // SAFETY: pointer and length of live slices; copied.
        unsafe {
            (self.add_n_request_header)(
                tx.0,
                name.as_ptr(),
                name.len(),
                value.as_ptr(),
                value.len(),
            );
        }
    }

    pub(crate) fn request_headers_done(&self, tx: &mut Tx) {
        // SAFETY: a live transaction.
        unsafe {
            (self.process_request_headers)(tx.0);
        }
    }

    pub(crate) fn request_body(&self, tx: &mut Tx, body: &[u8]) {
        // SAFETY: pointer and length of a live slice; copied.
        unsafe {
            (self.append_request_body)(tx.0, body.as_ptr(), body.len());
        }
    }

    pub(crate) fn request_body_done(&self, tx: &mut Tx) {
        // SAFETY: a live transaction.
        unsafe {
            (self.process_request_body)(tx.0);
        }
    }

    pub(crate) fn response_header(&self, tx: &mut Tx, name: &[u8], value: &[u8]) {
        // SAFETY: pointer and length of live slices; copied.
        unsafe {
            (self.add_n_response_header)(
                tx.0,
                name.as_ptr(),
                name.len(),
                value.as_ptr(),
                value.len(),
            );
        }
    }

    pub(crate) fn response_headers_done(&self, tx: &mut Tx, status: u16, protocol: &CStr) {
        // SAFETY: a live transaction; the string is copied.
        unsafe {
            (self.process_response_headers)(tx.0, c_int::from(status), protocol.as_ptr());
        }
    }

    pub(crate) fn response_body(&self, tx: &mut Tx, body: &[u8]) {
        // SAFETY: pointer and length of a live slice; copied.
        unsafe {
            (self.append_response_body)(tx.0, body.as_ptr(), body.len());
        }
    }

    pub(crate) fn response_body_done(&self, tx: &mut Tx) {
        // SAFETY: a live transaction.
        unsafe {
            (self.process_response_body)(tx.0);
        }
    }

    pub(crate) fn logging(&self, tx: &mut Tx) {
        // SAFETY: a live transaction.
        unsafe {
            (self.process_logging)(tx.0);
        }
    }

    /// The status of a disruptive action the rules took, if they took one.
    pub(crate) fn intervention(&self, tx: &mut Tx) -> Option<u16> {
        let mut it = Intervention {
            status: 200,
            pause: 0,
            url: ptr::null_mut(),
            log: ptr::null_mut(),
            disruptive: 0,
        };
        // SAFETY: the strings set in `it` are malloc'ed for the caller.
        unsafe {
            (self.intervention)(tx.0, &mut it);
            if !it.url.is_null() {
                free(it.url as *mut c_void);
            }
            if !it.log.is_null() {
                free(it.log as *mut c_void);
            }
        }
        (it.disruptive != 0).then(|| u16::try_from(it.status).unwrap_or(403))
    }

    /// Frees a transaction; called once, from its owner's Drop.
    pub(crate) fn free_transaction(&self, tx: &mut Tx) {
        // SAFETY: called once; the pointer is not used afterwards.
        unsafe {
            (self.transaction_cleanup)(tx.0);
        }
        tx.0 = ptr::null_mut();
    }
}

/// Where a transaction's rule messages are collected.
#[derive(Default)]
pub(crate) struct Sink {
    pub(crate) lines: Vec<Vec<u8>>,
}

/// The log callback: libmodsecurity calls it, on the thread running the
/// transaction, with the transaction's `Sink` and a rule message.
extern "C" fn log_cb(data: *mut c_void, msg: *const c_void) {
    if data.is_null() || msg.is_null() {
        return;
    }
    // SAFETY: `data` is the `Sink` given to `transaction`, alive and not
    // otherwise borrowed while libmodsecurity runs the transaction;
    // `msg` is a NUL-terminated string valid for this call.
    unsafe {
        let sink = &mut *(data as *mut Sink);
        let line = CStr::from_ptr(msg as *const c_char);
        sink.lines.push(line.to_bytes().to_vec());
    }
}
