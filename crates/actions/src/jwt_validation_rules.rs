//! Token rules shared by `jwt-validation` and sign-in.

/// Microsoft Entra's rule for multi-tenant key sets: a key that carries
/// an `issuer` (a template with `{tenantid}` on `/common`) may only sign
/// tokens of that issuer, the template filled with the token's `tid`.
pub(crate) fn key_issuer_matches(key_issuer: Option<&str>, claims: &serde_json::Value) -> bool {
    let Some(template) = key_issuer else {
        return true;
    };
    let iss = claims.get("iss").and_then(|v| v.as_str()).unwrap_or("");
    if !template.contains("{tenantid}") {
        return iss == template;
    }
    let Some(tid) = claims.get("tid").and_then(|v| v.as_str()) else {
        return false;
    };
    iss == template.replace("{tenantid}", tid)
}
