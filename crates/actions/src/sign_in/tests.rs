use super::{is_guid, safe_path};
use crate::jwt_validation_rules::key_issuer_matches;

#[test]
fn redirect_paths_stay_on_the_endpoint() {
    for ok in ["/", "/a/b?c=d", "/reports#x"] {
        assert!(safe_path(ok), "{ok}");
    }
    for bad in [
        "//evil.example/x",
        "/\\evil.example",
        "https://evil.example/",
        "evil",
        "",
        "/a\nb",
        "/a\\b",
    ] {
        assert!(!safe_path(bad), "{bad:?}");
    }
}

#[test]
fn tenant_ids_are_guids() {
    assert!(is_guid("c0a705a0-0000-4000-8000-000000000001"));
    assert!(!is_guid("contoso.onmicrosoft.com"));
    assert!(!is_guid("{tenantid}"));
    assert!(!is_guid("c0a705a0-0000-4000-8000-00000000000"));
}

#[test]
fn a_key_issuer_template_binds_the_token_to_its_tenant() {
    let template = Some("https://login.microsoftonline.com/{tenantid}/v2.0");
    let tid = "c0a705a0-0000-4000-8000-000000000001";
    let ok = serde_json::json!({
        "tid": tid,
        "iss": format!("https://login.microsoftonline.com/{tid}/v2.0"),
    });
    assert!(key_issuer_matches(template, &ok));
    // A token whose `iss` names another tenant than its `tid`.
    let forged = serde_json::json!({
        "tid": tid,
        "iss": "https://login.microsoftonline.com/fab71ca0-0000-4000-8000-000000000002/v2.0",
    });
    assert!(!key_issuer_matches(template, &forged));
    let no_tid = serde_json::json!({ "iss": "https://login.microsoftonline.com/x/v2.0" });
    assert!(!key_issuer_matches(template, &no_tid));
    // A concrete key issuer must equal `iss`; no key issuer, no rule.
    let a = serde_json::json!({ "iss": "https://a/v2.0" });
    let b = serde_json::json!({ "iss": "https://b/v2.0" });
    assert!(key_issuer_matches(Some("https://a/v2.0"), &a));
    assert!(!key_issuer_matches(Some("https://a/v2.0"), &b));
    assert!(key_issuer_matches(None, &forged));
}
