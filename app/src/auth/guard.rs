//! The one check every server function starts with: who is asking, and may they?

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::HeaderMap;
use tower_sessions::Session;

use crate::audit::service::Actor;
use crate::context::{console, ConsoleContext};
use crate::errors::reject;

use super::service::{self, Activity};
use super::{AuthError, CurrentUser, Role};

/// The signed-in user if their role allows `needed`; otherwise 401 or 403. Deny by default:
/// a request without a valid session never gets past this.
pub async fn require(needed: Role) -> Result<CurrentUser, AuthError> {
    require_for(needed, Activity::Person).await
}

/// [`require`] for a request a page makes on its own, which does not keep the session
/// from going idle.
pub async fn require_for(needed: Role, activity: Activity) -> Result<CurrentUser, AuthError> {
    let outcome = async {
        let (console, session) = console_and_session().await?;
        let user = service::authenticate(&session, &console, activity).await?;
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
    authorized_for(needed, Activity::Person).await
}

/// [`authorized`], saying whether a person or the page itself is asking.
pub async fn authorized_for(needed: Role, activity: Activity) -> Result<Authorized, AuthError> {
    let user = require_for(needed, activity).await?;
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

/// The client's IP address: the TCP peer, or, when the peer is a trusted proxy, the client
/// its `X-Forwarded-For` names.
pub async fn client_addr() -> String {
    let Ok(ConnectInfo(peer)) = leptos_axum::extract::<ConnectInfo<SocketAddr>>().await else {
        return "unknown".into();
    };
    let headers = leptos_axum::extract::<HeaderMap>()
        .await
        .unwrap_or_default();
    let trusted = console()
        .map(|console| console.auth.trusted_proxies)
        .unwrap_or_default();
    client_behind(peer.ip(), &headers, &trusted).to_string()
}

/// Walks `X-Forwarded-For` from the right, past the trusted proxies: the first address that
/// is not one of them is the client (entries further left are the client's to invent). A
/// peer that is not trusted is the client itself, whatever it sends. An entry that does not
/// parse ends the walk at the last trusted hop's word: it was written by someone untrusted,
/// and must not hide the address the trusted proxy added to its right. IPv4 addresses seen
/// through an IPv6 listener (`::ffff:a.b.c.d`) compare as IPv4.
pub fn client_behind(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| {
        trusted
            .iter()
            .any(|t| t.to_canonical() == ip.to_canonical())
    };
    let mut client = peer.to_canonical();
    if !is_trusted(client) {
        return client;
    }
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect();
    for entry in entries.into_iter().rev() {
        let Ok(hop) = entry.trim().parse::<IpAddr>() else {
            break;
        };
        client = hop.to_canonical();
        if !is_trusted(client) {
            break;
        }
    }
    client
}

/// The audit trail's view of the user making this request.
pub async fn actor(user: &CurrentUser) -> Actor {
    Actor {
        name: user.name.clone(),
        client_addr: client_addr().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn only_a_trusted_proxy_is_believed_and_only_about_its_own_hop() {
        let proxy = [ip("10.0.0.2")];
        // Behind the proxy: the client the proxy saw.
        assert_eq!(
            client_behind(ip("10.0.0.2"), &forwarded("203.0.113.7"), &proxy),
            ip("203.0.113.7")
        );
        // What the client wrote itself (left of what the proxy added) is not believed.
        assert_eq!(
            client_behind(ip("10.0.0.2"), &forwarded("1.2.3.4, 203.0.113.7"), &proxy),
            ip("203.0.113.7")
        );
        // Two trusted hops are walked past.
        assert_eq!(
            client_behind(
                ip("10.0.0.2"),
                &forwarded("203.0.113.7, 10.0.0.3"),
                &[ip("10.0.0.2"), ip("10.0.0.3")]
            ),
            ip("203.0.113.7")
        );
        // A peer that is not a trusted proxy is the client, whatever it says.
        assert_eq!(
            client_behind(ip("198.51.100.9"), &forwarded("203.0.113.7"), &proxy),
            ip("198.51.100.9")
        );
        // A forged entry left of what the proxy added changes nothing; one right of it ends
        // the walk at the proxy's own word.
        assert_eq!(
            client_behind(ip("10.0.0.2"), &forwarded("bogus, 203.0.113.7"), &proxy),
            ip("203.0.113.7")
        );
        assert_eq!(
            client_behind(ip("10.0.0.2"), &forwarded("203.0.113.7, bogus"), &proxy),
            ip("10.0.0.2")
        );
        // An IPv6 listener sees IPv4 peers as mapped addresses.
        assert_eq!(
            client_behind(ip("::ffff:10.0.0.2"), &forwarded("203.0.113.7"), &proxy),
            ip("203.0.113.7")
        );
        assert_eq!(
            client_behind(ip("10.0.0.2"), &HeaderMap::new(), &proxy),
            ip("10.0.0.2")
        );
    }
}
