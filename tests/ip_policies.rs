//! `restrict-ips.ip_policies` through the real binary: ngrok IP Policies
//! defined by the deployment (`--ip-policies FILE`) allow and deny by their
//! CIDRs, and an id the deployment does not define stops the start.

use http::StatusCode;

#[path = "support/proxy.rs"]
mod support;

use support::{Proxy, get, temp_dir};

const POLICY: &str = r#"
on_http_request:
  - actions:
      - type: restrict-ips
        config:
          ip_policies: [ipp_office]
"#;

fn proxy_with(policies: &str, name: &str) -> Result<Proxy, String> {
    let dir = temp_dir(name);
    let file = dir.join("ip-policies.yml");
    std::fs::write(&file, policies).expect("write");
    std::fs::write(dir.join("policy.yml"), POLICY).expect("write");
    Proxy::spawn(
        &[
            "http",
            "127.0.0.1:9",
            "--listen",
            "127.0.0.1:0",
            "--traffic-policy-file",
            dir.join("policy.yml").to_str().expect("utf-8"),
            "--ip-policies",
            file.to_str().expect("utf-8"),
        ],
        dir,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_policies_from_the_deployment_allow_and_deny() {
    // The office is 10.0.0.0/8: a loopback client is not in it.
    let proxy = proxy_with("ipp_office:\n  allow: [10.0.0.0/8]\n", "ipp-deny").expect("starts");
    let res = get(&proxy.url("/"), &[]).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.text());
    // Loopback allowed, but denied explicitly: deny wins.
    let proxy = proxy_with(
        "ipp_office:\n  allow: [127.0.0.0/8]\n  deny: [127.0.0.1/32]\n",
        "ipp-deny-wins",
    )
    .expect("starts");
    assert_eq!(
        get(&proxy.url("/"), &[]).await.status,
        StatusCode::FORBIDDEN
    );
    // Loopback allowed: through to the (absent) upstream, so 502.
    let proxy = proxy_with("ipp_office:\n  allow: [127.0.0.0/8]\n", "ipp-allow").expect("starts");
    assert_eq!(
        get(&proxy.url("/"), &[]).await.status,
        StatusCode::BAD_GATEWAY
    );
}

#[test]
fn an_undefined_ip_policy_stops_the_start() {
    let err = match proxy_with("ipp_other:\n  allow: [10.0.0.0/8]\n", "ipp-undefined") {
        Ok(_) => panic!("the proxy started without the IP Policy"),
        Err(e) => e,
    };
    assert!(
        err.contains("IP Policy `ipp_office` is not defined"),
        "{err}"
    );
    // A file that is not IP Policies is said as such.
    let err = match proxy_with("ipp_office:\n  allow: [not-a-cidr]\n", "ipp-bad") {
        Ok(_) => panic!("the proxy started with a bad CIDR"),
        Err(e) => e,
    };
    assert!(err.contains("not-a-cidr` is not a CIDR"), "{err}");
}

/// The IP Policies file is read again with the policy: a change to it
/// alone reloads, and a broken one keeps what was serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_policies_follow_changes_to_their_file() {
    let proxy = proxy_with("ipp_office:\n  allow: [127.0.0.0/8]\n", "ipp-reload").expect("starts");
    let file = proxy.policy_path().with_file_name("ip-policies.yml");
    // Allowed: through to the (absent) upstream, so 502.
    assert_eq!(
        get(&proxy.url("/"), &[]).await.status,
        StatusCode::BAD_GATEWAY
    );

    std::fs::write(&file, "ipp_office:\n  allow: [10.0.0.0/8]\n").expect("write");
    let mut status = StatusCode::BAD_GATEWAY;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        status = get(&proxy.url("/"), &[]).await.status;
        if status == StatusCode::FORBIDDEN {
            break;
        }
    }
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the new IP Policies were not applied"
    );

    std::fs::write(&file, "ipp_office:\n  allow: [10.0.0.300/8]\n").expect("write");
    assert!(
        proxy.wait_for_log("the IP Policies are invalid; the previous policy keeps serving"),
        "{}",
        proxy.log()
    );
    assert_eq!(
        get(&proxy.url("/"), &[]).await.status,
        StatusCode::FORBIDDEN
    );
}
