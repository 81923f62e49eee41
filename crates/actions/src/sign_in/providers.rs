//! What sign-in asks of the provider: its OpenID discovery document (or
//! GitHub's fixed endpoints), who signed in with GitHub, and, with
//! `userinfo_refresh_interval`, who the session's user is now.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};

use super::{Plain, PlainKind, SignIn, fail, now_secs};
use crate::ActionError;
use crate::client::{HttpClient, Scope};
use crate::jwks::Jwks;

const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_FETCH: usize = 256 * 1024;

/// The provider's endpoints, from its discovery document.
#[derive(Debug, Clone)]
pub(super) struct Discovery {
    pub(super) issuer: String,
    pub(super) authorization_endpoint: String,
    pub(super) token_endpoint: String,
    userinfo_endpoint: Option<String>,
}

/// What asking the provider again said.
pub(super) enum Refresh {
    /// The user is still signed in; the claims are fresh.
    Done,
    /// The provider refused the token: the user must sign in again.
    Revoked,
    /// The provider could not be asked; the session stands.
    Unavailable,
}

impl SignIn {
    pub(super) async fn discovery(&self) -> Result<&(Discovery, Jwks), ActionError> {
        if let Some(p) = &self.plain {
            // Fixed endpoints, as each provider documents them.
            let (authorize, token) = match p.kind {
                PlainKind::GitHub => (
                    format!("{}/login/oauth/authorize", p.host),
                    format!("{}/login/oauth/access_token", p.host),
                ),
                PlainKind::Facebook => (
                    format!("{}/{FACEBOOK_VERSION}/dialog/oauth", p.host),
                    format!("{}/{FACEBOOK_VERSION}/oauth/access_token", p.api),
                ),
                PlainKind::Amazon => (
                    format!("{}/ap/oa", p.host),
                    format!("{}/auth/o2/token", p.api),
                ),
            };
            return self
                .discovery
                .get_or_try_init(|| async {
                    Ok((
                        Discovery {
                            issuer: p.host.clone(),
                            authorization_endpoint: authorize,
                            token_endpoint: token,
                            userinfo_endpoint: None,
                        },
                        Jwks::new(Vec::new(), None),
                    ))
                })
                .await;
        }
        self.discovery
            .get_or_try_init(|| async {
                let client = self.client.clone().ok_or_else(|| {
                    fail(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "ERR_NGROK_3100",
                        "sign-in needs the proxy's HTTP client",
                    )
                })?;
                let url = format!("{}/.well-known/openid-configuration", self.issuer_url);
                let doc = fetch_json(&*client, Request::get(url.as_str()).body(Bytes::new()))
                    .await
                    .map_err(|e| {
                        fail(
                            StatusCode::BAD_GATEWAY,
                            "ERR_NGROK_3100",
                            format!(
                                "the provider's discovery document ({url}) could not be read: {e}"
                            ),
                        )
                    })?;
                let field = |k: &str| doc.get(k).and_then(|v| v.as_str()).map(str::to_owned);
                let (Some(issuer), Some(authz), Some(token), Some(jwks)) = (
                    field("issuer"),
                    field("authorization_endpoint"),
                    field("token_endpoint"),
                    field("jwks_uri"),
                ) else {
                    return Err(fail(
                        StatusCode::BAD_GATEWAY,
                        "ERR_NGROK_3100",
                        "the provider's discovery document lacks an endpoint",
                    ));
                };
                Ok((
                    Discovery {
                        issuer,
                        authorization_endpoint: authz,
                        token_endpoint: token,
                        userinfo_endpoint: field("userinfo_endpoint"),
                    },
                    Jwks::new(vec![jwks], Some(client)),
                ))
            })
            .await
    }

    pub(super) fn userinfo_due(&self, s: &serde_json::Value) -> bool {
        let Some(every) = self.userinfo_every else {
            return false;
        };
        let last = s.get("ui").and_then(serde_json::Value::as_u64).unwrap_or(0);
        now_secs().saturating_sub(last) >= every
    }

    /// Asks the provider again who the session's user is: the userinfo
    /// endpoint (GitHub: `/user`), with the access token kept in the
    /// session. The claims it returns replace the session's.
    pub(super) async fn refresh_userinfo(&self, s: &mut serde_json::Value) -> Refresh {
        let access = s
            .get("at")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned();
        if access.is_empty() {
            return Refresh::Revoked;
        }
        let fresh = if let Some(p) = &self.plain {
            self.plain_identity(p, &access).await
        } else {
            let Ok((disc, _)) = self.discovery().await else {
                return Refresh::Unavailable;
            };
            let Some(endpoint) = disc.userinfo_endpoint.clone() else {
                return Refresh::Unavailable;
            };
            let Some(client) = self.client.as_ref() else {
                return Refresh::Unavailable;
            };
            let req = Request::get(endpoint.as_str())
                .header("authorization", format!("Bearer {access}"))
                .header("accept", "application/json")
                .body(Bytes::new());
            fetch_json(&**client, req).await
        };
        match fresh {
            Ok(claims) => {
                if let (Some(old), Some(new)) = (
                    s.get_mut("c").and_then(|c| c.as_object_mut()),
                    claims.as_object(),
                ) {
                    // The provider may only change what userinfo says of
                    // the same user; the identity itself stays.
                    let same = ["sub", "oid"]
                        .iter()
                        .all(|k| new.get(*k).is_none() || new.get(*k) == old.get(*k));
                    if !same {
                        return Refresh::Revoked;
                    }
                    for (k, v) in new {
                        if matches!(
                            k.as_str(),
                            "email" | "email_verified" | "name" | "login" | "preferred_username"
                        ) {
                            old.insert(k.clone(), v.clone());
                        }
                    }
                }
                s["ui"] = serde_json::Value::from(now_secs());
                Refresh::Done
            }
            Err(why) if why.starts_with("status 401") || why.starts_with("status 403") => {
                Refresh::Revoked
            }
            Err(why) => {
                tracing::warn!("userinfo refresh failed, keeping the session: {why}");
                Refresh::Unavailable
            }
        }
    }

