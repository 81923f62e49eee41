//! Microsoft Entra ID: tenant ids, and groups overage. When a user is in
//! too many groups for a token, Entra names Microsoft Graph instead; the
//! groups are read from Graph (following links only under `graph_url`,
//! `origin.rs`) and kept in this process's memory, by identity, as are
//! groups too many for a session cookie.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::Request;

use super::providers::fetch_json;
use super::session::{SessionState, identity_id};
use super::{SignIn, origin};

/// Group ids resolved through Graph, and when.
pub(super) type Groups = (Arc<[String]>, Instant);

impl SignIn {
    /// The group ids of the signed-in user, from Microsoft Graph's
    /// `me/transitiveMemberOf`, every page (`@odata.nextLink`), as
    /// Microsoft documents for groups overage.
    pub(super) async fn graph_groups(&self, access_token: &str) -> Result<Vec<String>, String> {
        let client = self.client.as_ref().ok_or("no HTTP client")?;
        let graph = origin::Origin::parse(&self.graph_url)
            .ok_or_else(|| format!("`graph_url` ({}) is not an http(s) URL", self.graph_url))?;
        let mut url = format!(
            "{}/v1.0/me/transitiveMemberOf?$select=id&$top=100",
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
