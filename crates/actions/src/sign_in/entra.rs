//! Microsoft Entra ID: tenant ids, and groups overage. When a user is in
//! too many groups for a token, Entra names Microsoft Graph instead; the
//! groups are read from Graph (following links only under `graph_url`,
//! `origin.rs`) with the user's token (OpenID) or an application's
//! (SAML: client credentials), and kept in this process's memory, by
//! identity, as are groups too many for a session cookie.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;

use crate::percent::encode_component;

use super::providers::fetch_json;
use super::session::{SessionState, identity_id};
use super::{SignIn, origin};

/// Group ids resolved through Graph, and when.
pub(super) type Groups = (Arc<[String]>, Instant);

/// An application that reads users' groups from Graph (SAML, whose
/// assertions carry no token to ask with): where it gets its tokens, and
/// those it has, by tenant.
#[derive(Debug)]
pub(super) struct GraphApp {
    /// The Entra authority (`https://login.microsoftonline.com`).
    pub(super) authority: String,
    pub(super) tokens: tokio::sync::Mutex<HashMap<String, (String, Instant)>>,
}

impl SignIn {
    /// The group ids of a user, from Microsoft Graph's
    /// `transitiveMemberOf`, every page (`@odata.nextLink`), as Microsoft
    /// documents for groups overage: `who` is `me` with the user's own
    /// token, or `users/<object id>` with an application's.
    pub(super) async fn graph_groups(
        &self,
        access_token: &str,
        who: &str,
    ) -> Result<Vec<String>, String> {
        let client = self.client.as_ref().ok_or("no HTTP client")?;
        let graph = origin::Origin::parse(&self.graph_url)
            .ok_or_else(|| format!("`graph_url` ({}) is not an http(s) URL", self.graph_url))?;
        let mut url = format!(
            "{}/v1.0/{who}/transitiveMemberOf?$select=id&$top=100",
            self.graph_url
        );
        let mut groups = Vec::new();
        for _ in 0..100 {
            let req = Request::get(url.as_str())
                .header("authorization", format!("Bearer {access_token}"))
                .header("accept", "application/json")
                .body(Bytes::new());
            let page = fetch_json(&**client, req).await?;
            for item in page
                .get("value")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
            {
                let kind = item
                    .get("@odata.type")
                    .and_then(|v| v.as_str())
                    .unwrap_or("");
                if (kind.is_empty() || kind == "#microsoft.graph.group")
                    && let Some(id) = item.get("id").and_then(|v| v.as_str())
                {
                    groups.push(id.to_owned());
                }
            }
            match page.get("@odata.nextLink").and_then(|v| v.as_str()) {
                // Only links under `graph_url` (its scheme, host, port and
                // path: `Origin`) are followed: a page cannot send the
                // user's token elsewhere. One that leads elsewhere is an
                // error like a failed call, never the groups read so far:
                // a partial list would decide as if it were the whole.
                Some(next) if graph.admits(next) => url = next.to_owned(),
                Some(_) => return Err("a page links outside `graph_url`".into()),
                None => return Ok(groups),
            }
        }
        Err("more than 100 pages of groups".into())
    }

    /// An application's token for Microsoft Graph in tenant `tid` (the
    /// client credentials grant at `authority`), kept until a minute
    /// before it expires.
    pub(super) async fn graph_app_token(
        &self,
        app: &GraphApp,
        client_id: &str,
        client_secret: &str,
        tid: &str,
    ) -> Result<String, String> {
        if !is_guid(tid) {
            return Err(format!("the tenant id `{tid}` is not a GUID"));
        }
        let mut tokens = app.tokens.lock().await;
        if let Some((token, until)) = tokens.get(tid)
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let client = self.client.as_ref().ok_or("no HTTP client")?;
        let form = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
            encode_component(client_id),
            encode_component(client_secret),
            encode_component(&format!("{}/.default", self.graph_url)),
        );
        let req = Request::post(format!("{}/{tid}/oauth2/v2.0/token", app.authority))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(Bytes::from(form));
        let json = fetch_json(&**client, req).await?;
        let token = json
            .get("access_token")
            .and_then(|v| v.as_str())
            .ok_or("the token response has no `access_token`")?
            .to_owned();
        let lifetime = json
            .get("expires_in")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(300)
            .saturating_sub(60);
        if tokens.len() > 1000 {
            tokens.clear();
        }
        tokens.insert(
            tid.to_owned(),
            (
                token.clone(),
                Instant::now() + Duration::from_secs(lifetime),
            ),
        );
        Ok(token)
    }

    /// Keeps `groups` as the overage groups of the user of `claims`, and
    /// marks the claims so.
    pub(super) fn keep_overage(&self, claims: &mut serde_json::Value, groups: Vec<String>) {
        let mut cache = match self.overage.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if cache.len() > 10_000 {
            cache.retain(|_, (_, t)| t.elapsed() < Duration::from_secs(12 * 3600));
        }
        cache.insert(identity_id(claims), (groups.into(), Instant::now()));
        if let Some(c) = claims.as_object_mut() {
            c.remove("_claim_names");
            c.remove("_claim_sources");
            c.insert("ov".into(), serde_json::Value::Bool(true));
        }
    }

    pub(super) fn with_overage(&self, state: SessionState) -> SessionState {
        // A session whose overage groups this process does not hold (it
        // restarted) signs in again, rather than run without the groups.
        if let SessionState::Valid(s) = &state
            && s.get("c").and_then(|c| c.get("ov")).is_some()
            && self
                .overage_groups(s.get("c").unwrap_or(&serde_json::Value::Null))
                .is_none()
        {
            return SessionState::None;
        }
        state
    }

    pub(super) fn overage_groups(&self, claims: &serde_json::Value) -> Option<Arc<[String]>> {
        let cache = match self.overage.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        cache.get(&identity_id(claims)).map(|(g, _)| g.clone())
    }
}

pub(super) fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}