    /// Who signed in with a plain OAuth provider, asked of its API with
    /// the access token, as claims.
    pub(super) async fn plain_identity(
        &self,
        p: &Plain,
        access: &str,
    ) -> Result<serde_json::Value, String> {
        match p.kind {
            PlainKind::GitHub => self.github_identity(p, access).await,
            PlainKind::Facebook | PlainKind::Amazon => self.profile_identity(p, access).await,
        }
    }

    /// Facebook (`GET /me?fields=id,name,email` of the Graph API) and
    /// Amazon (`GET /user/profile`): the user's id, name and email. Both
    /// return an email only once the user confirmed it (Facebook: only a
    /// valid, confirmed address; Amazon: the account's verified primary
    /// address), so a returned email is taken as verified.
    async fn profile_identity(&self, p: &Plain, access: &str) -> Result<serde_json::Value, String> {
        let client = self.client.as_ref().ok_or("no HTTP client")?;
        let (url, id_field) = match p.kind {
            PlainKind::Facebook => (
                format!("{}/{FACEBOOK_VERSION}/me?fields=id,name,email", p.api),
                "id",
            ),
            _ => (format!("{}/user/profile", p.api), "user_id"),
        };
        let req = Request::get(url.as_str())
            .header("authorization", format!("Bearer {access}"))
            .header("accept", "application/json")
            .body(Bytes::new());
        let user = fetch_json(&**client, req).await?;
        let id = match user.get(id_field) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => return Err("no user id".into()),
        };
        let email = user.get("email").and_then(|v| v.as_str()).unwrap_or("");
        Ok(serde_json::json!({
            "sub": id,
            "name": user.get("name").and_then(|v| v.as_str()).unwrap_or(""),
            "email": email,
            "email_verified": !email.is_empty(),
        }))
    }

    /// Who signed in with GitHub: `GET /user` and `GET /user/emails` with
    /// the access token, as claims (`sub` is GitHub's numeric user id; the
    /// email is the primary one, with whether GitHub verified it).
    async fn github_identity(&self, gh: &Plain, access: &str) -> Result<serde_json::Value, String> {
        let client = self.client.as_ref().ok_or("no HTTP client")?;
        let get = |path: &str| {
            Request::get(format!("{}{path}", gh.api))
                .header("authorization", format!("Bearer {access}"))
                .header("accept", "application/vnd.github+json")
                .header("user-agent", "portcullis")
                .body(Bytes::new())
        };
        let user = fetch_json(&**client, get("/user")).await?;
        let emails = fetch_json(&**client, get("/user/emails")).await?;
        let primary = emails
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e.get("primary").and_then(serde_json::Value::as_bool) == Some(true));
        let id = user
            .get("id")
            .and_then(serde_json::Value::as_i64)
            .ok_or("no user id")?;
        let login = user.get("login").and_then(|v| v.as_str()).unwrap_or("");
        let name = user
            .get("name")
            .and_then(|v| v.as_str())
            .filter(|n| !n.is_empty())
            .unwrap_or(login);
        Ok(serde_json::json!({
            "sub": id.to_string(),
            "login": login,
            "name": name,
            "email": primary.and_then(|e| e.get("email")).and_then(|v| v.as_str()).unwrap_or(""),
            "email_verified": primary
                .and_then(|e| e.get("verified"))
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
        }))
    }
}

/// The Graph API version Facebook's endpoints are called at.
const FACEBOOK_VERSION: &str = "v19.0";

pub(super) async fn fetch_json(
    client: &dyn HttpClient,
    req: Result<Request<Bytes>, http::Error>,
) -> Result<serde_json::Value, String> {
    let req = req.map_err(|e| e.to_string())?;
    let res = client
        .fetch(req, Scope::Public, MAX_FETCH, FETCH_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let json: serde_json::Value = serde_json::from_slice(&res.body)
        .map_err(|_| format!("status {}, not JSON", res.status))?;
    if !res.status.is_success() {
        let err = json.get("error").and_then(|v| v.as_str()).unwrap_or("");
        let why = json
            .get("error_description")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        return Err(format!("status {}: {err} {why}", res.status));
    }
    Ok(json)
}
