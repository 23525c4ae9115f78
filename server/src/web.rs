//! Request guards that sit in front of every route: cross-site requests are refused, and
//! pages need a session (the sign-in page excepted). Server functions check roles
//! themselves through `app::auth::guard::require`.

use app::auth::service::{authenticate_remembering, Activity, RequestUser};
use app::auth::{safe_next, AuthError, SIGN_IN_PATH};
use app::context::ConsoleContext;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use tower_sessions::Session;

/// Refuses state-changing requests that a browser did not send from the console's own
/// origin. `Sec-Fetch-Site` decides when present and must say `same-origin`: `same-site`
/// covers every port of the same host and every sibling subdomain, any of which may serve
/// a page that posts here. Browsers that send no fetch metadata must send the console's
/// exact public `Origin`. Requests with neither header (scripts, curl) are not
/// browser-driven and pass.
pub async fn refuse_cross_site(
    State(public_origin): State<PublicOrigin>,
    request: Request,
    next: Next,
) -> Response {
    if is_safe_method(request.method()) || same_origin(request.headers(), &public_origin) {
        return next.run(request).await;
    }
    tracing::warn!(
        method = %request.method(),
        path = request.uri().path(),
        origin = ?request.headers().get(header::ORIGIN),
        fetch_site = ?request.headers().get("sec-fetch-site"),
        "refused a cross-origin request"
    );
    (
        StatusCode::FORBIDDEN,
        "Requests from other sites are refused: use the console's own pages.\n",
    )
        .into_response()
}

/// The console's public origin, e.g. `https://slipway.example.com`.
#[derive(Clone, Debug)]
pub struct PublicOrigin(pub String);

fn is_safe_method(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn same_origin(headers: &HeaderMap, public_origin: &PublicOrigin) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return site.as_bytes() == b"same-origin";
    }
    match headers.get(header::ORIGIN) {
        Some(origin) => origin.as_bytes() == public_origin.0.as_bytes(),
        None => true,
    }
}

/// Pages need a signed-in user; without one the browser goes to the sign-in page. The
/// user is attached to the request for the page render to show.
pub async fn require_session_for_pages(
    State(console): State<ConsoleContext>,
    session: Session,
    mut request: Request,
    next: Next,
) -> Response {
    if !is_page(&request) {
        return next.run(request).await;
    }
    let on_sign_in = request.uri().path() == SIGN_IN_PATH;
    // The user row read here serves the page's server functions too.
    let remembered = RequestUser::default();
    request.extensions_mut().insert(remembered.clone());
    match authenticate_remembering(&session, &console, Activity::Person, Some(remembered)).await {
        Ok(_) if on_sign_in => Redirect::to(&safe_next(next_param(&request))).into_response(),
        Ok(user) => {
            request.extensions_mut().insert(user);
            next.run(request).await
        }
        Err(AuthError::NotSignedIn) if on_sign_in => next.run(request).await,
        Err(AuthError::NotSignedIn) => {
            let wanted = request
                .uri()
                .path_and_query()
                .map(|pq| pq.as_str())
                .unwrap_or("/");
            let target = format!("{SIGN_IN_PATH}?next={}", urlencode(wanted));
            Redirect::to(&target).into_response()
        }
        Err(error) => {
            tracing::error!(error = %error, "page guard could not check the session");
            let mut response = Response::new(Body::from(format!("{error}\n")));
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            response
        }
    }
}

/// A GET of an HTML page: not a server function, not a built asset, not a probe.
fn is_page(request: &Request) -> bool {
    let path = request.uri().path();
    let last_segment = path.rsplit('/').next().unwrap_or_default();
    is_safe_method(request.method())
        && !path.starts_with("/api/")
        && !path.starts_with("/pkg/")
        && path != "/healthz"
        && path != crate::metrics::METRICS_PATH
        && !last_segment.contains('.')
}

fn next_param(request: &Request) -> Option<String> {
    let query = request.uri().query()?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "next")
        .map(|(_, value)| value.into_owned())
}

fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    fn origin() -> PublicOrigin {
        PublicOrigin("http://127.0.0.1:3000".into())
    }

    #[test]
    fn fetch_metadata_decides_when_present_and_only_same_origin_passes() {
        assert!(same_origin(
            &headers(&[("sec-fetch-site", "same-origin")]),
            &origin()
        ));
        for refused in ["cross-site", "same-site", "none", "anything"] {
            assert!(
                !same_origin(&headers(&[("sec-fetch-site", refused)]), &origin()),
                "{refused}"
            );
        }
        // Another port of the same host is the same site, and still refused.
        let sibling = headers(&[
            ("sec-fetch-site", "same-site"),
            ("origin", "http://127.0.0.1:18080"),
        ]);
        assert!(!same_origin(&sibling, &origin()));
        // A cross-site label wins over an Origin that looks right.
        let forged = headers(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "http://127.0.0.1:3000"),
        ]);
        assert!(!same_origin(&forged, &origin()));
    }

    #[test]
    fn without_fetch_metadata_the_origin_must_be_the_public_one_exactly() {
        assert!(same_origin(
            &headers(&[("origin", "http://127.0.0.1:3000")]),
            &origin()
        ));
        for refused in [
            "http://evil.example",
            "null",
            "http://127.0.0.1:3001",
            "https://127.0.0.1:3000",
            "http://127.0.0.1:3000.evil.example",
        ] {
            assert!(
                !same_origin(&headers(&[("origin", refused)]), &origin()),
                "{refused}"
            );
        }
        // The Host header is the attacker's to choose: it no longer vouches for an Origin.
        let by_host = headers(&[
            ("origin", "http://localhost:3000"),
            ("host", "localhost:3000"),
        ]);
        assert!(!same_origin(&by_host, &origin()));
        assert!(same_origin(&headers(&[]), &origin()));
    }
}
