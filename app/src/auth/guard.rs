//! The one check every server function starts with: who is asking, and may they?

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use tower_sessions::Session;

use crate::audit::service::Actor;
use crate::context::{console, ConsoleContext};
use crate::errors::reject;

use super::{service, AuthError, CurrentUser, Role};

/// The signed-in user if their role allows `needed`; otherwise 401 or 403. Deny by default:
/// a request without a valid session never gets past this.
pub async fn require(needed: Role) -> Result<CurrentUser, AuthError> {
    let outcome = async {
        let (console, session) = console_and_session().await?;
        let user = service::authenticate(&session, &console).await?;
        service::authorize(&user, needed)?;
        Ok(user)
    }
    .await;
    outcome.map_err(reject)
}

/// Everything a server function needs once the caller is let in.
pub struct Authorized {
    pub console: ConsoleContext,
    pub user: CurrentUser,
    /// The caller as the audit trail records them.
    pub actor: Actor,
}

/// [`require`], plus the console and the caller's audit identity.
pub async fn authorized(needed: Role) -> Result<Authorized, AuthError> {
    let user = require(needed).await?;
    let console = console().ok_or_else(|| reject(AuthError::Unavailable))?;
    let actor = actor(&user).await;
    Ok(Authorized {
        console,
        user,
        actor,
    })
}

/// The console and the request's session, for server functions that manage sign-in.
pub async fn console_and_session() -> Result<(ConsoleContext, Session), AuthError> {
    let console = console().ok_or(AuthError::Unavailable)?;
    let session = leptos_axum::extract::<Session>()
        .await
        .map_err(|_| AuthError::Unavailable)?;
    Ok((console, session))
}

/// The client's IP address, as the TCP connection shows it.
pub async fn client_addr() -> String {
    leptos_axum::extract::<ConnectInfo<SocketAddr>>()
        .await
        .map(|ConnectInfo(addr)| addr.ip().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// The audit trail's view of the user making this request.
pub async fn actor(user: &CurrentUser) -> Actor {
    Actor {
        name: user.name.clone(),
        client_addr: client_addr().await,
    }
}
