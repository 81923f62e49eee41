//! Responses the proxy itself makes: a status with no body (`deny`), and
//! error responses carrying a code in a header, as ngrok's carry
//! `ngrok-error-code`.

use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Response, StatusCode};

use crate::body::{self, Body};

/// The header that carries the error code of a response the proxy made.
/// The proxy removes it from upstream responses, so a client can trust it.
pub static ERROR_CODE: HeaderName = HeaderName::from_static("portcullis-error-code");

/// A response with `status` and no body.
pub fn status(status: StatusCode) -> Response<Body> {
    let mut res = Response::new(body::empty());
    *res.status_mut() = status;
    res
}

/// An error response: `status`, the code in [`ERROR_CODE`], and a short
/// plain-text body naming both.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let text = format!(
        "{} {}\n{message} ({code})\n",
        status.as_str(),
        status.canonical_reason().unwrap_or("")
    );
    let mut res = Response::new(body::full(text));
    *res.status_mut() = status;
    let headers = res.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(code) {
        headers.insert(ERROR_CODE.clone(), v);
    }
    res
}

/// A redirect: `status` with `Location: location` and no body. A location
/// that is not a valid header value (it cannot come from a parsed URI) is
/// left out.
pub fn redirect(status: StatusCode, location: &str) -> Response<Body> {
    let mut res = self::status(status);
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(http::header::LOCATION, v);
    }
    res
}
