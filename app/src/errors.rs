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

/// Declares the error of a domain that only reads the store (its pages and lists): refused
/// by auth, store unavailable, or the request did not reach the console. `$domain` names it
/// in the log when the store fails.
#[macro_export]
macro_rules! read_error {
    ($(#[$meta:meta])* $error:ident, $domain:literal) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, thiserror::Error)]
        pub enum $error {
            #[error(transparent)]
            Auth(#[from] $crate::auth::AuthError),
            #[error("The console's database did not answer. Try again in a moment.")]
            Unavailable,
            #[error("The console could not be reached: {0}")]
            Transport(String),
        }

        impl $crate::errors::UserFacing for $error {
            fn status(&self) -> u16 {
                match self {
                    $error::Auth(error) => error.status(),
                    $error::Unavailable | $error::Transport(_) => 503,
                }
            }
        }

        $crate::server_fn_error!($error);
        $crate::store_unavailable!($error, $domain);
    };
}

/// Implements `From<StoreError>` for a domain error with an `Unavailable` variant: the cause
/// goes to the log, named by `$domain`; the browser hears that the store did not answer.
#[macro_export]
macro_rules! store_unavailable {
    ($error:ident, $domain:literal) => {
        #[cfg(feature = "ssr")]
        impl From<$crate::store::StoreError> for $error {
            fn from(error: $crate::store::StoreError) -> Self {
                tracing::error!(error = %error, cause = ?error, concat!("store failure in ", $domain));
                $error::Unavailable
            }
        }
    };
}
