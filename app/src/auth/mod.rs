//! Who may use the console: users, roles, sign-in and sessions. The server half lives
//! behind `ssr`: password hashing, the session store, throttling and the request guard.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

mod admin;
mod error;
mod names;
mod pages;
mod role;

pub use admin::AdminPage;
pub use error::AuthError;
pub use names::{check_new_password, UserName, MIN_PASSWORD_CHARS};
pub use pages::{SignInPage, UserMenu};
pub use role::{CurrentUser, Role};

#[cfg(feature = "ssr")]
pub mod guard;
#[cfg(feature = "ssr")]
pub mod password;
#[cfg(feature = "ssr")]
pub mod service;
#[cfg(feature = "ssr")]
pub mod session_store;
#[cfg(feature = "ssr")]
pub mod setup;
#[cfg(feature = "ssr")]
pub mod users;

/// The sign-in page's address; the only page open without a session.
pub const SIGN_IN_PATH: &str = "/sign-in";

/// A user as the Admin page lists them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummary {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: String,
}

/// The user the server rendered this page for, shared with the hydrated client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedInUser(pub Option<CurrentUser>);

/// The signed-in user of this page, if any.
pub fn signed_in_user() -> Option<CurrentUser> {
    use_context::<SignedInUser>().and_then(|user| user.0)
}

/// Where to go after signing in: only a page of this console, never another site. The
/// path must start with one of the console's sections and hold nothing but the characters
/// a URL path and query may carry as they are — no spaces or control characters, which
/// browsers strip (`/\t/evil.example` becomes `//evil.example`) and which a `Location`
/// header cannot hold.
pub fn safe_next(next: Option<String>) -> String {
    next.filter(|path| is_console_page(path))
        .unwrap_or_else(|| "/".to_owned())
}

fn is_console_page(target: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/%?".contains(c);
    if !target.starts_with('/') || target.starts_with("//") || !target.chars().all(allowed) {
        return false;
    }
    let path = target.split('?').next().unwrap_or_default();
    let first_segment = path[1..].split('/').next().unwrap_or_default();
    crate::sections::SECTIONS
        .iter()
        .any(|section| section.path[1..] == *first_segment)
}

#[server(prefix = "/api", endpoint = "sign_in")]
pub async fn sign_in(name: String, password: String) -> Result<CurrentUser, AuthError> {
    use crate::errors::reject;
    let (console, session) = guard::console_and_session().await.map_err(reject)?;
    let client = guard::client_addr().await;
    service::sign_in(&console, &session, &name, password, &client)
        .await
        .map_err(reject)
}

/// Creates the first admin with the console's one-time setup link; open to anyone who holds
/// the link (the second open door, after sign-in).
#[server(prefix = "/api", endpoint = "create_first_admin")]
pub async fn create_first_admin(
    token: String,
    name: String,
    password: String,
) -> Result<UserSummary, AuthError> {
    use crate::errors::reject;
    let (console, _) = guard::console_and_session().await.map_err(reject)?;
    let client = guard::client_addr().await;
    console
        .setup
        .create_admin(&console.store, &token, &name, password, &client)
        .await
        .map_err(reject)
}

#[server(prefix = "/api", endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), AuthError> {
    use crate::errors::reject;
    let user = guard::require(Role::Viewer).await?;
    let (console, session) = guard::console_and_session().await.map_err(reject)?;
    let client = guard::client_addr().await;
    service::sign_out(&console, &session, &user, &client)
        .await
        .map_err(reject)
}

#[server(prefix = "/api", endpoint = "users")]
pub async fn list_users() -> Result<Vec<UserSummary>, AuthError> {
    use crate::errors::reject;
    let admin = guard::authorized(Role::Admin).await?;
    users::list(&admin.console.store).await.map_err(reject)
}

#[server(prefix = "/api", endpoint = "add_user")]
pub async fn add_user(
    name: String,
    role: Role,
    password: String,
) -> Result<UserSummary, AuthError> {
    use crate::errors::reject;
    let admin = guard::authorized(Role::Admin).await?;
    service::add_user(&admin.console.store, &admin.actor, &name, role, password)
        .await
        .map_err(reject)
}

#[server(prefix = "/api", endpoint = "change_role")]
pub async fn change_role(user_id: String, role: Role) -> Result<(), AuthError> {
    use crate::errors::reject;
    let admin = guard::authorized(Role::Admin).await?;
    service::change_role(&admin.console.store, &admin.actor, &user_id, role)
        .await
        .map_err(reject)
}

#[server(prefix = "/api", endpoint = "set_user_disabled")]
pub async fn set_user_disabled(user_id: String, disabled: bool) -> Result<(), AuthError> {
    use crate::errors::reject;
    let admin = guard::authorized(Role::Admin).await?;
    service::set_disabled(&admin.console.store, &admin.actor, &user_id, disabled)
        .await
        .map_err(reject)
}

#[server(prefix = "/api", endpoint = "reset_password")]
pub async fn reset_password(user_id: String, password: String) -> Result<(), AuthError> {
    use crate::errors::reject;
    let admin = guard::authorized(Role::Admin).await?;
    service::reset_password(&admin.console.store, &admin.actor, &user_id, password)
        .await
        .map_err(reject)
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_this_console() {
        assert_eq!(safe_next(Some("/runs?stack=a".into())), "/runs?stack=a");
        assert_eq!(safe_next(Some("//evil.example/".into())), "/");
        assert_eq!(safe_next(Some("https://evil.example/".into())), "/");
        assert_eq!(safe_next(Some("/\\evil.example".into())), "/");
        assert_eq!(safe_next(Some("/sign-in?next=/x".into())), "/");
        assert_eq!(safe_next(None), "/");
        assert_eq!(safe_next(Some("/stacks/portal".into())), "/stacks/portal");
        assert_eq!(safe_next(Some("/".into())), "/");
        assert_eq!(safe_next(Some("/?a=1".into())), "/?a=1");
    }

    #[test]
    fn next_refuses_what_a_browser_would_read_as_another_site_or_a_header_cannot_hold() {
        // Browsers strip tabs and newlines: "/\t/evil.example" is "//evil.example" to them.
        for hostile in [
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "/ /evil.example",
            "/\n",
            "/runs\u{0}",
            "/runs/\u{7f}",
            "/stacks/é",
            "/nowhere",
            "/pkg/slipway.js",
            "/api/add_user",
            "http:/evil.example",
        ] {
            assert_eq!(safe_next(Some(hostile.into())), "/", "{hostile:?}");
        }
    }
}
