//! The CRS on libmodsecurity: requests and responses checked end to end
//! through the library (the regression suite lives in the root package's
//! `crs_regression` test).

use std::net::SocketAddr;
use std::sync::Arc;

use portcullis_waf::{Config, Report, RuleSet, Rules, Transaction};

fn addrs() -> (SocketAddr, SocketAddr) {
    (
        "192.0.2.7:51000".parse().unwrap(),
        "127.0.0.1:8080".parse().unwrap(),
    )
}

fn set(rules: Rules, bodies: bool) -> Arc<RuleSet> {
    RuleSet::load(&Config {
        rules,
        bodies,
        ..Config::default()
    })
    .expect("libmodsecurity3 and the CRS load")
}

const BROWSER: &[(&[u8], &[u8])] = &[
    (b"host", b"app.example.com"),
    (
        b"user-agent",
        b"Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0",
    ),
    (b"accept", b"text/html"),
];

fn get(set: &Arc<RuleSet>, target: &str) -> Report {
    let (client, server) = addrs();
    let mut tx = Transaction::new(set, client, server);
    if tx
        .request("GET", target, "1.1", BROWSER.iter().copied())
        .is_none()
    {
        tx.request_body(b"");
    }
    tx.finish()
}

#[test]
fn a_sql_injection_in_the_query_is_blocked() {
    let set = set(Rules::Request, false);
    let r = get(&set, "/search?q=1%27%20OR%20%271%27%3D%271");
    assert_eq!(r.blocked, Some(403), "{r:#?}");
    assert!(r.matched(942100), "{r:#?}");
    assert!(r.inbound_score.unwrap() >= 5, "{r:#?}");
}

#[test]
fn an_ordinary_request_passes_with_score_zero() {
    let set = set(Rules::Request, false);
    let r = get(&set, "/articles?page=2&sort=date");
    assert_eq!(r.blocked, None, "{r:#?}");
    assert_eq!(r.inbound_score, Some(0), "{r:#?}");
    assert!(r.matched.is_empty(), "{r:#?}");
}

#[test]
fn a_body_is_inspected_only_when_asked() {
    let body = b"comment=<script>alert(document.cookie)</script>";
    let headers: Vec<(&[u8], &[u8])> = BROWSER
        .iter()
        .copied()
        .chain([
            (
                &b"content-type"[..],
                &b"application/x-www-form-urlencoded"[..],
            ),
            (&b"content-length"[..], &b"48"[..]),
        ])
        .collect();
    for (bodies, blocked) in [(true, Some(403)), (false, None)] {
        let set = set(Rules::Request, bodies);
        let (client, server) = addrs();
        let mut tx = Transaction::new(&set, client, server);
        tx.request("POST", "/comments", "1.1", headers.iter().copied());
        tx.request_body(body);
        let r = tx.finish();
        assert_eq!(r.blocked, blocked, "bodies {bodies}: {r:#?}");
    }
}

#[test]
fn a_leaking_response_is_blocked() {
    let set = set(Rules::Response, true);
    let (client, server) = addrs();
    let mut tx = Transaction::new(&set, client, server);
    tx.request("GET", "/report", "1.1", BROWSER.iter().copied());
    tx.request_body(b"");
    tx.response(500, "1.1", [(&b"content-type"[..], &b"text/html"[..])]);
    tx.response_body(b"<b>Warning</b>: mysql_fetch_array() expects parameter 1 to be resource, boolean given in <b>/var/www/x.php</b>");
    let r = tx.finish();
    assert_eq!(r.blocked, Some(403), "{r:#?}");
    assert!(r.outbound_score.unwrap() >= 4, "{r:#?}");
}

#[test]
fn an_excluded_rule_does_not_match() {
    let base = set(Rules::Request, false);
    let target = "/?file=../../etc/passwd";
    let before = get(&base, target);
    let hit = before.matched.first().expect("a path traversal matches").id;
    let excluded = RuleSet::load(&Config {
        rules: Rules::Request,
        exclude: vec![hit],
        ..Config::default()
    })
    .unwrap();
    assert!(!get(&excluded, target).matched(hit));
}

/// libmodsecurity 3.0.9 kept the line ending in multipart part headers,
/// so CRS rule 922110 scored every part's `Content-Type` (a browser's
/// file upload) as an attack; the rule set corrects it.
#[test]
fn a_browser_file_upload_passes() {
    let set = set(Rules::Request, true);
    let body = "------WebKitFormBoundary7MA4\r\n\
        Content-Disposition: form-data; name=\"title\"\r\n\
        Content-Type: text/plain; charset=utf-8\r\n\r\n\
        Holiday\r\n\
        ------WebKitFormBoundary7MA4\r\n\
        Content-Disposition: form-data; name=\"photo\"; filename=\"beach.png\"\r\n\
        Content-Type: image/png\r\n\r\n\
        \u{1}PNG-bytes\r\n\
        ------WebKitFormBoundary7MA4--\r\n";
    let len = body.len().to_string();
    let headers: Vec<(&[u8], &[u8])> = BROWSER
        .iter()
        .copied()
        .chain([
            (
                &b"content-type"[..],
                &b"multipart/form-data; boundary=----WebKitFormBoundary7MA4"[..],
            ),
            (&b"content-length"[..], len.as_bytes()),
        ])
        .collect();
    let (client, server) = addrs();
    let mut tx = Transaction::new(&set, client, server);
    tx.request("POST", "/albums", "1.1", headers.iter().copied());
    tx.request_body(body.as_bytes());
    let r = tx.finish();
    assert_eq!(r.blocked, None, "{r:#?}");
    assert_eq!(r.inbound_score, Some(0), "{r:#?}");

    // The rule still catches what it is for: a charset nobody sends.
    let evil = body.replace("charset=utf-8", "charset=utf-7");
    let len = evil.len().to_string();
    let headers: Vec<(&[u8], &[u8])> = headers
        .iter()
        .map(|&(n, v)| {
            if n == b"content-length" {
                (n, len.as_bytes())
            } else {
                (n, v)
            }
        })
        .collect();
    let mut tx = Transaction::new(&set, client, server);
    tx.request("POST", "/albums", "1.1", headers.iter().copied());
    tx.request_body(evil.as_bytes());
    assert!(tx.finish().matched(922110));
}
