//! A browser without JavaScript for the sign-in tests: cookies kept by
//! name (every server here is on 127.0.0.1, and cookies do not tell ports
//! apart), redirects followed, auto-submitting forms (OpenID's
//! `form_post`, SAML's HTTP-POST binding) submitted by reading their
//! fields, and the user "typing their name" at the provider as its
//! `login_hint`. Headless Chromium runs the same flows in
//! `tests/browser/sign_in.mjs`.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "a harness module shared by test binaries, each using part of it"
)]

use std::collections::HashMap;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;

use super::proxy::{Resp, send};

/// Cookies by name (every server here is on 127.0.0.1, and cookies do not
/// tell ports apart), and redirects followed by hand.
#[derive(Default)]
pub struct Browser {
    pub cookies: HashMap<String, String>,
}

impl Browser {
    pub async fn request(&mut self, method: &str, url: &str, form: Option<String>) -> Resp {
        let mut req = Request::builder().method(method).uri(url);
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header("cookie", jar.join("; "));
        }
        let body = match form {
            Some(f) => {
                req = req.header("content-type", "application/x-www-form-urlencoded");
                Bytes::from(f)
            }
            None => Bytes::new(),
        };
        let res = send(req.body(Full::new(body)).expect("request"))
            .await
            .expect("response");
        for c in res.headers.get_all("set-cookie") {
            let c = c.to_str().expect("cookie");
            let (pair, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (name, value) = pair.split_once('=').expect("name=value");
            if value.is_empty() || attrs.contains("Max-Age=0") {
                self.cookies.remove(name.trim());
            } else {
                self.cookies
                    .insert(name.trim().to_owned(), value.to_owned());
            }
        }
        res
    }

    /// `GET url`, then every redirect (and `form_post` form), until a
    /// response that is neither.
    pub async fn visit(&mut self, url: &str, login_hint: &str) -> Resp {
        let mut url = url.to_owned();
        let mut form = None;
        for _ in 0..20 {
            let method = if form.is_some() { "POST" } else { "GET" };
            let res = self.request(method, &url, form.take()).await;
            if let Some(next) = res.header("location") {
                let mut next = absolute(&url, next);
                // The user types their name at the provider: here, the
                // provider signs in whoever `login_hint` names.
                if next.contains("/login/oauth/authorize?") && !next.contains("&login=") {
                    // GitHub's own parameter for the account to use.
                    next.push_str(&format!("&login={login_hint}"));
                } else if (next.contains("/authorize?")
                    || next.contains("/sso?")
                    || next.contains("/dialog/oauth?")
                    || next.contains("/ap/oa?")
                    || next.contains("/v2/authorization?")
                    || next.contains("/v2/auth?"))
                    && !next.contains("login_hint=")
                {
                    next.push_str(&format!("&login_hint={login_hint}"));
                }
                url = next;
                continue;
            }
            let text = res.text();
            // An auto-submitting form: OpenID's `form_post`, SAML's
            // HTTP-POST binding.
            if res.status == StatusCode::OK
                && text.contains("<form")
                && (text.contains("name=\"code\"") || text.contains("name=\"SAMLResponse\""))
            {
                let (action, fields) = parse_form(&text);
                url = action;
                form = Some(fields);
                continue;
            }
            return res;
        }
        panic!("too many redirects");
    }
}

pub fn absolute(base: &str, location: &str) -> String {
    if location.starts_with("http") {
        return location.to_owned();
    }
    let origin: String = base.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
    format!("{origin}{location}")
}

/// The action and the fields of an auto-submitting HTML form.
pub fn parse_form(html: &str) -> (String, String) {
    let attr = |tag: &str, name: &str| {
        let at = tag.find(&format!("{name}=\""))? + name.len() + 2;
        Some(tag[at..].split('"').next()?.replace("&amp;", "&"))
    };
    let form_tag = html.split("<form").nth(1).expect("form");
    let action = attr(form_tag, "action").expect("action");
    let fields: Vec<String> = html
        .split("<input")
        .skip(1)
        .filter_map(|i| {
            Some(format!(
                "{}={}",
                attr(i, "name")?,
                escape(&attr(i, "value")?)
            ))
        })
        .collect();
    (action, fields.join("&"))
}

fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
