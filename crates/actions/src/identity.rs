//! Who a request is from, once an action has established it: the user a
//! sign-in session names (`oauth`, `openid-connect`) or the user
//! `basic-auth` admitted.
//!
//! The policy reads identities through action results
//! (`actions.ngrok.oidc.identity.email`), which exist only where a policy
//! names them. An [`Identity`] is set whatever the policy reads, because
//! what leaves the proxy needs it: the identity headers and the signed
//! assertion the upstream receives (`portcullis http`), and the answer a
//! gateway copies onto the request (forward-auth).

/// The identity of a request's user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// What established it: `oidc`, `oauth` or `basic-auth`.
    pub provider: &'static str,
    /// A stable identifier: for Entra the tenant and object ids, else
    /// the provider's subject; for `basic-auth` the user name.
    pub id: String,
    /// The user's id at the provider (Entra `oid`, else `sub`; GitHub's
    /// login), or the `basic-auth` user name.
    pub user: String,
    /// The email address, only when the provider says it is verified;
    /// empty otherwise.
    pub email: String,
    /// `preferred_username` (Entra: the UPN), if the provider gave one.
    pub preferred_username: String,
    /// The display name.
    pub name: String,
    /// Group ids (Entra: object ids; resolved through Graph on overage).
    pub groups: Vec<String>,
    /// App roles.
    pub roles: Vec<String>,
    /// The Entra tenant id, if any.
    pub tenant: String,
}

impl Identity {
    /// The user `basic-auth` admitted.
    pub fn basic(user: &str) -> Identity {
        Identity {
            provider: "basic-auth",
            id: user.to_owned(),
            user: user.to_owned(),
            ..Identity::default()
        }
    }
}
