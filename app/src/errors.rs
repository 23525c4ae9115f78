//! What every domain's error type shares at the browser boundary: an HTTP status, and the
//! conversion from transport failures. Each domain keeps its own error enum and decides
//! its own messages; internals stay in the log.

/// An error a server function may return to the browser.
pub trait UserFacing {
    /// The HTTP status the response carries.
    fn status(&self) -> u16;

    /// Seconds after which trying again may succeed (`Retry-After`), if that is known.
    fn retry_after(&self) -> Option<u32> {
        None
    }
}

/// Sets the response status for `error` and hands it back, for `.map_err(reject)`.
pub fn reject<E: UserFacing>(error: E) -> E {
    set_response_status(error.status());
    #[cfg(feature = "ssr")]
    if let (Some(response), Some(seconds)) = (
        leptos::prelude::use_context::<leptos_axum::ResponseOptions>(),
        error.retry_after(),
    ) {
        response.insert_header(axum::http::header::RETRY_AFTER, seconds.into());
    }
    error
}

/// Sets the HTTP status of the response being rendered; no-op in the browser.
pub fn set_response_status(status: u16) {
    #[cfg(feature = "ssr")]
    if let (Some(response), Ok(status)) = (
        leptos::prelude::use_context::<leptos_axum::ResponseOptions>(),
        axum::http::StatusCode::from_u16(status),
    ) {
        response.set_status(status);
    }
    #[cfg(not(feature = "ssr"))]
    let _ = status;
}

/// Implements `FromServerFnError` for a domain error with a `Transport(String)` variant.
#[macro_export]
macro_rules! server_fn_error {
    ($error:ty) => {
        impl leptos::server_fn::error::FromServerFnError for $error {
            type Encoder = leptos::server_fn::codec::JsonEncoding;

            fn from_server_fn_error(value: leptos::server_fn::error::ServerFnErrorErr) -> Self {
                Self::Transport(value.to_string())
            }
        }
    };
}
